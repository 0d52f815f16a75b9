#!/usr/bin/env bash
# SQS SendMessageBatch (10 x 256 B) throughput and latency of the emulator and of the peers
# installed here, side by side, with one client (wrk, 2 threads, 32 connections, 10 s each):
#   - the emulator, once per built profile given in PROFILES (default "debug emulator": the
#     `cargo build` and `cargo nightshift` builds), each from target/<dir>/nightshift;
#   - moto's server (`pip install 'moto[server]'`), when moto_server is on the PATH;
#   - fakecloud (`cargo install fakecloud`), when on the PATH;
#   - ElasticMQ, when ELASTICMQ_JAR names its jar and java is installed.
# Prints one markdown row per server: messages/s, p50, p99, and the ratio to the first row.
# Everything binds 127.0.0.1. Needs wrk (`apt-get install wrk`), curl and python3.
# Usage: local/bench/peers.sh   (from anywhere; build the profiles first, e.g.
#   cargo build -p nightshift-local --bin nightshift
#   cargo build --profile emulator -p nightshift-local --bin nightshift)
set -euo pipefail
cd "$(dirname "$0")/../.."
PROFILES=${PROFILES:-"debug emulator"}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-9590}
command -v wrk > /dev/null || { echo "peers.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

server=""
stop() {
  if [ -n "$server" ]; then kill -INT "$server" 2> /dev/null || true; wait "$server" 2> /dev/null || true; server=""; fi
}
trap stop EXIT

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
    sleep 0.1
  done
  echo "peers.sh: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# Unsigned, as the emulator does not check signatures; moto reads the service from it.
export AUTHORIZATION='AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0'
base=""
measure() {
  local name=$1 endpoint=$2 url out rps p50 p99 errors ratio
  url=$(curl -sf -X POST -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'X-Amz-Target: AmazonSQS.CreateQueue' -H "Authorization: $AUTHORIZATION" -d '{"QueueName":"peers-bench"}' "$endpoint/" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["QueueUrl"])')
  out=$(QUEUE_URL=$url wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s local/bench/sqs-batch.lua "$endpoint/")
  errors=$(echo "$out" | awk '/Non-2xx or 3xx responses/ {print $5}')
  if [ -n "$errors" ]; then
    echo "peers.sh: $name answered $errors requests with an error" >&2
    echo "$out" >&2
    return 1
  fi
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  if [ -z "$base" ]; then base=$rps; fi
  ratio=$(python3 -c "print(f'{$rps / $base:.2f}x')")
  python3 -c "print(f'| $name | {$rps * 10:,.0f} | $p50 | $p99 | $ratio |')"
}

echo "| server | messages/s | p50 | p99 | vs first |"
echo "|---|---|---|---|---|"
for profile in $PROFILES; do
  binary=target/$profile/nightshift
  if [ ! -x "$binary" ]; then echo "peers.sh: $binary is not built" >&2; exit 1; fi
  "$binary" --port "$PORT" up --template tests/fixtures/templates/queues-only.yaml \
    --env-file none --ephemeral > "target/peers-$profile.log" 2>&1 &
  server=$!
  wait_port "$PORT"
  measure "nightshift ($profile profile)" "http://127.0.0.1:$PORT"
  stop
done
if command -v moto_server > /dev/null; then
  moto_server -p "$PORT" > target/peers-moto.log 2>&1 &
  server=$!
  wait_port "$PORT"
  measure "moto_server $(python3 -c 'import moto; print(moto.__version__)')" "http://127.0.0.1:$PORT"
  stop
else
  echo "| moto_server | not installed | | | |"
fi
if command -v fakecloud > /dev/null; then
  fakecloud --addr "127.0.0.1:$PORT" > target/peers-fakecloud.log 2>&1 &
  server=$!
  wait_port "$PORT"
  measure "fakecloud" "http://127.0.0.1:$PORT"
  stop
else
  echo "| fakecloud | not installed | | | |"
fi
if [ -n "${ELASTICMQ_JAR:-}" ] && command -v java > /dev/null; then
  java -Dnode-address.port="$PORT" -Drest-sqs.bind-port="$PORT" -jar "$ELASTICMQ_JAR" > target/peers-elasticmq.log 2>&1 &
  server=$!
  wait_port "$PORT"
  measure "ElasticMQ" "http://127.0.0.1:$PORT"
  stop
else
  echo "| ElasticMQ | not installed (set ELASTICMQ_JAR) | | | |"
fi
