"""Create the table, bucket and queues where they are missing: for the local runner, the
tests, and any AWS endpoint given by AWS_ENDPOINT_URL. On AWS, infra/template.yaml does this."""

from __future__ import annotations

import json
import secrets
from collections.abc import MutableMapping
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.connections import Clients

RETENTION = str(14 * 24 * 3600)
# The listing indexes (chalicelib/store.py): write-sharded keys, only the filters projected.
INDEXES = (("byTenantShard", "l1pk"), ("byStatusShard", "l2pk"), ("byServiceShard", "l3pk"))
LIST_PROJECTION = {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["expiresAt", "service"]}
# The sparse claim index of worker jobs (chalicelib/leases.py): keys only, which is all a
# claim reads before its conditional write.
CLAIM_INDEX = {
    "IndexName": "byClaimable",
    "KeySchema": [{"AttributeName": "claimKey", "KeyType": "HASH"},
                  {"AttributeName": "availableAt", "KeyType": "RANGE"}],
    "Projection": {"ProjectionType": "KEYS_ONLY"},
}


def queue_names(prefix: str) -> dict[str, str]:
    return {"jobs": f"{prefix}-jobs", "jobs_dlq": f"{prefix}-jobs-dlq",
            "callbacks": f"{prefix}-callbacks", "callbacks_dlq": f"{prefix}-callbacks-dlq"}


def ensure_table(db: Any, name: str) -> None:
    try:
        db.describe_table(TableName=name)
        return
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    attrs = [("pk", "S"), ("sk", "S"), ("gsk", "S")] + [(pk, "S") for _, pk in INDEXES] \
        + [("claimKey", "S"), ("availableAt", "N")]
    db.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in attrs],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": index,
            "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"},
                          {"AttributeName": "gsk", "KeyType": "RANGE"}],
            "Projection": LIST_PROJECTION,
        } for index, pk in INDEXES] + [CLAIM_INDEX],
    )
    db.get_waiter("table_exists").wait(TableName=name)
    db.update_time_to_live(TableName=name,
                           TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})


def ensure_bucket(s3: Any, name: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=name)
        return
    except ClientError:
        pass
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)


def ensure_queues(sqs: Any, prefix: str, jobs_visibility: int = 960,
                  jobs_max_receives: int = 10) -> dict[str, str]:
    names = queue_names(prefix)
    urls: dict[str, str] = {}
    for kind in ("jobs_dlq", "callbacks_dlq"):
        urls[kind] = sqs.create_queue(QueueName=names[kind],
                                      Attributes={"MessageRetentionPeriod": RETENTION})["QueueUrl"]

    def dlq_arn(kind: str) -> str:
        arn: str = sqs.get_queue_attributes(QueueUrl=urls[kind], AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        return arn

    urls["jobs"] = sqs.create_queue(QueueName=names["jobs"], Attributes={
        "MessageRetentionPeriod": RETENTION, "VisibilityTimeout": str(jobs_visibility),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn("jobs_dlq"),
                                     "maxReceiveCount": jobs_max_receives}),
    })["QueueUrl"]
    urls["callbacks"] = sqs.create_queue(QueueName=names["callbacks"], Attributes={
        "MessageRetentionPeriod": RETENTION, "VisibilityTimeout": "60",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn("callbacks_dlq"),
                                     "maxReceiveCount": 100}),
    })["QueueUrl"]
    return urls


def provision(clients: Clients, table: str, bucket: str, prefix: str, region: str,
              jobs_visibility: int = 960) -> dict[str, str]:
    """Everything the app needs; returns the env vars that point the app at it."""
    ensure_table(clients.dynamodb, table)
    ensure_bucket(clients.s3, bucket, region)
    urls = ensure_queues(clients.sqs, prefix, jobs_visibility)
    return {
        "JOBGATE_TABLE": table, "JOBGATE_BUCKET": bucket,
        "JOBGATE_JOBS_QUEUE_URL": urls["jobs"], "JOBGATE_JOBS_DLQ_URL": urls["jobs_dlq"],
        "JOBGATE_CALLBACKS_QUEUE_URL": urls["callbacks"],
        "JOBGATE_CALLBACKS_DLQ_URL": urls["callbacks_dlq"],
    }


def local_runtime(clients: Clients, prefix: str, region: str,
                  tenants: list[tuple[str, str, str]], env: MutableMapping[str, str] | None = None,
                  jobs_visibility: int = 960) -> tuple[Any, dict[str, str]]:
    """Resources, a runtime installed as the current one, and tenants `(name, api key,
    whsec secret)`: what the local runner, the tests and the bench all start from (tenant
    names must be slugs: tenants.check_tenant_name). `env`
    (settings) is updated with the resources' names; returns (runtime, those names)."""
    from chalicelib import runtime
    from chalicelib.settings import Settings
    from chalicelib.tenants import Tenant

    env = {} if env is None else env
    names = provision(clients, env.get("JOBGATE_TABLE") or f"{prefix}-jobs",
                      env.get("JOBGATE_BUCKET") or f"{prefix}-results", prefix, region,
                      jobs_visibility)
    env.update(names)
    # Paging is signed with a random key per process unless one is given (a local runner
    # is one process; on AWS the stage's secret comes from the infra stack).
    env.setdefault("JOBGATE_CURSOR_SECRET", secrets.token_urlsafe(32))
    rt = runtime.build(Settings.from_env({"AWS_DEFAULT_REGION": region, **env}), clients, env)
    runtime.set_current(rt)
    for name, key, secret in tenants:
        rt.tenants.put_tenant(Tenant(name=name, webhook_secrets=[secret]))
        rt.tenants.add_key(name, key, label="local")
    return rt, names
