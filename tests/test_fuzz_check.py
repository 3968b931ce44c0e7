"""Bad input: arbitrary values of every JSON type at every input of ``check``, through the providers.

Three layers, from many cases to few:

* property-based (hypothesis), in-process: ``provider.check(olds, news)`` of both providers, configured like the
  engine configures them, with arbitrary JSON (and the non-standard NaN and Infinity Python's ``json`` reads
  from stack config), near-miss values that reach every branch, unknowns, and extra properties;
* property-based, through the real provider server's ``Check`` (``seam/engine.py``): fewer cases, same rules,
  and the server must answer exactly what the provider answers in-process for the same wire values;
* a table of realistic mistakes with the exact message each gets, through the real server.

The rules: no exception escapes; every failure names a property (one the user wrote, or an input) and its
reason mentions it; what passes is complete and well-formed; no KMS call is made (the emulator's log stays
empty). ``COUNTS`` feeds ``python -m tests.fault_report``.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pulumi.dynamic import ConfigureRequest, ResourceProvider
from pulumi.dynamic.config import Config
from pulumi.output import Unknown
from pulumi.runtime import rpc

from kms_connection.emulator import Emulator
from kms_connection.emulator.emulator import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY
from kms_connection.inputs import INPUT_NAMES, MAX_TIMEOUT_SECONDS, ROLE_INPUT_NAMES, SET_INPUT_NAMES, _known_regions
from kms_connection.provider import CustomKeyStoreConnectionProvider, CustomKeyStoreConnectionSetProvider
from kms_connection.settings import ROLE_ARN
from seam.engine import (
    PROVIDER_KEY,
    ProviderError,
    ProviderServer,
    dynamic_inputs,
    from_struct,
    make_urn,
    to_struct,
    unwrap_secrets,
)

pytestmark = pytest.mark.timeout(120)

REGION = "us-east-1"
CONNECTION = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"
CONNECTION_SET = "pulumi-python:dynamic/kms:CustomKeyStoreConnectionSet"
STORE = "cks-1234567890abcdef0"
STORE_ID = re.compile(r"^cks-[0-9a-f]{1,60}$")
CONFIG = {"aws:region": REGION}

IN_PROCESS_EXAMPLES = {"single": 700, "set": 500}
SERVER_EXAMPLES = {"single": 120, "set": 80}

COUNTS: Counter[str] = Counter()
"""Figures for the report: check calls made (inputs tried) and exceptions that escaped (crashes)."""

# During a preview the provider server hands unknown values over as pulumi.output.Unknown instances.
UNKNOWN_VALUE = Unknown()  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------------------


def json_values(*, wire: bool) -> st.SearchStrategy[Any]:
    """Any JSON value. ``wire``: only what survives the engine's protobuf Struct (finite doubles, |int| < 2**53).

    In-process, NaN and +-Infinity are included: Python's ``json`` reads them from stack config.
    """
    numbers: st.SearchStrategy[Any] = (
        st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
        if wire
        else st.integers() | st.floats()
    )
    scalars = st.none() | st.booleans() | numbers | st.text(max_size=40)
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
        max_leaves=12,
    )


_REGIONS = sorted(_known_regions())
_STORE_IDS = st.from_regex(STORE_ID, fullmatch=True)
_NEAR_MISS_IDS = st.sampled_from(
    [
        STORE,
        f" {STORE} ",
        STORE.upper(),
        "cks-",
        "cks-xyz",
        "arn:aws:kms:us-east-1:111122223333:custom-key-store/cks-1234567890abcdef0",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "mrk-1234abcd12ab34cd56ef1234567890ab",
        "alias/my-key",
        "ExampleCloudHSMKeyStore",
        "",
    ]
)
_TIMEOUTS = st.one_of(
    st.integers(-5, MAX_TIMEOUT_SECONDS + 5),
    st.floats(-5, MAX_TIMEOUT_SECONDS + 5),
    st.sampled_from(["30m", "1h", "1800", " 15 s ", "0s", "999999h", "25h", "-5", "1e3", "PT30M"]),
    # Digits of other scripts: decimal ones (int() reads them), and ones str.isdigit() accepts but int() does not.
    st.sampled_from(
        ["\u0661\u0668\u0660\u0660", "\uff11\uff18\uff10\uff10", "\u00b2", "\u00b9\u2078\u2070\u2070", "\u2460"]
    ),
)


def near_misses(*, wire: bool) -> dict[str, st.SearchStrategy[Any]]:
    """Values close to valid ones for each input, so the cases reach every branch of the checks."""
    ids = _STORE_IDS | _NEAR_MISS_IDS
    values: dict[str, st.SearchStrategy[Any]] = {
        "custom_key_store_id": ids,
        "custom_key_store_ids": st.lists(ids, max_size=5) | st.lists(st.sampled_from([STORE, "cks-ab"]), max_size=4),
        "desired_state": st.sampled_from(
            ["CONNECTED", "connected", " Disconnected ", "DISCONNECTED", "CONNECTING", "FAILED", "", "on"]
        ),
        "on_delete": st.sampled_from(["disconnect", "retain", "RETAIN", " Retain", "keep", "delete", ""]),
        "connect_timeout_seconds": _TIMEOUTS,
        "disconnect_timeout_seconds": _TIMEOUTS,
        "region": st.sampled_from(_REGIONS) | st.sampled_from(["US_EAST_1", "us-east-9", "", " us-east-1 ", "eu"]),
        "role_arn": st.sampled_from(
            [
                "arn:aws:iam::222233334444:role/kms-admin",
                " arn:aws:iam::222233334444:role/path/kms-admin ",
                "arn:aws:iam::22223333444:role/short-account",
                "arn:aws:iam::222233334444:user/someone",
                "kms-admin",
                "",
            ]
        ),
        "role_external_id": st.sampled_from(["tenant-42", "x", "has space", "a:b/c", ""]),
        "role_session_name": st.sampled_from(["pipeline", "p", "has space", "a:b", "ci@example.com", ""]),
        "disconnect_guard": st.sampled_from(["warn", "refuse", " Refuse ", "OFF", "block", "true", ""]),
    }
    if not wire:
        # Unknowns, as the server hands them over during a preview (and the raw sentinel string).
        values = {name: strategy | st.sampled_from([UNKNOWN_VALUE, rpc.UNKNOWN]) for name, strategy in values.items()}
    return values


def news_for(names: tuple[str, ...], *, wire: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Inputs as a program could send them: any subset of the inputs, each any JSON value or a near miss, plus
    properties that are not inputs at all."""
    anything = json_values(wire=wire)
    plausible = near_misses(wire=wire)
    known = st.fixed_dictionaries({}, optional={name: anything | plausible[name] for name in names})
    extra_names = st.text(min_size=1, max_size=20).filter(lambda key: key not in names and key != PROVIDER_KEY)
    extras = st.dictionaries(extra_names | st.sampled_from(["desiredState", "regoin", "timeout"]), anything, max_size=2)
    return st.builds(lambda a, b: {**b, **a}, known, extras)


# ---------------------------------------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------------------------------------


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


def assert_failures_name_properties(news: dict[str, Any], names: tuple[str, ...], failures: list[Any]) -> None:
    for failure in failures:
        assert isinstance(failure.property, str) and failure.property, failure
        assert failure.property in news or failure.property in names, failure
        assert isinstance(failure.reason, str) and failure.reason.strip(), failure
        assert failure.property.lower() in failure.reason.lower(), failure
    # A value still unknown is never judged.
    unknown = {key for key, value in news.items() if key in names and is_unknown(value)}
    assert not unknown & {failure.property for failure in failures}, failures


def assert_well_formed(inputs: dict[str, Any], names: tuple[str, ...], stores_key: str) -> None:
    """What passes check is complete and valid: what create and diff rely on without checking again. (A role and
    disconnect_guard are optional and check fills in no default: they are there only when given.)"""
    assert set(names) - {*ROLE_INPUT_NAMES, "disconnect_guard"} <= set(inputs) - {PROVIDER_KEY} <= set(names), inputs
    if any(key in inputs and not is_unknown(inputs[key]) for key in ("role_external_id", "role_session_name")):
        assert "role_arn" in inputs, inputs
    for key, value in inputs.items():
        if key == PROVIDER_KEY or is_unknown(value):
            continue
        if key == "custom_key_store_id":
            assert isinstance(value, str) and STORE_ID.match(value), value
        elif key == "custom_key_store_ids":
            assert isinstance(value, list) and value, value
            known = [item for item in value if not is_unknown(item)]
            assert all(isinstance(item, str) and STORE_ID.match(item) for item in known), value
            assert len(set(known)) == len(known), value
        elif key == "desired_state":
            assert value in ("CONNECTED", "DISCONNECTED"), value
        elif key == "on_delete":
            assert value in ("disconnect", "retain"), value
        elif key in ("connect_timeout_seconds", "disconnect_timeout_seconds"):
            # An int from the provider; a double once it has crossed the engine's Struct.
            assert type(value) in (int, float) and float(value).is_integer(), value
            assert 1 <= value <= MAX_TIMEOUT_SECONDS, value
        elif key == "region":
            assert value in _known_regions(), value
        elif key == "role_arn":
            assert isinstance(value, str) and ROLE_ARN.fullmatch(value), value
        elif key in ("role_external_id", "role_session_name"):
            assert isinstance(value, str) and re.fullmatch(r"[\w+=,.@:/-]{2,1224}", value), value
        elif key == "disconnect_guard":
            assert value in ("warn", "off", "refuse"), value
    assert stores_key in inputs


def describe_error(error: BaseException) -> str:
    """An exception in one line: for the server, the last line of the traceback it sent back."""
    if isinstance(error, ProviderError):
        lines = [line for line in error.details.splitlines() if line.strip()]
        return lines[-1] if lines else str(error)
    return f"{type(error).__name__}: {error}"


def fuzz(
    check: Callable[[dict[str, Any], dict[str, Any]], Any],
    names: tuple[str, ...],
    emu: Emulator,
    *,
    wire: bool,
    examples: int,
    agrees: Callable[[dict[str, Any], Any], None] | None = None,
) -> None:
    """Throw ``examples`` generated (olds, news) at ``check`` and apply the rules to each answer.

    An exception out of ``check`` is recorded and the run goes on, so one crash does not hide the rest: the
    test then fails listing the shortest crashing inputs. Any other broken rule fails at once, shrunk by
    hypothesis as usual.
    """
    crashes: list[tuple[dict[str, Any], str]] = []

    # No example database: the generated cases differ per run, and nested tests would share one key.
    @settings(FUZZ, max_examples=examples, database=None)
    @given(olds=news_for(names, wire=wire), news=news_for(names, wire=wire))
    def case(olds: dict[str, Any], news: dict[str, Any]) -> None:
        COUNTS["inputs tried"] += 1
        COUNTS["inputs tried through the server" if wire else "inputs tried in-process"] += 1
        started = emu.clock.now()
        try:
            result = check(olds, news)
        except Exception as error:
            COUNTS["crashes"] += 1
            crashes.append((news, describe_error(error)))
            return
        assert_failures_name_properties(news, names, result.failures)
        if agrees is not None:
            agrees(news, result)
        if not result.failures:
            assert_well_formed(unwrap_secrets(result.inputs), names, names[0])
        # Check changes nothing; valid inputs of a new resource may be read for the preview's plan line.
        assert {call.operation for call in emu.calls} <= {"DescribeCustomKeyStores"}
        if result.failures:
            assert not [call for call in emu.calls if call.time > started]

    case()
    if crashes:
        # One line per distinct error, with the shortest input that raised it.
        shortest: dict[str, dict[str, Any]] = {}
        for news, error in sorted(crashes, key=lambda crash: len(repr(crash[0]))):
            shortest.setdefault(error, news)
        listing = "\n".join(f"  {error}\n    news={news!r}" for error, news in list(shortest.items())[:8])
        pytest.fail(f"{len(crashes)} of the generated inputs made check raise:\n{listing}")


# ---------------------------------------------------------------------------------------------------------
# In-process
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """An emulator the providers point at: invalid inputs never reach it, valid ones only to be read."""
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def fresh_call_log(emu: Emulator) -> None:
    """Each test starts with an empty call log: the module's emulator is shared."""
    emu.clear_calls()


def configured(provider: ResourceProvider, emu: Emulator) -> ResourceProvider:
    config = {**CONFIG, "aws:endpoints": f'[{{"kms": "{emu.endpoint_url}"}}]'}
    provider.configure(ConfigureRequest(Config(config, "kms-connection")))
    return provider


@pytest.fixture(scope="module")
def single(emu: Emulator) -> ResourceProvider:
    return configured(CustomKeyStoreConnectionProvider(), emu)


@pytest.fixture(scope="module")
def many(emu: Emulator) -> ResourceProvider:
    return configured(CustomKeyStoreConnectionSetProvider(), emu)


FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def test_connection_check_survives_any_input(single: ResourceProvider, emu: Emulator) -> None:
    """CustomKeyStoreConnectionProvider.check on generated (olds, news), in-process: no exception, every failure names
    a property, what passes is well-formed, no KMS call.
    """
    fuzz(single.check, INPUT_NAMES, emu, wire=False, examples=IN_PROCESS_EXAMPLES["single"])


def test_set_check_survives_any_input(many: ResourceProvider, emu: Emulator) -> None:
    """The same for CustomKeyStoreConnectionSetProvider.check."""
    fuzz(many.check, SET_INPUT_NAMES, emu, wire=False, examples=IN_PROCESS_EXAMPLES["set"])


def test_the_fuzzing_reached_both_outcomes(single: ResourceProvider) -> None:
    """The fuzzer's building blocks give both passing and failing inputs."""
    assert single.check({}, {"custom_key_store_id": STORE}).failures == []
    assert single.check({}, {"custom_key_store_id": STORE, "connect_timeout_seconds": math.nan}).failures


# ---------------------------------------------------------------------------------------------------------
# Through the real provider server
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(emu: Emulator) -> Iterator[ProviderServer]:
    env = {
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_ENDPOINT_URL_KMS": emu.endpoint_url,
    }
    with ProviderServer(env=env) as started:
        started.configure({**CONFIG, "aws:endpoints": [{"kms": emu.endpoint_url}]})
        yield started


PROVIDERS = {
    CONNECTION: CustomKeyStoreConnectionProvider(),
    CONNECTION_SET: CustomKeyStoreConnectionSetProvider(),
}


def server_check(server: ProviderServer, type_: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
    """Check through the server, with ``__provider`` as the program registers it."""
    provider = dynamic_inputs(PROVIDERS[type_], {})[PROVIDER_KEY]
    return server.check(make_urn(type_, "fuzzed"), olds, {**news, PROVIDER_KEY: provider})


def on_the_wire(props: dict[str, Any]) -> dict[str, Any]:
    """``props`` as the provider receives them after the engine's Struct (integers become floats, etc.)."""
    return from_struct(to_struct(props))


@pytest.mark.parametrize(
    ("type_", "names", "examples"),
    [
        (CONNECTION, INPUT_NAMES, SERVER_EXAMPLES["single"]),
        (CONNECTION_SET, SET_INPUT_NAMES, SERVER_EXAMPLES["set"]),
    ],
    ids=["connection", "set"],
)
def test_the_server_check_survives_any_input_and_agrees_with_the_provider(
    server: ProviderServer,
    emu: Emulator,
    single: ResourceProvider,
    many: ResourceProvider,
    type_: str,
    names: tuple[str, ...],
    examples: int,
) -> None:
    """Generated inputs through the real provider server's Check: the same rules, and exactly the failures the provider
    gives in-process for the same wire values.
    """
    in_process = single if type_ == CONNECTION else many

    def agrees(news: dict[str, Any], result: Any) -> None:
        expected = in_process.check({}, on_the_wire(news))
        # The same failures (a Struct does not keep the order of properties).
        assert sorted((f.property, f.reason) for f in result.failures) == sorted(
            (f.property, f.reason) for f in expected.failures
        )

    fuzz(
        lambda olds, news: server_check(server, type_, olds, news),
        names,
        emu,
        wire=True,
        examples=examples,
        agrees=agrees,
    )


# ---------------------------------------------------------------------------------------------------------
# Realistic mistakes, through the real server: the exact message each gets
# ---------------------------------------------------------------------------------------------------------

ID_FORM = "custom_key_store_id must be the key store's id, 'cks-' followed by hex digits, e.g. cks-1234567890abcdef0"
TIMEOUT_FORM = "{} must be a whole number of seconds from 1 to 86400 (e.g. 1800 for 30 minutes)"
CONNECT_FORM = TIMEOUT_FORM.format("connect_timeout_seconds")
DISCONNECT_FORM = TIMEOUT_FORM.format("disconnect_timeout_seconds")
INPUTS = (
    "inputs: custom_key_store_id, desired_state, on_delete, connect_timeout_seconds, disconnect_timeout_seconds, "
    "region, role_arn, role_external_id, role_session_name, disconnect_guard"
)
ARN = "arn:aws:kms:us-east-1:111122223333:custom-key-store/cks-1234567890abcdef0"

MISTAKES: list[tuple[str, str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "key store ARN instead of its id",
        CONNECTION,
        {"custom_key_store_id": ARN},
        [
            (
                "custom_key_store_id",
                f"{ID_FORM}; got an ARN ({ARN}). Custom key stores are named by id, not ARN: find it with "
                "`aws kms describe-custom-key-stores`.",
            )
        ],
    ),
    (
        "key store name instead of its id",
        CONNECTION,
        {"custom_key_store_id": "ExampleCloudHSMKeyStore"},
        [
            (
                "custom_key_store_id",
                f"{ID_FORM}; got 'ExampleCloudHSMKeyStore', which looks like a key store name. Find its id with "
                "`aws kms describe-custom-key-stores --custom-key-store-name ExampleCloudHSMKeyStore`.",
            )
        ],
    ),
    (
        "KMS key id instead of a store id",
        CONNECTION,
        {"custom_key_store_id": "1234abcd-12ab-34cd-56ef-1234567890ab"},
        [
            (
                "custom_key_store_id",
                f"{ID_FORM}; '1234abcd-12ab-34cd-56ef-1234567890ab' is a KMS key id or alias, not a custom key "
                "store id.",
            )
        ],
    ),
    (
        "multi-Region key id instead of a store id",
        CONNECTION,
        {"custom_key_store_id": "mrk-1234abcd12ab34cd56ef1234567890ab"},
        [
            (
                "custom_key_store_id",
                f"{ID_FORM}; 'mrk-1234abcd12ab34cd56ef1234567890ab' is a KMS key id or alias, not a custom key "
                "store id.",
            )
        ],
    ),
    (
        "upper-case store id",
        CONNECTION,
        {"custom_key_store_id": "CKS-1234567890ABCDEF0"},
        [("custom_key_store_id", f"{ID_FORM} (lower-case hex digits only); got 'CKS-1234567890ABCDEF0'.")],
    ),
    (
        "negative timeout",
        CONNECTION,
        {"custom_key_store_id": STORE, "connect_timeout_seconds": -5},
        [("connect_timeout_seconds", f"{CONNECT_FORM}; got -5.")],
    ),
    (
        "fractional timeout",
        CONNECTION,
        {"custom_key_store_id": STORE, "connect_timeout_seconds": 90.5},
        [("connect_timeout_seconds", f"{CONNECT_FORM}; got 90.5, which is not whole.")],
    ),
    (
        "zero timeout",
        CONNECTION,
        {"custom_key_store_id": STORE, "disconnect_timeout_seconds": 0},
        [("disconnect_timeout_seconds", f"{DISCONNECT_FORM}; got 0.")],
    ),
    (
        "'30m' as a timeout",
        CONNECTION,
        {"custom_key_store_id": STORE, "connect_timeout_seconds": "30m"},
        [("connect_timeout_seconds", f"{CONNECT_FORM}; got the string '30m': write 1800.")],
    ),
    (
        "a number as a string",
        CONNECTION,
        {"custom_key_store_id": STORE, "disconnect_timeout_seconds": "900"},
        [
            (
                "disconnect_timeout_seconds",
                f"{DISCONNECT_FORM}; got the string '900': write the number 900, not a string.",
            )
        ],
    ),
    (
        "unknown property (camelCase from YAML)",
        CONNECTION,
        {"custom_key_store_id": STORE, "connectTimeout": 600},
        [
            (
                "connectTimeout",
                f"'connectTimeout' is not an input of CustomKeyStoreConnection ({INPUTS}). Did you mean "
                "'connect_timeout_seconds'?",
            )
        ],
    ),
    (
        "a Region that does not exist",
        CONNECTION,
        {"custom_key_store_id": STORE, "region": "us-east-9"},
        [("region", "region 'us-east-9' is not an AWS Region botocore knows. Did you mean 'us-east-2'?")],
    ),
    (
        "a Region nobody has heard of",
        CONNECTION,
        {"custom_key_store_id": STORE, "region": "mars-north-1"},
        [("region", "region 'mars-north-1' is not an AWS Region botocore knows. If it is new, upgrade boto3.")],
    ),
    (
        "a Region in the wrong spelling",
        CONNECTION,
        {"custom_key_store_id": STORE, "region": "US_EAST_1"},
        [("region", "region must be written 'us-east-1'; got 'US_EAST_1'.")],
    ),
    (
        "a wrong on_delete",
        CONNECTION,
        {"custom_key_store_id": STORE, "on_delete": "keep"},
        [("on_delete", "on_delete must be 'disconnect' or 'retain' (any letter case); got the string 'keep'.")],
    ),
    (
        "a set given one id instead of a list",
        CONNECTION_SET,
        {"custom_key_store_ids": STORE},
        [
            (
                "custom_key_store_ids",
                "custom_key_store_ids must be a non-empty list of key store ids (the key store's id, 'cks-' followed "
                f"by hex digits, e.g. cks-1234567890abcdef0); got the string '{STORE}'.",
            )
        ],
    ),
    (
        "a set listing a store twice",
        CONNECTION_SET,
        {"custom_key_store_ids": [STORE, STORE]},
        [("custom_key_store_ids", f"custom_key_store_ids[1]: {STORE} is listed twice.")],
    ),
]

NORMALISED: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("lower-case desired state", {"desired_state": "connected"}, {"desired_state": "CONNECTED"}),
    ("padded mixed-case desired state", {"desired_state": " Disconnected "}, {"desired_state": "DISCONNECTED"}),
    ("mixed-case on_delete", {"on_delete": "Retain"}, {"on_delete": "retain"}),
    ("padded store id", {"custom_key_store_id": f" {STORE} "}, {"custom_key_store_id": STORE}),
    ("a whole number sent as a double", {"connect_timeout_seconds": 600.0}, {"connect_timeout_seconds": 600}),
]


@pytest.mark.parametrize(
    ("type_", "news", "expected"), [case[1:] for case in MISTAKES], ids=[case[0] for case in MISTAKES]
)
def test_a_realistic_mistake_gets_its_exact_message(
    server: ProviderServer, emu: Emulator, type_: str, news: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    """A realistic mistake gets a check failure on its property with this exact message, and no KMS call."""
    result = server_check(server, type_, {}, news)
    assert [(f.property, f.reason) for f in result.failures] == expected
    assert emu.calls == []
    COUNTS["realistic mistakes checked"] += 1


# Regression: str.isdigit() accepts digits int() cannot read (superscripts, circled digits); check() once
# crashed on them instead of failing the property.
@pytest.mark.parametrize(
    "value", ["\u00b2", "\u00b9\u2078\u2070\u2070", "\u2460"], ids=["superscript-2", "superscript-1800", "circled-1"]
)
def test_a_timeout_written_in_superscript_or_circled_digits_gets_a_check_failure_not_a_crash(
    server: ProviderServer, emu: Emulator, value: str
) -> None:
    """A timeout written in superscript or circled digits gets a check failure, not an exception."""
    result = server_check(server, CONNECTION, {}, {"custom_key_store_id": STORE, "connect_timeout_seconds": value})
    assert [f.property for f in result.failures] == ["connect_timeout_seconds"]
    assert result.failures[0].reason.startswith(f"{CONNECT_FORM}; got the string {value!r}")
    assert emu.calls == []


@pytest.mark.parametrize(("news", "expected"), [case[1:] for case in NORMALISED], ids=[case[0] for case in NORMALISED])
def test_a_harmless_variation_is_normalised_without_failure(
    server: ProviderServer, emu: Emulator, news: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Harmless variations (letter case, padding, a whole double) are normalised, not rejected."""
    result = server_check(server, CONNECTION, {}, {"custom_key_store_id": STORE, **news})
    assert result.failures == []
    inputs = unwrap_secrets(result.inputs)
    for key, value in expected.items():
        assert inputs[key] == value
    # Valid inputs of a new resource: Check reads the store for its plan line (retried here, since it does not
    # exist), and changes nothing.
    assert {call.operation for call in emu.calls} <= {"DescribeCustomKeyStores"}
    COUNTS["realistic mistakes checked"] += 1
