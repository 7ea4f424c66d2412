"""localrunner/motofast.py: the embedded moto answers as moto does (only cheaper)."""

from __future__ import annotations

from typing import Any

from moto import mock_aws

from localrunner import motofast

COUNTS = ("messages", "approximate_number_of_messages", "approximate_number_of_messages_delayed",
          "approximate_number_of_messages_not_visible")


def test_counts_receives_and_retention_match_moto() -> None:
    import boto3
    from moto.sqs.models import sqs_backends

    motofast.install()
    motofast.install()  # idempotent: moto's own members are still the ones kept
    assert set(motofast.REPLACED) == {*COUNTS, "retention", "list_of_moto_modules", "all_items",
                                      "query"}
    from moto import backends

    assert list(backends.list_of_moto_modules()) == list(
        motofast.REPLACED["list_of_moto_modules"]()) and "sqs" in backends.list_of_moto_modules()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
        for i in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=900)
        assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]) == 2
        backend: Any = sqs_backends["123456789012"]["us-east-1"]
        queue = backend.get_queue("q")

        assert {n: getattr(queue, n) for n in COUNTS} == {
            n: motofast.REPLACED[n].fget(queue) for n in COUNTS}  # as moto's own say
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"],
                attrs["ApproximateNumberOfMessagesDelayed"]) == ("3", "2", "1")

        retention, message = motofast.REPLACED["retention"], queue._messages[0]
        assert backend.is_message_valid_based_on_retention_period("q", message)
        assert retention(backend, "q", message)
        message.sent_timestamp -= (queue.message_retention_period + 1) * 1000
        assert not backend.is_message_valid_based_on_retention_period("q", message)
        assert not retention(backend, "q", message)
        message.sent_timestamp += (queue.message_retention_period + 1) * 1000

        rest = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert sorted(m["Body"] for m in rest) == ["m2", "m3", "m4"]  # not in flight or delayed


def test_an_index_query_answers_as_moto_sorts_it() -> None:
    """Queries on an index skip moto's sort of the whole table: the same items, pages and
    order (the index's key, then the table's), whichever order the items were written."""
    import random

    import boto3
    from moto.dynamodb.models import dynamodb_backends

    motofast.install()
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName="tbl", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                                  for a in ("pk", "sk", "ipk", "isk")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{"IndexName": "idx", "Projection": {"ProjectionType": "ALL"},
                                     "KeySchema": [{"AttributeName": "ipk", "KeyType": "HASH"},
                                                   {"AttributeName": "isk", "KeyType": "RANGE"}]}])
        rows = [(f"p{i % 7}", f"s{i}", f"g{i % 2}", f"k{i % 5}") for i in range(60)]
        random.Random(1).shuffle(rows)
        for pk, sk, ipk, isk in rows:
            db.put_item(TableName="tbl", Item={"pk": {"S": pk}, "sk": {"S": sk},
                                             "ipk": {"S": ipk}, "isk": {"S": isk}})
        table = dynamodb_backends["123456789012"]["us-east-1"].get_table("tbl")
        assert [i.hash_key for i in table.all_items()] == sorted(
            i.hash_key for i in table.all_items())  # a scan still sees moto's order

        def pages(forward: bool) -> list[list[tuple[str, str, str]]]:
            out, start = [], None
            while True:
                kwargs: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
                page = db.query(TableName="tbl", IndexName="idx", Limit=7,
                                ScanIndexForward=forward,
                                KeyConditionExpression="ipk = :g AND isk >= :k",
                                ExpressionAttributeValues={":g": {"S": "g1"}, ":k": {"S": "k1"}},
                                **kwargs)
                out.append([(i["isk"]["S"], i["pk"]["S"], i["sk"]["S"]) for i in page["Items"]])
                start = page.get("LastEvaluatedKey")
                if not start:
                    return out

        for forward in (True, False):
            fast = pages(forward)
            query = table.query
            table.query = lambda *a, **k: motofast.REPLACED["query"](table, *a, **k)  # moto's own
            try:
                slow = pages(forward)
            finally:
                table.query = query
            flat = [row for page in fast for row in page]
            assert fast == slow and len(flat) == 24
            assert flat == sorted(flat, reverse=not forward)
