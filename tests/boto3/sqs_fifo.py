"""SQS FIFO scenarios through boto3, answer by answer, against any SQS endpoint.

Runs the same scenarios against the emulator and against moto's server and prints each
answer as one JSON line ("scenario step: answer"), with what is random (ids, receipt handles,
sequence numbers) replaced by what matters (equal to an earlier one or not). The CI script
compares the two transcripts line by line; the README lists the lines where they differ and
why (README: "FIFO queues, compared with moto").

Usage: python3 tests/boto3/sqs_fifo.py http://127.0.0.1:PORT > transcript.jsonl
       python3 tests/boto3/sqs_fifo.py --compare emulator.jsonl moto.jsonl
"""

import json
import sys

import boto3
from botocore.exceptions import ClientError


def compare(ours_path, theirs_path, expected_path):
    """Exit non-zero when the transcripts differ elsewhere than the expected differences."""
    ours = [json.loads(line) for line in open(ours_path)]
    theirs = [json.loads(line) for line in open(theirs_path)]
    expected = set(json.load(open(expected_path)))
    if [o["step"] for o in ours] != [t["step"] for t in theirs]:
        raise SystemExit("FAILED: the transcripts have different steps")
    same, explained, unexplained = 0, [], []
    for o, t in zip(ours, theirs):
        if o["answer"] == t["answer"]:
            same += 1
        elif o["step"] in expected:
            explained.append(o["step"])
        else:
            unexplained.append((o["step"], o["answer"], t["answer"]))
    stale = expected - set(explained)
    print(f"{same} answers equal, {len(explained)} differences explained in the README")
    for step, mine, moto in unexplained:
        print(f"UNEXPLAINED {step}:\n  emulator: {mine}\n  moto:     {moto}")
    for step in sorted(stale):
        print(f"STALE: {step} is listed as a difference but the answers agree")
    if unexplained or stale:
        raise SystemExit(1)


if len(sys.argv) == 5 and sys.argv[1] == "--compare":
    compare(sys.argv[2], sys.argv[3], sys.argv[4])
    sys.exit(0)

endpoint = sys.argv[1]
sqs = boto3.client(
    "sqs",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="local",
    aws_secret_access_key="local",
)
seen = {}


def token(kind, value):
    """A stable name for a random value: the first of its kind is #1, and so on."""
    kind = kind.rsplit("/", 1)[-1]
    names = seen.setdefault(kind, {})
    return f"{kind}#{names.setdefault(value, len(names) + 1)}"


def say(step, answer):
    print(json.dumps({"step": step, "answer": answer}, sort_keys=True), flush=True)


def attempt(step, call):
    """Runs `call`; says its answer or its error code."""
    try:
        answer = call()
    except ClientError as err:
        answer = {"error": err.response["Error"]["Code"]}
    say(step, answer)
    return answer


def fifo(name, content_based=False):
    attributes = {"FifoQueue": "true"}
    if content_based:
        attributes["ContentBasedDeduplication"] = "true"
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def send(url, body, group, dedup=None):
    args = {"QueueUrl": url, "MessageBody": body, "MessageGroupId": group}
    if dedup is not None:
        args["MessageDeduplicationId"] = dedup
    out = sqs.send_message(**args)
    # Ids are named per queue, so a difference in one scenario does not renumber the next.
    return {"id": token(url, out["MessageId"]), "sequence": "SequenceNumber" in out}


def receive(url, max_messages=10, attempt_id=None):
    args = {
        "QueueUrl": url,
        "MaxNumberOfMessages": max_messages,
        "MessageSystemAttributeNames": ["All"],
    }
    if attempt_id:
        args["ReceiveRequestAttemptId"] = attempt_id
    messages = sqs.receive_message(**args).get("Messages", [])
    return messages


def bodies(messages):
    return [m["Body"] for m in messages]


def release(url, messages):
    for m in messages:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)


def delete(url, messages):
    for m in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def count(url):
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return attrs["Attributes"]["ApproximateNumberOfMessages"]


# Queue attributes.
url = fifo("order.fifo")
attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
say("attributes of a new FIFO queue", {k: attrs.get(k) for k in (
    "FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit")})
attempt("create: FifoQueue=true without the .fifo suffix", lambda: sqs.create_queue(
    QueueName="nosuffix", Attributes={"FifoQueue": "true"})["QueueUrl"].endswith("nosuffix"))
attempt("create: .fifo suffix without FifoQueue", lambda: sqs.create_queue(
    QueueName="suffix-only.fifo")["QueueUrl"].endswith("suffix-only.fifo"))
attempt("create: ContentBasedDeduplication on a standard queue", lambda: sqs.create_queue(
    QueueName="standard-cbd", Attributes={"ContentBasedDeduplication": "true"})["QueueUrl"].endswith("cbd"))

# Ordering across groups and in-flight group blocking.
for i, (body, group) in enumerate([("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b"), ("a3", "a")]):
    send(url, body, group, f"d{i}")
first = receive(url, 1)
say("receive 1: the oldest message", bodies(first))
say("receive while a is in flight: b only", bodies(receive(url, 1)))
say("receive while both groups are in flight", bodies(receive(url, 10)))
delete(url, first)
say("after a1 is deleted: the rest of a, in order", bodies(receive(url, 10)))

# Deduplication by id.
url = fifo("dedup.fifo")
one = send(url, "first", "g", "same")
say("send with a new deduplication id", one)
two = send(url, "second", "g", "same")
say("send again with the same deduplication id", two)
say("messages after the duplicate", count(url))
got = receive(url, 10)
delete(url, got)
say("send the id again after the message is deleted", send(url, "third", "g", "same"))
say("messages after the deleted duplicate", count(url))

# Deduplication by content.
url = fifo("content.fifo", content_based=True)
say("content-based: first", send(url, "payload", "g"))
say("content-based: same body", send(url, "payload", "g"))
say("content-based: same body, explicit id", send(url, "payload", "g", "explicit"))
say("content-based: messages", count(url))

# Receive request attempt id.
url = fifo("attempt.fifo", content_based=True)
send(url, "x1", "x")
send(url, "y1", "y")
a = receive(url, 1, attempt_id="try-1")
b = receive(url, 1, attempt_id="try-1")
say("retried attempt: same message", [m["MessageId"] for m in a] == [m["MessageId"] for m in b])
say("retried attempt: same receipt handle", [m["ReceiptHandle"] for m in a] == [m["ReceiptHandle"] for m in b])
say("another attempt id: the other group", bodies(receive(url, 10, attempt_id="try-2")))

# Refusals.
url = fifo("refusals.fifo")
attempt("send without MessageGroupId", lambda: sqs.send_message(
    QueueUrl=url, MessageBody="b", MessageDeduplicationId="d")["MessageId"] and "sent")
attempt("send without MessageDeduplicationId, no content-based deduplication", lambda: sqs.send_message(
    QueueUrl=url, MessageBody="b", MessageGroupId="g")["MessageId"] and "sent")
attempt("send with a per-message DelaySeconds", lambda: sqs.send_message(
    QueueUrl=url, MessageBody="b", MessageGroupId="g", MessageDeduplicationId="d", DelaySeconds=5)["MessageId"] and "sent")
attempt("send with a deduplication id of 129 characters", lambda: sqs.send_message(
    QueueUrl=url, MessageBody="b", MessageGroupId="g", MessageDeduplicationId="x" * 129)["MessageId"] and "sent")
standard_dlq = sqs.create_queue(QueueName="standard-dlq")["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=standard_dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
attempt("a FIFO queue with a standard dead-letter queue", lambda: sqs.create_queue(
    QueueName="with-standard-dlq.fifo",
    Attributes={"FifoQueue": "true", "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})},
)["QueueUrl"].endswith(".fifo"))
say("messages after the refusals", count(url))
