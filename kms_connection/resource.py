"""``CustomKeyStoreConnection``: the resource a Pulumi program declares, and its typed arguments."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, overload

import pulumi
import pulumi.dynamic

from .provider import OUTPUT_NAMES, CustomKeyStoreConnectionProvider

# One provider instance for every resource: it pickles to the same string, so the provider process unpickles
# and configures it once and all resources share its KMS clients.
_PROVIDER = CustomKeyStoreConnectionProvider()


@dataclass
class CustomKeyStoreConnectionArgs:
    """The arguments of a :class:`CustomKeyStoreConnection`."""

    custom_key_store_id: pulumi.Input[str]
    """The id of the custom key store (``cks-`` followed by hex digits). A change replaces the resource."""
    desired_state: pulumi.Input[str] | None = None
    """``"CONNECTED"`` (the default) or ``"DISCONNECTED"``, in any letter case."""
    on_delete: pulumi.Input[str] | None = None
    """What deleting the resource does: ``"disconnect"`` (the default) waits until the store is DISCONNECTED;
    ``"retain"`` leaves it as it is and makes no call."""
    connect_timeout_seconds: pulumi.Input[int] | None = None
    """How long to wait for CONNECTED, 1 to 86400 seconds; default 1800 (CloudHSM can take about 20 minutes)."""
    disconnect_timeout_seconds: pulumi.Input[int] | None = None
    """How long to wait for DISCONNECTED, 1 to 86400 seconds; default 900."""
    region: pulumi.Input[str] | None = None
    """The store's AWS Region; default the stack's ``aws:region``, then ``AWS_REGION``. A change replaces the
    resource."""


class CustomKeyStoreConnection(pulumi.dynamic.Resource, module="kms", name="CustomKeyStoreConnection"):
    """The connection state of one AWS KMS custom key store (CloudHSM or external), converged by ``pulumi up``.

    ``pulumi preview`` reads the store once and says what ``up`` will do; ``up`` connects or disconnects and waits
    until KMS settles, repairing a FAILED store by disconnecting it first; ``refresh`` reports the observed state;
    ``destroy`` disconnects the store (or retains it). An existing store is adopted by declaring it: a store
    already in the desired state gets no call but a read.
    """

    custom_key_store_id: pulumi.Output[str]
    desired_state: pulumi.Output[str]
    on_delete: pulumi.Output[str]
    connect_timeout_seconds: pulumi.Output[int]
    disconnect_timeout_seconds: pulumi.Output[int]
    region: pulumi.Output[str]
    """The Region the store is in, as resolved by the provider."""
    connection_state: pulumi.Output[str]
    """The observed ``ConnectionState``: CONNECTED, CONNECTING, FAILED, DISCONNECTED or DISCONNECTING."""
    connection_error_code: pulumi.Output[str | None]
    """The ``ConnectionErrorCode`` when the store is FAILED."""
    custom_key_store_type: pulumi.Output[str]
    """``AWS_CLOUDHSM`` or ``EXTERNAL_KEY_STORE``."""
    custom_key_store_name: pulumi.Output[str]
    cloud_hsm_cluster_id: pulumi.Output[str | None]
    xks_proxy_uri_endpoint: pulumi.Output[str | None]

    @overload
    def __init__(
        self,
        resource_name: str,
        args: CustomKeyStoreConnectionArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        resource_name: str,
        *,
        custom_key_store_id: pulumi.Input[str],
        desired_state: pulumi.Input[str] | None = None,
        on_delete: pulumi.Input[str] | None = None,
        connect_timeout_seconds: pulumi.Input[int] | None = None,
        disconnect_timeout_seconds: pulumi.Input[int] | None = None,
        region: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None: ...

    def __init__(
        self,
        resource_name: str,
        args: CustomKeyStoreConnectionArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
        **kwargs: Any,
    ) -> None:
        """Declare a connection.

        :param resource_name: The unique name of the resource.
        :param args: The arguments, as :class:`CustomKeyStoreConnectionArgs`; or give them as keyword arguments.
        :param opts: Options for the resource.
        """
        if args is None:
            unknown = set(kwargs) - {f.name for f in fields(CustomKeyStoreConnectionArgs)}
            if unknown:
                raise TypeError(f"CustomKeyStoreConnection got unexpected arguments: {', '.join(sorted(unknown))}")
            if kwargs.get("custom_key_store_id") is None:
                raise TypeError("CustomKeyStoreConnection needs custom_key_store_id")
            args = CustomKeyStoreConnectionArgs(**kwargs)
        elif kwargs:
            raise TypeError("give CustomKeyStoreConnection either args or keyword arguments, not both")
        props: dict[str, Any] = {f.name: getattr(args, f.name) for f in fields(args)}
        # Declared as None so that they come back as output attributes.
        props.update(dict.fromkeys(OUTPUT_NAMES))
        super().__init__(_PROVIDER, resource_name, props, opts)
