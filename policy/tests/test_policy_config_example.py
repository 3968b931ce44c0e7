"""The example policy-config.json in policy/README.md stays valid for the pack's config schemas."""

from __future__ import annotations

import json
import re
from typing import Any

from kms_policy_testkit import POLICY_DIR, policies

JSON_TYPES: dict[str, Any] = {"array": list, "integer": int, "string": str}


def readme_example() -> dict[str, Any]:
    (block,) = re.findall(r"```json\n(.*?)```", (POLICY_DIR / "README.md").read_text(), flags=re.DOTALL)
    example: dict[str, Any] = json.loads(block)
    return example


def test_readme_example_config_uses_only_declared_policies_levels_and_properties() -> None:
    schemas = {p.name: p.config_schema for p in policies.build_policies()}

    for name, entry in readme_example().items():
        assert name in schemas, name
        if isinstance(entry, str):
            entry = {"enforcementLevel": entry}
        assert entry.get("enforcementLevel", "advisory") in {"advisory", "mandatory", "disabled"}, name
        schema = schemas[name]
        assert schema is not None
        for key, value in entry.items():
            if key == "enforcementLevel":
                continue
            declared = schema.properties[key]
            assert isinstance(value, JSON_TYPES[declared["type"]]), (name, key)
            if declared["type"] == "array":
                assert all(isinstance(item, JSON_TYPES[declared["items"]["type"]]) for item in value), (name, key)


def test_readme_example_config_passes_the_packs_own_config_checks() -> None:
    schemas = {p.name: p.config_schema for p in policies.build_policies()}

    for name, entry in readme_example().items():
        schema = schemas[name]
        assert schema is not None
        properties = {} if isinstance(entry, str) else {k: v for k, v in entry.items() if k != "enforcementLevel"}
        effective = policies.checked_config(name, schema.properties, properties)
        assert set(effective) == set(schema.properties), name
