"""check_inputs: realistic mistakes get a message that names the property and says what to write instead."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.output import Unknown

from kms_connection.inputs import (
    INPUT_NAMES,
    MAX_TIMEOUT_SECONDS,
    InputFailure,
    _known_regions,
    check_inputs,
    disconnect_guard,
)
from kms_connection.states import DisconnectGuard

# During a preview the provider server hands unknown values over as pulumi.output.Unknown instances.
UNKNOWN = Unknown()  # type: ignore[no-untyped-call]


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown)


STORE = "cks-1234567890abcdef0"
DEFAULT_REGION = "eu-west-1"

ID_FORM = "custom_key_store_id must be the key store's id, 'cks-' followed by hex digits, e.g. cks-1234567890abcdef0"
CONNECT_FORM = "connect_timeout_seconds must be a whole number of seconds from 1 to 86400 (e.g. 1800 for 30 minutes)"
DISCONNECT_FORM = (
    "disconnect_timeout_seconds must be a whole number of seconds from 1 to 86400 (e.g. 1800 for 30 minutes)"
)
INPUT_LIST = (
    "inputs: custom_key_store_id, desired_state, on_delete, connect_timeout_seconds, disconnect_timeout_seconds, "
    "region, role_arn, role_external_id, role_session_name, disconnect_guard"
)


def check(
    news: dict[str, Any], default_region: str | None = DEFAULT_REGION
) -> tuple[dict[str, Any], list[InputFailure]]:
    return check_inputs(news, default_region, is_unknown)


def with_store(**inputs: Any) -> dict[str, Any]:
    return {"custom_key_store_id": STORE, **inputs}


# --- accepted and normalised --------------------------------------------------------------------------------------


def test_only_the_store_id_is_required_and_the_rest_is_defaulted() -> None:
    assert check({"custom_key_store_id": STORE}) == (
        {
            "custom_key_store_id": STORE,
            "desired_state": "CONNECTED",
            "on_delete": "disconnect",
            "connect_timeout_seconds": 1800,
            "disconnect_timeout_seconds": 900,
            "region": DEFAULT_REGION,
        },
        [],
    )


@pytest.mark.parametrize(
    ("given_inputs", "key", "normalised"),
    [
        pytest.param({"desired_state": "connected"}, "desired_state", "CONNECTED", id="lower-case-state"),
        pytest.param({"desired_state": "Connected"}, "desired_state", "CONNECTED", id="title-case-state"),
        pytest.param({"desired_state": " disconnected\n"}, "desired_state", "DISCONNECTED", id="padded-state"),
        pytest.param({"on_delete": "RETAIN"}, "on_delete", "retain", id="upper-case-on-delete"),
        pytest.param({"on_delete": "Disconnect"}, "on_delete", "disconnect", id="title-case-on-delete"),
        pytest.param({"connect_timeout_seconds": 1800.0}, "connect_timeout_seconds", 1800, id="whole-float-timeout"),
        pytest.param({"disconnect_timeout_seconds": 1}, "disconnect_timeout_seconds", 1, id="shortest-timeout"),
        pytest.param({"connect_timeout_seconds": 86400}, "connect_timeout_seconds", 86400, id="longest-timeout"),
        pytest.param({"region": "ap-southeast-2"}, "region", "ap-southeast-2", id="own-region"),
        pytest.param({"region": " us-west-2 "}, "region", "us-west-2", id="padded-region"),
        pytest.param({"custom_key_store_id": f" {STORE} "}, "custom_key_store_id", STORE, id="padded-store-id"),
        pytest.param({"disconnect_guard": " Refuse"}, "disconnect_guard", "refuse", id="padded-title-case-guard"),
        pytest.param({"disconnect_guard": "OFF"}, "disconnect_guard", "off", id="upper-case-guard"),
    ],
)
def test_accepted_values_are_normalised(given_inputs: dict[str, Any], key: str, normalised: Any) -> None:
    inputs, failures = check(with_store(**given_inputs))
    assert failures == []
    assert inputs[key] == normalised
    assert type(inputs[key]) is type(normalised)


def test_a_missing_disconnect_guard_is_left_out_and_means_warn() -> None:
    inputs, failures = check(with_store())
    assert failures == []
    assert "disconnect_guard" not in inputs
    assert disconnect_guard(inputs) is DisconnectGuard.WARN


def test_a_disconnect_guard_that_is_none_of_the_three_is_refused_naming_them() -> None:
    _, failures = check(with_store(disconnect_guard="block"))
    reason = "disconnect_guard must be 'warn' or 'off' or 'refuse' (any letter case); got the string 'block'."
    assert failures == [InputFailure("disconnect_guard", reason)]


def test_the_resource_region_wins_over_the_default() -> None:
    inputs, _ = check(with_store(region="us-east-2"), default_region="eu-west-1")
    assert inputs["region"] == "us-east-2"


def test_the_internal_provider_property_passes_through_untouched() -> None:
    inputs, failures = check(with_store(__provider="pickled-provider"))
    assert failures == []
    assert inputs["__provider"] == "pickled-provider"


@pytest.mark.parametrize("key", INPUT_NAMES)
def test_an_unknown_value_passes_through_unchecked(key: str) -> None:
    inputs, failures = check({"custom_key_store_id": STORE, key: UNKNOWN}, default_region=None)
    assert inputs[key] is UNKNOWN
    assert [f for f in failures if f.property == key] == []


def test_an_unknown_region_is_not_replaced_by_the_default() -> None:
    inputs, failures = check(with_store(region=UNKNOWN), default_region="eu-west-1")
    assert inputs["region"] is UNKNOWN
    assert failures == []


# --- realistic mistakes, with the exact message each gets ---------------------------------------------------------

MISTAKES = [
    pytest.param(
        {"custom_key_store_id": "arn:aws:kms:us-east-1:111122223333:custom-key-store/cks-1234567890abcdef0"},
        "custom_key_store_id",
        f"{ID_FORM}; got an ARN (arn:aws:kms:us-east-1:111122223333:custom-key-store/cks-1234567890abcdef0). "
        "Custom key stores are named by id, not ARN: find it with `aws kms describe-custom-key-stores`.",
        id="store-arn",
    ),
    pytest.param(
        {"custom_key_store_id": "ExampleCloudHSMKeyStore"},
        "custom_key_store_id",
        f"{ID_FORM}; got 'ExampleCloudHSMKeyStore', which looks like a key store name. Find its id with "
        "`aws kms describe-custom-key-stores --custom-key-store-name ExampleCloudHSMKeyStore`.",
        id="store-name",
    ),
    pytest.param(
        {"custom_key_store_id": "1234abcd-12ab-34cd-56ef-1234567890ab"},
        "custom_key_store_id",
        f"{ID_FORM}; '1234abcd-12ab-34cd-56ef-1234567890ab' is a KMS key id or alias, not a custom key store id.",
        id="kms-key-id",
    ),
    pytest.param(
        {"custom_key_store_id": "mrk-1234abcd12ab34cd56ef1234567890ab"},
        "custom_key_store_id",
        f"{ID_FORM}; 'mrk-1234abcd12ab34cd56ef1234567890ab' is a KMS key id or alias, not a custom key store id.",
        id="multi-region-key-id",
    ),
    pytest.param(
        {"custom_key_store_id": "alias/ExampleAlias"},
        "custom_key_store_id",
        f"{ID_FORM}; 'alias/ExampleAlias' is a KMS key id or alias, not a custom key store id.",
        id="key-alias",
    ),
    pytest.param(
        {"custom_key_store_id": "cks-1234567890ABCDEF0"},
        "custom_key_store_id",
        f"{ID_FORM} (lower-case hex digits only); got 'cks-1234567890ABCDEF0'.",
        id="upper-case-store-id",
    ),
    pytest.param(
        {"custom_key_store_id": 1234567890},
        "custom_key_store_id",
        f"{ID_FORM}; got the number 1234567890.",
        id="number-store-id",
    ),
    pytest.param(
        {"desired_state": "UP"},
        "desired_state",
        "desired_state must be 'CONNECTED' or 'DISCONNECTED' (any letter case); got the string 'UP'.",
        id="made-up-state",
    ),
    pytest.param(
        {"desired_state": True},
        "desired_state",
        "desired_state must be 'CONNECTED' or 'DISCONNECTED' (any letter case); got the boolean True.",
        id="boolean-state",
    ),
    pytest.param(
        {"on_delete": "delete"},
        "on_delete",
        "on_delete must be 'disconnect' or 'retain' (any letter case); got the string 'delete'.",
        id="made-up-on-delete",
    ),
    pytest.param(
        {"connect_timeout_seconds": -5}, "connect_timeout_seconds", f"{CONNECT_FORM}; got -5.", id="negative-timeout"
    ),
    pytest.param(
        {"connect_timeout_seconds": 0}, "connect_timeout_seconds", f"{CONNECT_FORM}; got 0.", id="zero-timeout"
    ),
    pytest.param(
        {"connect_timeout_seconds": 2.5},
        "connect_timeout_seconds",
        f"{CONNECT_FORM}; got 2.5, which is not whole.",
        id="fractional-timeout",
    ),
    pytest.param(
        {"connect_timeout_seconds": 86401},
        "connect_timeout_seconds",
        f"{CONNECT_FORM}; got 86401.",
        id="timeout-over-a-day",
    ),
    pytest.param(
        {"connect_timeout_seconds": "48h"},
        "connect_timeout_seconds",
        f"{CONNECT_FORM}; got the string '48h', which is 172800 seconds.",
        id="duration-over-a-day-gets-no-hint-to-write-it",
    ),
    pytest.param(
        {"connect_timeout_seconds": "30m"},
        "connect_timeout_seconds",
        f"{CONNECT_FORM}; got the string '30m': write 1800.",
        id="duration-minutes",
    ),
    pytest.param(
        {"disconnect_timeout_seconds": "15M"},
        "disconnect_timeout_seconds",
        f"{DISCONNECT_FORM}; got the string '15M': write 900.",
        id="duration-upper-case-unit",
    ),
    pytest.param(
        {"disconnect_timeout_seconds": "1h"},
        "disconnect_timeout_seconds",
        f"{DISCONNECT_FORM}; got the string '1h': write 3600.",
        id="duration-hours",
    ),
    pytest.param(
        {"connect_timeout_seconds": "1800"},
        "connect_timeout_seconds",
        f"{CONNECT_FORM}; got the string '1800': write the number 1800, not a string.",
        id="number-as-string",
    ),
    pytest.param(
        {"connect_timeout_seconds": True},
        "connect_timeout_seconds",
        f"{CONNECT_FORM}; got the boolean True.",
        id="boolean-timeout",
    ),
    pytest.param(
        {"disconnect_timeout_seconds": False},
        "disconnect_timeout_seconds",
        f"{DISCONNECT_FORM}; got the boolean False.",
        id="false-timeout",
    ),
    pytest.param(
        {"regoin": "us-east-1"},
        "regoin",
        f"'regoin' is not an input of CustomKeyStoreConnection ({INPUT_LIST}). Did you mean 'region'?",
        id="misspelt-property",
    ),
    pytest.param(
        {"desiredState": "CONNECTED"},
        "desiredState",
        f"'desiredState' is not an input of CustomKeyStoreConnection ({INPUT_LIST}). Did you mean 'desired_state'?",
        id="camel-case-property",
    ),
    pytest.param(
        {"color": "blue"},
        "color",
        f"'color' is not an input of CustomKeyStoreConnection ({INPUT_LIST}).",
        id="unrelated-property",
    ),
    pytest.param(
        {"region": "us-east-7"},
        "region",
        "region 'us-east-7' is not an AWS Region botocore knows. Did you mean 'us-east-2'?",
        id="region-typo",
    ),
    pytest.param(
        {"region": "US-EAST-1"},
        "region",
        "region must be written 'us-east-1'; got 'US-EAST-1'.",
        id="upper-case-region",
    ),
    pytest.param(
        {"region": "eu_west_1"},
        "region",
        "region must be written 'eu-west-1'; got 'eu_west_1'.",
        id="underscored-region",
    ),
    pytest.param(
        {"region": "mars-north-1"},
        "region",
        "region 'mars-north-1' is not an AWS Region botocore knows. If it is new, upgrade boto3.",
        id="made-up-region",
    ),
    pytest.param(
        {"region": ["us-east-1"]},
        "region",
        "region must be an AWS Region name such as 'us-east-1'; got the list ['us-east-1'].",
        id="list-region",
    ),
]


@pytest.mark.parametrize(("mistake", "key", "message"), MISTAKES)
def test_a_mistake_gets_one_failure_with_its_message(mistake: dict[str, Any], key: str, message: str) -> None:
    _, failures = check(with_store(**mistake))
    assert failures == [InputFailure(key, message)]


@pytest.mark.parametrize(("mistake", "key", "message"), MISTAKES)
def test_a_rejected_value_is_kept_as_written(mistake: dict[str, Any], key: str, message: str) -> None:
    inputs, _ = check(with_store(**mistake))
    if key in INPUT_NAMES:
        assert inputs[key] == mistake[key]
    else:
        assert key not in inputs


def test_camel_case_store_id_suggests_the_snake_case_name_and_the_id_is_still_missing() -> None:
    _, failures = check({"customKeyStoreId": STORE})
    assert failures == [
        InputFailure(
            "customKeyStoreId",
            f"'customKeyStoreId' is not an input of CustomKeyStoreConnection ({INPUT_LIST}). "
            "Did you mean 'custom_key_store_id'?",
        ),
        InputFailure(
            "custom_key_store_id",
            "custom_key_store_id is required: the key store's id, 'cks-' followed by hex digits, "
            "e.g. cks-1234567890abcdef0.",
        ),
    ]


def test_a_missing_store_id_is_required() -> None:
    inputs, failures = check({})
    assert failures == [
        InputFailure(
            "custom_key_store_id",
            "custom_key_store_id is required: the key store's id, 'cks-' followed by hex digits, "
            "e.g. cks-1234567890abcdef0.",
        )
    ]
    assert "custom_key_store_id" not in inputs


def test_no_region_anywhere_is_a_failure_on_region_that_mentions_aws_region_config() -> None:
    inputs, failures = check(with_store(), default_region=None)
    assert failures == [
        InputFailure(
            "region",
            "no AWS Region is set for this resource: set the resource's `region` input, or the stack's Region "
            "with `pulumi config set aws:region us-east-1`, or AWS_REGION in the environment.",
        )
    ]
    assert "region" not in inputs


def test_an_unusable_default_region_is_a_failure_on_region() -> None:
    _, failures = check(with_store(), default_region="US-EAST-1")
    assert failures == [
        InputFailure(
            "region",
            "the stack's default Region is not usable: region must be written 'us-east-1'; got 'US-EAST-1'.",
        )
    ]


def test_every_mistake_is_reported_at_once() -> None:
    _, failures = check(
        {
            "custom_key_store_id": "alias/x",
            "desired_state": "on",
            "on_delete": 1,
            "connect_timeout_seconds": "1d",
            "disconnect_timeout_seconds": -1,
            "region": "moon-1",
            "extra": 1,
        },
        default_region=None,
    )
    assert [f.property for f in failures] == [
        "extra",
        "custom_key_store_id",
        "desired_state",
        "on_delete",
        "connect_timeout_seconds",
        "disconnect_timeout_seconds",
        "region",
    ]


# --- property: any JSON at all ------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=4,
)
# Plausible values and near misses too (and the preview's unknown), not only random JSON.
PLAUSIBLE: list[Any] = [STORE, "cks-0", " cks-abc ", "connected", "DISCONNECTED", "retain", "Disconnect"]
PLAUSIBLE += [1, 1800, 1800.0, 86400, "us-east-1", " eu-west-1", "US-WEST-2", "30m", UNKNOWN, " Refuse", "warn"]
plausible = st.sampled_from(PLAUSIBLE)
# Scalars are drawn more often than nested values: a nested value costs several draws and reaches the same checks.
input_values = plausible | json_scalars | json_values
inputs_strategy = st.tuples(
    st.dictionaries(st.text(max_size=12), json_scalars | json_values, max_size=2),
    st.fixed_dictionaries({}, optional=dict.fromkeys(INPUT_NAMES, input_values)),
).map(lambda pair: {**pair[0], **pair[1]})
default_regions = st.none() | st.sampled_from(["us-east-1", "eu-west-1", "US-EAST-1", "nowhere"]) | st.text(max_size=10)


@settings(max_examples=1000, deadline=None)
@given(news=inputs_strategy, default_region=default_regions)
def test_any_json_inputs_get_a_result_or_failures_that_name_their_property(
    news: dict[str, Any], default_region: str | None
) -> None:
    inputs, failures = check_inputs(news, default_region, is_unknown)

    for failure in failures:
        assert failure.property in news or failure.property in INPUT_NAMES
        assert isinstance(failure.reason, str)
        assert failure.reason.strip()
        assert failure.property in failure.reason, failure

    if not failures:
        assert set(inputs) <= set(INPUT_NAMES) | {"__provider"}
        for key, value in inputs.items():
            if key == "__provider" or is_unknown(value):
                continue
            if key == "custom_key_store_id":
                assert isinstance(value, str)
                assert value.startswith("cks-")
                assert value == value.strip().lower()
            elif key == "desired_state":
                assert value in ("CONNECTED", "DISCONNECTED")
            elif key == "on_delete":
                assert value in ("disconnect", "retain")
            elif key in ("connect_timeout_seconds", "disconnect_timeout_seconds"):
                assert type(value) is int
                assert 1 <= value <= MAX_TIMEOUT_SECONDS
            elif key == "disconnect_guard":
                assert value in ("warn", "off", "refuse")
            elif key == "region":
                assert value in _known_regions()


padding = st.sampled_from(["", " ", "  ", "\t", "\n", " \n"])


def messy(word: str) -> st.SearchStrategy[str]:
    """``word`` in any letter case, with whitespace around it."""
    cases = st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(word, upper, strict=True))
    )
    return st.tuples(padding, cases, padding).map("".join)


timeouts = st.integers(1, MAX_TIMEOUT_SECONDS).flatmap(lambda n: st.sampled_from([n, float(n)]))
valid_inputs = st.fixed_dictionaries(
    {
        "custom_key_store_id": st.tuples(padding, st.from_regex(r"cks-[0-9a-f]{1,20}", fullmatch=True), padding).map(
            "".join
        )
    },
    optional={
        "desired_state": st.sampled_from(["CONNECTED", "DISCONNECTED"]).flatmap(messy),
        "on_delete": st.sampled_from(["disconnect", "retain"]).flatmap(messy),
        "connect_timeout_seconds": timeouts,
        "disconnect_timeout_seconds": timeouts,
        "region": st.tuples(padding, st.sampled_from(sorted(_known_regions())), padding).map("".join),
    },
)


@settings(max_examples=100, deadline=None)
@given(news=valid_inputs)
def test_any_valid_inputs_however_written_pass_with_canonical_values(news: dict[str, Any]) -> None:
    inputs, failures = check(news)
    assert failures == []
    assert inputs == {
        "custom_key_store_id": news["custom_key_store_id"].strip(),
        "desired_state": news.get("desired_state", "CONNECTED").strip().upper(),
        "on_delete": news.get("on_delete", "disconnect").strip().lower(),
        "connect_timeout_seconds": int(news.get("connect_timeout_seconds", 1800)),
        "disconnect_timeout_seconds": int(news.get("disconnect_timeout_seconds", 900)),
        "region": news.get("region", DEFAULT_REGION).strip(),
    }
    assert type(inputs["connect_timeout_seconds"]) is int
    assert type(inputs["disconnect_timeout_seconds"]) is int
