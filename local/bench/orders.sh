#!/usr/bin/env bash
# End-to-end orders/s (issue 13): `nightshift up` with the real template (infra/template.yaml)
# and a temporary copy of infra/env.local.json whose MAIL_MAX_PER_SECOND is lifted (1,000,000
# unless MAIL_MAX_PER_SECOND says otherwise), so the mailer's pacing is not what is measured.
# ORDERS valid `order.placed` jobs (default 5,000, each with its own job and order id) are sent
# to the jobs queue by CLIENTS concurrent clients (default 8; SendMessageBatch of 10 over one
# keep-alive connection each, local/bench/orders_client.py); queue-processor runs them and
# enqueues the confirmations, email-sender renders them into the outbox. Timed from the first
# send until the outbox holds ORDERS emails (bounded by TIMEOUT seconds, default 600).
# Then checks that no message was dead-lettered and none is left, and prints a markdown row
# and the numbers that explain the rate: email-sender's invocations, records per batch and
# per-batch time (`nightshift status --json` and the REPORT lines of the log).
# Everything binds 127.0.0.1, on a free port (or PORT); the state (ephemeral), the functions'
# working directory (SQLite store, outbox) and the log go to a temporary directory, removed
# at the end unless the run failed.
# The temporary directory is made under TMPDIR (mktemp): on an ext4 without a journal, a file
# created where thousands were just deleted (the previous run's outbox) costs 1 ms instead of
# 25 us, so give each run a fresh TMPDIR, e.g. `d=/orders-$RANDOM; mkdir $d; TMPDIR=$d ...`.
# EMAIL_CONCURRENCY=N runs a copy of the template whose email-sender has N instances instead of
# the design's 2 (an experiment: does its concurrency bound the rate?).
# Needs curl and python3 (standard library only). Build first, from the workspace root:
#   cargo build -p queue-processor -p email-sender -p daily-report   (RELEASE=1: --release)
#   cargo build --profile emulator -p nightshift-local --bin nightshift
# Usage: local/bench/orders.sh   (from anywhere; CARGO_TARGET_DIR is honoured, NIGHTSHIFT
#   names another emulator binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
ORDERS=${ORDERS:-5000}
CLIENTS=${CLIENTS:-8}
TIMEOUT=${TIMEOUT:-600}
MAIL_MAX_PER_SECOND=${MAIL_MAX_PER_SECOND:-1000000}
RELEASE=${RELEASE:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
NIGHTSHIFT=${NIGHTSHIFT:-$CARGO_TARGET_DIR/emulator/nightshift}
profile=debug
release_flag=()
if [ "$RELEASE" = 1 ]; then profile=release; release_flag=(--release); fi
if [ ! -x "$NIGHTSHIFT" ]; then echo "orders.sh: $NIGHTSHIFT is not built" >&2; exit 1; fi
for f in queue-processor email-sender daily-report; do
  if [ ! -x "$CARGO_TARGET_DIR/$profile/$f" ]; then
    echo "orders.sh: $CARGO_TARGET_DIR/$profile/$f is not built" >&2
    exit 1
  fi
done
PORT=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
endpoint=http://127.0.0.1:$PORT

tmp=$(mktemp -d -t nightshift-orders.XXXXXX)
mkdir -p "$tmp/work"
server=""
ok=0
stop() {
  if [ -n "$server" ]; then kill -INT "$server" 2> /dev/null || true; wait "$server" 2> /dev/null || true; server=""; fi
  if [ "$ok" = 1 ]; then rm -rf "$tmp"; else echo "orders.sh: the emulator's log and the outbox are kept in $tmp" >&2; fi
}
trap stop EXIT

export AUTHORIZATION='AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0'
sqs() {
  curl -sf -X POST -H 'Content-Type: application/x-amz-json-1.0' -H "X-Amz-Target: AmazonSQS.$1" \
    -H "Authorization: $AUTHORIZATION" -d "$2" "$endpoint/"
}

python3 - "$MAIL_MAX_PER_SECOND" infra/env.local.json "$tmp/env.json" << 'EOF'
import json, sys
env = json.load(open(sys.argv[2]))
env["EmailSenderFunction"]["MAIL_MAX_PER_SECOND"] = sys.argv[1]
json.dump(env, open(sys.argv[3], "w"), indent=2)
EOF

# EMAIL_CONCURRENCY=N (an experiment, not the template's design): a copy of the template whose
# email-sender has N instances (ReservedConcurrentExecutions, its Emails source's
# MaximumConcurrency and MAIL_INSTANCES), to see whether its 2 instances are what bounds the rate.
template=infra/template.yaml
if [ -n "${EMAIL_CONCURRENCY:-}" ]; then
  template=$tmp/template.yaml
  python3 - "$EMAIL_CONCURRENCY" "$PWD" infra/template.yaml "$template" << 'EOF'
import sys
n, root, text = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
text = text.replace("CodeUri: ../", f"CodeUri: {root}/")
start = text.index("\n  EmailSenderFunction:")
end = text.index("\n  DailyReportFunction:")
block = text[start:end]
block = block.replace("ReservedConcurrentExecutions: 2", f"ReservedConcurrentExecutions: {n}", 1)
block = block.replace("MAIL_INSTANCES: '2'", f"MAIL_INSTANCES: '{n}'", 1)
block = block.replace("MaximumConcurrency: 2", f"MaximumConcurrency: {n}", 1)  # Emails, the first
open(sys.argv[4], "w").write(text[:start] + block + text[end:])
EOF
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$NIGHTSHIFT" --port "$PORT" --log-format json up --template "$template" \
  --env-file "$tmp/env.json" --ephemeral --no-build "${release_flag[@]}" --clock real \
  --work-dir "$tmp/work" > "$tmp/emulator.log" 2>&1 &
server=$!

# Ready when the SQS endpoint answers ListQueues (bounded: 30 s).
for _ in $(seq 1 300); do
  if sqs ListQueues '{}' > /dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2> /dev/null; then
    echo "orders.sh: the emulator exited; its log:" >&2
    tail -n 20 "$tmp/emulator.log" >&2
    exit 1
  fi
  sleep 0.1
done
jobs_url=$(sqs GetQueueUrl '{"QueueName":"nightshift-jobs"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["QueueUrl"])') || {
  echo "orders.sh: the SQS endpoint on $endpoint did not answer GetQueueUrl within 30 s" >&2
  exit 1
}

# CPU seconds (user + system) of the emulator and of its function processes, by command name,
# so that the run's CPU can be set against the cores' wall time.
cpu() {
  python3 - "$server" << 'PY'
import json, os, sys
tick, root, procs = os.sysconf("SC_CLK_TCK"), sys.argv[1], {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
        # schedstat: on a CPU, waiting on a run queue (ns), per thread: the time a thread was
        # ready to run but had no core
        waited = sum(int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[1])
                     for t in os.listdir(f"/proc/{pid}/task")) / 1e9
    except (OSError, IndexError, ValueError):
        continue
    comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
    # ppid; utime, stime, cutime, cstime (reaped children, e.g. stopped instances)
    procs[pid] = (comm, rest[1], sum(int(x) for x in rest[11:15]) / tick, waited)
tree, seconds = {root}, {"cpu": {}, "wait": {}}
for _ in range(4):
    tree |= {pid for pid, (_, ppid, _, _) in procs.items() if ppid in tree}
for pid in tree & procs.keys():
    comm, _, cpu, waited = procs[pid]
    seconds["cpu"][comm] = seconds["cpu"].get(comm, 0) + cpu
    seconds["wait"][comm] = seconds["wait"].get(comm, 0) + waited
print(json.dumps(seconds))
PY
}
cpu_before=$(cpu)
run=$(python3 local/bench/orders_client.py "$endpoint" "$jobs_url" "$tmp/work/.nightshift/outbox" \
  "$ORDERS" "$CLIENTS" "$TIMEOUT" "$(date +%s)") || exit 1   # the client says why on stderr

# Let the last deletes land (bounded: 10 s) so the counts below are final.
for _ in $(seq 1 100); do
  left=$("$NIGHTSHIFT" --port "$PORT" status --json |
    python3 -c 'import json, sys; print(sum(q["visible"] + q["in_flight"] + q["delayed"] for q in json.load(sys.stdin)["queues"]))')
  [ "$left" = 0 ] && break
  sleep 0.1
done
"$NIGHTSHIFT" --port "$PORT" status --json > "$tmp/status.json"
cpu_after=$(cpu)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$run" "$tmp/status.json" "$tmp/emulator.log" "$ORDERS" "$CLIENTS" "$profile" \
  "$load_before" "$load_after" "$cpu_before" "$cpu_after" << 'EOF'
import json, os, sys
from datetime import datetime

run, status = json.loads(sys.argv[1]), json.load(open(sys.argv[2]))
orders, clients, profile = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
load_before, load_after = sys.argv[7], sys.argv[8]
cpu_before, cpu_after = json.loads(sys.argv[9]), json.loads(sys.argv[10])
cpu = {k: v - cpu_before["cpu"].get(k, 0) for k, v in cpu_after["cpu"].items()}
waited = {k: v - cpu_before["wait"].get(k, 0) for k, v in cpu_after["wait"].items()}
queues = {q["name"]: q for q in status["queues"]}
functions = {f["name"]: f for f in status["functions"]}
mappings = {(m["function"], m["queue"]): m["stats"] for m in status["mappings"]}
sender, processor = "nightshift-EmailSenderFunction", "nightshift-QueueProcessorFunction"
emails_map = mappings[(sender, "nightshift-emails")]
jobs_map = mappings[(processor, "nightshift-jobs")]

# Per-invocation durations and the end of each function's last invocation, from the REPORT
# lines of the log (seconds since the first send).
durations, last_end = {sender: [], processor: []}, {}
for line in open(sys.argv[3], errors="replace"):
    if '"platform.report"' not in line:
        continue
    r = json.loads(line)
    if r["function"] in durations:
        durations[r["function"]].append(r["duration_ms"])
        t = datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp()
        last_end[r["function"]] = max(last_end.get(r["function"], 0), t - run["start_epoch"])

def p50(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")

dead = {n: q["visible"] + q["in_flight"] + q["delayed"] for n, q in queues.items()
        if q.get("dead_letter_sources") or n.endswith("dlq") or n.endswith("dlq.fifo")
        or n.endswith("failures")}
dead_total = sum(dead.values())
left = sum(q["visible"] + q["in_flight"] + q["delayed"] for q in queues.values()) - dead_total
emails, done = run["emails_after_1s"], run["done_s"]
es_durations = durations[sender]
n = max(functions[sender]["instances"], 1)
es_records_per_batch = emails_map["records"] / max(emails_map["batches"], 1)
es_busy_s = sum(es_durations) / 1000
email_span = run["last_email_s"] - run["first_email_s"]

print(f"| orders | clients | all sent | all emails in the outbox | orders/s end to end | "
      f"emails/s (first to last email) | email-sender invocations, records/batch, p50 batch | "
      f"dead letters | load average (before; after) |")
print("|---|---|---|---|---|---|---|---|---|")
print(f"| {orders:,} | {clients} | {run['sent_s']:.2f} s | {done:.2f} s | {orders / done:,.0f} | "
      f"{emails / email_span if email_span > 0 else float('nan'):,.0f} | "
      f"{len(es_durations):,}, {es_records_per_batch:.1f}, {p50(es_durations):.1f} ms | "
      f"{dead_total} | {load_before}; {load_after} |")
print()
print(f"email-sender instances: {functions[sender]['instances']}; "
      f"functions: {profile} build; emails found: {emails} (of {orders}); messages left in the "
      f"source queues: {left}; dead letters: {dead}")
print(f"queue-processor: {jobs_map['batches']:,} batches, "
      f"{jobs_map['records'] / max(jobs_map['batches'], 1):.1f} records/batch, "
      f"p50 {p50(durations[processor]):.1f} ms, last invocation ended at "
      f"{last_end.get(processor, float('nan')):.2f} s "
      f"({jobs_map['records'] / max(last_end.get(processor, 1), 1e-9):,.0f} jobs/s)")
print(f"email-sender: {emails_map['batches']:,} batches of the emails queue, "
      f"{es_records_per_batch:.1f} records/batch, p50 {p50(es_durations):.1f} ms, mean "
      f"{es_busy_s * 1000 / max(len(es_durations), 1):.1f} ms; first email at "
      f"{run['first_email_s']:.2f} s, last at {run['last_email_s']:.2f} s; busy "
      f"{es_busy_s:.2f} s of {n} instances x {done:.2f} s "
      f"({es_busy_s / (n * done):.0%}); {n} instances at that mean batch time could do "
      f"{n * es_records_per_batch / max(es_busy_s / max(len(es_durations), 1), 1e-9):,.0f} emails/s")
cpu_total = sum(cpu.values())
print(f"CPU (user + system) from the first send to the end: {cpu_total:.1f} s of "
      f"{os.cpu_count()} cores x {done:.2f} s = {cpu_total / (os.cpu_count() * done):.0%}, "
      f"{cpu_total / orders * 1000:.2f} ms per order: "
      + ", ".join(f"{k} {v:.1f} s ({v / orders * 1000:.2f} ms per order)"
                  for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])))
print("ready but waiting for a core (thread-seconds on a run queue, summed over their threads, /proc/PID/task/*/schedstat): "
      + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(waited.items(), key=lambda kv: -kv[1])))
failed = (emails != orders or dead_total or left or run["timed_out"]
          or functions[sender]["errors"] or functions[processor]["errors"])
if failed:
    print(f"orders.sh: FAILED: {emails} emails for {orders} orders, {dead_total} dead letters, "
          f"{left} messages left, function errors {functions[processor]['errors']} + "
          f"{functions[sender]['errors']}", file=sys.stderr)
sys.exit(1 if failed else 0)
EOF
ok=1
