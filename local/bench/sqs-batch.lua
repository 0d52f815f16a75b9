-- wrk script of local/bench/peers.sh: SendMessageBatch of 10 messages of 256 bytes each
-- (AWS JSON 1.0, as aws-sdk-sqs and boto3 send it) to the queue at $QUEUE_URL.
local url = os.getenv("QUEUE_URL")
local payload = string.rep("x", 256)
local entries = {}
for i = 1, 10 do
  entries[i] = string.format('{"Id":"m%d","MessageBody":"%s"}', i, payload)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-amz-json-1.0"
wrk.headers["X-Amz-Target"] = "AmazonSQS.SendMessageBatch"
wrk.headers["Authorization"] = os.getenv("AUTHORIZATION")
wrk.body = string.format('{"QueueUrl":"%s","Entries":[%s]}', url, table.concat(entries, ","))
