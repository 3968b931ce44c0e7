"""The script a user writes today to connect a custom key store, as public samples do it.

ConnectCustomKeyStore, then DescribeCustomKeyStores every 30 seconds until the store is CONNECTED (the public
CloudFormation sample's loop; like it, no FAILED branch). Plain boto3 with its default settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
else:
    KMSClient = Any

POLL_SECONDS = 30.0


def client(endpoint_url: str, region: str) -> KMSClient:
    """A boto3 KMS client, made the usual way (credentials from the environment)."""
    return boto3.session.Session().client("kms", region_name=region, endpoint_url=endpoint_url)


def connect_and_wait(
    kms: KMSClient,
    store_id: str,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Connect ``store_id`` and poll until CONNECTED; return how many times it polled."""
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    polls = 0
    while True:
        response = kms.describe_custom_key_stores(CustomKeyStoreId=store_id)
        polls += 1
        if response["CustomKeyStores"][0]["ConnectionState"] == "CONNECTED":
            return polls
        sleep(poll_seconds)
