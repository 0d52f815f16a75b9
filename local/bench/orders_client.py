#!/usr/bin/env python3
"""The clients of local/bench/orders.sh: sends ORDERS `order.placed` jobs to the jobs queue
with SendMessageBatch of 10 (AWS JSON 1.0, one keep-alive connection per client, CLIENTS
threads), then waits until the outbox directory holds ORDERS `.eml` files.

Usage: orders_client.py ENDPOINT QUEUE_URL OUTBOX ORDERS CLIENTS TIMEOUT_S RUN_ID
Prints one JSON object: the start (epoch seconds), the seconds from the first send to the last
send answered, to the outbox holding ORDERS emails (polled every 50 ms) and to the first and
last email written (the files' modification times), and the number of emails found. Python 3 standard library only.
"""

import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone

AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


def order(run_id, i, submitted_at):
    """A valid order.placed job envelope (as tests/fixtures/jobs/order-placed.json), with its
    own job and order id so idempotency never dedupes two of them."""
    return json.dumps(
        {
            "v": 1,
            "id": f"job-bench-{run_id}-{i}",
            "kind": "order.placed",
            "payload": {
                "order_id": f"bench-{run_id}-{i}",
                "customer_email": f"customer{i}@example.com",
                "customer_name": "Ada Lovelace",
                "currency": "EUR",
                "items": [
                    {"sku": "NOTEBOOK-A5", "quantity": 2, "unit_price_cents": 1250},
                    {"sku": "PEN-BLUE", "quantity": 3, "unit_price_cents": 199},
                ],
            },
            "submitted_at": submitted_at,
        },
        separators=(",", ":"),
    )


def client(endpoint, queue_url, batches, errors):
    """Sends each batch (a list of (index, body)) over one keep-alive connection."""
    url = urllib.parse.urlsplit(endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "AmazonSQS.SendMessageBatch",
        "Authorization": AUTHORIZATION,
    }
    try:
        for batch in batches:
            request = json.dumps(
                {
                    "QueueUrl": queue_url,
                    "Entries": [{"Id": str(i), "MessageBody": body} for i, body in batch],
                }
            )
            conn.request("POST", "/", body=request, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                errors.append(f"HTTP {response.status}: {answer[:300]!r}")
                return
            failed = json.loads(answer).get("Failed") or []
            if failed:
                errors.append(f"{len(failed)} entries failed: {failed[:3]}")
                return
    except Exception as e:  # noqa: BLE001 - reported, and the run fails
        errors.append(f"{type(e).__name__}: {e}")
    finally:
        conn.close()


def count_emails(outbox):
    try:
        with os.scandir(outbox) as entries:
            return sum(1 for e in entries if e.name.endswith(".eml"))
    except FileNotFoundError:
        return 0


def main():
    endpoint, queue_url, outbox = sys.argv[1], sys.argv[2], sys.argv[3]
    orders, clients, timeout_s = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    run_id = sys.argv[7]
    submitted_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Bodies are rendered before the clock starts; batch k goes to client k % clients.
    bodies = [(i, order(run_id, i, submitted_at)) for i in range(orders)]
    batches = [bodies[k : k + 10] for k in range(0, orders, 10)]
    per_client = [batches[c::clients] for c in range(clients)]
    errors = []
    threads = [
        threading.Thread(target=client, args=(endpoint, queue_url, b, errors)) for b in per_client
    ]
    start_epoch = time.time()
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent_s = time.monotonic() - start
    if errors:
        print(f"orders_client: {len(errors)} of {clients} clients failed: {errors[0]}", file=sys.stderr)
        return 1
    emails = count_emails(outbox)
    while emails < orders and time.monotonic() - start < timeout_s:
        time.sleep(0.05)
        emails = count_emails(outbox)
    done_s = time.monotonic() - start
    # A duplicate would show as more emails than orders: look once more after a pause.
    time.sleep(1.0)
    # When the first and the last email were written, from the files' modification times.
    try:
        with os.scandir(outbox) as entries:
            mtimes = [e.stat().st_mtime for e in entries if e.name.endswith(".eml")]
    except FileNotFoundError:
        mtimes = []
    mtimes = mtimes or [start_epoch]
    print(
        json.dumps(
            {
                "start_epoch": start_epoch,
                "first_email_s": round(min(mtimes) - start_epoch, 3),
                "last_email_s": round(max(mtimes) - start_epoch, 3),
                "sent_s": round(sent_s, 3),
                "done_s": round(done_s, 3),
                "emails": emails,
                "emails_after_1s": count_emails(outbox),
                "timed_out": emails < orders,
            }
        )
    )
    if emails < orders:
        print(
            f"orders_client: only {emails} of {orders} emails in {outbox} after {done_s:.0f} s "
            "(TIMEOUT)",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
