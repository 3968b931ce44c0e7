"""The state vocabulary matches the installed botocore KMS service model, and every error code has a remedy."""

from __future__ import annotations

import botocore.session
import pytest

from kms_connection.states import CONNECTION_ERROR_REMEDIES, ConnectionState, DesiredState, OnDelete, remedy


def _model_enum(shape: str) -> list[str]:
    model = botocore.session.get_session().get_service_model("kms")
    return list(model.shape_for(shape).enum)  # type: ignore[attr-defined]


MODEL_STATES = _model_enum("ConnectionStateType")
MODEL_ERROR_CODES = _model_enum("ConnectionErrorCodeType")


def test_connection_states_are_exactly_the_service_model_states() -> None:
    assert sorted(state.value for state in ConnectionState) == sorted(MODEL_STATES)


def test_remedies_cover_exactly_the_service_model_error_codes() -> None:
    assert sorted(CONNECTION_ERROR_REMEDIES) == sorted(MODEL_ERROR_CODES)


def test_desired_states_are_the_two_settled_connection_states() -> None:
    assert {d.value for d in DesiredState} == {ConnectionState.CONNECTED.value, ConnectionState.DISCONNECTED.value}


def test_on_delete_values_are_lower_case_words() -> None:
    assert [o.value for o in OnDelete] == ["disconnect", "retain"]


@pytest.mark.parametrize("code", MODEL_ERROR_CODES)
def test_every_model_error_code_gets_its_own_remedy(code: str) -> None:
    text = remedy(code)
    assert text == CONNECTION_ERROR_REMEDIES[code]
    assert len(text) > 40
    assert "troubleshooting page for" not in text  # not the generic fallback


def test_remedies_are_all_different() -> None:
    assert len(set(CONNECTION_ERROR_REMEDIES.values())) == len(CONNECTION_ERROR_REMEDIES)


def test_remedy_without_a_code_says_to_describe_the_store() -> None:
    assert remedy(None) == "describe the key store to find its ConnectionErrorCode."


def test_remedy_for_a_code_this_release_does_not_know_names_the_code() -> None:
    assert remedy("XKS_PROXY_ON_FIRE") == "see the KMS Developer Guide's troubleshooting page for XKS_PROXY_ON_FIRE."


def test_states_compare_equal_to_their_api_strings() -> None:
    assert ConnectionState("FAILED") is ConnectionState.FAILED
    assert ConnectionState.CONNECTED == "CONNECTED"
