"""Give jobs written before the sharded listing indexes their keys (infra/README.md,
"Migrating a table"): a Scan of the job items without `l1pk`, each updated only if it still
lacks them and still has the status the Scan saw (a job changing meanwhile is read again on
the next run). Also moves the status-index entry of a queued or running job written before
the shared `active` partition (`l2pk` ending `#queued#NN` or `#running#NN`) to it, under
the condition that `l2pk` is still what the Scan saw. Safe to rerun; prints how many jobs
it updated."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from botocore.exceptions import ClientError


def backfill(db: Any, table: str) -> int:
    from chalicelib.store import index_keys, job_from_item, serialize

    updated, kwargs = 0, {
        "TableName": table,
        "FilterExpression": "sk = :job AND (attribute_not_exists(l1pk) OR #st IN (:q, :r))",
        "ExpressionAttributeNames": {"#st": "status"},
        "ExpressionAttributeValues": {":job": {"S": "JOB"}, ":q": {"S": "queued"},
                                      ":r": {"S": "running"}},
    }
    while True:
        page = db.scan(**kwargs)
        for item in page.get("Items", []):
            job = job_from_item(item)
            keys = index_keys(job)
            if "l1pk" in item:  # keyed already: only a legacy status entry moves
                if item.get("l2pk", {}).get("S") == keys["l2pk"]:
                    continue
                try:
                    db.update_item(
                        TableName=table, Key={"pk": item["pk"], "sk": item["sk"]},
                        UpdateExpression="SET l2pk = :b", ConditionExpression="l2pk = :old",
                        ExpressionAttributeValues=serialize({
                            ":b": keys["l2pk"], ":old": item.get("l2pk", {}).get("S", "")}),
                    )
                    updated += 1
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                        raise
                continue
            try:
                db.update_item(
                    TableName=table, Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET l1pk = :a, l2pk = :b, l3pk = :c",
                    ConditionExpression="attribute_not_exists(l1pk) AND #st = :st",
                    ExpressionAttributeNames={"#st": "status"},
                    ExpressionAttributeValues=serialize({
                        ":a": keys["l1pk"], ":b": keys["l2pk"], ":c": keys["l3pk"],
                        ":st": job.status}),
                )
                updated += 1
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        if "LastEvaluatedKey" not in page:
            return updated
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main(argv: list[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    print(backfill(boto3.client("dynamodb", region_name=args.region), args.table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
