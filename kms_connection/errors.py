"""Errors the provider raises: each names the key store and Region, what went wrong, and what to do about it.

The dynamic provider server reports an exception's text to the engine, so these messages are what a user reads
in `pulumi up`; they must stand on their own.
"""

from __future__ import annotations

from .states import remedy

# What to do about each KMS API error code that can reach a user once botocore's retries are spent.
API_ERROR_REMEDIES: dict[str, str] = {
    "CustomKeyStoreNotFoundException": (
        "check custom_key_store_id and region; if the store was deleted, run `pulumi refresh` to drop it from the "
        "stack, or remove the resource from the program"
    ),
    "CustomKeyStoreInvalidStateException": (
        "another client changed the store's state at the same time; run `pulumi up` again"
    ),
    "CloudHsmClusterNotActiveException": (
        "the store's CloudHSM cluster is not ACTIVE; initialize and activate the cluster, then run `pulumi up` again"
    ),
    "CloudHsmClusterInvalidConfigurationException": (
        "the CloudHSM cluster's configuration does not meet KMS's requirements (security group rules, HSMs in "
        "two Availability Zones); fix it, then run `pulumi up` again"
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

    def __init__(self, store_id: str, region: str) -> None:
        super().__init__(
            store_id,
            region,
            "not found (CustomKeyStoreNotFoundException). "
            + API_ERROR_REMEDIES["CustomKeyStoreNotFoundException"]
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

    def __init__(self, store_id: str, region: str, target: str, last: str, waited: float, timeout_input: str) -> None:
        self.last_state = last
        super().__init__(
            store_id,
            region,
            f"still {last} after waiting {waited:.0f} s for {target}. Nothing was undone: run `pulumi up` again "
            f"to keep waiting without a new request, or raise {timeout_input}.",
        )


class ChangedByOthersError(KeyStoreError):
    """Another client moved the store the other way while we waited."""

    def __init__(self, store_id: str, region: str, target: str, last: str) -> None:
        super().__init__(
            store_id,
            region,
            f"another client changed the store to {last} while it was converging to {target}. Check who manages "
            "this store, then run `pulumi up` again.",
        )


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


class KeyStoreSetError(Exception):
    """Several stores of a set failed; each keeps its own message."""

    def __init__(self, errors: list[KeyStoreError], converged: list[str]) -> None:
        self.errors = errors
        lines = [f"{len(errors)} custom key stores did not converge:"]
        lines += [f"- {error}" for error in errors]
        if converged:
            lines.append(f"These converged: {', '.join(converged)}.")
        super().__init__("\n".join(lines))
