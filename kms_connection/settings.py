"""Where and as whom the provider sends its KMS calls: Region, endpoints, credentials, roles and the accounts it
may act in, from the stack config pulumi-aws users already write.

Resolved in the provider process from the stack config the engine hands to ``configure()``, with pulumi-aws's
keys, names and shapes: ``aws:region``, ``aws:profile``, ``aws:endpoints`` (``kms`` and ``sts`` entries),
``aws:sharedCredentialsFiles``, ``aws:sharedConfigFiles``, the secret ``aws:accessKey``/``aws:secretKey``/
``aws:token``, ``aws:assumeRoles`` (a chain, each role assumed with the previous one's session) or the older single
``aws:assumeRole``, and ``aws:allowedAccountIds``/``aws:forbiddenAccountIds``. Credentials stay in the provider
process: settings are never pickled into the state, their ``repr`` shows no secret, and no message quotes one.

A value that cannot be read is a ``ConfigError`` naming the key, never ignored: a misread role or account list
would send calls to the wrong account, the worst thing this provider could do. (A malformed ``aws:endpoints`` is
the exception kept from before: boto3's own endpoint resolution then decides.)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

REGION_HELP = (
    "set the resource's `region` input, or the stack's Region with `pulumi config set aws:region us-east-1`, "
    "or AWS_REGION in the environment"
)

ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):role/[\x21-\x7e]+")
ACCOUNT_ID = re.compile(r"[0-9]{12}")
DEFAULT_SESSION_NAME = "kms-connection"
# AWS's bounds of an assumed role's session, which pulumi-aws checks too.
MIN_DURATION_SECONDS = 900
MAX_DURATION_SECONDS = 43200
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_ROLE_KEYS = (
    "roleArn",
    "sessionName",
    "externalId",
    "duration",
    "durationSeconds",
    "policy",
    "policyArns",
    "tags",
    "transitiveTagKeys",
    "sourceIdentity",
)


class ConfigError(ValueError):
    """A stack config value the provider cannot use; the message names the key and what it expects."""


@dataclass(frozen=True)
class AssumeRole:
    """One role to assume, as an entry of ``aws:assumeRoles`` (or a resource's ``role_arn``) describes it."""

    role_arn: str
    session_name: str | None = None
    external_id: str | None = None
    duration_seconds: int | None = None
    policy: str | None = None
    policy_arns: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    transitive_tag_keys: tuple[str, ...] = ()
    source_identity: str | None = None

    @property
    def account(self) -> str:
        """The account the role belongs to, which its sessions act in."""
        match = ROLE_ARN.fullmatch(self.role_arn)
        assert match is not None, self.role_arn  # checked when read
        return match.group("account")

    def assume_role_args(self) -> dict[str, Any]:
        """The members of the STS AssumeRole request besides ``RoleArn``."""
        args: dict[str, Any] = {"RoleSessionName": self.session_name or DEFAULT_SESSION_NAME}
        if self.external_id is not None:
            args["ExternalId"] = self.external_id
        if self.duration_seconds is not None:
            args["DurationSeconds"] = self.duration_seconds
        if self.policy is not None:
            args["Policy"] = self.policy
        if self.policy_arns:
            args["PolicyArns"] = [{"arn": arn} for arn in self.policy_arns]
        if self.tags:
            args["Tags"] = [{"Key": key, "Value": value} for key, value in self.tags]
        if self.transitive_tag_keys:
            args["TransitiveTagKeys"] = list(self.transitive_tag_keys)
        if self.source_identity is not None:
            args["SourceIdentity"] = self.source_identity
        return args


@dataclass(frozen=True)
class StaticCredentials:
    """``aws:accessKey``, ``aws:secretKey`` and ``aws:token``: kept for botocore, shown to nobody."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return "StaticCredentials([secret])"


@dataclass(frozen=True)
class AwsSettings:
    """The stack-wide settings for KMS and STS clients; every field may be unset."""

    region: str | None = None
    profile: str | None = None
    kms_endpoint: str | None = None
    sts_endpoint: str | None = None
    shared_credentials_files: tuple[str, ...] = ()
    shared_config_files: tuple[str, ...] = ()
    static_credentials: StaticCredentials | None = None
    assume_roles: tuple[AssumeRole, ...] = ()
    """The stack's role chain, assumed in order, each with the previous one's session."""
    allowed_account_ids: tuple[str, ...] | None = None
    forbidden_account_ids: tuple[str, ...] | None = None

    @classmethod
    def from_stack_config(
        cls, get: Callable[[str], Any], environ: Mapping[str, str] | None = None
    ) -> AwsSettings:
        """Read the stack config (see the module docstring); fall back to the environment for the Region.
        ``ConfigError`` for a value that cannot be used."""
        env = os.environ if environ is None else environ
        region = _text(get("aws:region")) or _text(env.get("AWS_REGION")) or _text(env.get("AWS_DEFAULT_REGION"))
        endpoints = get("aws:endpoints")
        allowed = _account_ids(get("aws:allowedAccountIds"), "aws:allowedAccountIds")
        forbidden = _account_ids(get("aws:forbiddenAccountIds"), "aws:forbiddenAccountIds")
        if allowed is not None and forbidden is not None:
            raise ConfigError(
                "aws:allowedAccountIds and aws:forbiddenAccountIds are both set; pulumi-aws takes one or the other: "
                "keep the list that says what you mean"
            )
        return cls(
            region=region,
            profile=_text(get("aws:profile")),
            kms_endpoint=endpoint_from(endpoints, "kms"),
            sts_endpoint=endpoint_from(endpoints, "sts"),
            shared_credentials_files=_paths(get("aws:sharedCredentialsFiles"), "aws:sharedCredentialsFiles"),
            shared_config_files=_paths(get("aws:sharedConfigFiles"), "aws:sharedConfigFiles"),
            static_credentials=_static_credentials(get),
            assume_roles=_role_chain(get("aws:assumeRoles"), get("aws:assumeRole")),
            allowed_account_ids=allowed,
            forbidden_account_ids=forbidden,
        )

    def region_for(self, resource_region: str | None) -> str | None:
        """The Region a resource's calls go to: its own input first, then the stack's."""
        return resource_region or self.region

    @property
    def guards_accounts(self) -> bool:
        """Whether the stack names the accounts the provider may act in (or may not)."""
        return self.allowed_account_ids is not None or self.forbidden_account_ids is not None

    def account_refusal(self, account: str) -> str | None:
        """Why the provider must not act in ``account``, naming the config key (``account 999988887777, which is
        not in aws:allowedAccountIds (111122223333)``); None when it may."""
        if self.allowed_account_ids is not None and account not in self.allowed_account_ids:
            allowed = ", ".join(self.allowed_account_ids)
            return f"account {account}, which is not in aws:allowedAccountIds ({allowed})"
        if self.forbidden_account_ids is not None and account in self.forbidden_account_ids:
            return f"account {account}, which is in aws:forbiddenAccountIds"
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _structured(value: Any) -> Any:
    """A structured config value: the engine hands it over as JSON text; plain text stays text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def endpoint_from(endpoints: Any, service: str) -> str | None:
    """The ``service`` entry of pulumi-aws's ``aws:endpoints`` config (a list of ``{service: url}`` objects).

    The engine hands structured config over as JSON text; a malformed value is ignored rather than guessed at,
    leaving boto3's own resolution (``AWS_ENDPOINT_URL_KMS``, ``AWS_ENDPOINT_URL_STS``...) in charge.
    """
    endpoints = _structured(endpoints)
    if isinstance(endpoints, Mapping):
        endpoints = [endpoints]
    if not isinstance(endpoints, list):
        return None
    for entry in endpoints:
        if isinstance(entry, Mapping):
            url = _text(entry.get(service))
            if url:
                return url
    return None


def kms_endpoint_from(endpoints: Any) -> str | None:
    """The ``kms`` entry of ``aws:endpoints`` (see ``endpoint_from``)."""
    return endpoint_from(endpoints, "kms")


def _paths(value: Any, key: str) -> tuple[str, ...]:
    """A list of file paths (or one path), ``~`` expanded as pulumi-aws does."""
    if value is None or value == "":
        return ()
    parsed = _structured(value)
    if isinstance(parsed, str):
        parsed = [parsed]
    if not isinstance(parsed, list) or not all(isinstance(item, str) and item.strip() for item in parsed):
        raise ConfigError(f"{key} must be a list of file paths, e.g. [\"~/.aws/credentials\"]")
    return tuple(os.path.expanduser(item.strip()) for item in parsed)


def _account_ids(value: Any, key: str) -> tuple[str, ...] | None:
    """A list of 12-digit account ids (or one, or several separated by commas); None when unset."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parsed = _structured(value)
    if isinstance(parsed, str):
        parsed = [part for part in re.split(r"[\s,]+", parsed) if part]
    elif isinstance(parsed, int | str) and not isinstance(parsed, bool):
        parsed = [parsed]
    if not isinstance(parsed, list) or not parsed:
        raise ConfigError(f"{key} must be a list of 12-digit AWS account ids, e.g. [\"111122223333\"]")
    ids: list[str] = []
    for item in parsed:
        # An unquoted id in YAML arrives as a number: 12 digits, leading zeros included, is the only reading.
        text = f"{item:012d}" if isinstance(item, int) and not isinstance(item, bool) and item >= 0 else item
        if not isinstance(text, str) or not ACCOUNT_ID.fullmatch(text.strip()):
            raise ConfigError(f"{key} must be a list of 12-digit AWS account ids; {item!r} is not one")
        ids.append(text.strip())
    return tuple(ids)


def _static_credentials(get: Callable[[str], Any]) -> StaticCredentials | None:
    access_key, secret_key, token = (_text(get(key)) for key in ("aws:accessKey", "aws:secretKey", "aws:token"))
    if access_key is None and secret_key is None:
        if token is not None:
            raise ConfigError("aws:token is set without aws:accessKey and aws:secretKey; set all three, or none")
        return None
    if access_key is None or secret_key is None:
        keys = ("aws:accessKey", "aws:secretKey")
        given, missing = keys if secret_key is None else keys[::-1]
        raise ConfigError(
            f"{given} is set but {missing} is not; set both (`pulumi config set --secret {missing} ...`), or neither"
        )
    return StaticCredentials(access_key, secret_key, token)


def _role_chain(roles: Any, role: Any) -> tuple[AssumeRole, ...]:
    """``aws:assumeRoles`` (a list, in order) or ``aws:assumeRole`` (one)."""
    if roles is not None and role is not None:
        raise ConfigError(
            "aws:assumeRoles and aws:assumeRole are both set; use aws:assumeRoles (a list, assumed in order)"
        )
    if roles is not None:
        parsed = _structured(roles)
        if isinstance(parsed, Mapping):
            parsed = [parsed]
        if not isinstance(parsed, list):
            raise ConfigError("aws:assumeRoles must be a list of {roleArn, sessionName, externalId, ...} objects")
        return tuple(_assume_role(entry, f"aws:assumeRoles[{index}]") for index, entry in enumerate(parsed))
    if role is not None:
        return (_assume_role(_structured(role), "aws:assumeRole"),)
    return ()


def _assume_role(entry: Any, where: str) -> AssumeRole:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be an object: {{roleArn, sessionName, externalId, duration, ...}}")
    unknown = sorted(set(entry) - set(_ROLE_KEYS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is not a key pulumi-aws reads; the keys are {', '.join(_ROLE_KEYS)}")
    role_arn = _text(entry.get("roleArn"))
    if role_arn is None or not ROLE_ARN.fullmatch(role_arn):
        raise ConfigError(
            f"{where}.roleArn must be an IAM role ARN, arn:aws:iam::ACCOUNT:role/NAME; got {entry.get('roleArn')!r}"
        )
    duration = entry.get("duration", entry.get("durationSeconds"))
    return AssumeRole(
        role_arn=role_arn,
        session_name=_optional_text(entry, "sessionName", where),
        external_id=_optional_text(entry, "externalId", where),
        duration_seconds=None if duration in (None, "") else _duration(duration, where),
        policy=_policy(entry.get("policy"), where),
        policy_arns=_texts(entry.get("policyArns"), f"{where}.policyArns"),
        tags=_tags(entry.get("tags"), f"{where}.tags"),
        transitive_tag_keys=_texts(entry.get("transitiveTagKeys"), f"{where}.transitiveTagKeys"),
        source_identity=_optional_text(entry, "sourceIdentity", where),
    )


def _optional_text(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key} must be text")
    return value.strip()


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{where} must be a list of text")
    return tuple(value)


def _tags(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{where} must map tag keys to text values")
    return tuple((str(key), value[key]) for key in value)


def _policy(value: Any, where: str) -> str | None:
    # pulumi-aws takes the session policy as JSON text; an object is accepted and written as JSON.
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):
        return json.dumps(value, separators=(",", ":"))
    if not isinstance(value, str):
        raise ConfigError(f"{where}.policy must be a JSON policy document")
    return value


def _duration(value: Any, where: str) -> int:
    """A session duration: pulumi-aws's duration text (``1h``, ``90m``, ``1h30m``), or seconds as a number."""
    seconds: float
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = float(value.strip())
    elif isinstance(value, str) and value.strip() and _DURATION_PART.sub("", value.strip()) == "":
        seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(value.strip()))
    else:
        raise ConfigError(f"{where}.duration must be a duration such as 1h or 15m (got {value!r})")
    if not MIN_DURATION_SECONDS <= seconds <= MAX_DURATION_SECONDS:
        raise ConfigError(f"{where}.duration must be between 15 minutes and 12 hours (got {value!r})")
    return int(seconds)
