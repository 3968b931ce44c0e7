"""The kms-connection policy pack. Run it with `pulumi preview --policy-pack policy` (see README.md).

Only builds the pack: ``PolicyPack()`` starts the analyzer server and blocks. The policies are in
``kms_connection_policies``, importable on its own by tests.
"""

from kms_connection_policies import PACK_NAME, build_policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=PACK_NAME,
    policies=build_policies(),
    enforcement_level=EnforcementLevel.ADVISORY,
    description="Guards the connection state of AWS KMS custom key stores managed with kms-connection.",
)
