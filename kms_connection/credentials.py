"""The credentials KMS and STS calls are signed with, and the account they act in: botocore's own machinery,
configured from the stack's settings, never a hand-written one.

* **Base credentials**: ``aws:accessKey``/``aws:secretKey``/``aws:token`` when the stack sets them; else botocore's
  default chain for ``aws:profile`` (a profile named in the stack config makes botocore ignore the environment's
  keys, as pulumi-aws does), reading ``aws:sharedCredentialsFiles`` and ``aws:sharedConfigFiles`` when set (several
  files are merged, later ones overriding earlier ones key by key, as the AWS SDK for Go that pulumi-aws uses
  does); else the environment, the default files, container and instance credentials.
* **Roles**: a chain (the stack's ``aws:assumeRoles``, then a resource's ``role_arn``) is assumed in order, each
  role with the previous one's session, through botocore's ``AssumeRoleCredentialFetcher`` and
  ``DeferredRefreshableCredentials``: nothing is assumed before the first call, and botocore assumes the role
  again before a session expires, however long a wait lasts. A role that cannot be assumed is a
  ``RoleAssumptionError`` naming it.
* **Cached per process**: one credential set per stack settings, chain and Region (its botocore session, with
  the refreshable credentials), shared by every resource and thread; the account of a chain is learned once.
* **The account**: STS ``GetCallerIdentity`` with the chain's credentials, when the STS endpoint answers for the
  same service as the KMS endpoint (both AWS's, or both a local endpoint such as the emulator). A stack that
  sends KMS calls to a local endpoint and leaves STS at AWS cannot learn it: then ``AccountUnknownError`` says
  so, and the account is the last role's when there is one.

Nothing here logs, and no credential reaches a message: errors quote STS's own words, which name ARNs only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .settings import AssumeRole, AwsSettings

if TYPE_CHECKING:
    import botocore.session

USER_AGENT = "kms-connection/0.1.0"

# STS calls are few (one AssumeRole per role and session, one GetCallerIdentity per credential set); the standard
# mode's attempts ride out a throttle or a dropped connection without the adaptive mode's pacing, which belongs to
# KMS's quota.
STS_MAX_ATTEMPTS = 5

# Hosts of AWS's own endpoints (every partition), including VPC endpoints and FIPS endpoints.
_AWS_HOST_SUFFIXES = (
    ".amazonaws.com",
    ".amazonaws.com.cn",
    ".api.aws",
    ".c2s.ic.gov",
    ".sc2s.sgov.gov",
    ".cloud.adc-e.uk",
    ".csp.hci.ic.gov",
)

# botocore logs a failed refresh with a traceback before raising it; with no logging configured in the provider
# process, Python would print that to stderr, where the engine shows it beside our own error, which says it all.
logging.getLogger("botocore.credentials").addHandler(logging.NullHandler())
logging.getLogger("botocore.credentials").propagate = False

Chain = tuple[AssumeRole, ...]
"""Roles assumed in order, each with the previous one's session; empty for the base credentials."""


class CredentialsError(Exception):
    """Credentials could not be had or told their account; ``fix`` says what to do about it."""

    def __init__(self, detail: str, fix: str) -> None:
        self.detail = detail
        self.fix = fix
        super().__init__(f"{detail}. To fix: {fix}")


class RoleAssumptionError(CredentialsError):
    """STS refused (or could not be asked) to assume a role of the chain."""

    def __init__(self, role_arn: str, code: str, message: str) -> None:
        self.role_arn = role_arn
        self.code = code
        detail = f"cannot assume role {role_arn}: {code}" + (f": {message.rstrip('.')}" if message else "")
        if code in ("AccessDenied", "AccessDeniedException"):
            fix = (
                f"the caller is missing permission sts:AssumeRole on {role_arn}: allow it in the caller's IAM policy, "
                "and make the role's trust policy trust the caller (with the external id, when the trust policy "
                "requires one)"
            )
        elif code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch"):
            fix = "the credentials the role is assumed with are not valid (or have expired); refresh them"
        elif code == "ValidationError":
            fix = "check the role's settings (aws:assumeRoles or the resource's role inputs) against STS's limits"
        else:
            fix = "check the STS endpoint (`aws:endpoints` sts entry, AWS_ENDPOINT_URL_STS) and the credentials"
        super().__init__(detail, fix)


class AccountUnknownError(CredentialsError):
    """The account the credentials act in could not be learned."""


@dataclass(frozen=True)
class Identity:
    """Who a credential set acts as: its account and ARN (from GetCallerIdentity, or the last role's account)."""

    account: str
    arn: str | None = None


def is_aws_endpoint(url: str) -> bool:
    """Whether ``url`` is one of AWS's own endpoints rather than a local or third-party one."""
    host = (urlsplit(url).hostname or "").lower()
    return host.endswith(_AWS_HOST_SUFFIXES)


# -- base sessions --------------------------------------------------------------------------------------------------


def _merged_ini(paths: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The sections of several INI files, later files overriding earlier ones key by key; missing files skipped."""
    import botocore.configloader
    from botocore.exceptions import ConfigNotFound

    merged: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            parsed = botocore.configloader.raw_config_parse(path)
        except ConfigNotFound:
            continue
        for section, values in parsed.items():
            merged.setdefault(section, {}).update(values)
    return merged


def _base_session(settings: AwsSettings) -> botocore.session.Session:
    """A botocore session with the stack's base credentials (see the module docstring)."""
    import botocore.configloader
    import botocore.credentials
    import botocore.session

    if settings.static_credentials is not None:
        session = botocore.session.Session()
        static = settings.static_credentials
        session.set_credentials(static.access_key, static.secret_key, static.token)
        return session
    def config_files(session: botocore.session.Session) -> tuple[str, ...]:
        return settings.shared_config_files or (session.get_config_variable("config_file"),)

    def credentials_files(session: botocore.session.Session) -> tuple[str, ...]:
        return settings.shared_credentials_files or (session.get_config_variable("credentials_file"),)

    class StackSession(botocore.session.Session):
        """Reads the stack's lists of shared files, merged (or botocore's one file of each kind)."""

        _merged: dict[str, Any] | None = None

        @property
        def full_config(self) -> dict[str, Any]:
            if self._merged is None:
                merged: dict[str, Any] = botocore.configloader.build_profile_map(_merged_ini(config_files(self)))
                for profile, values in _merged_ini(credentials_files(self)).items():
                    merged["profiles"].setdefault(profile, {}).update(values)
                self._merged = merged
            return self._merged

    class StackProfileProviderBuilder(botocore.credentials.ProfileProviderBuilder):
        """Where botocore points a provider at one file, the merged files instead."""

        def _create_shared_credential_provider(self, profile_name: str) -> Any:
            files = credentials_files(session)
            return botocore.credentials.SharedCredentialProvider(
                "merged", profile_name, ini_parser=lambda _name: _merged_ini(files)
            )

        def _create_config_provider(self, profile_name: str) -> Any:
            files = config_files(session)
            return botocore.credentials.ConfigProvider(
                "merged",
                profile_name,
                config_parser=lambda _name: botocore.configloader.build_profile_map(_merged_ini(files)),
            )

    def sts_client(service_name: str, **kwargs: Any) -> Any:
        # A role profile (role_arn + source_profile) is assumed at the stack's STS endpoint, like its roles.
        kwargs.setdefault("region_name", settings.region)
        kwargs.setdefault("endpoint_url", settings.sts_endpoint)
        kwargs.setdefault("config", _sts_config())
        return session.create_client(service_name, **kwargs)

    session = StackSession(profile=settings.profile)
    profile = session.get_config_variable("profile") or "default"
    builder = StackProfileProviderBuilder(session, region_name=settings.region)
    resolver = botocore.credentials.create_credential_resolver(session, region_name=settings.region)
    replacements = {provider.METHOD: provider for provider in builder.providers(profile)}
    for index, provider in enumerate(resolver.providers):
        if isinstance(provider, botocore.credentials.AssumeRoleProvider):
            sourcer = botocore.credentials.CanonicalNameCredentialSourcer(
                [p for p in resolver.providers if p.METHOD in ("env", "container-role", "iam-role")]
            )
            resolver.providers[index] = botocore.credentials.AssumeRoleProvider(
                load_config=lambda: session.full_config,
                client_creator=sts_client,
                cache={},
                profile_name=profile,
                credential_sourcer=sourcer,
                profile_provider_builder=builder,
            )
        elif provider.METHOD in ("shared-credentials-file", "config-file"):
            resolver.providers[index] = replacements[provider.METHOD]
    session.register_component("credential_provider", resolver)
    return session


# -- credential sets ------------------------------------------------------------------------------------------------


@dataclass
class CredentialSet:
    """The credentials of one chain in one Region: a botocore session whose credentials botocore refreshes, and
    the account they act in. Made by ``credential_set``; shared by every resource and thread of the process."""

    settings: AwsSettings
    chain: Chain
    region: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _session: Any = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """The credentials as messages name them: the last role of the chain, or the stack's base credentials."""
        return f"the credentials of role {self.chain[-1].role_arn}" if self.chain else "the stack's credentials"

    def session(self) -> botocore.session.Session:
        """The botocore session to make clients from (made on first use, inside the callers' error handling)."""
        with self._lock:
            if self._session is None:
                self._session = self._make_session()
            session: botocore.session.Session = self._session
            return session

    def client(self, service: str, endpoint_url: str | None, config: Any) -> Any:
        """A client of ``service`` in this set's Region, signed with its credentials."""
        session = self.session()
        with _CLIENTS_LOCK:  # botocore sessions are not thread-safe
            return session.create_client(service, region_name=self.region, endpoint_url=endpoint_url, config=config)

    def sts_client(self) -> Any:
        """An STS client with this set's credentials, at the stack's STS endpoint (or botocore's resolution)."""
        return self.client("sts", self.settings.sts_endpoint, _sts_config())

    def identity(self, kms_endpoint: str) -> Identity | None:
        """Who these credentials act as, learned once per chain (see the module docstring); None when it cannot
        be learned and no role tells the account. ``AccountUnknownError`` when STS cannot say,
        ``RoleAssumptionError`` when a role cannot be assumed."""
        key = (self.settings, self.chain)
        with _IDENTITIES_LOCK:
            if key in _IDENTITIES:
                return _IDENTITIES[key]
            learning = _LEARNING.setdefault(key, threading.Lock())
        # One GetCallerIdentity per chain even when the server's worker threads all ask at once; other chains
        # are not held up by this one's STS calls.
        with learning:
            with _IDENTITIES_LOCK:
                if key in _IDENTITIES:
                    return _IDENTITIES[key]
            return self._learn_identity(key, kms_endpoint)

    def _learn_identity(self, key: tuple[AwsSettings, Chain], kms_endpoint: str) -> Identity | None:
        sts = self.sts_client()
        sts_endpoint = str(sts.meta.endpoint_url)
        if is_aws_endpoint(kms_endpoint) != is_aws_endpoint(sts_endpoint):
            if self.chain:
                identity: Identity | None = Identity(self.chain[-1].account)
            else:
                raise AccountUnknownError(
                    f"KMS requests go to {kms_endpoint} but STS requests to {sts_endpoint}, so STS cannot tell the "
                    "account KMS acts in",
                    "point STS at the same service as KMS: an `sts` entry in `aws:endpoints` (as for `kms`), or "
                    "AWS_ENDPOINT_URL_STS",
                )
        else:
            identity = self._caller_identity(sts, sts_endpoint)
        with _IDENTITIES_LOCK:
            _IDENTITIES.setdefault(key, identity)
            return _IDENTITIES[key]

    def _caller_identity(self, sts: Any, sts_endpoint: str) -> Identity:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = sts.get_caller_identity()
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code") or "Unknown")
            message = str(error.response.get("Error", {}).get("Message") or "").rstrip(".")
            raise AccountUnknownError(
                f"STS GetCallerIdentity at {sts_endpoint} failed with {code}" + (f": {message}" if message else ""),
                f"check the credentials of {self.label}",
            ) from None
        except BotoCoreError as error:
            raise AccountUnknownError(
                f"STS GetCallerIdentity at {sts_endpoint} could not be sent: {type(error).__name__}: {error}",
                "check the STS endpoint (`aws:endpoints` sts entry, AWS_ENDPOINT_URL_STS) and the credentials",
            ) from None
        return Identity(str(answer["Account"]), str(answer.get("Arn") or "") or None)

    def _make_session(self) -> botocore.session.Session:
        import botocore.session
        from botocore.credentials import (
            AssumeRoleCredentialFetcher,
            CredentialProvider,
            CredentialResolver,
            DeferredRefreshableCredentials,
        )
        from botocore.exceptions import NoCredentialsError

        base = _base_sessions(self.settings)
        if not self.chain:
            return base
        with _CLIENTS_LOCK:
            credentials = base.get_credentials()
        if credentials is None:
            raise NoCredentialsError()

        def sts_client(service_name: str, **kwargs: Any) -> Any:
            # botocore's fetcher asks for a client with the source credentials at every refresh.
            with _CLIENTS_LOCK:
                return base.create_client(
                    service_name,
                    region_name=self.region,
                    endpoint_url=self.settings.sts_endpoint,
                    config=_sts_config(),
                    **kwargs,
                )

        for role in self.chain:
            fetcher = AssumeRoleCredentialFetcher(
                sts_client, credentials, role.role_arn, extra_args=role.assume_role_args()
            )
            credentials = DeferredRefreshableCredentials(_naming(role, fetcher.fetch_credentials), "assume-role")
        chained = credentials

        class Chained(CredentialProvider):
            """Hands botocore's resolver the chain's refreshable credentials."""

            METHOD = "kms-connection-assume-role"
            CANONICAL_NAME = "KmsConnectionAssumeRole"

            def load(self) -> Any:
                return chained

        session = botocore.session.Session()
        session.register_component("credential_provider", CredentialResolver([Chained()]))
        return session


def _naming(role: AssumeRole, fetch: Callable[[], Mapping[str, Any]]) -> Callable[[], Mapping[str, Any]]:
    """``fetch``, its failures told as a ``RoleAssumptionError`` naming the role (a failure of an earlier role of
    the chain keeps that role's name)."""
    from botocore.exceptions import BotoCoreError, ClientError

    def fetch_naming_the_role() -> Mapping[str, Any]:
        try:
            return fetch()
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code") or "Unknown")
            message = str(error.response.get("Error", {}).get("Message") or "")
            raise RoleAssumptionError(role.role_arn, code, message) from None
        except BotoCoreError as error:
            raise RoleAssumptionError(role.role_arn, type(error).__name__, str(error)) from None

    return fetch_naming_the_role


def _sts_config() -> Any:
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": STS_MAX_ATTEMPTS},
        connect_timeout=10,
        read_timeout=30,
        user_agent_extra=USER_AGENT,
    )


_CLIENTS_LOCK = threading.RLock()
_SETS_LOCK = threading.Lock()
_SETS: dict[tuple[AwsSettings, Chain, str], CredentialSet] = {}
_BASES: dict[AwsSettings, botocore.session.Session] = {}
_IDENTITIES_LOCK = threading.Lock()
_IDENTITIES: dict[tuple[AwsSettings, Chain], Identity | None] = {}
_LEARNING: dict[tuple[AwsSettings, Chain], threading.Lock] = {}


def _base_sessions(settings: AwsSettings) -> botocore.session.Session:
    # One base session per stack settings: every chain of the stack starts from the same credentials, which
    # botocore refreshes in one place when they are refreshable themselves (a profile's role, SSO...).
    with _SETS_LOCK:
        session = _BASES.get(settings)
        if session is None:
            session = _BASES[settings] = _base_session(settings)
        return session


def credential_set(settings: AwsSettings, chain: Chain, region: str) -> CredentialSet:
    """The process's credential set for ``chain`` in ``region`` under ``settings``, made on first use."""
    key = (settings, chain, region)
    with _SETS_LOCK:
        found = _SETS.get(key)
        if found is None:
            found = _SETS[key] = CredentialSet(settings, chain, region)
        return found


def forget_credentials() -> None:
    """Drop every cached session, credential and account: what a new provider process starts with."""
    with _SETS_LOCK:
        _SETS.clear()
        _BASES.clear()
    with _IDENTITIES_LOCK:
        _IDENTITIES.clear()
        _LEARNING.clear()
