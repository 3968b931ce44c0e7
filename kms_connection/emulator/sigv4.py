"""SigV4 ``Authorization`` header checks: the form AWS requires, not the signature.

The emulator accepts any credentials, so it never recomputes a signature; but a request that AWS would
refuse for its form is refused the same way, so a client that forgets to sign fails here as it would in AWS.
The Region of the request is the one in the credential scope, and so is the access key id, which tells the
account (see ``accounts``); the scope's service must be the one the request is for (``kms`` or ``sts``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import KmsError

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "kms"

_DATE = re.compile(r"[0-9]{8}")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")


@dataclass(frozen=True)
class Credential:
    """The parts of a credential scope the emulator uses. The access key id is never logged."""

    access_key_id: str
    region: str
    service: str = SERVICE


def missing_token() -> KmsError:
    """What AWS answers a request with no ``Authorization`` header."""
    return KmsError("MissingAuthenticationTokenException", "Missing Authentication Token")


def _incomplete(message: str) -> KmsError:
    return KmsError("IncompleteSignatureException", message)


def parse_authorization(headers: Mapping[str, str], service: str = SERVICE) -> Credential:
    """Check the SigV4 header of a request to ``service`` and return its credential scope; raise the AWS error
    otherwise.

    ``headers`` maps lowercase header names to values.
    """
    header = headers.get("authorization")
    if header is None or not header.strip():
        raise missing_token()
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(
            f"Authorization header requires the {ALGORITHM} algorithm "
            f"('{ALGORITHM} Credential=..., SignedHeaders=..., Signature=...')."
        )
    parameters: dict[str, str] = {}
    for part in rest.split(","):
        key, equals, value = part.strip().partition("=")
        if equals and key:
            parameters[key] = value
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not parameters.get(name)
    ]
    if headers.get("x-amz-date") is None and headers.get("date") is None:
        problems.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if problems:
        raise _incomplete(" ".join(problems))
    scope = parameters["Credential"].split("/")
    if len(scope) != 5 or not scope[0] or scope[4] != "aws4_request":
        raise _incomplete(
            f"Credential must have the form <AccessKeyId>/<yyyymmdd>/<region>/{service}/aws4_request; "
            f"found {len(scope)} parts."
        )
    access_key_id, date, region, scope_service, _terminator = scope
    if not _DATE.fullmatch(date):
        raise _incomplete("Credential scope date must be yyyymmdd.")
    if not _REGION.fullmatch(region):
        raise _incomplete("Credential scope Region is not a valid Region name.")
    if scope_service != service:
        raise _incomplete(f"Credential should be scoped to correct service: '{service}'.")
    if not _SIGNATURE.fullmatch(parameters["Signature"]):
        raise _incomplete("Signature must be 64 lowercase hexadecimal digits.")
    signed = parameters["SignedHeaders"].split(";")
    if not all(_HEADER_NAME.fullmatch(name) for name in signed) or "host" not in signed:
        raise _incomplete("SignedHeaders must be lowercase header names separated by ';' and include 'host'.")
    return Credential(access_key_id, region, service)
