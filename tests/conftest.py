"""Shared test fixtures. Keep each fixture small, documented and free of side effects on other tests.

* ``kms_emulator``: a fresh in-process KMS emulator (connect 0.2 s, disconnect 0.1 s), stopped afterwards.
* ``make_emulator``: a factory for emulators with other settings (a ``FakeClock``, faults...), all stopped
  afterwards.
* ``aws_env``: dummy credentials, ``AWS_REGION=us-east-1`` and ``AWS_ENDPOINT_URL_KMS`` pointing at
  ``kms_emulator``, set with ``monkeypatch`` (not autouse); ``set_aws_env`` does the same for any endpoint.

Tests never reach the network: every client targets a loopback emulator, and the EC2 metadata service
(which botocore may probe for credentials) is disabled for the whole session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pulumi.dynamic import ConfigureRequest, ResourceProvider
from pulumi.dynamic.config import Config

from kms_connection.emulator import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, Emulator
from kms_connection.provider import new_deployment
from tests.deployments import Deployments
from tests.lifecycle_fixtures import AMBIENT_AWS_VARIABLES

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
# No test, and no provider server a test starts (they inherit this environment), may call KMS as the developer
# or somewhere real.
for _name in AMBIENT_AWS_VARIABLES:
    os.environ.pop(_name, None)


@pytest.fixture
def kms_emulator() -> Iterator[Emulator]:
    """A fresh in-process emulator on a free loopback port; stopped after the test."""
    with Emulator(connect_seconds=0.2, disconnect_seconds=0.1) as emulator:
        yield emulator


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """Build emulators with any ``Emulator`` arguments; every one is stopped after the test."""
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        emulator = Emulator(**kwargs)
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


def set_aws_env(monkeypatch: pytest.MonkeyPatch, endpoint_url: str, config_dir: Path) -> dict[str, str]:
    """Point the AWS SDKs and CLI at ``endpoint_url`` with dummy credentials; returns the variables set.

    Profiles and credentials of the developer's machine are hidden (config files under ``config_dir``,
    which need not exist), so a test behaves the same everywhere.
    """
    for name in AMBIENT_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    variables = {
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_KMS": endpoint_url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(config_dir / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "aws-credentials"),
        "AWS_PAGER": "",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, kms_emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    """The environment of ``set_aws_env`` for ``kms_emulator``; returns the variables set."""
    return set_aws_env(monkeypatch, kms_emulator.endpoint_url, tmp_path)


ProviderT = TypeVar("ProviderT", bound=ResourceProvider)


@pytest.fixture(autouse=True)
def one_deployment_per_test() -> None:
    """Forget which resources connected which stores: the engine runs one provider process per deployment,
    while in-process provider tests run many deployments in one process."""
    new_deployment()


@pytest.fixture
def configured(kms_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Callable[[type[ProviderT]], ProviderT]:
    """Make an in-process provider configured as the engine would for a stack in us-east-1 whose `aws:endpoints`
    name the emulator; the credentials in the environment are distinctive, so tests can look for them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDPROVIDERTEST0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "provider-test-secret")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)

    def make(provider_class: type[ProviderT]) -> ProviderT:
        provider = provider_class()
        config = {"aws:region": "us-east-1", "aws:endpoints": f'[{{"kms": "{kms_emulator.endpoint_url}"}}]'}
        provider.configure(ConfigureRequest(Config(config, "kms-connection")))
        return provider

    return make


@pytest.fixture
def make_deployments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[[Emulator], Deployments]]:
    """Deployments of one stack against an emulator, each in its own provider process; all stopped afterwards."""
    for name in AMBIENT_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    made: list[Deployments] = []

    def make(emulator: Emulator) -> Deployments:
        made.append(Deployments(emulator, tmp_path))
        return made[-1]

    yield make
    for deployments in made:
        deployments.close()
