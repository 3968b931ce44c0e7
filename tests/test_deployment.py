"""The deployment's record: which resource declares which store in which state, and who drives each store."""

from __future__ import annotations

from kms_connection.deployment import Declaration, Deployment
from kms_connection.states import DesiredState

UP = DesiredState.CONNECTED
DOWN = DesiredState.DISCONNECTED
REGION = "us-east-1"
X = "cks-1111111111111111a"
Y = "cks-2222222222222222b"
CONN = "CustomKeyStoreConnection 'hsm'"
SET = "CustomKeyStoreConnectionSet 'fleet'"


def test_a_declaration_names_its_resource_and_state_for_messages() -> None:
    assert Declaration(CONN, UP).describe() == f"CONNECTED by {CONN}"


def test_declarations_of_a_store_are_every_resource_that_names_it() -> None:
    record = Deployment()
    record.declare(CONN, REGION, [X], UP)
    record.declare(SET, REGION, [X, Y], UP)
    assert [d.resource for d in record.declarations(REGION, X)] == [CONN, SET]
    assert [d.resource for d in record.declarations(REGION, Y)] == [SET]


def test_declarations_can_leave_out_the_resource_asking() -> None:
    record = Deployment()
    record.declare(CONN, REGION, [X], UP)
    record.declare(SET, REGION, [X], UP)
    assert [d.resource for d in record.declarations(REGION, X, excluding=SET)] == [CONN]


def test_a_store_id_names_a_store_only_within_its_region() -> None:
    record = Deployment()
    record.declare(CONN, "eu-west-1", [X], UP)
    assert record.declarations(REGION, X) == []


def test_declaring_the_opposite_state_of_another_resource_returns_the_conflict_per_store() -> None:
    record = Deployment()
    record.declare(CONN, REGION, [X], UP)
    assert record.declare(SET, REGION, [X, Y], DOWN) == {X: [Declaration(CONN, UP)]}


def test_a_conflicting_declaration_is_kept_so_the_other_side_learns_of_it() -> None:
    record = Deployment()
    record.declare(CONN, REGION, [X], UP)
    record.declare(SET, REGION, [X], DOWN)
    assert [d.describe() for d in record.declarations(REGION, X, excluding=CONN)] == [f"DISCONNECTED by {SET}"]


def test_the_same_state_from_two_resources_is_no_conflict() -> None:
    record = Deployment()
    record.declare(CONN, REGION, [X], UP)
    assert record.declare(SET, REGION, [X], UP) == {}


def test_a_resource_declared_again_replaces_its_earlier_declaration() -> None:
    record = Deployment()
    record.declare(SET, REGION, [X, Y], UP)
    record.declare(SET, REGION, [Y], DOWN)  # X left the set, and the set now wants DISCONNECTED
    assert record.declarations(REGION, X) == []
    assert record.declarations(REGION, Y) == [Declaration(SET, DOWN)]


def test_a_declaration_without_an_id_keeps_the_id_recorded_before() -> None:
    record = Deployment()
    record.declare(CONN, REGION, [X], UP, resource_id="cks-1111111111111111a/0001")
    record.declare(CONN, REGION, [X], UP)  # Check knows no id
    assert record.declarations(REGION, X)[0].resource_id == "cks-1111111111111111a/0001"


def test_a_deleted_resource_withdraws_its_declaration_but_not_a_replacement_of_the_same_name() -> None:
    record = Deployment()
    record.declare(CONN, REGION, [X], UP, resource_id="old")
    record.withdraw("old")
    assert record.declarations(REGION, X) == []
    record.declare(CONN, REGION, [X], UP, resource_id="new")  # the replacement, created before the old is deleted
    record.withdraw("old")
    assert record.declarations(REGION, X) == [Declaration(CONN, UP, "new")]


def test_one_operation_at_a_time_drives_a_store_until_it_releases_it() -> None:
    record = Deployment()
    first, second = object(), object()
    assert record.drive(REGION, X, first)
    assert record.drive(REGION, X, first)  # its own lease
    assert not record.drive(REGION, X, second)
    assert record.drive(REGION, Y, second)  # another store is free
    record.release(REGION, X, second)  # not its lease: no effect
    assert not record.drive(REGION, X, second)
    record.release(REGION, X, first)
    assert record.drive(REGION, X, second)


def test_clear_forgets_declarations_and_drivers() -> None:
    record = Deployment()
    record.declare(CONN, REGION, [X], UP)
    record.drive(REGION, X, object())
    record.clear()
    assert record.declarations(REGION, X) == []
    assert record.drive(REGION, X, object())
