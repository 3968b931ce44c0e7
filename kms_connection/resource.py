"""``CustomKeyStoreConnection``: the resource a Pulumi program declares, and its typed arguments."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Any, overload

import pulumi
import pulumi.dynamic

from .inputs import RESOURCE_NAME
from .provider import (
    OUTPUT_NAMES,
    SET_OUTPUT_NAMES,
    CustomKeyStoreConnectionProvider,
    CustomKeyStoreConnectionSetProvider,
)

# One provider instance for every resource: it pickles to the same string, so the provider process unpickles
# and configures it once and all resources share its KMS clients.
_PROVIDER = CustomKeyStoreConnectionProvider()
_SET_PROVIDER = CustomKeyStoreConnectionSetProvider()


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
    role_arn: pulumi.Input[str] | None = None
    """An IAM role to manage the store with, ``arn:aws:iam::ACCOUNT:role/NAME``: assumed from the stack's credentials
    (after ``aws:assumeRoles``), so one stack can manage stores in several accounts. A change to a role of another
    account replaces the resource."""
    role_external_id: pulumi.Input[str] | None = None
    """The external id the role's trust policy requires, if any (with ``role_arn``)."""
    role_session_name: pulumi.Input[str] | None = None
    """The session name of the role's sessions, as CloudTrail shows them (with ``role_arn``); default
    ``kms-connection``."""
    disconnect_guard: pulumi.Input[str] | None = None
    """What to do before a disconnect (of a change to ``DISCONNECTED``, a delete with ``on_delete="disconnect"``):
    ``"warn"`` (the default) lists the store's KMS keys and says which enabled keys become unusable; ``"refuse"``
    fails, before any request, when the store holds enabled keys or when they cannot be counted; ``"off"`` makes no
    key call. Listing keys needs the read-only ``kms:ListKeys``, ``kms:DescribeKey`` and ``kms:ListAliases``."""


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
    """The store's ``CustomKeyStoreName``, as KMS reports it."""
    cloud_hsm_cluster_id: pulumi.Output[str | None]
    """The CloudHSM cluster of a CloudHSM key store."""
    xks_proxy_uri_endpoint: pulumi.Output[str | None]
    """The proxy's URI endpoint of an external key store."""
    role_arn: pulumi.Output[str | None]
    role_external_id: pulumi.Output[str | None]
    role_session_name: pulumi.Output[str | None]
    disconnect_guard: pulumi.Output[str | None]
    account_id: pulumi.Output[str | None]
    """The AWS account the store is in, when the provider can learn it (STS GetCallerIdentity, or the role's
    account)."""

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
        role_arn: pulumi.Input[str] | None = None,
        role_external_id: pulumi.Input[str] | None = None,
        role_session_name: pulumi.Input[str] | None = None,
        disconnect_guard: pulumi.Input[str] | None = None,
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
        args = _args(CustomKeyStoreConnectionArgs, "custom_key_store_id", args, kwargs)
        super().__init__(_PROVIDER, resource_name, _props(resource_name, args, OUTPUT_NAMES), opts)


@dataclass
class CustomKeyStoreConnectionSetArgs:
    """The arguments of a :class:`CustomKeyStoreConnectionSet`."""

    custom_key_store_ids: pulumi.Input[list[pulumi.Input[str]]]
    """The ids of the stores (``cks-`` followed by hex digits), all in one Region. Adding or removing an id
    updates the set in place: a store that leaves the set is treated as ``on_delete`` says."""
    desired_state: pulumi.Input[str] | None = None
    """``"CONNECTED"`` (the default) or ``"DISCONNECTED"``, in any letter case, for every store of the set."""
    on_delete: pulumi.Input[str] | None = None
    """``"disconnect"`` (the default) or ``"retain"``: what deleting the set, or removing a store from it, does."""
    connect_timeout_seconds: pulumi.Input[int] | None = None
    """How long to wait for every store to be CONNECTED, 1 to 86400 seconds; default 1800."""
    disconnect_timeout_seconds: pulumi.Input[int] | None = None
    """How long to wait for DISCONNECTED, 1 to 86400 seconds; default 900."""
    region: pulumi.Input[str] | None = None
    """The stores' AWS Region; default the stack's ``aws:region``, then ``AWS_REGION``. A change replaces the
    set."""
    role_arn: pulumi.Input[str] | None = None
    """An IAM role to manage the stores with, ``arn:aws:iam::ACCOUNT:role/NAME``: assumed from the stack's credentials
    (after ``aws:assumeRoles``), so one stack can manage stores in several accounts. A change to a role of another
    account replaces the resource."""
    role_external_id: pulumi.Input[str] | None = None
    """The external id the role's trust policy requires, if any (with ``role_arn``)."""
    role_session_name: pulumi.Input[str] | None = None
    """The session name of the role's sessions, as CloudTrail shows them (with ``role_arn``); default
    ``kms-connection``."""
    disconnect_guard: pulumi.Input[str] | None = None
    """What to do before a disconnect (of a change to ``DISCONNECTED``, a delete with ``on_delete="disconnect"``, a
    store leaving the set): ``"warn"`` (the default) lists the store's KMS keys and says which enabled keys become
    unusable; ``"refuse"`` fails, before any request, when a store holds enabled keys or when they cannot be counted;
    ``"off"`` makes no key call. Listing keys needs the read-only ``kms:ListKeys``, ``kms:DescribeKey`` and
    ``kms:ListAliases``."""


class CustomKeyStoreConnectionSet(pulumi.dynamic.Resource, module="kms", name="CustomKeyStoreConnectionSet"):
    """The connection state of several custom key stores of one Region, converged together.

    It behaves like one :class:`CustomKeyStoreConnection` per store, but waits for all its stores at once, with
    one DescribeCustomKeyStores call per poll. The Pulumi engine runs a dynamic provider with four worker
    threads, so per-store resources that each wait up to 20 minutes for CloudHSM take turns: ten of them need
    about three connect times, one set needs about one.
    """

    custom_key_store_ids: pulumi.Output[list[str]]
    desired_state: pulumi.Output[str]
    on_delete: pulumi.Output[str]
    connect_timeout_seconds: pulumi.Output[int]
    disconnect_timeout_seconds: pulumi.Output[int]
    region: pulumi.Output[str]
    connection_states: pulumi.Output[dict[str, str]]
    """Each store's observed ``ConnectionState``, by id."""
    connection_error_codes: pulumi.Output[dict[str, str]]
    """The ``ConnectionErrorCode`` of each FAILED store, by id."""
    role_arn: pulumi.Output[str | None]
    role_external_id: pulumi.Output[str | None]
    role_session_name: pulumi.Output[str | None]
    disconnect_guard: pulumi.Output[str | None]
    account_id: pulumi.Output[str | None]
    """The AWS account the stores are in, when the provider can learn it."""

    @overload
    def __init__(
        self,
        resource_name: str,
        args: CustomKeyStoreConnectionSetArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        resource_name: str,
        *,
        custom_key_store_ids: pulumi.Input[list[pulumi.Input[str]]],
        desired_state: pulumi.Input[str] | None = None,
        on_delete: pulumi.Input[str] | None = None,
        connect_timeout_seconds: pulumi.Input[int] | None = None,
        disconnect_timeout_seconds: pulumi.Input[int] | None = None,
        region: pulumi.Input[str] | None = None,
        role_arn: pulumi.Input[str] | None = None,
        role_external_id: pulumi.Input[str] | None = None,
        role_session_name: pulumi.Input[str] | None = None,
        disconnect_guard: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None: ...

    def __init__(
        self,
        resource_name: str,
        args: CustomKeyStoreConnectionSetArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
        **kwargs: Any,
    ) -> None:
        """Declare a set of connections.

        :param resource_name: The unique name of the resource.
        :param args: The arguments, as :class:`CustomKeyStoreConnectionSetArgs`; or give them as keyword arguments.
        :param opts: Options for the resource.
        """
        args = _args(CustomKeyStoreConnectionSetArgs, "custom_key_store_ids", args, kwargs)
        super().__init__(_SET_PROVIDER, resource_name, _props(resource_name, args, SET_OUTPUT_NAMES), opts)


def _args(cls: type[Any], required: str, args: Any, kwargs: dict[str, Any]) -> Any:
    """The Args object from either form of a constructor call, with a TypeError naming what is wrong."""
    resource = cls.__name__.removesuffix("Args")
    if args is None:
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            hints = [
                f"{name} (did you mean {nearest[0]}?)" if (nearest := difflib.get_close_matches(name, known, n=1))
                else name
                for name in unknown
            ]
            raise TypeError(f"{resource} got unexpected arguments: {', '.join(hints)}; it takes {', '.join(known)}")
        if kwargs.get(required) is None:
            raise TypeError(f"{resource} needs {required}")
        return cls(**kwargs)
    if kwargs:
        raise TypeError(f"give {resource} either args or keyword arguments, not both")
    return args


def _props(resource_name: str, args: Any, output_names: tuple[str, ...]) -> dict[str, Any]:
    props: dict[str, Any] = {f.name: getattr(args, f.name) for f in fields(args)}
    # The provider is shown no URN: by the name it tells apart the resources that name one store, and names
    # them in messages (a store declared CONNECTED by one and DISCONNECTED by another is refused).
    props[RESOURCE_NAME] = resource_name
    # Declared as None so that they come back as output attributes.
    props.update(dict.fromkeys(output_names))
    return props
