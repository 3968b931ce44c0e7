"""Accounts and STS on the emulator's endpoint, through unmodified boto3 (and raw HTTP where a client would refuse
to send the request): which account each access key acts in, AssumeRole and its sessions, stores per account and
Region, the call log's accounts, and the settings from Python, the admin endpoint and a state file."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from kms_connection.emulator import DUMMY_ACCESS_KEY_ID, Emulator

NO_RETRY: dict[str, Any] = {"retries": {"total_max_attempts": 1}}
BASE_KEY = "AKIABASEACCOUNTKEY01"
OTHER_KEY = "AKIAOTHERACCOUNTKEY2"
BASE_ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
SECURITY_ACCOUNT = "222233334444"
ROLE = f"arn:aws:iam::{SECURITY_ACCOUNT}:role/kms-admin"
DENIED_ROLE = f"arn:aws:iam::{SECURITY_ACCOUNT}:role/not-for-you"


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(accounts={BASE_KEY: BASE_ACCOUNT, OTHER_KEY: OTHER_ACCOUNT}, denied_roles=[DENIED_ROLE])


def error_of(call: Callable[[], Any]) -> tuple[str, str, int]:
    """(code, message, HTTP status) of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["Error"]["Message"], response["ResponseMetadata"]["HTTPStatusCode"]


def assume(emu: Emulator, role_arn: str = ROLE, access_key_id: str = BASE_KEY, **extra: Any) -> dict[str, Any]:
    answer: dict[str, Any] = emu.sts_client(access_key_id=access_key_id, **NO_RETRY).assume_role(
        RoleArn=role_arn, RoleSessionName="pipeline", **extra
    )
    return answer


def session_kwargs(credentials: dict[str, Any]) -> dict[str, Any]:
    return {
        "access_key_id": credentials["AccessKeyId"],
        "secret_access_key": credentials["SecretAccessKey"],
        "session_token": credentials["SessionToken"],
    }


# -- who a request acts as --------------------------------------------------------------------------


def test_an_unmapped_access_key_acts_as_the_root_of_the_default_account(emu: Emulator) -> None:
    identity = emu.sts_client().get_caller_identity()
    assert (identity["Account"], identity["Arn"], identity["UserId"]) == (
        "000000000000",
        "arn:aws:iam::000000000000:root",
        "000000000000",
    )


def test_a_mapped_access_key_acts_in_its_account(emu: Emulator) -> None:
    assert emu.sts_client(access_key_id=BASE_KEY).get_caller_identity()["Account"] == BASE_ACCOUNT
    assert emu.sts_client(access_key_id=OTHER_KEY).get_caller_identity()["Account"] == OTHER_ACCOUNT


def test_a_key_mapped_at_run_time_acts_in_its_account_from_the_next_request(emu: Emulator) -> None:
    emu.map_access_key("AKIALATERMAPPEDKEY01", OTHER_ACCOUNT)
    assert emu.sts_client(access_key_id="AKIALATERMAPPEDKEY01").get_caller_identity()["Account"] == OTHER_ACCOUNT


# -- AssumeRole ---------------------------------------------------------------------------------------


def test_assume_role_returns_session_credentials_of_the_roles_account(emu: Emulator) -> None:
    before = datetime.now(timezone.utc)
    answer = assume(emu)
    credentials = answer["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA") and len(credentials["AccessKeyId"]) == 20
    assert len(credentials["SecretAccessKey"]) == 40 and len(credentials["SessionToken"]) > 100
    # The default session lasts an hour, as AWS's does.
    assert timedelta(minutes=59) < credentials["Expiration"] - before <= timedelta(hours=1, seconds=5)
    assert answer["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{SECURITY_ACCOUNT}:assumed-role/kms-admin/pipeline"
    assert answer["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA")
    assert answer["AssumedRoleUser"]["AssumedRoleId"].endswith(":pipeline")


def test_get_caller_identity_with_session_credentials_answers_the_assumed_role(emu: Emulator) -> None:
    answer = assume(emu)
    identity = emu.sts_client(**session_kwargs(answer["Credentials"])).get_caller_identity()
    assert identity["Account"] == SECURITY_ACCOUNT
    assert identity["Arn"] == f"arn:aws:sts::{SECURITY_ACCOUNT}:assumed-role/kms-admin/pipeline"
    assert identity["UserId"] == answer["AssumedRoleUser"]["AssumedRoleId"]


def test_a_role_is_assumed_in_a_chain_from_another_roles_session(emu: Emulator) -> None:
    first = assume(emu, f"arn:aws:iam::{OTHER_ACCOUNT}:role/hop")["Credentials"]
    second = emu.sts_client(**session_kwargs(first)).assume_role(RoleArn=ROLE, RoleSessionName="second-hop")
    identity = emu.sts_client(**session_kwargs(second["Credentials"])).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{SECURITY_ACCOUNT}:assumed-role/kms-admin/second-hop"


def test_role_chaining_refuses_a_session_longer_than_an_hour(emu: Emulator) -> None:
    first = assume(emu, f"arn:aws:iam::{OTHER_ACCOUNT}:role/hop")["Credentials"]
    chained = emu.sts_client(**session_kwargs(first), **NO_RETRY)
    code, message, status = error_of(
        lambda: chained.assume_role(RoleArn=ROLE, RoleSessionName="long", DurationSeconds=7200)
    )
    assert (code, status) == ("ValidationError", 400)
    assert "1 hour session limit" in message


def test_a_denied_role_answers_access_denied_naming_the_caller_and_the_role(emu: Emulator) -> None:
    code, message, status = error_of(lambda: assume(emu, DENIED_ROLE))
    assert (code, status) == ("AccessDenied", 403)
    assert message == (
        f"User: arn:aws:iam::{BASE_ACCOUNT}:root is not authorized to perform: sts:AssumeRole on resource: "
        f"{DENIED_ROLE}"
    )


def test_a_denied_role_can_be_allowed_again(emu: Emulator) -> None:
    emu.deny_assume_role(DENIED_ROLE, denied=False)
    assert assume(emu, DENIED_ROLE)["Credentials"]["AccessKeyId"].startswith("ASIA")


def test_a_role_that_requires_an_external_id_is_denied_without_it_and_assumed_with_it(emu: Emulator) -> None:
    emu.require_external_id(ROLE, "tenant-42")
    assert error_of(lambda: assume(emu))[0] == "AccessDenied"
    assert error_of(lambda: assume(emu, ExternalId="tenant-41"))[0] == "AccessDenied"
    assert assume(emu, ExternalId="tenant-42")["AssumedRoleUser"]["Arn"].endswith("/kms-admin/pipeline")


def test_assume_role_of_something_other_than_a_role_is_a_validation_error(emu: Emulator) -> None:
    code, message, _ = error_of(lambda: assume(emu, f"arn:aws:iam::{SECURITY_ACCOUNT}:user/someone"))
    assert code == "ValidationError"
    assert "arn:aws:iam::ACCOUNT:role/NAME" in message


def test_assume_role_input_is_checked_against_the_sts_model(emu: Emulator) -> None:
    # botocore checks lengths itself; a pattern it does not check is the emulator's to refuse.
    status, body = post_sts(emu, {"Action": "AssumeRole", "RoleArn": ROLE, "RoleSessionName": "has space"})
    assert status == 400
    assert "<Code>ValidationError</Code>" in body
    assert "at 'roleSessionName' failed to satisfy constraint" in body


def test_an_unknown_sts_action_is_invalid_action(emu: Emulator) -> None:
    status, body = post_sts(emu, {"Action": "GetSessionToken"})
    assert status == 400
    assert "<Code>InvalidAction</Code>" in body


def test_an_sts_request_signed_for_kms_is_refused(emu: Emulator) -> None:
    status, body = post_sts(emu, {"Action": "GetCallerIdentity"}, scope_service="kms")
    assert status == 403
    assert "<Code>IncompleteSignature</Code>" in body


# -- sessions: expiry and tokens ------------------------------------------------------------------------


def test_session_seconds_caps_how_long_sessions_last(emu: Emulator) -> None:
    emu.session_seconds = 2
    expiration = assume(emu, DurationSeconds=3600)["Credentials"]["Expiration"]
    assert expiration - datetime.now(timezone.utc) <= timedelta(seconds=2)


def test_a_request_with_an_expired_session_gets_expired_token_exception(emu: Emulator) -> None:
    emu.session_seconds = 0.3
    credentials = assume(emu)["Credentials"]
    kms = emu.client(**session_kwargs(credentials), **NO_RETRY)
    kms.describe_custom_key_stores()
    time.sleep(0.4)
    code, message, status = error_of(kms.describe_custom_key_stores)
    assert (code, status) == ("ExpiredTokenException", 400)
    assert "expired" in message
    assert error_of(emu.sts_client(**session_kwargs(credentials), **NO_RETRY).get_caller_identity)[0] == (
        "ExpiredTokenException"
    )
    assert [call.outcome for call in emu.calls[-2:]] == ["ExpiredTokenException", "ExpiredTokenException"]


def test_session_credentials_without_their_token_are_unrecognized(emu: Emulator) -> None:
    credentials = assume(emu)["Credentials"]
    kms = emu.client(
        access_key_id=credentials["AccessKeyId"], secret_access_key=credentials["SecretAccessKey"], **NO_RETRY
    )
    assert error_of(kms.describe_custom_key_stores)[:1] == ("UnrecognizedClientException",)
    forged = {**session_kwargs(credentials), "session_token": "not-the-token"}
    assert error_of(emu.sts_client(**forged, **NO_RETRY).get_caller_identity)[::2] == ("InvalidClientTokenId", 403)


# -- stores per account and Region, the call log ------------------------------------------------------


def test_stores_are_kept_per_account_and_region(emu: Emulator) -> None:
    security = emu.create_store("hsm", account=SECURITY_ACCOUNT)
    base = emu.create_store("hsm", account=BASE_ACCOUNT)  # the same name in another account
    in_security = emu.client(**session_kwargs(assume(emu)["Credentials"]))
    assert [s["CustomKeyStoreId"] for s in in_security.describe_custom_key_stores()["CustomKeyStores"]] == [security]
    in_base = emu.client(access_key_id=BASE_KEY)
    assert [s["CustomKeyStoreId"] for s in in_base.describe_custom_key_stores()["CustomKeyStores"]] == [base]
    assert emu.client(access_key_id=BASE_KEY, region="us-west-2").describe_custom_key_stores()["CustomKeyStores"] == []
    code, _, _ = error_of(lambda: in_base.connect_custom_key_store(CustomKeyStoreId=security))
    assert code == "CustomKeyStoreNotFoundException"
    assert (emu.account_of(security), emu.account_of(base)) == (SECURITY_ACCOUNT, BASE_ACCOUNT)


def test_a_store_created_through_a_session_belongs_to_the_roles_account(emu: Emulator) -> None:
    in_security = emu.client(**session_kwargs(assume(emu)["Credentials"]))
    store_id = in_security.create_custom_key_store(
        CustomKeyStoreName="vpc-xks",
        CustomKeyStoreType="EXTERNAL_KEY_STORE",
        XksProxyUriEndpoint="https://xks.example.com",
        XksProxyUriPath="/kms/xks/v1",
        XksProxyAuthenticationCredential={
            "AccessKeyId": "ABCDEFGHIJKLMNOPQRST",
            "RawSecretAccessKey": "XksSecretXksSecretXksSecretXksSecretXksSecret0123",
        },
        XksProxyConnectivity="VPC_ENDPOINT_SERVICE",
        XksProxyVpcEndpointServiceName="com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0",
    )["CustomKeyStoreId"]
    assert emu.account_of(store_id) == SECURITY_ACCOUNT
    entry = in_security.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]
    # "If not provided, the Amazon Web Services account ID calling the action will be used."
    assert entry["XksProxyConfiguration"]["VpcEndpointServiceOwner"] == SECURITY_ACCOUNT


def test_store_ids_are_unique_across_accounts(emu: Emulator) -> None:
    store_id = emu.create_store("hsm", account=SECURITY_ACCOUNT)
    with pytest.raises(ValueError, match=f"{store_id} already exists"):
        emu.create_store("hsm", account=BASE_ACCOUNT, store_id=store_id)


def test_every_call_log_entry_records_its_account_and_service(emu: Emulator) -> None:
    emu.create_store("hsm", account=SECURITY_ACCOUNT)
    emu.client(access_key_id=BASE_KEY).describe_custom_key_stores()
    credentials = assume(emu)["Credentials"]
    emu.client(**session_kwargs(credentials)).describe_custom_key_stores()
    assert [(call.service, call.operation, call.account, call.outcome) for call in emu.calls] == [
        ("kms", "DescribeCustomKeyStores", BASE_ACCOUNT, "ok"),
        ("sts", "AssumeRole", BASE_ACCOUNT, "ok"),
        ("kms", "DescribeCustomKeyStores", SECURITY_ACCOUNT, "ok"),
    ]
    # No credential reaches the log: not even an access key id.
    logged = json.dumps([call.as_json() for call in emu.calls])
    assert BASE_KEY not in logged and credentials["AccessKeyId"] not in logged


def test_throttling_counts_each_account_separately(emu: Emulator) -> None:
    emu.set_throttle(1)
    emu.client(access_key_id=BASE_KEY, **NO_RETRY).describe_custom_key_stores()
    emu.client(access_key_id=OTHER_KEY, **NO_RETRY).describe_custom_key_stores()
    assert error_of(emu.client(access_key_id=BASE_KEY, **NO_RETRY).describe_custom_key_stores)[0] == (
        "ThrottlingException"
    )


# -- unmodified boto3 configured as users configure it ----------------------------------------------


@pytest.fixture
def aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emu: Emulator) -> Iterator[Path]:
    """A config file with a role profile (role_arn + source_profile), and the emulator as the KMS and STS endpoint
    through AWS_ENDPOINT_URL_KMS and AWS_ENDPOINT_URL_STS."""
    (tmp_path / "credentials").write_text(
        f"[base]\naws_access_key_id = {BASE_KEY}\naws_secret_access_key = base-secret\n"
    )
    (tmp_path / "config").write_text(f"[profile security]\nrole_arn = {ROLE}\nsource_profile = base\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", emu.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", emu.endpoint_url)
    yield tmp_path


def test_aws_endpoint_url_sts_takes_a_boto3_role_profile_to_the_emulator(emu: Emulator, aws_files: Path) -> None:
    store_id = emu.create_store("hsm", account=SECURITY_ACCOUNT)
    session = boto3.session.Session(profile_name="security", region_name="us-east-1")
    stores = session.client("kms").describe_custom_key_stores()["CustomKeyStores"]
    assert [s["CustomKeyStoreId"] for s in stores] == [store_id]
    assert [(call.operation, call.account) for call in emu.calls] == [
        ("AssumeRole", BASE_ACCOUNT),
        ("DescribeCustomKeyStores", SECURITY_ACCOUNT),
    ]


# -- settings: admin endpoint, state file, seeds ---------------------------------------------------------


def admin(emu: Emulator, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emu.endpoint_url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_sts(emu: Emulator, form: dict[str, str], scope_service: str = "sts") -> tuple[int, str]:
    """A signed-looking STS query request (the signature value is not checked); (status, XML body)."""
    from urllib.parse import urlencode

    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "X-Amz-Date": "20240101T000000Z",
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={DUMMY_ACCESS_KEY_ID}/20240101/us-east-1/{scope_service}/aws4_request, "
            f"SignedHeaders=content-type;host;x-amz-date, Signature={'0' * 64}"
        ),
    }
    body = urlencode({"Version": "2011-06-15", **form}).encode()
    request = urllib.request.Request(emu.endpoint_url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_admin_sets_accounts_denied_roles_and_session_seconds(emu: Emulator) -> None:
    status, settings = admin(
        emu,
        "POST",
        "/_emulator/faults",
        {"accounts": {"AKIAADMINMAPPED00001": OTHER_ACCOUNT}, "denied_roles": {ROLE: True}, "session_seconds": 60},
    )
    assert status == 200
    assert settings["accounts"]["AKIAADMINMAPPED00001"] == OTHER_ACCOUNT
    assert settings["denied_roles"] == sorted([ROLE, DENIED_ROLE])
    assert settings["session_seconds"] == 60
    assert emu.sts_client(access_key_id="AKIAADMINMAPPED00001").get_caller_identity()["Account"] == OTHER_ACCOUNT
    assert error_of(lambda: assume(emu))[0] == "AccessDenied"


def test_admin_refuses_a_malformed_account_and_applies_nothing(emu: Emulator) -> None:
    status, answer = admin(
        emu, "POST", "/_emulator/faults", {"session_seconds": 5, "accounts": {"AKIAADMINMAPPED00002": "12345"}}
    )
    assert status == 400
    assert "12 digits" in answer["error"]
    assert emu.session_seconds is None


def test_admin_stores_and_calls_show_accounts(emu: Emulator) -> None:
    emu.create_store("hsm", account=SECURITY_ACCOUNT)
    emu.sts_client(access_key_id=BASE_KEY).get_caller_identity()
    assert [s["Account"] for s in admin(emu, "GET", "/_emulator/stores")[1]["stores"]] == [SECURITY_ACCOUNT]
    calls = admin(emu, "GET", "/_emulator/calls")[1]["calls"]
    assert [(c["service"], c["operation"], c["account"]) for c in calls] == [("sts", "GetCallerIdentity", BASE_ACCOUNT)]


def test_stores_keep_their_account_across_a_restart(make_emulator: Callable[..., Emulator], tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    first = make_emulator(state_file=state_file)
    store_id = first.create_store("hsm", account=SECURITY_ACCOUNT)
    first.stop()
    assert json.loads(state_file.read_text())["stores"][0]["Account"] == SECURITY_ACCOUNT
    second = make_emulator(state_file=state_file)
    assert second.account_of(store_id) == SECURITY_ACCOUNT


def test_a_seed_entry_names_its_account(make_emulator: Callable[..., Emulator]) -> None:
    seed = [
        {
            "CustomKeyStoreId": "cks-0123456789abcdef0",
            "CustomKeyStoreName": "hsm",
            "CloudHsmClusterId": "cluster-2a3b4c5d6e7",
            "TrustAnchorCertificate": "pem",
            "Account": SECURITY_ACCOUNT,
        }
    ]
    assert make_emulator(seed=seed).account_of("cks-0123456789abcdef0") == SECURITY_ACCOUNT


def test_session_credentials_come_from_a_given_source(make_emulator: Callable[..., Emulator]) -> None:
    issued = iter([("ASIAGIVENSESSION0001", "given-secret", "given-token")])
    emu = make_emulator(session_credentials=lambda: next(issued))
    credentials = assume(emu)["Credentials"]
    assert (credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]) == (
        "ASIAGIVENSESSION0001",
        "given-secret",
        "given-token",
    )
    assert emu.sts_client(**session_kwargs(credentials)).get_caller_identity()["Account"] == SECURITY_ACCOUNT
