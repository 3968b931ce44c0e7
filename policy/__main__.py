"""The kms-connection policy pack. Run it with `pulumi preview --policy-pack policy` (see README.md).

Only builds the pack: ``if not track_stack_name():
    print(
        f"{PACK_NAME}: this pulumi-policy's analyzer server has no ConfigureStack: the pack learns the stack's name "
        "from PULUMI_STACK only.",
        file=sys.stderr,
    )

PolicyPack()`` starts the analyzer server and blocks. The policies are in
``kms_connection_policies``, importable on its own by tests.
"""

import sys

from kms_connection_policies import PACK_NAME, build_policies, track_secret_values, track_stack_name
from pulumi_policy import EnforcementLevel, PolicyPack

if not track_secret_values():
    # The CLI logs a policy pack's stderr; the pack still runs, redacting only additional_secret_outputs.
    print(
        f"{PACK_NAME}: this pulumi-policy's analyzer server is not the one the pack was written for (1.21): "
        "violation messages cannot redact values the program marked secret.",
        file=sys.stderr,
    )

if not track_stack_name():
    print(
        f"{PACK_NAME}: this pulumi-policy's analyzer server has no ConfigureStack: the pack learns the stack's name "
        "from PULUMI_STACK only.",
        file=sys.stderr,
    )

PolicyPack(
    name=PACK_NAME,
    policies=build_policies(),
    enforcement_level=EnforcementLevel.ADVISORY,
    description="Guards the connection state of AWS KMS custom key stores managed with kms-connection.",
)
