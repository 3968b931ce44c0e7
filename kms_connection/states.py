"""The vocabulary of custom key store connections: states, desired states and error remedies.

Values mirror the botocore service model for KMS (``ConnectionStateType`` and ``ConnectionErrorCodeType``);
``tests/test_states.py`` checks them against the installed model so a new KMS value cannot slip by unnoticed.
"""

from __future__ import annotations

from enum import Enum


class ConnectionState(str, Enum):
    """A custom key store's ``ConnectionState`` as DescribeCustomKeyStores reports it."""

    CONNECTED = "CONNECTED"
    CONNECTING = "CONNECTING"
    FAILED = "FAILED"
    DISCONNECTED = "DISCONNECTED"
    DISCONNECTING = "DISCONNECTING"


class DesiredState(str, Enum):
    """The connection state a ``CustomKeyStoreConnection`` converges to."""

    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"


class OnDelete(str, Enum):
    """What deleting a ``CustomKeyStoreConnection`` does to the key store."""

    DISCONNECT = "disconnect"
    RETAIN = "retain"


class DisconnectGuard(str, Enum):
    """What a resource does before it disconnects a store (the ``disconnect_guard`` input): say which KMS keys the
    disconnect makes unusable (``warn``), refuse to disconnect a store that holds enabled keys (``refuse``), or
    neither, with no key calls (``off``)."""

    WARN = "warn"
    OFF = "off"
    REFUSE = "refuse"


# Remedies follow the KMS Developer Guide's troubleshooting page for custom key stores. Every code must be
# followed by the same first step before a retry: a FAILED store must be disconnected before it can be connected
# again, which this provider does by itself on the next `pulumi up`.
CONNECTION_ERROR_REMEDIES: dict[str, str] = {
    "INTERNAL_ERROR": (
        "KMS had a transient internal error; run `pulumi up` again to disconnect and reconnect the store."
    ),
    "NETWORK_ERRORS": (
        "KMS could not reach the backing key store over the network; check the security group, network ACLs and "
        "route tables of the CloudHSM cluster's VPC, or the external key store proxy's network path."
    ),
    "INVALID_CREDENTIALS": (
        "the credential KMS uses is wrong: for a CloudHSM key store, reset the kmsuser password in the cluster and "
        "update the key store's KeyStorePassword; for an external key store, update the proxy authentication "
        "credential (UpdateCustomKeyStore) to the one the proxy expects."
    ),
    "CLUSTER_NOT_FOUND": (
        "KMS cannot find the associated CloudHSM cluster; it was deleted or is in another account or Region. "
        "Restore the cluster from a backup, or point the key store at a related cluster."
    ),
    "INSUFFICIENT_CLOUDHSM_HSMS": "the CloudHSM cluster has no active HSM; add at least one HSM (two are recommended).",
    "INSUFFICIENT_FREE_ADDRESSES_IN_SUBNET": (
        "a private subnet of the CloudHSM cluster has no free IP address; KMS needs one free address in every "
        "subnet (two are recommended). Free addresses or add subnets, then connect again."
    ),
    "SUBNET_NOT_FOUND": (
        "a subnet in the CloudHSM cluster configuration was deleted; create a cluster from a recent backup (which "
        "makes a new configuration with a VPC and private subnets), associate it with the key store, then connect "
        "again."
    ),
    "USER_LOCKED_OUT": (
        "the kmsuser crypto user is locked out of the CloudHSM cluster after failed logins; change the kmsuser "
        "password in the cluster and update the key store's KeyStorePassword."
    ),
    "USER_LOGGED_IN": (
        "the kmsuser crypto user is logged in to the CloudHSM cluster, which blocks KMS; log kmsuser out of every "
        "cloudhsm_mgmt_util and key_mgmt_util session."
    ),
    "USER_NOT_FOUND": (
        "KMS cannot find a kmsuser crypto user in the CloudHSM cluster; create kmsuser (type CU) and update the "
        "key store's KeyStorePassword to its password."
    ),
    "XKS_PROXY_ACCESS_DENIED": (
        "the external key store proxy denied KMS's request; check the proxy's authorization rules for KMS and "
        "the key store."
    ),
    "XKS_PROXY_INVALID_CONFIGURATION": (
        "the proxy reported a configuration error; check the key store's proxy URI path against the proxy's "
        "documentation."
    ),
    "XKS_PROXY_INVALID_RESPONSE": (
        "KMS could not interpret the proxy's response; the proxy may be faulty. Ask the proxy vendor."
    ),
    "XKS_PROXY_INVALID_TLS_CONFIGURATION": (
        "KMS cannot connect to the proxy over TLS; the proxy must use TLS 1.2 or 1.3, a certificate from a public "
        "CA, and the endpoint's host name on the certificate."
    ),
    "XKS_PROXY_NOT_REACHABLE": (
        "KMS cannot reach the external key store proxy, or the proxy reports every external key manager "
        "unavailable; check the proxy's URI endpoint, its health and its external key managers."
    ),
    "XKS_PROXY_TIMED_OUT": (
        "the proxy did not answer KMS within the timeout; check the proxy's load and latency and its network path."
    ),
    "XKS_VPC_ENDPOINT_SERVICE_INVALID_CONFIGURATION": (
        "the Amazon VPC endpoint service is misconfigured: its load balancer must span two or more Availability "
        "Zones, the KMS service principal must be allowed, acceptance must not be required, and its private DNS "
        "name must be verified."
    ),
    "XKS_VPC_ENDPOINT_SERVICE_NOT_FOUND": (
        "KMS cannot find the VPC endpoint service named in the key store; check the name in the key store's "
        "configuration or create the endpoint service."
    ),
}


def remedy(error_code: str | None) -> str:
    """The remedy for a ``ConnectionErrorCode``, or a generic one for a code this release does not know."""
    if error_code is None:
        return "describe the key store to find its ConnectionErrorCode."
    return CONNECTION_ERROR_REMEDIES.get(
        error_code,
        f"see the KMS Developer Guide's troubleshooting page for {error_code}.",
    )
