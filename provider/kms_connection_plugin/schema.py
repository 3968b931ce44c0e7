"""The package schema of the plugin, built from the Python resources' own source: their classes' first docstring
paragraph, their arguments' and outputs' attribute docstrings and type annotations (``kms_connection/resource.py``).

The source is read, not imported: importing it would register nothing, but it loads pulumi.dynamic's provider
machinery for nothing. Names are the users' (camelCase, ``kms-connection:*`` config; see ``names.py``), and the
text is Markdown, as every Pulumi schema's.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from kms_connection import inputs
from kms_connection.provider import REPLACE_ON_CHANGE, SET_REPLACE_ON_CHANGE

from .names import CONFIG_KEYS, CONNECTION_TYPE, PACKAGE, SET_TYPE, camel, users_text

ENDPOINT_TYPE = f"{PACKAGE}:index:Endpoint"
ASSUME_ROLE_TYPE = f"{PACKAGE}:index:AssumeRole"
NODEJS_PACKAGE = "@kms-connection/pulumi"
NODEJS_SDK_RANGE = "^3.270.0"

# What the plugin adds to the Python resource's words: options a dynamic provider never receives.
_PLUGIN_NOTES = {
    inputs.CONNECT_TIMEOUT: "The resource option `customTimeouts` (`create`, `update`) takes its place when set.",
    inputs.DISCONNECT_TIMEOUT: (
        "The resource option `customTimeouts` (`create`, `update`, `delete`) takes its place when set."
    ),
}

_STRINGS = {"type": "array", "items": {"type": "string"}}
_ROLE = {"$ref": f"#/types/{ASSUME_ROLE_TYPE}"}

# The provider config: pulumi-aws's keys that kms_connection.settings reads, as `kms-connection:<key>`.
_CONFIG: dict[str, tuple[dict[str, Any], str]] = {
    "region": (
        {"type": "string"},
        "The AWS Region of the key stores, unless a resource names its own; default `AWS_REGION`, then "
        "`AWS_DEFAULT_REGION`.",
    ),
    "profile": (
        {"type": "string"},
        "The AWS profile (shared config and credentials files) to call KMS with; default boto3's "
        "(`AWS_PROFILE`, else the default profile).",
    ),
    "endpoints": (
        {"type": "array", "items": {"$ref": f"#/types/{ENDPOINT_TYPE}"}},
        "Endpoints by service, as pulumi-aws's `endpoints`: the `kms` entry sends every KMS call there (a local "
        "KMS emulator, a VPC endpoint), the `sts` entry every STS call. Default: boto3's `AWS_ENDPOINT_URL_KMS`, "
        "`AWS_ENDPOINT_URL` or the profile's `endpoint_url`.",
    ),
    "sharedCredentialsFiles": (_STRINGS, "Shared credentials files to read profiles from, in order (`~` expanded)."),
    "sharedConfigFiles": (_STRINGS, "Shared config files to read profiles from, in order (`~` expanded)."),
    "accessKey": ({"type": "string", "secret": True}, "An AWS access key id; set with `secretKey`, or neither."),
    "secretKey": ({"type": "string", "secret": True}, "The secret access key that goes with `accessKey`."),
    "token": ({"type": "string", "secret": True}, "A session token, with `accessKey` and `secretKey`."),
    "assumeRoles": (
        {"type": "array", "items": _ROLE},
        "Roles to assume, in order, each with the previous one's session, from the credentials above.",
    ),
    "assumeRole": (_ROLE, "One role to assume (the older spelling of `assumeRoles`; set one or the other)."),
    "allowedAccountIds": (
        _STRINGS,
        "The only AWS accounts the provider may send a Connect or Disconnect to; it refuses any other.",
    ),
    "forbiddenAccountIds": (_STRINGS, "AWS accounts the provider refuses to send a Connect or Disconnect to."),
}

_TYPES: dict[str, Any] = {
    ENDPOINT_TYPE: {
        "type": "object",
        "description": "Endpoints by service name.",
        "properties": {
            "kms": {"type": "string", "description": "The KMS endpoint URL."},
            "sts": {"type": "string", "description": "The STS endpoint URL (assumed roles, the account check)."},
        },
    },
    ASSUME_ROLE_TYPE: {
        "type": "object",
        "description": "A role to assume, with the keys of pulumi-aws's `assumeRoles` entries.",
        "properties": {
            "roleArn": {"type": "string", "description": "The role's ARN, `arn:aws:iam::ACCOUNT:role/NAME`."},
            "sessionName": {"type": "string", "description": "The session name."},
            "externalId": {"type": "string", "description": "The external id the role's trust policy asks for."},
            "duration": {"type": "string", "description": "The session's duration, `15m` to `12h`."},
            "policy": {"type": "string", "description": "A session policy, as JSON text."},
            "policyArns": {**_STRINGS, "description": "Managed session policies, by ARN."},
            "tags": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Session tags.",
            },
            "transitiveTagKeys": {**_STRINGS, "description": "Session tags passed on to roles assumed after."},
            "sourceIdentity": {"type": "string", "description": "The source identity."},
        },
        "required": ["roleArn"],
    },
}


@dataclass(frozen=True)
class _Attribute:
    name: str
    type: dict[str, Any]
    optional: bool
    description: str | None


@functools.cache
def schema_json() -> str:
    """The schema, as GetSchema answers it."""
    return json.dumps(build(), indent=2)


def build() -> dict[str, Any]:
    """The package schema."""
    classes = _classes()
    if set(_CONFIG) != set(CONFIG_KEYS):
        raise ValueError(f"the schema's config {sorted(_CONFIG)} is not the plugin's {sorted(CONFIG_KEYS)}")
    config = {key: {**spec, "description": text} for key, (spec, text) in _CONFIG.items()}
    return {
        "name": PACKAGE,
        "displayName": "KMS custom key store connections",
        "version": metadata.version(PACKAGE),
        "description": (
            "Declare whether AWS KMS custom key stores (CloudHSM and external key stores) are connected, and "
            "converge them with `pulumi up`."
        ),
        "keywords": ["aws", "kms", "custom key store", "cloudhsm", "xks", "category/cloud"],
        "license": "Apache-2.0",
        # The TypeScript SDK that `pulumi package gen-sdk --language nodejs` writes (sdk/nodejs): its npm name, and
        # the Node.js SDK its generated code needs (the engine's code generator calls APIs added after 3.248).
        "language": {
            "nodejs": {
                "packageName": NODEJS_PACKAGE,
                "packageDescription": "Declare whether AWS KMS custom key stores are connected (kms-connection).",
                "dependencies": {"@pulumi/pulumi": NODEJS_SDK_RANGE},
                "respectSchemaVersion": True,
            }
        },
        "config": {"variables": config},
        "provider": {
            "description": "The kms-connection provider: where its KMS calls go.",
            "inputProperties": config,
            "properties": config,
        },
        "types": _TYPES,
        "resources": {
            CONNECTION_TYPE: _resource(classes, "CustomKeyStoreConnection", REPLACE_ON_CHANGE),
            SET_TYPE: _resource(classes, "CustomKeyStoreConnectionSet", SET_REPLACE_ON_CHANGE),
        },
    }


def _resource(classes: dict[str, ast.ClassDef], name: str, replace_on_changes: tuple[str, ...]) -> dict[str, Any]:
    resource, args = classes[name], classes[f"{name}Args"]
    arguments = _attributes(args)
    outputs = _attributes(resource)
    input_properties = {arg.name: _property(arg, replace_on_changes) for arg in arguments}
    properties = dict(input_properties)
    for output in outputs:
        described = output.description or (input_properties.get(output.name) or {}).get("description")
        properties[output.name] = _property(output, replace_on_changes, described)
    return {
        "description": _markdown(_first_paragraph(ast.get_docstring(resource) or name)),
        "inputProperties": {camel(key): spec for key, spec in input_properties.items()},
        "requiredInputs": [camel(arg.name) for arg in arguments if not arg.optional],
        "properties": {camel(key): spec for key, spec in properties.items()},
        "required": [camel(output.name) for output in outputs if not output.optional],
    }


def _property(
    attribute: _Attribute, replace_on_changes: tuple[str, ...], description: str | None = None
) -> dict[str, Any]:
    text = description or attribute.description
    if text is None:
        raise ValueError(f"{attribute.name} has no docstring in kms_connection/resource.py")
    spec: dict[str, Any] = {**attribute.type, "description": _markdown(text)}
    note = _PLUGIN_NOTES.get(attribute.name)
    if note and note not in spec["description"]:
        spec["description"] += " " + note
    if attribute.name in replace_on_changes:
        spec["replaceOnChanges"] = True
    return spec


@functools.cache
def _classes() -> dict[str, ast.ClassDef]:
    spec = importlib.util.find_spec("kms_connection.resource")
    if spec is None or spec.origin is None:  # pragma: no cover - kms_connection ships its sources
        raise RuntimeError("the source of kms_connection.resource is not installed")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _attributes(cls: ast.ClassDef) -> list[_Attribute]:
    """Annotated attributes in declaration order, each with the string literal that follows it, if any."""
    found: list[_Attribute] = []
    body = cls.body
    for index, node in enumerate(body):
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        following = body[index + 1] if index + 1 < len(body) else None
        docstring = None
        literal = following.value if isinstance(following, ast.Expr) else None
        if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
            docstring = inspect.cleandoc(literal.value)
        kind, optional = _type(node.annotation)
        # A dataclass field with a default is optional whatever its type says.
        found.append(_Attribute(node.target.id, kind, optional or node.value is not None, docstring))
    return found


def _type(node: ast.expr) -> tuple[dict[str, Any], bool]:
    """A schema type for an annotation such as ``pulumi.Input[list[pulumi.Input[str]]] | None``, and whether it
    admits None."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, left_optional = _type(node.left)
        if isinstance(node.right, ast.Constant) and node.right.value is None:
            return left, True
        return left, left_optional
    if isinstance(node, ast.Constant) and node.value is None:
        return {}, True
    if isinstance(node, ast.Name):
        scalars = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
        if node.id in scalars:
            return {"type": scalars[node.id]}, False
    if isinstance(node, ast.Subscript):
        outer = ast.unparse(node.value)
        if outer in ("pulumi.Input", "pulumi.Output"):
            return _type(node.slice)
        if outer == "list":
            items, _ = _type(node.slice)
            return {"type": "array", "items": items}, False
        if outer == "dict" and isinstance(node.slice, ast.Tuple):
            values, _ = _type(node.slice.elts[1])
            return {"type": "object", "additionalProperties": values}, False
    raise ValueError(f"no schema type for the annotation {ast.unparse(node)}")


def _first_paragraph(text: str) -> str:
    return text.split("\n\n", 1)[0]


def _markdown(text: str) -> str:
    """A docstring as one Markdown paragraph per paragraph, in the users' names."""
    text = re.sub(r":\w+:`([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    paragraphs = [" ".join(part.split()) for part in text.split("\n\n")]
    return users_text("\n\n".join(paragraphs))
