"""``Emulator``: the KMS emulator (custom key stores and their keys) running in-process, on a loopback port, in a
daemon thread."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from .accounts import DEFAULT_ACCOUNT, Accounts
from .calls import DEFAULT_CALL_LOG_LIMIT, Call
from .clock import Clock, SystemClock
from .errors import KmsError
from .faults import FailMode, FaultPlan
from .keys import DEFAULT_KEY_LIMIT
from .seeding import DEFAULT_REGION, SeedSource
from .server import DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT, KmsHTTPServer
from .service import KmsService
from .store import CLOUDHSM, DEFAULT_STORE_LIMIT, ConnectOutcome

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

#: Dummy credentials for clients of the emulator (it accepts any).
DUMMY_ACCESS_KEY_ID = "AKIAEMULATOR000TEST"
DUMMY_SECRET_ACCESS_KEY = "emulator-secret-not-checked"

OutcomeKey = str | tuple[str, str]


_client_factory_lock = threading.Lock()


@functools.cache
def _client_factory() -> Any:
    # A botocore session used only to build clients, each given its own endpoint, Region, credentials and
    # config: it holds botocore's read-only data files and handlers, no emulator state. Building a session
    # costs ~30 ms, a client from a warm one ~7 ms; tests build hundreds of clients.
    import botocore.session

    return botocore.session.Session()


def _outcome_key(key: OutcomeKey) -> tuple[str, str]:
    # "cks-..." (us-east-1), "us-west-2/cks-...", or ("us-west-2", "cks-...").
    if isinstance(key, tuple):
        return key
    region, slash, store_id = key.rpartition("/")
    return (region if slash else DEFAULT_REGION), store_id


class Emulator:
    """A local, wire-compatible KMS endpoint for custom key stores and KMS keys, with STS on the same endpoint,
    started by the constructor.

    Use it as a context manager (``with Emulator() as emu:``) or call ``stop()``. Point unmodified boto3 or
    the AWS CLI at ``endpoint_url`` (``AWS_ENDPOINT_URL_KMS`` and ``AWS_ENDPOINT_URL_STS``); ``client()`` builds a
    boto3 KMS client that does, ``sts_client()`` an STS one. Two emulators in one process share no state.

    Accounts: each access key id belongs to an account (``accounts={access_key_id: account_id}``; any other key
    to 000000000000), and stores are kept per account and Region, KMS keys with the store's account and Region
    (see ``keys`` for the key operations and their rules). STS answers ``GetCallerIdentity`` and
    ``AssumeRole``: a role ``arn:aws:iam::ACCOUNT:role/NAME`` gives session credentials of ACCOUNT, except for
    ``denied_roles`` (AccessDenied) and roles of ``role_external_ids`` assumed without their external id;
    ``session_seconds`` caps how long sessions last, to watch clients refresh them (see ``accounts``).

    Defaults differ from the command line on purpose: connects take 0.2 s and disconnects 0.1 s, and there is
    no throttling unless asked for, so tests are fast and deterministic.

    Arguments: ``clock`` (default ``SystemClock``; a ``FakeClock`` drives every transition); ``state_file``
    (stores survive a restart; ``EmulatorStateError`` if it is unusable); ``seed`` (a JSON file path or a list
    of dicts, see ``seeding``); ``store_limit`` (per Region, None: no limit); ``throttle_rps`` (per operation
    per Region, None/0: off); ``consistency_lag`` (seconds DescribeCustomKeyStores lags behind); ``host`` and
    ``port`` (0: a free port); ``fail_next`` (the next N requests get KMSInternalException); ``failure_rate``
    and ``failure_seed``; ``default_connect_outcome`` and ``connect_outcomes`` (``{"cks-...": "hang"}``, keys
    may be ``"region/cks-..."``); ``store_drills`` (``{"cks-...": "CloudHsmClusterNotActiveException"}``, keys
    as for ``connect_outcomes``) and ``next_drills`` (``[(operation, error, count)]``), see ``drill_store`` and
    ``drill_next``; ``max_body_bytes`` (1 MiB); ``request_timeout`` (socket timeout, 10 s);
    ``call_log_limit`` (oldest calls dropped beyond it); ``log`` (a callable given one line per request);
    ``accounts``, ``denied_roles``, ``role_external_ids`` and ``session_seconds``, as above; ``key_limit`` (KMS
    keys per account and Region, KMS's 100,000; None: no limit); ``denied_operations`` (operations answered
    ``AccessDeniedException``, see ``deny``);
    ``session_credentials`` (a callable returning the access key id, secret key and token of each new session,
    instead of random ones: for tests that look for them where they must not be).

    The one thing shared between emulators is the botocore session ``client()`` builds clients from (read-only
    data files and handlers, each client with its own endpoint, Region, credentials and config).
    """

    def __init__(
        self,
        connect_seconds: float = 0.2,
        disconnect_seconds: float = 0.1,
        clock: Clock | None = None,
        state_file: str | Path | None = None,
        seed: SeedSource | None = None,
        store_limit: int | None = DEFAULT_STORE_LIMIT,
        throttle_rps: float | None = None,
        consistency_lag: float = 0.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fail_next: int = 0,
        failure_rate: float = 0.0,
        failure_seed: int = 0,
        default_connect_outcome: str | ConnectOutcome = "succeed",
        connect_outcomes: Mapping[OutcomeKey, str | ConnectOutcome] | None = None,
        store_drills: Mapping[OutcomeKey, str] | None = None,
        next_drills: Iterable[tuple[str, str, int]] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        call_log_limit: int = DEFAULT_CALL_LOG_LIMIT,
        log: Callable[[str], None] | None = None,
        accounts: Mapping[str, str] | None = None,
        denied_roles: Iterable[str] = (),
        role_external_ids: Mapping[str, str] | None = None,
        session_seconds: float | None = None,
        session_credentials: Callable[[], tuple[str, str, str]] | None = None,
        key_limit: int | None = DEFAULT_KEY_LIMIT,
        denied_operations: Iterable[str] = (),
    ) -> None:
        outcomes = {_outcome_key(key): value for key, value in (connect_outcomes or {}).items()}
        drills = {_outcome_key(key): error for key, error in (store_drills or {}).items()}
        queued = list(next_drills)
        denied = list(denied_operations)

        # A factory, so that reset() can rebuild the faults exactly as configured here.
        def make_faults() -> FaultPlan:
            return FaultPlan(
                throttle_rps,
                fail_next,
                failure_rate,
                failure_seed,
                default_connect_outcome,
                outcomes,
                store_drills=drills,
                next_drills=queued,
                denied_operations=denied,
            )

        self.clock: Clock = clock if clock is not None else SystemClock()
        self.service = KmsService(
            clock=self.clock,
            faults=make_faults,
            connect_seconds=connect_seconds,
            disconnect_seconds=disconnect_seconds,
            store_limit=store_limit,
            consistency_lag=consistency_lag,
            state_file=Path(state_file) if state_file is not None else None,
            seed=seed,
            call_log_limit=call_log_limit,
            accounts=Accounts(
                accounts,
                denied_roles=denied_roles,
                role_external_ids=role_external_ids,
                session_seconds=session_seconds,
                credential_source=session_credentials,
            ),
            key_limit=key_limit,
        )
        self._server = KmsHTTPServer(
            (host, port), self.service, max_body_bytes=max_body_bytes, request_timeout=request_timeout, log=log
        )
        self._stopped = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="kms-emulator", daemon=True
        )
        self._thread.start()

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The URL to give boto3 (``endpoint_url``) or the CLI (``AWS_ENDPOINT_URL_KMS``)."""
        return self._server.endpoint_url

    def stop(self) -> None:
        """Stop serving, close every connection and save the state file (if any); safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)
        self.service.save()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def client(
        self,
        region: str = DEFAULT_REGION,
        *,
        access_key_id: str = DUMMY_ACCESS_KEY_ID,
        secret_access_key: str = DUMMY_SECRET_ACCESS_KEY,
        session_token: str | None = None,
        **config_kwargs: Any,
    ) -> KMSClient:
        """A boto3 KMS client for this emulator, with dummy credentials (of the default account, unless
        ``access_key_id`` is mapped to another or is a session's).

        ``config_kwargs`` go to ``botocore.config.Config`` (e.g. ``retries={"total_max_attempts": 1}``);
        timeouts default to 5 s (connect) and 10 s (read) so a test never waits a minute on a bug.
        """
        client = self._client("kms", region, access_key_id, secret_access_key, session_token, config_kwargs)
        return cast("KMSClient", client)

    def sts_client(
        self,
        region: str = DEFAULT_REGION,
        *,
        access_key_id: str = DUMMY_ACCESS_KEY_ID,
        secret_access_key: str = DUMMY_SECRET_ACCESS_KEY,
        session_token: str | None = None,
        **config_kwargs: Any,
    ) -> Any:
        """A boto3 STS client for this emulator, as ``client()`` makes a KMS one."""
        return self._client("sts", region, access_key_id, secret_access_key, session_token, config_kwargs)

    def _client(
        self,
        service: str,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None,
        config_kwargs: dict[str, Any],
    ) -> Any:
        from botocore.config import Config

        config_kwargs.setdefault("connect_timeout", 5)
        config_kwargs.setdefault("read_timeout", 10)
        # boto3.client("kms") builds this same botocore client class (boto3 customises only resources and a few
        # other services). Not boto3's default session: it is shared with the code under test and its
        # credentials and Region would leak in. Sessions are not thread-safe, hence the lock.
        with _client_factory_lock:
            return _client_factory().create_client(
                service,
                region_name=region,
                endpoint_url=self.endpoint_url,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                aws_session_token=session_token,
                config=Config(**config_kwargs),
            )

    # -- observation -----------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A snapshot of the call log, oldest first."""
        return self.service.call_log.snapshot()

    def clear_calls(self) -> None:
        """Empty the call log."""
        self.service.call_log.clear()

    def state_of(self, store_id: str, region: str = DEFAULT_REGION) -> str:
        """The true connection state of a store now, ignoring the consistency lag (``KeyError`` if none)."""
        try:
            return self.service.state_of(store_id, region).state.value
        except KmsError:
            raise KeyError(f"no custom key store {store_id} in {region}") from None

    # -- set-up and faults -----------------------------------------------------------------------------

    def create_store(
        self,
        name: str,
        region: str = DEFAULT_REGION,
        store_type: str = CLOUDHSM,
        store_id: str | None = None,
        connection_state: str = "DISCONNECTED",
        *,
        error_code: str | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> str:
        """Create a store in ``account`` directly for test set-up (not logged, no quota) and return its id.

        Settings are placeholders (a fresh cluster id, or a public XKS endpoint). ``connection_state`` may be
        any state; ``FAILED`` needs ``error_code``; ``CONNECTING``/``DISCONNECTING`` start their transition now.
        Store ids are unique across accounts.
        """
        return self.service.create_store(name, region, store_type, store_id, connection_state, error_code, account)

    def account_of(self, store_id: str, region: str = DEFAULT_REGION) -> str:
        """The account that holds a store (``KeyError`` if none does)."""
        try:
            return self.service.account_of(store_id, region)
        except KmsError:
            raise KeyError(f"no custom key store {store_id} in {region}") from None

    # -- accounts and STS ------------------------------------------------------------------------------

    def map_access_key(self, access_key_id: str, account: str) -> None:
        """Make requests signed with ``access_key_id`` act in ``account`` (a 12-digit id)."""
        self.service.accounts.map_key(access_key_id, account)

    def deny_assume_role(self, role_arn: str, denied: bool = True) -> None:
        """Answer AssumeRole of ``role_arn`` with AccessDenied, as when the caller lacks ``sts:AssumeRole`` on it
        or the role does not trust the caller (``denied=False`` allows it again)."""
        self.service.accounts.deny_role(role_arn, denied)

    def require_external_id(self, role_arn: str, external_id: str | None) -> None:
        """Make AssumeRole of ``role_arn`` require ``external_id`` (None: none), like a trust policy condition."""
        self.service.accounts.require_external_id(role_arn, external_id)

    @property
    def session_seconds(self) -> float | None:
        """The longest session AssumeRole issues from now on (None: as long as asked)."""
        return self.service.accounts.session_seconds

    @session_seconds.setter
    def session_seconds(self, value: float | None) -> None:
        self.service.accounts.session_seconds = value

    # -- KMS keys --------------------------------------------------------------------------------------

    def create_key(
        self,
        store_id: str | None = None,
        region: str = DEFAULT_REGION,
        *,
        account: str | None = None,
        description: str = "",
        enabled: bool = True,
        aliases: Iterable[str] = (),
        key_id: str | None = None,
        xks_key_id: str | None = None,
    ) -> str:
        """Create a KMS key directly for test set-up (not logged, no quota) and return its id.

        In the custom key store ``store_id`` whatever its state (as if made while it was connected; its origin and
        account are the store's), or with None an ``AWS_KMS`` key of ``account`` (default 000000000000).
        ``enabled=False`` makes it Disabled; ``aliases`` (``alias/...``) point at it.
        """
        return self.service.create_key(
            store_id,
            region,
            account=account,
            description=description,
            enabled=enabled,
            aliases=tuple(aliases),
            key_id=key_id,
            xks_key_id=xks_key_id,
        )

    def create_alias(self, name: str, key_id: str, region: str = DEFAULT_REGION) -> None:
        """Point a new alias (``alias/...``) at a key directly, for test set-up (not logged)."""
        self.service.create_alias(name, key_id, region)

    def set_key_count(self, store_id: str, count: int, region: str = DEFAULT_REGION) -> None:
        """Make a store hold exactly ``count`` KMS keys (real keys, created or deleted directly): while it holds
        any, DeleteCustomKeyStore answers CustomKeyStoreHasCMKsException."""
        self.service.set_key_count(store_id, count, region)

    @property
    def keys(self) -> list[dict[str, Any]]:
        """Every KMS key of every account and Region as DescribeKey shows it now, with ``Region`` and ``Aliases``."""
        return self.service.keys()

    def deny(self, *operations: str, denied: bool = True) -> None:
        """Answer every request of ``operations`` (``"ListKeys"``, ``"DescribeKey"``...) with AccessDeniedException,
        as IAM does when the caller's policies lack ``kms:<operation>``; ``denied=False`` allows them again."""
        self.service.faults.deny(operations, denied)

    def set_connect_outcome(
        self,
        store_id: str,
        outcome: str | ConnectOutcome,
        error_code: str | None = None,
        region: str = DEFAULT_REGION,
    ) -> None:
        """How the next connects of one store end: ``succeed``, ``hang``, or ``fail`` with ``error_code``.

        ``EmulatorConfigError`` for a ``ConnectionErrorCode`` of the other store type (``XKS_PROXY_TIMED_OUT``
        for a CloudHSM store); a store that does not exist yet is checked when it is created.
        """
        self.service.set_connect_outcome(region, store_id, outcome, error_code)

    def set_default_connect_outcome(self, outcome: str | ConnectOutcome, error_code: str | None = None) -> None:
        """How connects end for stores without an outcome of their own (initially ``succeed``).

        The default applies to both store types, so a ``fail`` code must belong to both (``NETWORK_ERRORS``,
        ``INTERNAL_ERROR``, ``INVALID_CREDENTIALS``); others are set per store.
        """
        self.service.faults.set_default_connect_outcome(outcome, error_code)

    def drill_store(self, store_id: str, error: str | None, region: str = DEFAULT_REGION) -> None:
        """Make one store's backing fail with ``error`` (None: heal it) until told otherwise.

        Every later request on the store whose operation documents ``error`` answers it, once it passes KMS's
        rules: ``CloudHsmClusterNotActiveException`` or ``CloudHsmClusterInvalidConfigurationException`` for a
        Connect that would start connecting, and an Update that changes more than the name; the other cluster
        errors and the ``XksProxy...`` errors for such an Update. ``EmulatorConfigError`` for an error no drill
        answers, one only CreateCustomKeyStore documents, or one of the other store type.
        """
        self.service.drill_store(region, store_id, error)

    def drill_next(self, operation: str, error: str, count: int = 1) -> None:
        """Answer ``error`` to the next ``count`` requests of ``operation`` for a store of the error's type.

        ``operation`` is ``CreateCustomKeyStore``, ``UpdateCustomKeyStore`` or ``ConnectCustomKeyStore`` and
        must document ``error``: ``IncorrectTrustAnchorException`` is Create's only,
        ``CloudHsmClusterNotRelatedException`` Update's only, Connect has the two cluster errors above. The
        requests are those that pass every rule, as for ``drill_store``.
        """
        self.service.faults.drill_next(operation, error, count)

    def clear_drills(self) -> None:
        """Drop every drill, per store and per call."""
        self.service.faults.clear_drills()

    def set_throttle(self, rps: float | None, operations: Iterable[str] | None = None) -> None:
        """Throttle each custom key store operation (or only ``operations``) to ``rps`` requests/s per account and
        Region, the key operations to KMS's own quotas while it is on (see ``faults``); None/0: off."""
        self.service.faults.set_throttle(rps, operations)

    def fail_next(self, n: int, operation: str | None = None, mode: FailMode = "internal") -> None:
        """Fail the next ``n`` requests (of ``operation``): ``internal`` = HTTP 500, ``drop`` = close the socket."""
        self.service.faults.fail_next(n, operation, mode)

    def set_failure_rate(self, fraction: float, seed: int = 0) -> None:
        """Fail a ``fraction`` of requests with KMSInternalException, reproducibly from ``seed``."""
        self.service.faults.set_failure_rate(fraction, seed)

    def set_consistency_lag(self, seconds: float) -> None:
        """Make DescribeCustomKeyStores show every store as it was ``seconds`` ago."""
        self.service.consistency_lag = seconds

    def reset(self) -> None:
        """Back to the state at construction: only the seeds, initial faults and timing, empty call log."""
        self.service.reset()

    @property
    def connect_seconds(self) -> float:
        """How long a connect takes (for connects started after a change)."""
        return self.service.connect_seconds

    @connect_seconds.setter
    def connect_seconds(self, value: float) -> None:
        self.service.connect_seconds = value

    @property
    def disconnect_seconds(self) -> float:
        """How long a disconnect takes (for disconnects started after a change)."""
        return self.service.disconnect_seconds

    @disconnect_seconds.setter
    def disconnect_seconds(self, value: float) -> None:
        self.service.disconnect_seconds = value
