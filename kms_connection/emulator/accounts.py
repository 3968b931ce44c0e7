"""Accounts and STS sessions: which account a request's access key id acts in, and the sessions AssumeRole issues.

Rules (the emulator's choices where AWS has more to it):
    * Every access key id belongs to one account: the one it is mapped to (``Emulator(accounts={akid: account})``,
      ``--account AKID=ACCOUNT``), else ``DEFAULT_ACCOUNT`` (000000000000, as LocalStack-style local endpoints
      use). Such a key acts as its account's root user: ``arn:aws:iam::ACCOUNT:root``. No secret key is checked.
    * ``AssumeRole`` of ``arn:aws:iam::ACCOUNT:role/NAME`` (a path is allowed: ``role/path/NAME``) issues session
      credentials of ACCOUNT: an ``ASIA...`` access key id, a secret key, a session token and an expiry. Any
      caller may assume any role, unless the role is denied (``AccessDenied``, HTTP 403, in the words AWS uses) or
      requires an external id the request does not give. A request made with session credentials acts as
      ``arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION``.
    * A session lasts ``DurationSeconds`` (default 3600), capped by ``session_seconds`` when the emulator is told
      to issue short-lived sessions; a role assumed with session credentials (role chaining) allows at most one
      hour, as AWS does. A request signed with an expired session gets ``ExpiredTokenException``; one whose
      session token is missing or not the one issued gets ``UnrecognizedClientException`` (KMS) or
      ``InvalidClientTokenId`` (STS). Expiry is wall-clock time, the clock clients compare it with.
    * Session credentials are random (``credential_source`` makes them instead, for tests that look for them
      where they must not be). Only a hash of each session token is kept; secret keys are not kept at all, and
      nothing here is logged. Sessions are remembered after they expire (an expired key must not pass for an
      unmapped one).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .errors import EmulatorConfigError, KmsError

#: The account of every access key id not mapped to another (LocalStack-style local endpoints use it too).
DEFAULT_ACCOUNT = "000000000000"
DEFAULT_SESSION_SECONDS = 3600
#: AWS caps a session of a role assumed with another role's session credentials at one hour.
CHAINED_SESSION_LIMIT = 3600

ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):role/(?:[\x21-\x7e]+/)?(?P<name>[\w+=,.@-]{1,64})")
_ACCOUNT = re.compile(r"[0-9]{12}")
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the account, the caller's ARN and its ``aws:userid``."""

    account: str
    arn: str
    user_id: str
    session: bool = False


@dataclass(frozen=True)
class IssuedCredentials:
    """What AssumeRole answers: session credentials, their expiry (wall-clock epoch seconds) and the principal."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: float
    principal: Principal


@dataclass(frozen=True)
class _Session:
    principal: Principal
    token_hash: str
    expires_at: float


def check_account_id(account: str, what: str) -> str:
    """``account`` if it is 12 digits; ``EmulatorConfigError`` naming ``what`` otherwise."""
    if not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
        raise EmulatorConfigError(f"{what}: an account id is 12 digits (got {account!r})")
    return account


def check_role_arn(role_arn: str) -> re.Match[str]:
    """The parts of an IAM role ARN; ``EmulatorConfigError`` for anything else."""
    match = ROLE_ARN.fullmatch(role_arn) if isinstance(role_arn, str) else None
    if match is None:
        raise EmulatorConfigError(f"not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME): {role_arn!r}")
    return match


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _random_key(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


def _random_credentials() -> tuple[str, str, str]:
    """A new session's access key id (``ASIA`` and 16 characters), secret key (40) and session token."""
    return _random_key("ASIA"), secrets.token_urlsafe(30)[:40], base64.b64encode(secrets.token_bytes(96)).decode()


def role_id(role_arn: str) -> str:
    """A stable unique id for a role (``AROA`` and 17 characters), as IAM gives every role one."""
    digest = base64.b32encode(hashlib.sha256(role_arn.encode("utf-8")).digest()).decode()
    return "AROA" + digest[:17]


class Accounts:
    """Access keys to accounts, and the sessions AssumeRole has issued. Thread-safe."""

    def __init__(
        self,
        accounts: Mapping[str, str] | None = None,
        *,
        denied_roles: Iterable[str] = (),
        role_external_ids: Mapping[str, str] | None = None,
        session_seconds: float | None = None,
        wall: Callable[[], float] = time.time,
        credential_source: Callable[[], tuple[str, str, str]] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._wall = wall
        self._credential_source = credential_source
        self._initial = (dict(accounts or {}), list(denied_roles), dict(role_external_ids or {}), session_seconds)
        self._accounts: dict[str, str] = {}
        self._denied: set[str] = set()
        self._external_ids: dict[str, str] = {}
        self._session_seconds: float | None = None
        self._sessions: dict[str, _Session] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the settings given at construction. Sessions already issued stay valid until they expire:
        a client holding one must not find it acting in another account."""
        accounts, denied_roles, external_ids, session_seconds = self._initial
        with self._lock:
            self._accounts.clear()
            self._denied.clear()
            self._external_ids.clear()
        for access_key_id, account in accounts.items():
            self.map_key(access_key_id, account)
        for role_arn in denied_roles:
            self.deny_role(role_arn)
        for role_arn, external_id in external_ids.items():
            self.require_external_id(role_arn, external_id)
        self.session_seconds = session_seconds

    # -- settings --------------------------------------------------------------------------------------

    def map_key(self, access_key_id: str, account: str) -> None:
        """Make ``access_key_id`` belong to ``account``."""
        if not isinstance(access_key_id, str) or not access_key_id:
            raise EmulatorConfigError(f"an access key id must be a non-empty string (got {access_key_id!r})")
        check_account_id(account, f"access key id {access_key_id}")
        with self._lock:
            self._accounts[access_key_id] = account

    def deny_role(self, role_arn: str, denied: bool = True) -> None:
        """Answer AssumeRole of ``role_arn`` with AccessDenied (or, with ``denied=False``, no longer)."""
        check_role_arn(role_arn)
        with self._lock:
            if denied:
                self._denied.add(role_arn)
            else:
                self._denied.discard(role_arn)

    def require_external_id(self, role_arn: str, external_id: str | None) -> None:
        """Make AssumeRole of ``role_arn`` require ``external_id`` (None: require none), as a trust policy's
        ``sts:ExternalId`` condition does."""
        check_role_arn(role_arn)
        with self._lock:
            if external_id is None:
                self._external_ids.pop(role_arn, None)
            else:
                self._external_ids[role_arn] = external_id

    @property
    def session_seconds(self) -> float | None:
        """The longest session AssumeRole issues (None: as long as asked, as AWS does)."""
        return self._session_seconds

    @session_seconds.setter
    def session_seconds(self, value: float | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
            raise EmulatorConfigError(f"session_seconds must be a number > 0 (got {value!r})")
        self._session_seconds = None if value is None else float(value)

    def describe(self) -> dict[str, object]:
        """The settings, for the admin endpoint (no credential: access key ids to accounts, denied roles)."""
        with self._lock:
            return {
                "accounts": dict(self._accounts),
                "denied_roles": sorted(self._denied),
                "roles_requiring_external_id": sorted(self._external_ids),
                "session_seconds": self._session_seconds,
            }

    # -- requests --------------------------------------------------------------------------------------

    def principal(self, access_key_id: str, session_token: str | None, *, service: str) -> Principal:
        """Who a request signed with ``access_key_id`` acts as; the AWS error if its session is not usable."""
        with self._lock:
            session = self._sessions.get(access_key_id)
            if session is None:
                account = self._accounts.get(access_key_id, DEFAULT_ACCOUNT)
                return Principal(account, f"arn:aws:iam::{account}:root", account)
            if session_token is None or _hash(session_token) != session.token_hash:
                invalid = "The security token included in the request is invalid."
                if service == "sts":
                    raise KmsError("InvalidClientTokenId", invalid, 403)
                raise KmsError("UnrecognizedClientException", invalid)
            if self._wall() >= session.expires_at:
                raise KmsError("ExpiredTokenException", "The security token included in the request is expired")
            return session.principal

    def assume_role(
        self,
        caller: Principal,
        role_arn: str,
        session_name: str,
        duration_seconds: int | None,
        external_id: str | None,
    ) -> IssuedCredentials:
        """AssumeRole by ``caller``: session credentials of the role's account, or the AWS error."""
        match = ROLE_ARN.fullmatch(role_arn)
        if match is None:
            raise KmsError(
                "ValidationError", f"{role_arn} is not an IAM role ARN: arn:aws:iam::ACCOUNT:role/NAME is expected."
            )
        with self._lock:
            denied = role_arn in self._denied
            required = self._external_ids.get(role_arn)
            if denied or (required is not None and external_id != required):
                raise KmsError(
                    "AccessDenied",
                    f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                    403,
                )
            if caller.session and duration_seconds is not None and duration_seconds > CHAINED_SESSION_LIMIT:
                raise KmsError(
                    "ValidationError",
                    "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role "
                    "chaining.",
                )
            seconds = float(duration_seconds or DEFAULT_SESSION_SECONDS)
            if self._session_seconds is not None:
                seconds = min(seconds, self._session_seconds)
            account, name = match.group("account"), match.group("name")
            principal = Principal(
                account,
                f"arn:aws:sts::{account}:assumed-role/{name}/{session_name}",
                f"{role_id(role_arn)}:{session_name}",
                session=True,
            )
            access_key_id, secret_key, token = (self._credential_source or _random_credentials)()
            if access_key_id in self._sessions or access_key_id in self._accounts:
                raise KmsError("InternalFailure", "The emulator issued an access key id twice.", 500)
            expires_at = self._wall() + seconds
            # Kept after they expire, so that an expired key answers ExpiredTokenException rather than acting as
            # an unmapped key of the default account.
            self._sessions[access_key_id] = _Session(principal, _hash(token), expires_at)
            return IssuedCredentials(access_key_id, secret_key, token, expires_at, principal)
