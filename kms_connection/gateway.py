"""Every KMS call the provider makes, and nothing else: DescribeCustomKeyStores, ConnectCustomKeyStore and
DisconnectCustomKeyStore (the least-privilege IAM policy in the README lists exactly these three), with the
account guard in front of the two that change a store; and, to say what a disconnect breaks (``KeyLister``), the
read-only ListKeys, DescribeKey and ListAliases, which the README's policy adds as optional.

botocore's ``adaptive`` retry mode rides out throttling, transient 5xx errors and dropped connections; what is
left when its attempts are spent becomes an error that names the store, the KMS error code and the fix.

The account guard: before a Connect or Disconnect, the gateway learns the account its credentials act in (STS
GetCallerIdentity, once per credential set: see ``credentials``) and refuses an account outside
``aws:allowedAccountIds`` or inside ``aws:forbiddenAccountIds``, or one it cannot learn while the stack names
either list. No request that changes a store ever reaches a refused account.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)

from .credentials import USER_AGENT, AccountUnknownError, CredentialsError, CredentialSet, credential_set
from .errors import AccountRefusedError, KeyStoreNotFoundError, KmsApiError, KmsUnreachableError
from .plan import KeyCensus, Observation, StoreKey
from .settings import AwsSettings
from .states import ConnectionState

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
else:
    KMSClient = Any

__all__ = ["USER_AGENT", "KeyLister", "KeyStore", "KeysNotCountedError", "KmsGateway", "make_client"]

DESCRIBE_KEY_WORKERS = 8
"""DescribeKey calls in flight at once while listing a Region's keys: a few hundred a second against KMS's quota of
2,000 (botocore's adaptive mode paces them down if KMS throttles), so a Region of 1,000 keys is read in seconds."""
KEY_PAGE = 1000
"""The largest page ListKeys answers."""
ALIAS_PAGE = 100
"""The largest page ListAliases answers."""

# What to do about an account the guard refuses.
ACCOUNT_FIX = (
    "check which credentials the stack uses (aws:profile, aws:accessKey, aws:assumeRoles, the resource's role_arn) "
    "and the account the store lives in, or change aws:allowedAccountIds / aws:forbiddenAccountIds"
)


class KeysNotCountedError(Exception):
    """A key call failed (denied, or an error retries did not cure): the message says which and why."""


@dataclass(frozen=True)
class KeyStore:
    """One entry of DescribeCustomKeyStores, as far as the provider reports it (no secret is ever returned)."""

    custom_key_store_id: str
    connection_state: ConnectionState
    connection_error_code: str | None = None
    custom_key_store_type: str | None = None
    custom_key_store_name: str | None = None
    cloud_hsm_cluster_id: str | None = None
    xks_proxy_uri_endpoint: str | None = None

    @property
    def observation(self) -> Observation:
        return Observation(self.connection_state, self.connection_error_code)

    @classmethod
    def from_api(cls, entry: Any) -> KeyStore:
        xks = entry.get("XksProxyConfiguration") or {}
        state = entry.get("ConnectionState")
        return cls(
            custom_key_store_id=entry["CustomKeyStoreId"],
            connection_state=ConnectionState(state),
            connection_error_code=entry.get("ConnectionErrorCode") if state == ConnectionState.FAILED else None,
            custom_key_store_type=entry.get("CustomKeyStoreType"),
            custom_key_store_name=entry.get("CustomKeyStoreName"),
            cloud_hsm_cluster_id=entry.get("CloudHsmClusterId"),
            xks_proxy_uri_endpoint=xks.get("UriEndpoint"),
        )


def make_client(settings: AwsSettings, region: str, credentials: CredentialSet | None = None) -> KMSClient:
    """A KMS client for ``region``, signed with ``credentials`` (by default the stack's base credentials; see
    ``credentials``); botocore resolves the endpoint unless the stack names one (``AWS_ENDPOINT_URL_KMS``,
    ``AWS_ENDPOINT_URL`` or the profile's ``endpoint_url``)."""
    # Imported here, on the first KMS call: botocore's config takes about a third of a second to import, which
    # every provider start would otherwise pay before its first `check`.
    from botocore.config import Config

    config = Config(
        # Ten attempts with botocore's capped exponential backoff ride out about half a minute of throttling at
        # KMS's 5 requests per second per account, and of transient 5xx errors. The adaptive mode also paces
        # requests after a throttle, and one client serves every resource of a Region in the provider process,
        # so a set's Connects or many resources' polls share one pace: a third as many throttled calls as the
        # standard mode for 40 stores at 5 requests per second, in the same time.
        retries={"mode": "adaptive", "max_attempts": 10},
        connect_timeout=10,
        read_timeout=30,
        user_agent_extra=USER_AGENT,
    )
    chosen = credentials if credentials is not None else credential_set(settings, (), region)
    client: KMSClient = chosen.client("kms", settings.kms_endpoint, config)
    return client


class KmsGateway:
    """The three KMS calls for the stores of one Region and one credential set, with errors translated for users.

    ``credentials`` (None: a gateway that knows no account and guards none, for tests of the calls alone) tells
    the account and, through its settings, which accounts are allowed.
    """

    def __init__(
        self, region: str, make_client: Callable[[], KMSClient], credentials: CredentialSet | None = None
    ) -> None:
        self.region = region
        self._make_client = make_client
        self._credentials = credentials
        self._client: KMSClient | None = None
        self._key_client: KMSClient | None = None
        self._lock = threading.Lock()
        self._account: str | None = None
        self._account_known = False

    def _kms(self) -> KMSClient:
        # Made on first use, inside the calls' error translation: boto3 reads the profile and credentials when it
        # makes a client, and a bad profile or half-set credentials must reach the user as a clear error.
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _keys_kms(self) -> KMSClient:
        # A client of its own for the key reads: botocore's adaptive mode paces a client as a whole, and a throttle
        # of the custom key store operations (KMS allows 5 per second) would pace DescribeKey (2,000 per second)
        # down with them, turning a listing of seconds into one of minutes.
        with self._lock:
            if self._key_client is None:
                self._key_client = self._make_client()
            return self._key_client

    @property
    def endpoint(self) -> str:
        return str(self._client.meta.endpoint_url) if self._client else "configured for KMS"

    @property
    def place(self) -> str:
        """Where the stores are, as messages name it: ``222233334444/us-east-1``, or the Region alone while the
        account is not known."""
        return self.account_place or self.region

    @property
    def account_place(self) -> str | None:
        """``222233334444/us-east-1`` once the account is known, else None (lines then name the store alone)."""
        return f"{self._account}/{self.region}" if self._account else None

    def account_id(self, store_id: str, operation: str = "GetCallerIdentity") -> str | None:
        """The account the credentials act in, learned once; None when it cannot be learned and the stack guards
        no account (a local KMS endpoint with STS left at AWS: the account then only names stores in messages and
        outputs, so nothing is lost but that). A role that cannot be assumed raises, naming the store, the role
        and the missing permission; an unknowable account raises when the stack guards accounts."""
        if self._account_known or self._credentials is None:
            return self._account
        try:
            client = self._kms()
            identity = self._credentials.identity(str(client.meta.endpoint_url))
        except AccountUnknownError as error:
            if self._credentials.settings.guards_accounts:
                raise AccountRefusedError(
                    store_id, self.region, operation, f"the account cannot be verified: {error.detail}", error.fix
                ) from None
            identity = None
        except CredentialsError as error:
            raise KmsUnreachableError(store_id, self.region, operation, error.detail, error.fix) from None
        except BotoCoreError as error:
            raise self._unreachable(store_id, operation, error) from None
        with self._lock:
            self._account = identity.account if identity else None
            self._account_known = True
        return self._account

    def account_refusal(self, store_id: str, operation: str) -> AccountRefusedError | None:
        """The guard's refusal of ``operation`` on a store, or None when the account may be acted in."""
        if self._credentials is None or not self._credentials.settings.guards_accounts:
            return None
        try:
            account = self.account_id(store_id, operation)
        except AccountRefusedError as refused:
            return refused
        assert account is not None  # a guarded stack that cannot learn the account is refused above
        reason = self._credentials.settings.account_refusal(account)
        if reason is None:
            return None
        return AccountRefusedError(
            store_id, self.region, operation, f"{self._credentials.label} act in {reason}", ACCOUNT_FIX
        )

    def describe(self, store_id: str) -> KeyStore | None:
        """The store, or None when KMS does not know it."""
        try:
            response = self._kms().describe_custom_key_stores(CustomKeyStoreId=store_id)
        except ClientError as error:
            if _code(error) == "CustomKeyStoreNotFoundException":
                return None
            raise self._api_error(store_id, "DescribeCustomKeyStores", error) from None
        except (BotoCoreError, CredentialsError) as error:
            raise self._unreachable(store_id, "DescribeCustomKeyStores", error) from None
        entries = response.get("CustomKeyStores", [])
        for entry in entries:
            if entry.get("CustomKeyStoreId") == store_id:
                return KeyStore.from_api(entry)
        return None

    def describe_many(self, store_ids: Iterable[str]) -> dict[str, KeyStore | None]:
        """Several stores with one DescribeCustomKeyStores call (more only past a page of 1000 stores); a store
        KMS does not know maps to None."""
        wanted = list(store_ids)
        found: dict[str, KeyStore] = {}
        label = ", ".join(wanted)
        try:
            for page in self._kms().get_paginator("describe_custom_key_stores").paginate(
                PaginationConfig={"PageSize": 1000}
            ):
                for entry in page.get("CustomKeyStores", []):
                    if entry.get("CustomKeyStoreId") in wanted:
                        found[entry["CustomKeyStoreId"]] = KeyStore.from_api(entry)
        except ClientError as error:
            raise self._api_error(label, "DescribeCustomKeyStores", error) from None
        except (BotoCoreError, CredentialsError) as error:
            raise self._unreachable(label, "DescribeCustomKeyStores", error) from None
        return {store_id: found.get(store_id) for store_id in wanted}

    def connect(self, store_id: str) -> None:
        """Ask KMS to connect the store; it answers at once and connects asynchronously."""
        self._mutate("ConnectCustomKeyStore", store_id)

    def disconnect(self, store_id: str) -> None:
        """Ask KMS to disconnect the store; asynchronous too."""
        self._mutate("DisconnectCustomKeyStore", store_id)

    def _mutate(self, operation: str, store_id: str) -> None:
        refused = self.account_refusal(store_id, operation)
        if refused is not None:
            raise refused
        try:
            client = self._kms()
            if operation == "ConnectCustomKeyStore":
                client.connect_custom_key_store(CustomKeyStoreId=store_id)
            else:
                client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
        except ClientError as error:
            if _code(error) == "CustomKeyStoreNotFoundException":
                raise KeyStoreNotFoundError(store_id, self.region) from None
            raise self._api_error(store_id, operation, error) from None
        except (BotoCoreError, CredentialsError) as error:
            raise self._unreachable(store_id, operation, error) from None

    def store_keys(self) -> dict[str, list[StoreKey]]:
        """Every KMS key of the Region's custom key stores, by store: ListKeys, then DescribeKey of each key (KMS
        has no call that lists a store's keys). ``KeysNotCountedError`` when a call is denied or fails."""
        key_ids: list[str] = []
        try:
            for page in self._keys_kms().get_paginator("list_keys").paginate(PaginationConfig={"PageSize": KEY_PAGE}):
                key_ids += [entry["KeyId"] for entry in page.get("Keys", [])]
        except (ClientError, BotoCoreError, CredentialsError) as error:
            raise KeysNotCountedError(_why("ListKeys", error)) from None
        found: dict[str, list[StoreKey]] = {}
        for key_id, metadata in self._describe_keys(key_ids):
            store_id = metadata.get("CustomKeyStoreId")
            if store_id:
                found.setdefault(store_id, []).append(StoreKey(key_id, str(metadata.get("KeyState"))))
        return found

    def _describe_keys(self, key_ids: list[str]) -> list[tuple[str, Any]]:
        """Each key's metadata (a key deleted since ListKeys is left out), a few calls in flight at once."""
        if not key_ids:
            return []
        client = self._keys_kms()
        # Set by the first call that fails: the calls not yet sent are not sent. Cancelling the pool's queue alone
        # is too late under load, as its workers keep taking keys until this thread wakes to cancel.
        stop = threading.Event()

        def describe(key_id: str) -> tuple[str, Any]:
            if stop.is_set():
                return key_id, {}  # never read: the failure that set it is raised
            try:
                return key_id, client.describe_key(KeyId=key_id)["KeyMetadata"]
            except ClientError as error:
                if _code(error) == "NotFoundException":
                    return key_id, {}
                stop.set()
                raise
            except BaseException:
                stop.set()
                raise

        with ThreadPoolExecutor(max_workers=min(DESCRIBE_KEY_WORKERS, len(key_ids))) as pool:
            futures = [pool.submit(describe, key_id) for key_id in key_ids]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((future for future in futures if future in done and future.exception()), None)
            if failed is not None:
                # One denial answers for all: stop sending the rest.
                pool.shutdown(wait=True, cancel_futures=True)
                error = failed.exception()
                assert isinstance(error, Exception)
                if isinstance(error, ClientError | BotoCoreError | CredentialsError):
                    raise KeysNotCountedError(_why("DescribeKey", error)) from None
                raise error
            return [future.result() for future in futures]

    def key_aliases(self) -> dict[str, tuple[str, ...]]:
        """The aliases of the Region's keys, by key id: one ListAliases listing (pages of 100), however many keys
        are named; ``KeysNotCountedError`` when a call is denied or fails."""
        aliases: dict[str, list[str]] = {}
        try:
            paginator = self._keys_kms().get_paginator("list_aliases")
            for page in paginator.paginate(PaginationConfig={"PageSize": ALIAS_PAGE}):
                for entry in page.get("Aliases", []):
                    if entry.get("TargetKeyId"):
                        aliases.setdefault(entry["TargetKeyId"], []).append(entry["AliasName"])
        except (ClientError, BotoCoreError, CredentialsError) as error:
            raise KeysNotCountedError(_why("ListAliases", error)) from None
        return {key_id: tuple(sorted(names)) for key_id, names in aliases.items()}

    def _api_error(self, store_id: str, operation: str, error: ClientError) -> KmsApiError:
        detail = str(error.response.get("Error", {}).get("Message") or "").strip()
        if detail and not detail.endswith("."):
            detail += "."
        return KmsApiError(store_id, self.region, operation, _code(error), detail)

    def _unreachable(self, store_id: str, operation: str, error: Exception) -> KmsUnreachableError:
        if isinstance(error, CredentialsError):
            return KmsUnreachableError(store_id, self.region, operation, error.detail, error.fix)
        if isinstance(error, NoCredentialsError):
            return KmsUnreachableError(
                store_id,
                self.region,
                operation,
                "no AWS credentials were found",
                "set `aws:profile` in the stack config or AWS_PROFILE, or credentials in the environment (or the "
                "secrets `aws:accessKey` and `aws:secretKey`)",
            )
        if isinstance(error, PartialCredentialsError | ProfileNotFound):
            return KmsUnreachableError(
                store_id,
                self.region,
                operation,
                str(error),
                "complete the AWS credentials (key id and secret key together), or name an existing profile in "
                "`aws:profile` or AWS_PROFILE",
            )
        return KmsUnreachableError(
            store_id,
            self.region,
            operation,
            f"{type(error).__name__}: {error}",
            f"check that the KMS endpoint {self.endpoint} is reachable (a local emulator must be running; "
            "`aws:endpoints` or AWS_ENDPOINT_URL_KMS choose the endpoint)",
        )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code") or "Unknown")


def _why(operation: str, error: Exception) -> str:
    """Why a key call failed, for a line: ``kms:ListKeys is denied (AccessDeniedException: User: ... is not
    authorized ...)``, or the error that retries did not cure."""
    if isinstance(error, ClientError):
        code = _code(error)
        message = str(error.response.get("Error", {}).get("Message") or "").strip()
        detail = f"{code}: {message}" if message else code
        if code in ("AccessDeniedException", "AccessDenied"):
            return f"kms:{operation} is denied to these credentials ({detail})"
        return f"{operation} failed ({detail})"
    if isinstance(error, CredentialsError):
        return f"{operation} failed ({error.detail})"
    return f"{operation} failed ({type(error).__name__}: {error})"


class KeyLister:
    """The keys of the stores one operation disconnects, listed once for the operation: a set's stores share one
    listing of the Region's keys, and one of its aliases (made only once a store with enabled keys needs naming).

    Thread-safe: the stores of a set are disconnected from one thread, but a lister may be shared."""

    def __init__(self, gateway: KmsGateway) -> None:
        self._gateway = gateway
        self._lock = threading.Lock()
        self._listing: dict[str, list[StoreKey]] | None = None
        self._uncounted: str | None = None
        self._aliases: dict[str, tuple[str, ...]] | None = None
        self._aliases_unread: str | None = None
        self._census: dict[str, KeyCensus] = {}

    def census(self, store_id: str) -> KeyCensus:
        """The store's keys, or why they could not be counted."""
        with self._lock:
            if store_id in self._census:
                return self._census[store_id]
            if self._listing is None and self._uncounted is None:
                try:
                    self._listing = self._gateway.store_keys()
                except KeysNotCountedError as error:
                    self._uncounted = str(error)
            if self._uncounted is not None:
                census = KeyCensus(uncounted=self._uncounted)
            else:
                assert self._listing is not None
                census = self._named(KeyCensus(tuple(self._listing.get(store_id, []))))
            self._census[store_id] = census
            return census

    def _named(self, census: KeyCensus) -> KeyCensus:
        # Only enabled keys are named in a line; a store without any needs no alias.
        if not census.enabled:
            return census
        if self._aliases is None and self._aliases_unread is None:
            try:
                self._aliases = self._gateway.key_aliases()
            except KeysNotCountedError as error:
                self._aliases_unread = str(error)
        if self._aliases is None:
            return replace(census, aliases_unread=self._aliases_unread)
        aliases = self._aliases
        return replace(census, keys=tuple(replace(key, aliases=aliases.get(key.key_id, ())) for key in census.keys))
