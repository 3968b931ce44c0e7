"""The Pulumi dynamic providers behind ``CustomKeyStoreConnection`` and ``CustomKeyStoreConnectionSet``: check,
diff, create, update, delete, read.

The engine runs them in one process per deployment (``python -u -m pulumi.dynamic``), unpickling one instance
of each class that every resource of the stack shares across the server's four worker threads. An instance
pickles to a reference to its class and nothing else; boto3 clients are made lazily in the provider process, one
per Region and credential set (the stack's, or the stack's then a resource's ``role_arn``: see ``credentials``).
Deciding what to do is ``plan.py``'s and waiting is ``reconciler.py``'s; this module translates
between them and the engine's properties, and records in ``DEPLOYMENT`` what each resource declares as soon as
the engine shows it (check, diff, create, update).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import threading
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any, NoReturn

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown
from pulumi.runtime import rpc

from . import inputs as names
from .credentials import Chain, credential_set, forget_credentials
from .deployment import Declaration, Deployment
from .errors import (
    API_ERROR_REMEDIES,
    AccountRefusedError,
    DisconnectRefusedError,
    UnrecordedConnectionsError,
    conflict_text,
    disconnect_command,
)
from .gateway import KeyLister, KeyStore, KmsGateway, make_client
from .inputs import GUARD_DEFAULT, INPUT_NAMES, SET_INPUT_NAMES, check_inputs, check_set_inputs, disconnect_guard
from .plan import Observation, blast_radius, breaks_keys, guard_refusal, plan, plan_line
from .reconciler import NOT_FOUND_GRACE_SECONDS, Goal, Outcome, Reconciler
from .settings import REGION_HELP, ROLE_ARN, AssumeRole, AwsSettings
from .states import DesiredState, DisconnectGuard, OnDelete

OUTPUT_NAMES = (
    "connection_state",
    "connection_error_code",
    "custom_key_store_type",
    "custom_key_store_name",
    "cloud_hsm_cluster_id",
    "xks_proxy_uri_endpoint",
    "account_id",
)
SET_OUTPUT_NAMES = ("connection_states", "connection_error_codes", "account_id")
ACCOUNT_ID = "account_id"
"""The output that names the account the stores are in (when the provider can learn it: see ``credentials``)."""
# Inputs whose change points the resource at another store, so it is replaced rather than updated.
REPLACE_ON_CHANGE = (names.CUSTOM_KEY_STORE_ID, names.REGION)
# A set's ids change in place (a store joining or leaving is an update); only another Region replaces it.
SET_REPLACE_ON_CHANGE = (names.REGION,)
# A changed role_arn replaces a resource when the role is of another account (``role_replaces``), and otherwise
# updates it in place, like the role's external id and session name.
UPDATE_IN_PLACE = (
    names.DESIRED_STATE,
    names.ON_DELETE,
    names.CONNECT_TIMEOUT,
    names.DISCONNECT_TIMEOUT,
    *names.ROLE_INPUT_NAMES,
    names.DISCONNECT_GUARD,
)

CONNECTION_NOT_FOUND = API_ERROR_REMEDIES["CustomKeyStoreNotFoundException"]
SET_MEMBER_NOT_FOUND = (
    "check custom_key_store_ids and region; if the store was deleted, remove it from the set's "
    "custom_key_store_ids: the next `pulumi up` then drops it from the set (`pulumi refresh` does not, since the "
    "set still lists it)"
)

_DESIRED_VALUES = frozenset(desired.value for desired in DesiredState)

DEPLOYMENT = Deployment()
"""What this provider process (one per deployment) has been shown of the program: see ``deployment.py``."""


def new_deployment() -> None:
    """Forget what the process was shown, and its cached credentials and accounts: what a new provider process
    starts with. The engine starts one per deployment; tests that run many deployments in one process call this
    between them."""
    DEPLOYMENT.clear()
    forget_credentials()


def log(line: str) -> None:
    """Tell the user something: the engine shows a dynamic provider's stderr lines as info diagnostics."""
    print(line, file=sys.stderr, flush=True)


class _KmsProvider(ResourceProvider):
    """What both providers share: settings from the stack config, one KMS gateway per Region, and declaring what
    a resource wants to the deployment's record."""

    kind = ""
    """The resource class's name, for messages: ``CustomKeyStoreConnection``."""
    stores_key = ""
    """The input that names the stores."""

    def __init__(self) -> None:
        super().__init__()
        self._setup()

    def _setup(self) -> None:
        self._settings: AwsSettings | None = None
        self._gateways: dict[tuple[Chain, str], KmsGateway] = {}
        self._lock = threading.Lock()

    # Pickled into every resource's state: keep it to the class reference. Settings and clients belong to the
    # provider process, and a boto3 client cannot be pickled at all.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._setup()

    def configure(self, req: ConfigureRequest) -> None:
        self._settings = AwsSettings.from_stack_config(req.config.get)

    @property
    def settings(self) -> AwsSettings:
        # Without configure() (the engine always calls it) the environment still gives a Region.
        if self._settings is None:
            self._settings = AwsSettings.from_stack_config(lambda _key: None)
        return self._settings

    def gateway(self, region: str, chain: Chain | None = None) -> KmsGateway:
        """The KMS gateway for ``region`` and a credential chain (default: the stack's), made on first use and
        shared by every resource and thread: one client per account and Region, so botocore's adaptive retry mode
        paces all their calls together."""
        chain = self.settings.assume_roles if chain is None else chain
        with self._lock:
            gateway = self._gateways.get((chain, region))
            if gateway is None:
                credentials = credential_set(self.settings, chain, region)
                client = functools.partial(make_client, self.settings, region, credentials)
                gateway = KmsGateway(region, client, credentials)
                self._gateways[(chain, region)] = gateway
            return gateway

    def chain(self, props: Mapping[str, Any]) -> Chain:
        """The roles a resource's calls are signed with: the stack's ``aws:assumeRoles``, then its own
        ``role_arn`` (assumed from the stack's credentials), if it has one."""
        stack = self.settings.assume_roles
        role_arn = props.get(names.ROLE_ARN)
        if not isinstance(role_arn, str) or not role_arn or is_unknown(role_arn):
            return stack
        session_name, external_id = props.get(names.ROLE_SESSION_NAME), props.get(names.ROLE_EXTERNAL_ID)
        role = AssumeRole(
            role_arn,
            session_name=session_name if isinstance(session_name, str) else None,
            external_id=external_id if isinstance(external_id, str) else None,
        )
        return (*stack, role)

    def reconciler(
        self, region: str, chain: Chain | None = None, guard: DisconnectGuard = DisconnectGuard.OFF
    ) -> Reconciler:
        """The loop for one operation; ``guard`` (the resource's ``disconnect_guard``) checks each Disconnect that
        takes a store towards DISCONNECTED: what it breaks is said, or it is refused (``disconnect_check``)."""
        gateway = self.gateway(region, chain)
        check = None if guard is DisconnectGuard.OFF else disconnect_check(gateway, guard)
        return Reconciler(gateway, log=log, deployment=DEPLOYMENT, before_disconnect=check)

    def learn_account(self, gateway: KmsGateway, stores: str, *, preview: bool = False) -> str | None:
        """The account the resource's stores are in, learned before anything else so that every line names it.
        In a preview, a warning when ``up`` will refuse to change them (the gateway refuses each such request
        itself, preview or not)."""
        if preview:
            refused = gateway.account_refusal(stores, "a request that changes it")
            if refused is not None:
                log(
                    f"warning: {where(gateway, stores)}: `pulumi up` will send no request that changes it: "
                    f"{refused.reason}. To fix: {refused.fix}"
                )
        try:
            return gateway.account_id(stores)
        except AccountRefusedError:
            if preview:
                return None  # the warning above says why
            raise

    def role_replaces(self, olds: Mapping[str, Any], news: Mapping[str, Any], region: str, stores: str) -> list[str]:
        """``[role_arn]`` when a changed ``role_arn`` names another account than the one the stores are in (or
        when either account cannot be told); ``[]`` when it is unchanged, or a role of the same account."""
        old_role, new_role = olds.get(names.ROLE_ARN), news.get(names.ROLE_ARN)
        if old_role == new_role:
            return []
        if is_unknown(new_role):
            return [names.ROLE_ARN]
        old_account = olds.get(ACCOUNT_ID) or _role_account(old_role)
        new_account = _role_account(new_role)
        if not new_role:
            # Back to the stack's credentials: their account, if it can be learned.
            try:
                new_account = self.gateway(region, self.chain(news)).account_id(stores)
            except AccountRefusedError:
                new_account = None
        same = old_account is not None and old_account == new_account
        return [] if same else [names.ROLE_ARN]

    def store_ids(self, props: Mapping[str, Any]) -> list[Any]:
        """The stores a resource's properties name (some may be unknown in a preview)."""
        raise NotImplementedError

    def label(self, props: Mapping[str, Any], resource_id: str | None = None) -> str | None:
        """The resource as users read it in messages, and as the deployment's record tells resources apart: by
        the name the resource classes pass, else by its id; None when neither is known (Check of a resource made
        without the resource classes, which then declares nothing until Diff or Create gives it an id)."""
        name = props.get(names.RESOURCE_NAME)
        if isinstance(name, str) and name and not is_unknown(name):
            return f"{self.kind} '{name}'"
        return f"{self.kind} {resource_id}" if resource_id else None

    def declare(self, props: Mapping[str, Any], resource_id: str | None = None) -> dict[str, list[Declaration]]:
        """Record what the resource wants, as soon as the engine shows it; return the conflicting declarations of
        other resources, per store. Values still unknown in a preview are left out."""
        label = self.label(props, resource_id)
        region, desired = props.get(names.REGION), props.get(names.DESIRED_STATE)
        if label is None or not isinstance(region, str) or is_unknown(region) or not isinstance(desired, str):
            return {}
        if desired not in _DESIRED_VALUES:
            return {}
        store_ids = [i for i in self.store_ids(props) if isinstance(i, str) and not is_unknown(i)]
        return DEPLOYMENT.declare(label, region, store_ids, DesiredState(desired), resource_id)

    def checked(self, inputs: dict[str, Any], failures: list[names.InputFailure]) -> CheckResult:
        """The check result: input failures, or else any store another resource declares the other way."""
        found = [CheckFailure(f.property, f.reason) for f in failures]
        if not failures:
            for store_id, opposed in self.declare(inputs).items():
                own = Declaration(self.label(inputs) or self.kind, DesiredState(inputs[names.DESIRED_STATE]))
                declarations = [d.describe() for d in (own, *opposed)]
                reason = f"custom key store {store_id} in {inputs[names.REGION]} is {conflict_text(declarations)}."
                found.append(CheckFailure(names.DESIRED_STATE, reason))
        return CheckResult(inputs, found)

    def preview_new(self, olds: Mapping[str, Any], result: CheckResult, not_found: str) -> CheckResult:
        """For a resource the engine will create, the plan line a diff prints for an existing one.

        The engine shows such a resource nothing but Check, in preview and in up: without this, adopting a store
        with the wrong ``desired_state``, or naming one that does not exist, would show nothing until ``up``
        acted. One read for all the resource's stores, only when the inputs are valid and known; whatever the
        read meets is said, never made a check failure."""
        inputs = result.inputs
        store_ids = self.store_ids(inputs)
        region, desired = inputs.get(names.REGION), inputs.get(names.DESIRED_STATE)
        unknowns = (region, desired, *store_ids, *(inputs.get(key) for key in names.ROLE_INPUT_NAMES))
        if olds or result.failures or not store_ids or any(is_unknown(value) for value in unknowns):
            return result
        label = ", ".join(map(str, store_ids))
        try:
            gateway = self.gateway(str(region), self.chain(inputs))
            self.learn_account(gateway, label, preview=True)
            ids = [str(store_id) for store_id in store_ids]
            stores = {ids[0]: gateway.describe(ids[0])} if len(ids) == 1 else gateway.describe_many(ids)
        # Whatever goes wrong leaves only the line unsaid: a courtesy of the preview never fails the check.
        except Exception as error:
            log(f"{label}: not read before creating the resource ({error}); `pulumi up` will read it again")
            return result
        for store_id, store in stores.items():
            who = where(gateway, store_id)
            if store is None:
                log(
                    f"{who}: not found in {region}: `pulumi up` will look for it for {NOT_FOUND_GRACE_SECONDS:g} s "
                    f"(a store created a moment ago may not show yet), then fail; {not_found}"
                )
            else:
                announce(
                    store_id,
                    str(region),
                    store,
                    DesiredState(desired),
                    not_found,
                    who,
                    KeyLister(gateway),
                    disconnect_guard(inputs),
                )
        return result

    def fail(
        self,
        outcome: Outcome,
        region: str,
        resource: str | None,
        recorded: Collection[str],
        what_is_recorded: str,
        chain: Chain = (),
    ) -> NoReturn:
        """Raise the outcome's error, naming each store this operation connected that the state will not record
        (the engine keeps the old state when an operation fails), with the command that disconnects it, and the
        role to run it as where ``chain`` (the roles the calls were signed with) names one."""
        error = outcome.error()
        unrecorded = [
            store_id
            for store_id in outcome.connected
            if store_id not in recorded and not _kept_by_others(region, store_id, resource)
        ]
        if unrecorded:
            settings = self.settings
            commands = [
                disconnect_command(store_id, region, settings.profile, settings.kms_endpoint) for store_id in unrecorded
            ]
            # Its message holds the cause's in full: a chained traceback would only say it twice.
            role_arn = chain[-1].role_arn if chain else None
            raise UnrecordedConnectionsError(error, unrecorded, what_is_recorded, commands, role_arn) from None
        raise error


class CustomKeyStoreConnectionProvider(_KmsProvider):
    """Converges a custom key store's connection state; see ``CustomKeyStoreConnection``."""

    kind = "CustomKeyStoreConnection"
    stores_key = names.CUSTOM_KEY_STORE_ID

    def store_ids(self, props: Mapping[str, Any]) -> list[Any]:
        store_id = props.get(names.CUSTOM_KEY_STORE_ID)
        return [] if store_id is None else [store_id]

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        checked, failures = check_inputs(news, self.settings.region, is_unknown)
        return self.preview_new(olds, self.checked(checked, failures), CONNECTION_NOT_FOUND)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        self.declare(news, id_)
        replaces = [key for key in REPLACE_ON_CHANGE if is_unknown(news.get(key)) or news.get(key) != olds.get(key)]
        if not replaces:
            replaces = self.role_replaces(olds, news, str(news[names.REGION]), str(news[names.CUSTOM_KEY_STORE_ID]))
        if replaces:
            return DiffResult(changes=True, replaces=replaces, delete_before_replace=False)
        inputs_changed = any(news.get(key) != olds.get(key) for key in UPDATE_IN_PLACE)
        desired = news.get(names.DESIRED_STATE)
        if is_unknown(desired) or any(is_unknown(news.get(key)) for key in names.ROLE_INPUT_NAMES):
            return DiffResult(changes=True, replaces=[])
        store_id, region = str(news[names.CUSTOM_KEY_STORE_ID]), str(news[names.REGION])
        gateway = self.gateway(region, self.chain(news))
        self.learn_account(gateway, store_id, preview=True)
        # The one read a preview makes: drift shows against what KMS says now, not what the state file says.
        store = gateway.describe(store_id)
        work = announce(
            store_id,
            region,
            store,
            DesiredState(desired),
            CONNECTION_NOT_FOUND,
            where(gateway, store_id),
            KeyLister(gateway),
            disconnect_guard(news),
        )
        return DiffResult(changes=inputs_changed or work, replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        store_id = str(props[names.CUSTOM_KEY_STORE_ID])
        # Unique per resource, so that two resources of one store (a rename, a replacement) can be told apart.
        resource_id = f"{store_id}/{uuid.uuid4().hex[:8]}"
        return CreateResult(resource_id, self._converge(resource_id, props, created=True))

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._converge(id_, news, created=False))

    def _converge(self, resource_id: str, props: Mapping[str, Any], *, created: bool) -> dict[str, Any]:
        store_id, region = str(props[names.CUSTOM_KEY_STORE_ID]), str(props[names.REGION])
        self.declare(props, resource_id)
        chain = self.chain(props)
        account = self.learn_account(self.gateway(region, chain), store_id)
        goal = dataclasses.replace(
            desired_goal(props, grace=NOT_FOUND_GRACE_SECONDS if created else 0.0),
            known=not created,
            resource=self.label(props, resource_id),
            not_found_fix=CONNECTION_NOT_FOUND,
        )
        outcome = self.reconciler(region, chain, disconnect_guard(props)).run({store_id: goal})
        if outcome.failed:
            # A failed create records no resource; a failed update keeps the resource, and with it the store.
            recorded = [] if created else [store_id]
            self.fail(outcome, region, goal.resource, recorded, "a failed create records no resource", chain)
        store = outcome.stores[store_id]
        assert store is not None  # the goal is not missing_ok: a missing store fails
        return outputs(props, store, account)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        store_id, region = str(props[names.CUSTOM_KEY_STORE_ID]), str(props[names.REGION])
        DEPLOYMENT.withdraw(id_)
        if props.get(names.ON_DELETE) == OnDelete.RETAIN.value:
            log(f"{store_id}: on_delete is 'retain': leaving the store as it is")
            return
        chain = self.chain(props)
        self.learn_account(self.gateway(region, chain), store_id)
        outcome = self.reconciler(region, chain, disconnect_guard(props)).run({store_id: release_goal(props)})
        _warn_missing(outcome.result(), outcome.missing, region)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        store_id = str(props.get(names.CUSTOM_KEY_STORE_ID) or id_.split("/")[0])
        region = props.get(names.REGION) or self.settings.region
        if not region:
            raise ValueError(f"custom key store {store_id}: no AWS Region to read it from: {REGION_HELP}.")
        chain = self.chain(props)
        account = self.learn_account(self.gateway(str(region), chain), store_id)
        store = self.reconciler(str(region), chain).observe([store_id])[store_id]
        if store is None:
            log(f"warning: {store_id}: not found in {region}; removing the connection from the stack")
            return ReadResult("", {})
        given = {key: props[key] for key in (*INPUT_NAMES, names.RESOURCE_NAME) if props.get(key) is not None}
        given.setdefault(names.CUSTOM_KEY_STORE_ID, store_id)
        given.setdefault(names.REGION, region)
        return ReadResult(id_ or store_id, outputs(given, store, account), given)


def where(gateway: KmsGateway, stores: str) -> str:
    """Stores as lines name them: ``cks-… (222233334444/us-east-1)`` once the account is known, else the ids."""
    place = gateway.account_place
    return f"{stores} ({place})" if place else stores


def announce(
    store_id: str,
    region: str,
    store: KeyStore | None,
    desired: DesiredState,
    not_found: str,
    who: str | None = None,
    lister: KeyLister | None = None,
    guard: DisconnectGuard = GUARD_DEFAULT,
) -> bool:
    """Print what an update will do to a store, if anything (the preview's plan line); return whether it will.

    ``not_found`` is the advice for a store that does not exist, which differs between a connection and a set;
    ``who`` is how the line names the store (``where``), by default its id. When the plan disconnects the store
    and ``guard`` is not ``off``, ``lister`` counts its keys and the line says what the disconnect breaks, or
    that ``up`` will refuse it; no key is listed otherwise (a steady preview makes no key call)."""
    observation = store.observation if store else Observation(None)
    steps = plan(observation, desired)
    if not steps:
        return False
    who = who or store_id
    if store is None:
        log(f"{who}: not found in {region}, desired {desired.value}: the update will fail; {not_found}")
        return True
    counts = lister is not None and guard is not DisconnectGuard.OFF and breaks_keys(observation, desired)
    census = lister.census(store_id) if lister is not None and counts else None
    log(f"{who}: {plan_line(observation, desired, census, guard)}")
    return True


def disconnect_check(gateway: KmsGateway, guard: DisconnectGuard) -> Callable[[str, Observation], str]:
    """The reconciler's check before a Disconnect towards DISCONNECTED: the store's keys, listed once for the
    operation; what the disconnect breaks, or ``DisconnectRefusedError`` when ``guard`` refuses it."""
    lister = KeyLister(gateway)

    def check(store_id: str, observation: Observation) -> str:
        census = lister.census(store_id)
        refusal = guard_refusal(guard, census)
        if refusal is not None:
            raise DisconnectRefusedError(store_id, gateway.region, refusal, observation.describe(), census.counted)
        return blast_radius(census)

    return check


def outputs(inputs: Mapping[str, Any], store: KeyStore, account: str | None = None) -> dict[str, Any]:
    """The resource's full outputs: its inputs, what KMS said about the store and the account it is in."""
    result = {key: inputs[key] for key in (*INPUT_NAMES, names.RESOURCE_NAME) if inputs.get(key) is not None}
    result.update(
        connection_state=store.connection_state.value,
        connection_error_code=store.connection_error_code,
        custom_key_store_type=store.custom_key_store_type,
        custom_key_store_name=store.custom_key_store_name,
        cloud_hsm_cluster_id=store.cloud_hsm_cluster_id,
        xks_proxy_uri_endpoint=store.xks_proxy_uri_endpoint,
        account_id=account,
    )
    return result


def is_unknown(value: Any) -> bool:
    """Whether a property value is unknown during a preview.

    The provider server deserializes unknowns as ``pulumi.output.Unknown`` instances; the raw sentinel string
    is accepted too, as it appears before deserialization.
    """
    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


class CustomKeyStoreConnectionSetProvider(_KmsProvider):
    """Converges several stores of one Region at once; see ``CustomKeyStoreConnectionSet``.

    One resource waits for all its stores in one worker thread, with one DescribeCustomKeyStores call per poll,
    so ten stores settle in about the time of the slowest rather than in turns of the server's four threads.
    """

    kind = "CustomKeyStoreConnectionSet"
    stores_key = names.CUSTOM_KEY_STORE_IDS

    def store_ids(self, props: Mapping[str, Any]) -> list[Any]:
        store_ids = props.get(names.CUSTOM_KEY_STORE_IDS)
        return list(store_ids) if isinstance(store_ids, list) else []

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        checked, failures = check_set_inputs(news, self.settings.region, is_unknown)
        return self.preview_new(olds, self.checked(checked, failures), SET_MEMBER_NOT_FOUND)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        self.declare(news, id_)
        region = news.get(names.REGION)
        replaces = [key for key in SET_REPLACE_ON_CHANGE if is_unknown(news.get(key)) or news.get(key) != olds.get(key)]
        if replaces:
            return DiffResult(changes=True, replaces=replaces, delete_before_replace=False)
        store_ids = news.get(names.CUSTOM_KEY_STORE_IDS)
        desired = news.get(names.DESIRED_STATE)
        if is_unknown(store_ids) or any(is_unknown(i) for i in store_ids or []) or is_unknown(desired):
            return DiffResult(changes=True, replaces=[])
        stores_label = ", ".join(map(str, store_ids or []))
        replaces = self.role_replaces(olds, news, str(region), stores_label)
        if replaces:
            return DiffResult(changes=True, replaces=replaces, delete_before_replace=False)
        if any(is_unknown(news.get(key)) for key in names.ROLE_INPUT_NAMES):
            return DiffResult(changes=True, replaces=[])
        inputs_changed = any(
            news.get(key) != olds.get(key) for key in (names.CUSTOM_KEY_STORE_IDS, *UPDATE_IN_PLACE)
        )
        goals = set_goals(olds, news, grace=0.0)
        # A store leaving the set that another resource declares CONNECTED is left to it: say so, as the update will.
        for store_id, goal in list(goals.items()):
            keepers = _keepers(str(region), store_id) if goal.release else []
            if keepers:
                kept = " and ".join(keepers)
                log(f"{store_id}: leaves the set; declared {kept} in this stack: will leave it connected")
                del goals[store_id]
        gateway = self.gateway(str(region), self.chain(news))
        self.learn_account(gateway, stores_label, preview=True)
        # One read for the whole set, however many stores it holds.
        stores = gateway.describe_many(goals)
        # One listing of the Region's keys for every store the update disconnects.
        lister, guard = KeyLister(gateway), disconnect_guard(news)
        work = [
            announce(
                store_id,
                str(region),
                stores[store_id],
                goal.desired,
                SET_MEMBER_NOT_FOUND,
                where(gateway, store_id),
                lister,
                guard,
            )
            for store_id, goal in goals.items()
            if stores[store_id] is not None or not goal.missing_ok
        ]
        return DiffResult(changes=inputs_changed or any(work), replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        resource_id = f"ckss-{uuid.uuid4().hex[:17]}"
        return CreateResult(resource_id, self._converge(resource_id, {}, props))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._converge(id_, olds, news))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        region = str(props[names.REGION])
        store_ids = list(props.get(names.CUSTOM_KEY_STORE_IDS) or [])
        DEPLOYMENT.withdraw(id_)
        if props.get(names.ON_DELETE) == OnDelete.RETAIN.value:
            log(f"{', '.join(store_ids)}: on_delete is 'retain': leaving the stores as they are")
            return
        goal = release_goal(props)
        chain = self.chain(props)
        self.learn_account(self.gateway(region, chain), ", ".join(store_ids))
        outcome = self.reconciler(region, chain, disconnect_guard(props)).run(dict.fromkeys(store_ids, goal))
        _warn_missing(outcome.result(), outcome.missing, region)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        region = props.get(names.REGION) or self.settings.region
        if not region:
            raise ValueError(f"custom key store set {id_}: no AWS Region to read it from: {REGION_HELP}.")
        store_ids = list(props.get(names.CUSTOM_KEY_STORE_IDS) or [])
        chain = self.chain(props)
        account = self.learn_account(self.gateway(str(region), chain), ", ".join(store_ids))
        stores = self.reconciler(str(region), chain).observe(store_ids)
        for store_id, store in stores.items():
            if store is None:
                log(f"warning: {store_id}: not found in {region}; {SET_MEMBER_NOT_FOUND}")
        if not any(stores.values()):
            return ReadResult("", {})
        given = {key: props[key] for key in (*SET_INPUT_NAMES, names.RESOURCE_NAME) if props.get(key) is not None}
        given.setdefault(names.REGION, region)
        return ReadResult(id_, set_outputs(given, stores, account), given)

    def _converge(self, resource_id: str, olds: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
        region = str(props[names.REGION])
        self.declare(props, resource_id)
        old_members = list(olds.get(names.CUSTOM_KEY_STORE_IDS) or [])
        label = self.label(props, resource_id)
        goals = set_goals(olds, props, grace=NOT_FOUND_GRACE_SECONDS, resource=label)
        chain = self.chain(props)
        account = self.learn_account(self.gateway(region, chain), ", ".join(goals))
        outcome = self.reconciler(region, chain, disconnect_guard(props)).run(goals)
        if outcome.failed:
            recorded = (
                f"the set's state still lists {', '.join(old_members)}"
                if old_members
                else "a failed create records no resource"
            )
            self.fail(outcome, region, label, old_members, recorded, chain)
        _warn_missing(outcome.stores, outcome.missing, region)  # stores that left the set, already gone
        members = {store_id: outcome.stores[store_id] for store_id in props[names.CUSTOM_KEY_STORE_IDS]}
        return set_outputs(props, members, account)


def desired_goal(props: Mapping[str, Any], grace: float = 0.0) -> Goal:
    """The goal a resource's inputs ask for: its desired state, within that state's timeout input."""
    desired = DesiredState(props[names.DESIRED_STATE])
    timeout_input = names.CONNECT_TIMEOUT if desired is DesiredState.CONNECTED else names.DISCONNECT_TIMEOUT
    return Goal(desired, float(props[timeout_input]), timeout_input, not_found_grace=grace)


def disconnect_goal(props: Mapping[str, Any]) -> Goal:
    """What ``on_delete="disconnect"`` asks of a store: DISCONNECTED, or gone."""
    timeout = float(props.get(names.DISCONNECT_TIMEOUT) or names.DEFAULTS[names.DISCONNECT_TIMEOUT])
    return Goal(DesiredState.DISCONNECTED, timeout, names.DISCONNECT_TIMEOUT, missing_ok=True)


def release_goal(props: Mapping[str, Any]) -> Goal:
    """``on_delete="disconnect"`` for a store the stack records and a resource lets go of (a delete, or a store
    leaving a set): it yields to any other resource of the deployment that declares the store CONNECTED."""
    return dataclasses.replace(disconnect_goal(props), known=True, release=True)


def set_goals(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    *,
    grace: float,
    resource: str | None = None,
) -> dict[str, Goal]:
    """Each member's goal (a new member may get ``grace`` to show up), and for stores leaving the set what
    ``on_delete`` asks of them."""
    old_members = list(olds.get(names.CUSTOM_KEY_STORE_IDS) or [])
    goal = dataclasses.replace(desired_goal(news), resource=resource, not_found_fix=SET_MEMBER_NOT_FOUND)
    goals = {
        store_id: dataclasses.replace(
            goal, not_found_grace=0.0 if store_id in old_members else grace, known=store_id in old_members
        )
        for store_id in news[names.CUSTOM_KEY_STORE_IDS]
    }
    if news.get(names.ON_DELETE) == OnDelete.DISCONNECT.value:
        leaving = release_goal(news)
        for store_id in old_members:
            goals.setdefault(store_id, leaving)
    return goals


def _kept_by_others(region: str, store_id: str, resource: str | None) -> bool:
    """Whether another resource of the deployment declares the store CONNECTED, and so records it itself."""
    others = DEPLOYMENT.declarations(region, store_id, excluding=resource)
    return any(declaration.desired is DesiredState.CONNECTED for declaration in others)


def _keepers(region: str, store_id: str) -> list[str]:
    """The resources of the deployment that declare the store CONNECTED, as ``CONNECTED by ...``."""
    declarations = DEPLOYMENT.declarations(region, store_id)
    return [declaration.describe() for declaration in declarations if declaration.desired is DesiredState.CONNECTED]


def _warn_missing(stores: Mapping[str, KeyStore | None], missing: Collection[str], region: str) -> None:
    for store_id in stores:
        if store_id in missing:
            log(f"warning: {store_id}: not found in {region} (deleted?); nothing left to disconnect")


def _role_account(role_arn: Any) -> str | None:
    """The account of a role ARN, or None for anything else."""
    match = ROLE_ARN.fullmatch(role_arn) if isinstance(role_arn, str) else None
    return match.group("account") if match else None


def set_outputs(
    inputs: Mapping[str, Any], stores: Mapping[str, KeyStore | None], account: str | None = None
) -> dict[str, Any]:
    """A set's full outputs: its inputs, each member's observed state (and error code when FAILED), and the
    account the stores are in."""
    result = {key: inputs[key] for key in (*SET_INPUT_NAMES, names.RESOURCE_NAME) if inputs.get(key) is not None}
    result[SET_OUTPUT_NAMES[0]] = {sid: s.connection_state.value for sid, s in stores.items() if s is not None}
    result[SET_OUTPUT_NAMES[1]] = {
        sid: s.connection_error_code for sid, s in stores.items() if s is not None and s.connection_error_code
    }
    result[ACCOUNT_ID] = account
    return result
