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
    assert set(motofast.REPLACED) == {*COUNTS, "retention", "list_of_moto_modules"}
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
