"""STS on the emulator's endpoint: ``GetCallerIdentity`` and ``AssumeRole`` in the AWS query protocol botocore
speaks for ``sts``.

A request is ``POST /`` with a form-encoded body (``Action=AssumeRole&Version=2011-06-15&RoleArn=...``) signed
with a credential scope of service ``sts``; the answer is XML in the ``https://sts.amazonaws.com/doc/2011-06-15/``
namespace, an error ``<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>``.
Input members are checked against the constraints of botocore's STS model (``ValidationError``, in the Coral
words AWS uses); an action other than the two is ``InvalidAction``. Who may assume what: see ``accounts``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from .accounts import Accounts, Principal
from .errors import KmsError

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
CONTENT_TYPE = "text/xml"
ACTIONS = ("GetCallerIdentity", "AssumeRole")

# (request member, model member name as AWS's messages show it, min length, max length, pattern) from botocore's
# STS model: roleSessionNameType, externalIdType, sessionPolicyDocumentType, sourceIdentityType, arnType.
_STRINGS: tuple[tuple[str, str, int, int, str], ...] = (
    ("RoleArn", "roleArn", 20, 2048, r"[\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+"),
    ("RoleSessionName", "roleSessionName", 2, 64, r"[\w+=,.@-]*"),
    ("ExternalId", "externalId", 2, 1224, r"[\w+=,.@:/-]*"),
    ("Policy", "policy", 1, 2048, r"[\t\n\r\x20-\xff]+"),
    ("SourceIdentity", "sourceIdentity", 2, 256, r"[\w+=,.@-]*"),
)
_TAG_KEY = re.compile(r"[\w\s.:/=+\-@]+")
_TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]*")


def _validation(problems: list[str]) -> KmsError:
    noun = "error" if len(problems) == 1 else "errors"
    return KmsError("ValidationError", f"{len(problems)} validation {noun} detected: " + "; ".join(problems))


def _constraint(value: str, member: str, constraint: str) -> str:
    shown = value if len(value) <= 256 else value[:256] + "..."
    return f"Value '{shown}' at '{member}' failed to satisfy constraint: Member must {constraint}"


def parse_form(body: bytes) -> dict[str, str]:
    """The members of a form-encoded query-protocol body (the last value of a repeated name)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise KmsError("MalformedQueryString", "The request body is not UTF-8.") from None
    return {name: values[-1] for name, values in parse_qs(text, keep_blank_values=True).items()}


def check_assume_role(params: Mapping[str, str]) -> int | None:
    """Raise ``ValidationError`` for input the STS model refuses; the requested duration otherwise."""
    problems = [
        f"Value null at '{member}' failed to satisfy constraint: Member must not be null"
        for name, member in (("RoleArn", "roleArn"), ("RoleSessionName", "roleSessionName"))
        if name not in params
    ]
    for name, member, low, high, pattern in _STRINGS:
        value = params.get(name)
        if value is None:
            continue
        if len(value) < low:
            problems.append(_constraint(value, member, f"have length greater than or equal to {low}"))
        elif len(value) > high:
            problems.append(_constraint(value, member, f"have length less than or equal to {high}"))
        elif not re.fullmatch(pattern, value):
            problems.append(_constraint(value, member, f"satisfy regular expression pattern: {pattern}"))
    duration: int | None = None
    if "DurationSeconds" in params:
        text = params["DurationSeconds"]
        if not text.isdigit():
            raise KmsError("ValidationError", f"Invalid value for DurationSeconds: {text[:32]!r} is not an integer.")
        duration = int(text)
        if duration < 900:
            problems.append(_constraint(text, "durationSeconds", "have value greater than or equal to 900"))
        elif duration > 43200:
            problems.append(_constraint(text, "durationSeconds", "have value less than or equal to 43200"))
    tags = _tags(params)
    if len(tags) > 50:
        problems.append(
            "Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50"
        )
    for key, value in tags:
        if not 1 <= len(key) <= 128 or not _TAG_KEY.fullmatch(key):
            problems.append(_constraint(key, "tags.member.key", "satisfy the tag key constraints (1 to 128 long)"))
        if len(value) > 256 or not _TAG_VALUE.fullmatch(value):
            problems.append(_constraint(value, "tags.member.value", "satisfy the tag value constraints"))
    for arn in _policy_arns(params):
        if not 20 <= len(arn) <= 2048:
            problems.append(_constraint(arn, "policyArns.member.arn", "have length between 20 and 2048"))
    if problems:
        raise _validation(problems)
    return duration


def _tags(params: Mapping[str, str]) -> list[tuple[str, str]]:
    tags: list[tuple[str, str]] = []
    index = 1
    while f"Tags.member.{index}.Key" in params:
        tags.append((params[f"Tags.member.{index}.Key"], params.get(f"Tags.member.{index}.Value", "")))
        index += 1
    return tags


def _policy_arns(params: Mapping[str, str]) -> list[str]:
    arns: list[str] = []
    index = 1
    while f"PolicyArns.member.{index}.arn" in params:
        arns.append(params[f"PolicyArns.member.{index}.arn"])
        index += 1
    return arns


def handle(accounts: Accounts, action: str, params: Mapping[str, str], caller: Principal) -> dict[str, Any]:
    """Answer one STS action for ``caller``: the result members, in model order."""
    if action == "GetCallerIdentity":
        return {"UserId": caller.user_id, "Account": caller.account, "Arn": caller.arn}
    if action == "AssumeRole":
        duration = check_assume_role(params)
        issued = accounts.assume_role(
            caller, params["RoleArn"], params["RoleSessionName"], duration, params.get("ExternalId")
        )
        result: dict[str, Any] = {
            "Credentials": {
                "AccessKeyId": issued.access_key_id,
                "SecretAccessKey": issued.secret_access_key,
                "SessionToken": issued.session_token,
                "Expiration": _timestamp(issued.expires_at),
            },
            "AssumedRoleUser": {"AssumedRoleId": issued.principal.user_id, "Arn": issued.principal.arn},
            "PackedPolicySize": 0,
        }
        if params.get("SourceIdentity"):
            result["SourceIdentity"] = params["SourceIdentity"]
        return result
    raise unknown_action(action)


def unknown_action(action: str) -> KmsError:
    """What STS answers an action it does not have (or one the emulator does not implement)."""
    shown = action[:64] if action else "(none)"
    return KmsError(
        "InvalidAction",
        f"Could not find operation {shown} for version 2011-06-15. The emulator implements {', '.join(ACTIONS)}.",
    )


def _timestamp(epoch: float) -> str:
    # ISO 8601 in UTC with milliseconds, as STS writes Expiration.
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _xml(value: Any) -> str:
    if isinstance(value, Mapping):
        return "".join(f"<{name}>{_xml(item)}</{name}>" for name, item in value.items())
    return escape(str(value))


def response_xml(action: str, result: Mapping[str, Any]) -> bytes:
    """The XML answer of a successful action."""
    request_id = uuid.uuid4()
    return (
        f'<{action}Response xmlns="{NAMESPACE}"><{action}Result>{_xml(result)}</{action}Result>'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    ).encode()


def error_xml(error: KmsError) -> bytes:
    """The XML answer of an error (``Type`` is ``Receiver`` for a 5xx status, ``Sender`` otherwise)."""
    kind = "Receiver" if error.status >= 500 else "Sender"
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type><Code>{escape(error.code)}</Code>'
        f"<Message>{escape(error.message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()
