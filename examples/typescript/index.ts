// The local KMS emulator's two seeded key stores, declared CONNECTED from TypeScript. The same resources as
// examples/yaml/Pulumi.yaml, through the SDK generated from the provider plugin's schema (sdk/nodejs).
import * as kms from "@kms-connection/pulumi";

// A CloudHSM key store: connecting one can take about 20 minutes in AWS (seconds in the emulator).
const hsm = new kms.CustomKeyStoreConnection("local-hsm", {
    customKeyStoreId: "cks-0123456789abcdef0",
    desiredState: "CONNECTED",
    connectTimeoutSeconds: 1800,
});

// An external key store, left connected when the resource is deleted. customTimeouts bounds the waits of a
// native resource, in place of the timeout inputs.
const xks = new kms.CustomKeyStoreConnection(
    "local-xks",
    { customKeyStoreId: "cks-0fedcba9876543210", onDelete: "retain" },
    { customTimeouts: { create: "5m", update: "5m" } },
);

export const connectionStates = {
    "local-hsm": hsm.connectionState,
    "local-xks": xks.connectionState,
};
