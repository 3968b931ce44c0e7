"""Errors the provider raises: each names the key store and Region, what went wrong, and what to do about it.

The dynamic provider server reports an exception's text to the engine, so these messages are what a user reads
in `pulumi up`; they must stand on their own.
"""

from __future__ import annotations

from .states import remedy

# What to do about each KMS API error code that can reach a user once botocore's retries are spent.
API_ERROR_REMEDIES: dict[str, str] = {
    "CustomKeyStoreNotFoundException": (
        "check custom_key_store_id and region; if the store was deleted, remove the resource from the program: the "
        "next `pulumi up` then drops it from the stack (`pulumi refresh` drops it at once, but an `up` of a program "
        "that still declares it fails again)"
    ),
    "CustomKeyStoreInvalidStateException": (
        "another client changed the store's state at the same time; run `pulumi up` again"
    ),
    "CloudHsmClusterNotActiveException": (
        "the store's CloudHSM cluster is not ACTIVE; initialize and activate the cluster, then run `pulumi up` again"
    ),
    "CloudHsmClusterInvalidConfigurationException": (
        "the CloudHSM cluster's configuration does not meet KMS's requirements (private subnets in two Availability "
        "Zones, the cluster security group's rules for TCP ports 2223-2225, and at least one active HSM to connect); "
        "fix it, then run `pulumi up` again"
    ),
    "KMSInternalException": "KMS had an internal error and retries did not help; run `pulumi up` again later",
    "ThrottlingException": (
        "KMS throttled the requests and retries did not help; run fewer stores at once (`pulumi up --parallel`) or "
        "ask AWS to raise the custom key store request quota"
    ),
    "AccessDeniedException": (
        "the caller lacks permission; grant kms:DescribeCustomKeyStores, kms:ConnectCustomKeyStore and "
        "kms:DisconnectCustomKeyStore (see the README's IAM policy)"
    ),
    "UnrecognizedClientException": "the AWS credentials are not valid; check the profile or environment credentials",
    "InvalidSignatureException": "the AWS secret key does not match the access key; check the credentials",
    "ExpiredTokenException": "the AWS session token has expired; refresh the credentials",
}


class KeyStoreError(Exception):
    """Base class: something about one key store stopped the operation."""

    def __init__(self, store_id: str, region: str, message: str) -> None:
        self.store_id = store_id
        self.region = region
        super().__init__(f"custom key store {store_id} in {region}: {message}")


class KeyStoreNotFoundError(KeyStoreError):
    """DescribeCustomKeyStores does not know the store."""

    def __init__(self, store_id: str, region: str, fix: str | None = None) -> None:
        super().__init__(
            store_id,
            region,
            "not found (CustomKeyStoreNotFoundException). "
            + (fix or API_ERROR_REMEDIES["CustomKeyStoreNotFoundException"])
            + ".",
        )


class ConnectFailedError(KeyStoreError):
    """The store ended in FAILED after we asked it to connect."""

    def __init__(self, store_id: str, region: str, error_code: str | None) -> None:
        self.error_code = error_code
        super().__init__(
            store_id,
            region,
            f"connecting failed with ConnectionErrorCode {error_code or 'unknown'}: {remedy(error_code)} "
            "The store is left FAILED; the next `pulumi up` disconnects and connects it again.",
        )


class ConvergeTimeoutError(KeyStoreError):
    """The store did not reach the desired state within the resource's timeout."""

    def __init__(
        self,
        store_id: str,
        region: str,
        target: str,
        last: str,
        waited: float,
        timeout_input: str,
        next_up: str | None = None,
    ) -> None:
        self.last_state = last
        # None: the store is on its way to the target, and the next `up` just waits for it.
        advice = (
            f"run `pulumi up` again to keep waiting without a new request, or raise {timeout_input}"
            if next_up is None
            else f"{next_up}; raise {timeout_input} to wait longer"
        )
        super().__init__(
            store_id,
            region,
            f"still {last} after waiting {waited:.0f} s for {target}. Nothing was undone: {advice}.",
        )


class ChangedByOthersError(KeyStoreError):
    """Another client moved the store the other way while we waited."""

    def __init__(self, store_id: str, region: str, target: str, last: str, next_up: str) -> None:
        super().__init__(
            store_id,
            region,
            f"another client changed the store to {last} while it was converging to {target}. Check who manages "
            f"this store: {next_up}.",
        )


class RequestNotSeenError(KeyStoreError):
    """A request was accepted, sent again, and neither showed: someone undoes it, or KMS lags far behind."""

    def __init__(self, store_id: str, region: str, operation: str, last: str, seconds: float, next_up: str) -> None:
        super().__init__(
            store_id,
            region,
            f"KMS accepted {operation} twice, but the store still showed {last} {seconds:.0f} s after the second "
            "(and after the first): another client undoes it, or KMS is slower than usual to show the change. Check "
            f"who manages this store: {next_up}.",
        )


def conflict_text(declarations: list[str]) -> str:
    """What is wrong with one store declared in opposite desired states (each as ``CONNECTED by ...``)."""
    return (
        f"declared {' and '.join(declarations)}. One store has one desired state: declare it in one resource, or "
        "give every resource that names it the same desired_state; every `pulumi preview` and `pulumi up` refuses "
        "it until then"
    )


class DeclarationConflictError(KeyStoreError):
    """Two resources of the stack declare one store in opposite desired states."""

    def __init__(self, store_id: str, region: str, declarations: list[str]) -> None:
        self.declarations = declarations
        super().__init__(store_id, region, f"stopped converging: the store is {conflict_text(declarations)}.")


class KmsApiError(KeyStoreError):
    """A KMS API call failed (after botocore's retries) with an error code."""

    def __init__(self, store_id: str, region: str, operation: str, code: str, detail: str) -> None:
        self.code = code
        self.operation = operation
        fix = API_ERROR_REMEDIES.get(code, "see the KMS API reference for this error")
        super().__init__(store_id, region, f"{operation} failed with {code}: {detail} To fix: {fix}.")


class KmsUnreachableError(KeyStoreError):
    """No answer from KMS, or no credentials to ask with."""

    def __init__(self, store_id: str, region: str, operation: str, detail: str, fix: str) -> None:
        super().__init__(store_id, region, f"{operation} could not be sent: {detail}. To fix: {fix}.")


class AccountRefusedError(KeyStoreError):
    """The account guard refused a request: the credentials act in an account ``aws:allowedAccountIds`` leaves out
    or ``aws:forbiddenAccountIds`` names, or in one that cannot be learned while the stack guards accounts."""

    def __init__(self, store_id: str, region: str, operation: str, reason: str, fix: str) -> None:
        self.operation = operation
        self.reason = reason
        self.fix = fix
        super().__init__(
            store_id,
            region,
            f"refused to send {operation}: {reason}. No request that changes the store was sent. To fix: {fix}.",
        )


class DisconnectRefusedError(KeyStoreError):
    """``disconnect_guard`` is ``refuse`` and the disconnect would make enabled KMS keys unusable, or the keys could
    not be counted: no DisconnectCustomKeyStore was sent."""

    def __init__(self, store_id: str, region: str, reason: str, observed: str, counted: bool) -> None:
        self.reason = reason
        if counted:
            fix = (
                "to disconnect it anyway, set disconnect_guard to 'warn' (the keys become unusable) or 'off'; or "
                "first disable the keys or schedule their deletion, if nothing needs them"
            )
        else:
            fix = (
                "let the provider count the keys: grant the read-only kms:ListKeys, kms:DescribeKey and "
                "kms:ListAliases (see the README's IAM policy); or set disconnect_guard to 'warn' to disconnect "
                "without knowing"
            )
        super().__init__(
            store_id,
            region,
            f"refused to disconnect: disconnect_guard is 'refuse' and {reason}. No DisconnectCustomKeyStore was "
            f"sent: the store stays {observed}. To fix: {fix}.",
        )


class KeyStoreSetError(Exception):
    """Several stores of a set failed; each keeps its own message."""

    def __init__(self, errors: list[KeyStoreError], converged: list[str]) -> None:
        self.errors = errors
        lines = [f"{len(errors)} custom key stores did not converge:"]
        lines += [f"- {error}" for error in errors]
        if converged:
            lines.append(f"These converged: {', '.join(converged)}.")
        super().__init__("\n".join(lines))


class UnrecordedConnectionsError(Exception):
    """An operation failed after it had connected stores that the stack's state will therefore not record.

    The Python dynamic provider cannot hand the engine outputs with a failure, so the state keeps what it held
    before the operation. The message says so, store by store, with the command that disconnects each.
    """

    def __init__(
        self,
        cause: BaseException,
        store_ids: list[str],
        recorded: str,
        commands: list[str],
        role_arn: str | None = None,
    ) -> None:
        self.cause = cause
        self.store_ids = store_ids
        it = "them" if len(store_ids) > 1 else "it"
        lines = [
            str(cause),
            f"This operation connected {', '.join(store_ids)} before it failed, so the stack's state does not record "
            f"{it} ({recorded}). The next `pulumi up` of the same program records {it}. If you remove {it} from the "
            f"program instead, nothing will disconnect {it}; do it with:",
        ]
        lines += [f"  {command}" for command in commands]
        if role_arn:
            # The store is in the role's account: the user's own credentials would be denied, or reach no store.
            lines.append(
                f"as role {role_arn}, as the provider reached {it}: with a profile that assumes it (`role_arn = "
                f"{role_arn}` in ~/.aws/config, then `--profile`), or with the credentials of `aws sts assume-role "
                f"--role-arn {role_arn} --role-session-name kms-connection` in the environment."
            )
        super().__init__("\n".join(lines))


def disconnect_command(store_id: str, region: str, profile: str | None, endpoint: str | None) -> str:
    """The AWS CLI command that disconnects a store, with the profile and endpoint the stack config names."""
    command = f"aws kms disconnect-custom-key-store --custom-key-store-id {store_id} --region {region}"
    if profile:
        command += f" --profile {profile}"
    if endpoint:
        command += f" --endpoint-url {endpoint}"
    return command
