"""Drills: the documented errors whose cause is a store's CloudHSM cluster or proxy, per call or per store, from
Python, the admin endpoint and the command line; and what the provider tells a user who meets one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from kms_connection.emulator import (
    DUMMY_ACCESS_KEY_ID,
    DUMMY_SECRET_ACCESS_KEY,
    Emulator,
    EmulatorConfigError,
    EmulatorStateError,
    FakeClock,
)
from kms_connection.errors import API_ERROR_REMEDIES, KmsApiError
from kms_connection.gateway import KmsGateway
from tests.test_emulator_cli import REPO, EmulatorProcess, child_env

NO_RETRY: dict[str, Any] = {"retries": {"total_max_attempts": 1}}
HSM_SEED_ID = "cks-0123456789abcdef0"  # local/seed.json: an AWS_CLOUDHSM store
XKS_CREDENTIAL = {
    "AccessKeyId": "ABCDEFGHIJKLMNOPQRST",
    "RawSecretAccessKey": "XksSecretXksSecretXksSecretXksSecretXksSecret0123",
}


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    """An emulator on a fake clock: a connect stays CONNECTING until the test advances it."""
    return make_emulator(clock=FakeClock(), connect_seconds=1.0, disconnect_seconds=0.5)


def hsm_params(name: str = "hsm", cluster: str = "cluster-234567abcdefg") -> dict[str, Any]:
    return {
        "CustomKeyStoreName": name,
        "CloudHsmClusterId": cluster,
        "TrustAnchorCertificate": "-----BEGIN CERTIFICATE-----\ntrust\n-----END CERTIFICATE-----",
        "KeyStorePassword": "kmsuser-Pa55word",
    }


def xks_params(name: str = "xks", endpoint: str = "https://xks.example.com") -> dict[str, Any]:
    return {
        "CustomKeyStoreName": name,
        "CustomKeyStoreType": "EXTERNAL_KEY_STORE",
        "XksProxyUriEndpoint": endpoint,
        "XksProxyUriPath": "/kms/xks/v1",
        "XksProxyAuthenticationCredential": XKS_CREDENTIAL,
        "XksProxyConnectivity": "PUBLIC_ENDPOINT",
    }


def error_of(call: Callable[[], object]) -> tuple[str, int]:
    """(error code, HTTP status) of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return str(response["Error"]["Code"]), int(response["ResponseMetadata"]["HTTPStatusCode"])


def client_for(url: str) -> Any:
    """An unmodified boto3 KMS client for an emulator started as a program, retries off."""
    session = boto3.session.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY_ID, aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY, region_name="us-east-1"
    )
    return session.client("kms", endpoint_url=url, config=Config(**NO_RETRY))


def admin(url: str, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# -- per call ---------------------------------------------------------------------------------------


def test_a_per_call_drill_answers_the_next_create_of_its_store_type(emu: Emulator) -> None:
    emu.drill_next("CreateCustomKeyStore", "XksProxyUriUnreachableException")
    client = emu.client(**NO_RETRY)
    client.create_custom_key_store(**hsm_params())  # a CloudHSM store does not have a proxy
    with pytest.raises(client.exceptions.XksProxyUriUnreachableException):
        client.create_custom_key_store(**xks_params())


def test_a_per_call_drill_is_spent_after_its_count(emu: Emulator) -> None:
    emu.drill_next("CreateCustomKeyStore", "IncorrectTrustAnchorException", count=2)
    client = emu.client(**NO_RETRY)
    for _ in range(2):
        assert error_of(lambda: client.create_custom_key_store(**hsm_params()))[0] == "IncorrectTrustAnchorException"
    client.create_custom_key_store(**hsm_params())


def test_a_drilled_create_leaves_no_store(emu: Emulator) -> None:
    emu.drill_next("CreateCustomKeyStore", "CloudHsmClusterNotActiveException")
    client = emu.client(**NO_RETRY)
    error_of(lambda: client.create_custom_key_store(**hsm_params()))
    assert client.describe_custom_key_stores()["CustomKeyStores"] == []
    assert emu.calls[0].outcome == "CloudHsmClusterNotActiveException"


def test_a_drill_answers_only_a_request_that_passes_the_rules(emu: Emulator) -> None:
    store_id = emu.create_store("failed", connection_state="FAILED", error_code="USER_NOT_FOUND")
    emu.drill_next("ConnectCustomKeyStore", "CloudHsmClusterInvalidConfigurationException")
    client = emu.client(**NO_RETRY)
    assert error_of(lambda: client.connect_custom_key_store(CustomKeyStoreId=store_id))[0] == (
        "CustomKeyStoreInvalidStateException"
    )
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    assert isinstance(emu.clock, FakeClock)
    emu.clock.advance(0.5)
    assert error_of(lambda: client.connect_custom_key_store(CustomKeyStoreId=store_id)) == (
        "CloudHsmClusterInvalidConfigurationException",
        400,
    )


def test_a_drill_answers_with_the_models_documentation_as_message(emu: Emulator) -> None:
    emu.drill_next("CreateCustomKeyStore", "XksProxyInvalidResponseException")
    client = emu.client(**NO_RETRY)
    with pytest.raises(ClientError) as caught:
        client.create_custom_key_store(**xks_params())
    assert caught.value.response["Error"]["Message"].startswith(
        "KMS cannot interpret the response it received from the external key store proxy."
    )


# -- per store --------------------------------------------------------------------------------------


def test_a_store_drill_fails_every_connect_until_cleared(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    emu.drill_store(store_id, "CloudHsmClusterNotActiveException")
    client = emu.client(**NO_RETRY)
    for _ in range(2):
        code = error_of(lambda: client.connect_custom_key_store(CustomKeyStoreId=store_id))[0]
        assert code == "CloudHsmClusterNotActiveException"
    assert emu.state_of(store_id) == "DISCONNECTED"
    emu.drill_store(store_id, None)
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert emu.state_of(store_id) == "CONNECTING"


def test_a_store_drill_answers_an_update_of_its_backing_settings(emu: Emulator) -> None:
    store_id = emu.create_store("xks", store_type="EXTERNAL_KEY_STORE")
    emu.drill_store(store_id, "XksProxyIncorrectAuthenticationCredentialException")
    client = emu.client(**NO_RETRY)
    update: dict[str, Any] = {"CustomKeyStoreId": store_id, "XksProxyAuthenticationCredential": XKS_CREDENTIAL}
    code = error_of(lambda: client.update_custom_key_store(**update))[0]
    assert code == "XksProxyIncorrectAuthenticationCredentialException"


def test_a_store_drill_lets_a_rename_through(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    emu.drill_store(store_id, "CloudHsmClusterNotFoundException")
    client = emu.client(**NO_RETRY)
    client.update_custom_key_store(CustomKeyStoreId=store_id, NewCustomKeyStoreName="renamed")
    assert client.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]["CustomKeyStoreName"] == (
        "renamed"
    )


def test_a_store_drill_spares_a_connect_that_changes_nothing(emu: Emulator) -> None:
    store_id = emu.create_store("hsm", connection_state="CONNECTED")
    emu.drill_store(store_id, "CloudHsmClusterNotActiveException")
    emu.client(**NO_RETRY).connect_custom_key_store(CustomKeyStoreId=store_id)
    assert emu.state_of(store_id) == "CONNECTED"


def test_a_store_drill_touches_no_other_store(emu: Emulator) -> None:
    drilled, other = emu.create_store("drilled"), emu.create_store("other")
    emu.drill_store(drilled, "CloudHsmClusterNotActiveException")
    emu.client(**NO_RETRY).connect_custom_key_store(CustomKeyStoreId=other)
    assert emu.state_of(other) == "CONNECTING"


def test_deleting_a_store_drops_its_drill(emu: Emulator) -> None:
    store_id = emu.create_store("hsm", store_id="cks-0000000000000000a")
    emu.drill_store(store_id, "CloudHsmClusterNotActiveException")
    client = emu.client(**NO_RETRY)
    client.delete_custom_key_store(CustomKeyStoreId=store_id)
    emu.create_store("again", store_id="cks-0000000000000000a")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert emu.state_of(store_id) == "CONNECTING"


def test_clear_drills_drops_per_call_and_per_store_drills(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    emu.drill_store(store_id, "CloudHsmClusterNotActiveException")
    emu.drill_next("CreateCustomKeyStore", "CloudHsmClusterNotFoundException")
    emu.clear_drills()
    client = emu.client(**NO_RETRY)
    client.create_custom_key_store(**hsm_params("new"))
    client.connect_custom_key_store(CustomKeyStoreId=store_id)


def test_reset_keeps_the_drills_given_at_construction_only(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(next_drills=[("CreateCustomKeyStore", "CloudHsmClusterNotFoundException", 1)])
    emu.drill_next("CreateCustomKeyStore", "IncorrectTrustAnchorException")
    emu.reset()
    client = emu.client(**NO_RETRY)
    assert error_of(lambda: client.create_custom_key_store(**hsm_params()))[0] == "CloudHsmClusterNotFoundException"
    client.create_custom_key_store(**hsm_params())


def test_store_drills_given_at_construction_apply_to_seeded_stores(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(
        seed=str(REPO / "local" / "seed.json"), store_drills={HSM_SEED_ID: "CloudHsmClusterNotActiveException"}
    )
    client = emu.client(**NO_RETRY)
    code = error_of(lambda: client.connect_custom_key_store(CustomKeyStoreId=HSM_SEED_ID))[0]
    assert code == "CloudHsmClusterNotActiveException"


# -- refusals: a drill must fit the operation and the store's type -----------------------------------


def test_a_drill_of_the_other_store_type_is_refused(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    with pytest.raises(EmulatorConfigError, match="belongs to EXTERNAL_KEY_STORE stores, not AWS_CLOUDHSM"):
        emu.drill_store(store_id, "XksProxyUriUnreachableException")


def test_a_connection_error_code_of_the_other_store_type_is_refused(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    with pytest.raises(EmulatorConfigError, match="XKS_PROXY_TIMED_OUT belongs to EXTERNAL_KEY_STORE stores"):
        emu.set_connect_outcome(store_id, "fail", "XKS_PROXY_TIMED_OUT")


def test_a_connection_error_code_of_both_types_is_accepted_for_either(emu: Emulator) -> None:
    for store_type in ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"):
        store_id = emu.create_store(store_type.lower(), store_type=store_type)
        emu.set_connect_outcome(store_id, "fail", "INVALID_CREDENTIALS")
        emu.client().connect_custom_key_store(CustomKeyStoreId=store_id)
    assert isinstance(emu.clock, FakeClock)
    emu.clock.advance(1)
    states = {store["ConnectionErrorCode"] for store in emu.client().describe_custom_key_stores()["CustomKeyStores"]}
    assert states == {"INVALID_CREDENTIALS"}


def test_a_failed_store_with_a_code_of_the_other_type_cannot_be_created(emu: Emulator) -> None:
    with pytest.raises(EmulatorConfigError, match="USER_LOCKED_OUT belongs to AWS_CLOUDHSM stores"):
        emu.create_store(
            "xks", store_type="EXTERNAL_KEY_STORE", connection_state="FAILED", error_code="USER_LOCKED_OUT"
        )


def test_an_outcome_set_before_its_store_exists_is_checked_when_the_store_is_created(emu: Emulator) -> None:
    emu.set_connect_outcome("cks-0000000000000000a", "fail", "USER_LOGGED_IN")
    with pytest.raises(EmulatorConfigError, match="USER_LOGGED_IN belongs to AWS_CLOUDHSM stores"):
        emu.create_store("xks", store_type="EXTERNAL_KEY_STORE", store_id="cks-0000000000000000a")


def test_a_default_outcome_with_a_code_of_one_type_is_refused(emu: Emulator) -> None:
    with pytest.raises(EmulatorConfigError, match="set it per store"):
        emu.set_default_connect_outcome("fail", "CLUSTER_NOT_FOUND")


def test_a_seed_with_a_code_of_the_other_type_is_refused() -> None:
    entry = {
        "CustomKeyStoreId": "cks-aaaaaaaaaaaaaaaaa",
        "CustomKeyStoreName": "seeded",
        "CloudHsmClusterId": "cluster-234567abcdefg",
        "TrustAnchorCertificate": "pem",
        "ConnectOutcome": "fail:XKS_PROXY_NOT_REACHABLE",
    }
    with pytest.raises(EmulatorStateError, match="XKS_PROXY_NOT_REACHABLE belongs to EXTERNAL_KEY_STORE stores"):
        Emulator(seed=[entry])


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        ("ConnectCustomKeyStore", "XksProxyUriUnreachableException"),  # Connect documents cluster errors only
        ("UpdateCustomKeyStore", "IncorrectTrustAnchorException"),  # Create's only
        ("CreateCustomKeyStore", "CloudHsmClusterNotRelatedException"),  # Update's only
        ("DescribeCustomKeyStores", "CloudHsmClusterNotFoundException"),
        ("CreateCustomKeyStore", "CustomKeyStoreNameInUseException"),  # a rule answers it, not a drill
    ],
)
def test_a_per_call_drill_the_operation_does_not_document_is_refused(emu: Emulator, operation: str, error: str) -> None:
    with pytest.raises(EmulatorConfigError):
        emu.drill_next(operation, error)


def test_a_store_drill_of_an_error_only_create_answers_is_refused(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    with pytest.raises(EmulatorConfigError, match="CreateCustomKeyStore only"):
        emu.drill_store(store_id, "IncorrectTrustAnchorException")


# -- admin endpoint ---------------------------------------------------------------------------------


def test_admin_store_drill_fails_the_stores_connect(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    status, settings = admin(
        emu.endpoint_url, "POST", "/_emulator/faults", {"store_drills": {store_id: "CloudHsmClusterNotActiveException"}}
    )
    assert status == 200
    assert settings["store_drills"] == {f"us-east-1/{store_id}": "CloudHsmClusterNotActiveException"}
    client = emu.client(**NO_RETRY)
    assert error_of(lambda: client.connect_custom_key_store(CustomKeyStoreId=store_id))[0] == (
        "CloudHsmClusterNotActiveException"
    )


def test_admin_store_drill_null_clears_it(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    emu.drill_store(store_id, "CloudHsmClusterNotActiveException")
    assert admin(emu.endpoint_url, "POST", "/_emulator/faults", {"store_drills": {store_id: None}})[0] == 200
    emu.client(**NO_RETRY).connect_custom_key_store(CustomKeyStoreId=store_id)


def test_admin_drill_next_fails_the_next_update(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    body = {"drill_next": [{"operation": "UpdateCustomKeyStore", "error": "CloudHsmClusterNotRelatedException"}]}
    status, settings = admin(emu.endpoint_url, "POST", "/_emulator/faults", body)
    assert status == 200
    assert settings["drill_next"] == [
        {"operation": "UpdateCustomKeyStore", "error": "CloudHsmClusterNotRelatedException", "count": 1}
    ]
    client = emu.client(**NO_RETRY)
    code = error_of(
        lambda: client.update_custom_key_store(CustomKeyStoreId=store_id, CloudHsmClusterId="cluster-765432zyxwv")
    )[0]
    assert code == "CloudHsmClusterNotRelatedException"


def test_admin_refuses_a_drill_of_the_other_store_type_and_applies_nothing(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    body = {
        "fail_next": 1,
        "store_drills": {store_id: "XksProxyInvalidConfigurationException"},
    }
    status, answer = admin(emu.endpoint_url, "POST", "/_emulator/faults", body)
    assert status == 400
    assert "belongs to EXTERNAL_KEY_STORE stores" in answer["error"]
    emu.client(**NO_RETRY).describe_custom_key_stores()  # fail_next was not applied either


def test_admin_refuses_a_connect_outcome_of_the_other_store_type(emu: Emulator) -> None:
    store_id = emu.create_store("xks", store_type="EXTERNAL_KEY_STORE")
    status, answer = admin(
        emu.endpoint_url, "POST", "/_emulator/faults", {"connect_outcomes": {store_id: "fail:SUBNET_NOT_FOUND"}}
    )
    assert status == 400
    assert "SUBNET_NOT_FOUND belongs to AWS_CLOUDHSM stores" in answer["error"]


def test_admin_clear_drills(emu: Emulator) -> None:
    emu.drill_next("CreateCustomKeyStore", "CloudHsmClusterNotFoundException")
    status, settings = admin(emu.endpoint_url, "POST", "/_emulator/faults", {"clear_drills": True})
    assert (status, settings["drill_next"]) == (200, [])
    emu.client(**NO_RETRY).create_custom_key_store(**hsm_params())


# -- command line -----------------------------------------------------------------------------------


def test_cli_drills_become_the_emulator_settings_and_fail_requests() -> None:
    process = EmulatorProcess(
        "--seed",
        str(REPO / "local" / "seed.json"),
        "--throttle-rps",
        "0",
        "--drill-store",
        f"{HSM_SEED_ID}=CloudHsmClusterInvalidConfigurationException",
        "--drill-next",
        "CreateCustomKeyStore=XksProxyVpcEndpointServiceNotFoundException:2",
    )
    try:
        status, settings = admin(process.url, "GET", "/_emulator/faults")
        client = client_for(process.url)
        connect = error_of(lambda: client.connect_custom_key_store(CustomKeyStoreId=HSM_SEED_ID))
    finally:
        assert process.stop() == 0
    assert status == 200
    assert settings["store_drills"] == {f"us-east-1/{HSM_SEED_ID}": "CloudHsmClusterInvalidConfigurationException"}
    assert settings["drill_next"] == [
        {"operation": "CreateCustomKeyStore", "error": "XksProxyVpcEndpointServiceNotFoundException", "count": 2}
    ]
    assert connect == ("CloudHsmClusterInvalidConfigurationException", 400)


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        (["--drill-store", f"{HSM_SEED_ID}=XksProxyUriUnreachableException"], "belongs to EXTERNAL_KEY_STORE stores"),
        (["--connect-outcome", f"{HSM_SEED_ID}=fail:XKS_PROXY_TIMED_OUT"], "belongs to EXTERNAL_KEY_STORE stores"),
        (["--drill-next", "ConnectCustomKeyStore=XksProxyUriUnreachableException"], "does not document"),
    ],
    ids=["store-drill", "connect-outcome", "drill-next"],
)
def test_cli_refuses_a_drill_that_does_not_fit_with_exit_status_2(option: list[str], reason: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kms_connection.emulator",
            "--port",
            "0",
            "--seed",
            str(REPO / "local" / "seed.json"),
            *option,
        ],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert reason in result.stderr


# -- what the provider tells the user ----------------------------------------------------------------


@pytest.mark.parametrize("error", ["CloudHsmClusterNotActiveException", "CloudHsmClusterInvalidConfigurationException"])
def test_the_providers_message_for_a_drilled_connect_names_the_store_and_the_fix(emu: Emulator, error: str) -> None:
    store_id = emu.create_store("hsm")
    emu.drill_store(store_id, error)
    gateway = KmsGateway("us-east-1", lambda: emu.client(**NO_RETRY))
    with pytest.raises(KmsApiError) as caught:
        gateway.connect(store_id)
    message = str(caught.value)
    assert message.startswith(f"custom key store {store_id} in us-east-1: ConnectCustomKeyStore failed with {error}:")
    assert message.endswith(f"To fix: {API_ERROR_REMEDIES[error]}.")
