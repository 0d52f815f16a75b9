"""boto3 against the emulator's SQS endpoint: the wire protocol, as a real AWS SDK sees it.

botocore checks MD5OfMessageBody and MD5OfMessageAttributes on every send and receive, so a
wrong digest fails here. Usage: python3 tests/boto3/sqs_endpoint.py http://127.0.0.1:PORT
"""

import sys
import time

import boto3
from botocore.exceptions import ClientError

endpoint = sys.argv[1]
sqs = boto3.client(
    "sqs",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="local",
    aws_secret_access_key="local",
)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    checks += 1


urls = sqs.list_queues()["QueueUrls"]
check(any(u.endswith("/work") for u in urls), f"template queues listed: {urls}")
work = sqs.get_queue_url(QueueName="work")["QueueUrl"]
dlq = sqs.get_queue_url(QueueName="work-dlq")["QueueUrl"]

attrs = sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["All"])["Attributes"]
check(attrs["VisibilityTimeout"] == "30", f"visibility from template: {attrs}")
check('"maxReceiveCount":2' in attrs["RedrivePolicy"].replace(" ", ""), f"redrive: {attrs}")

# Send with attributes of every type: botocore verifies both MD5s.
sent = sqs.send_message(
    QueueUrl=work,
    MessageBody='{"hello": "wörld"}',
    MessageAttributes={
        "kind": {"DataType": "String", "StringValue": "greeting"},
        "n": {"DataType": "Number", "StringValue": "42"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\x02"},
    },
)
check("MD5OfMessageAttributes" in sent, "attribute digest returned")

got = sqs.receive_message(
    QueueUrl=work,
    MaxNumberOfMessages=10,
    MessageAttributeNames=["All"],
    MessageSystemAttributeNames=["All"],
    WaitTimeSeconds=1,
)["Messages"]
check(len(got) == 1 and got[0]["Body"] == '{"hello": "wörld"}', f"received: {got}")
check(got[0]["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\x01\x02", "binary attribute")
check(got[0]["Attributes"]["ApproximateReceiveCount"] == "1", "receive count")

# In flight: invisible until the visibility changes.
empty = sqs.receive_message(QueueUrl=work, WaitTimeSeconds=0).get("Messages", [])
check(empty == [], "in-flight message is invisible")
sqs.change_message_visibility(QueueUrl=work, ReceiptHandle=got[0]["ReceiptHandle"], VisibilityTimeout=0)
again = sqs.receive_message(QueueUrl=work, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"])["Messages"]
check(again[0]["Attributes"]["ApproximateReceiveCount"] == "2", "second receive")
sqs.change_message_visibility(QueueUrl=work, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=0)

# The third receive would exceed maxReceiveCount 2: the message moves to the DLQ.
third = sqs.receive_message(QueueUrl=work, WaitTimeSeconds=0).get("Messages", [])
check(third == [], "exhausted message is not delivered again")
moved = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1, MessageAttributeNames=["All"])["Messages"]
check(moved[0]["Body"] == '{"hello": "wörld"}', "message in the DLQ")
sqs.change_message_visibility(QueueUrl=dlq, ReceiptHandle=moved[0]["ReceiptHandle"], VisibilityTimeout=0)
sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]
check(sources == [work], f"dead-letter sources: {sources}")

# Redrive back to the source.
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
sqs.start_message_move_task(SourceArn=dlq_arn)
back = []
for _ in range(50):
    back = sqs.receive_message(QueueUrl=work, WaitTimeSeconds=1).get("Messages", [])
    if back:
        break
    time.sleep(0.1)
check(back and back[0]["Body"] == '{"hello": "wörld"}', "redriven to the source queue")
sqs.delete_message(QueueUrl=work, ReceiptHandle=back[0]["ReceiptHandle"])

# Batches and their limits.
entries = [{"Id": f"m{i}", "MessageBody": f"body {i}"} for i in range(10)]
result = sqs.send_message_batch(QueueUrl=work, Entries=entries)
check(len(result["Successful"]) == 10, "batch of 10 accepted")
try:
    sqs.send_message_batch(QueueUrl=work, Entries=entries + [{"Id": "m10", "MessageBody": "x"}])
    check(False, "11 entries must be refused")
except ClientError as e:
    check(e.response["Error"]["Code"] in ("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"), e.response["Error"])
received = []
while len(received) < 10:
    batch = sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    check(batch, "batch receive")
    received += batch
deleted = sqs.delete_message_batch(
    QueueUrl=work, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)]
)
check(len(deleted["Successful"]) == 10, "batch delete")

# Errors in AWS's shape.
try:
    sqs.get_queue_url(QueueName="nope")
    check(False, "unknown queue must fail")
except ClientError as e:
    code = e.response["Error"]["Code"]
    check(code in ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"), f"unknown queue code: {code}")
try:
    sqs.send_message(QueueUrl=work, MessageBody="x" * (1024 * 1024 + 1))
    check(False, "over 1 MiB must fail")
except ClientError as e:
    check(e.response["Error"]["Code"] in ("InvalidParameterValue", "AWS.SimpleQueueService.InvalidParameterValue"), e.response["Error"])
# A FIFO queue's name must end in .fifo (FIFO itself: tests/boto3/sqs_fifo.py).
try:
    sqs.create_queue(QueueName="jobs", Attributes={"FifoQueue": "true"})
    check(False, "a FIFO queue without the .fifo suffix must be refused")
except ClientError as e:
    check(".fifo suffix" in e.response["Error"]["Message"], e.response["Error"])

# The DLQ's RedriveAllowPolicy from the template admits only the work queue.
allow = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["RedriveAllowPolicy"])["Attributes"]
check('"byQueue"' in allow["RedriveAllowPolicy"], f"redrive allow policy: {allow}")
try:
    sqs.create_queue(
        QueueName="intruder",
        Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"3"}}'},
    )
    check(False, "a source the DLQ does not allow must be refused")
except ClientError as e:
    check(e.response["Error"]["Code"] == "InvalidParameterValue", e.response["Error"])
    check("work-dlq" in e.response["Error"]["Message"], e.response["Error"])
try:
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": '{"redrivePermission":"some"}'})
    check(False, "a malformed RedriveAllowPolicy must be refused")
except ClientError as e:
    check(e.response["Error"]["Code"] == "InvalidAttributeValue", e.response["Error"])

# Queue lifecycle.
url = sqs.create_queue(QueueName="scratch", Attributes={"DelaySeconds": "0"})["QueueUrl"]
sqs.send_message(QueueUrl=url, MessageBody="x")
sqs.purge_queue(QueueUrl=url)
sqs.delete_queue(QueueUrl=url)
check(not any(u.endswith("/scratch") for u in sqs.list_queues().get("QueueUrls", [])), "deleted queue gone")

print(f"boto3 against {endpoint}: {checks} checks passed")
