"""AWS clients, created once per process (under a lock: boto3's default session is not
thread-safe while it builds clients) and handed to the stores that use them."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the stubs are a dev dependency: nothing here is imported at run time
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

_lock = threading.Lock()


@dataclass
class Clients:
    dynamodb: DynamoDBClient
    sqs: SQSClient
    s3: S3Client


def create_clients(region: str, endpoint_url: str | None = None) -> Clients:
    import boto3
    from botocore.config import Config

    with _lock:
        session = boto3.session.Session(region_name=region)
        kw: dict[str, Any] = {"endpoint_url": endpoint_url} if endpoint_url else {}
        # The local runner shares each client between many threads: give them connections.
        retry = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=50)
        return Clients(
            dynamodb=session.client("dynamodb", config=retry, **kw),
            sqs=session.client("sqs", config=retry, **kw),
            s3=session.client(
                "s3",
                config=retry.merge(Config(signature_version="s3v4", s3={"addressing_style": "path"})),
                **kw,
            ),
        )
