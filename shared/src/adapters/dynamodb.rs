//! The store on DynamoDB (`dynamodb://TABLE`), the cloud default.
//!
//! One table, keys `pk` (partition) and `sk` (sort), both strings, with the TTL attribute
//! `ttl` (epoch seconds). It holds two kinds of items:
//!
//! - idempotency records: `pk = "idem#<key>"`, `sk = "idem"`, `expires_at` (ms), `owner`,
//!   `payload_hash`, and `result` once completed. A claim is one conditional `PutItem`
//!   (`attribute_not_exists(pk) OR expires_at <= now`), so two instances claiming one key
//!   never both win, and a record whose holder died (or whose TTL passed but DynamoDB has not
//!   deleted it yet) is taken over. The losing side reads the existing record from the failed
//!   condition (`ReturnValuesOnConditionCheckFailure`) instead of a second request. Completing
//!   is an `UpdateItem` and releasing a `DeleteItem`, both conditional on `owner`.
//! - job outcomes: `pk = "outcome#<UTC day>#<shard>"`, `sk = "<finished_at ms, 15
//!   digits>#<job id>"`. A job's outcome and its completed claim are written by one
//!   `TransactWriteItems`. A day of outcomes is [`OUTCOME_SHARDS`] `Query` calls on key ranges,
//!   never a `Scan`; the shard (a hash of the job id) spreads one day's writes over several
//!   partitions so a busy day does not hit one partition's write limit.
//!
//! - sequences: `pk = "seq#<key>"`, `sk = "seq"`, `last` (the last sequence number consumed)
//!   and `balance`. Consuming the next sequence number is one `UpdateItem` conditional on
//!   `last` being the one before (or absent, for 1), so two instances never both consume it;
//!   when the condition fails, a strongly consistent `GetItem` tells a duplicate from a gap.
//!
//! - suppressed recipients: `pk = "suppressed#<lowercased address>"`, `sk = "suppressed"`,
//!   `cause`, `detail` and `at` (ms). One `PutItem` records one, one `GetItem` per recipient
//!   reads it before a send; no `ttl`, so an address stays suppressed until someone deletes
//!   its item.
//!
//! Claims and outcomes carry `ttl`, so DynamoDB deletes expired claims and old outcomes by
//! itself; sequences are kept (a key's order must outlive every redelivery).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use tokio::sync::OnceCell;

use crate::contracts::{CONTRACT_VERSION, JobOutcome, OutcomeStatus};
use crate::ports::{
    Claim, ClaimRequest, Existing, SequenceOutcome, Settled, Store, StoreError, Suppression,
    SuppressionCause, claim_decision, suppression_key,
};

/// Name of the partition key attribute (a string).
pub const PARTITION_KEY: &str = "pk";
/// Name of the sort key attribute (a string).
pub const SORT_KEY: &str = "sk";
/// Name of the TTL attribute (epoch seconds), as the table's `TimeToLiveSpecification` names it.
pub const TTL_ATTRIBUTE: &str = "ttl";
/// Partition keys of idempotency records start with this (IAM policies match on it).
pub const IDEMPOTENCY_PREFIX: &str = "idem#";
/// Partition keys of job outcomes start with this (IAM policies match on it).
pub const OUTCOME_PREFIX: &str = "outcome#";
/// Partition keys of per-key sequences start with this (IAM policies match on it).
pub const SEQUENCE_PREFIX: &str = "seq#";
/// Partition keys of suppressed recipients start with this (IAM policies match on it).
pub const SUPPRESSION_PREFIX: &str = "suppressed#";
/// How many partitions one day of outcomes is spread over.
pub const OUTCOME_SHARDS: u32 = 4;
/// How long outcomes are kept by default (the TTL on outcome items): 90 days.
pub const DEFAULT_OUTCOME_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

const IDEMPOTENCY_SORT_KEY: &str = "idem";
const EXPIRES_AT: &str = "expires_at";
const RESULT: &str = "result";
const OWNER: &str = "owner";
const PAYLOAD_HASH: &str = "payload_hash";
const SEQUENCE_SORT_KEY: &str = "seq";
const SUPPRESSION_SORT_KEY: &str = "suppressed";
const CAUSE: &str = "cause";
const DETAIL: &str = "detail";
const AT: &str = "at";
const LAST: &str = "last";
const BALANCE: &str = "balance";
/// Consumes the next sequence number of a key, adding `:delta` to its balance.
const CONSUME_EXPRESSION: &str =
    "SET #last = :seq, #balance = if_not_exists(#balance, :zero) + :delta";
/// Sets the result of a claim its owner still holds.
const COMPLETE_EXPRESSION: &str = "SET #result = :result, #exp = :exp, #ttl = :ttl";
const OWNER_CONDITION: &str = "#owner = :owner";
/// Pages of one `Query` read before giving up: 1 MB each, far beyond a day of outcomes.
const MAX_PAGES: usize = 10_000;
/// Days one `outcomes_between` call may span: a report needs one or two.
const MAX_DAYS: u64 = 366;
/// Attempts at a claim when the record changes between the failed condition and its read.
const CLAIM_ATTEMPTS: usize = 3;

/// Error codes DynamoDB uses for throttling, conflicts and overload: retrying can succeed.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionConflictException",
    "ReplicatedWriteConflictException",
    "RequestTimeout",
];

/// The DynamoDB store.
#[derive(Clone)]
pub struct DynamoStore {
    client: Arc<OnceCell<Client>>,
    table: String,
    outcome_retention: Duration,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .field("outcome_retention", &self.outcome_retention)
            .finish()
    }
}

/// Checks a table name against DynamoDB's rules: 3 to 255 characters of `A-Z a-z 0-9 _ - .`.
pub fn validate_table_name(name: &str) -> Result<(), String> {
    let ok_len = (3..=255).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(format!(
            "invalid table name {name:?}: 3 to 255 characters of A-Z, a-z, 0-9, _, - and ."
        ))
    }
}

impl DynamoStore {
    /// Uses `client` on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client: Arc::new(OnceCell::new_with(Some(client))),
            table: table.into(),
            outcome_retention: DEFAULT_OUTCOME_RETENTION,
        }
    }

    /// Uses `table` with a client built from the environment on first use (region,
    /// credentials and `AWS_ENDPOINT_URL_DYNAMODB` as the SDK reads them), so configuration
    /// stays synchronous and a function that never touches the store never loads it.
    pub fn lazy(table: impl Into<String>) -> Self {
        DynamoStore {
            client: Arc::new(OnceCell::new()),
            table: table.into(),
            outcome_retention: DEFAULT_OUTCOME_RETENTION,
        }
    }

    /// Keeps outcomes for `retention` (their TTL) instead of [`DEFAULT_OUTCOME_RETENTION`].
    pub fn with_outcome_retention(mut self, retention: Duration) -> Self {
        self.outcome_retention = retention;
        self
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async { Client::new(&crate::adapters::aws::aws_sdk_config().await) })
            .await
    }
}

/// Sorts an SDK error into transient or permanent.
fn classify<E>(
    what: &str,
    err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = format!(
        "dynamodb {what}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&err)
    );
    let transient = match &err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || service
                    .err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => true,
    };
    if transient {
        StoreError::Transient(text)
    } else {
        StoreError::Permanent(text)
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// TTL value for an expiry: whole seconds, rounded up so an item is never deleted early.
fn ttl_seconds(t: DateTime<Utc>) -> i64 {
    let ms = t.timestamp_millis();
    ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn sequence_pk(key: &str) -> String {
    format!("{SEQUENCE_PREFIX}{key}")
}

fn idempotency_pk(key: &str) -> String {
    format!("{IDEMPOTENCY_PREFIX}{key}")
}

/// FNV-1a of the job id: stable across processes and versions, unlike `DefaultHasher`.
fn shard_of(job_id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in job_id.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % OUTCOME_SHARDS
}

fn outcome_pk(day: NaiveDate, shard: u32) -> String {
    format!("{OUTCOME_PREFIX}{day}#{shard}")
}

/// The time part of an outcome's sort key: fixed width so string order is time order.
fn time_key(t: DateTime<Utc>) -> String {
    format!("{:015}", ms(t).max(0))
}

fn outcome_sk(o: &JobOutcome) -> String {
    format!("{}#{}", time_key(o.finished_at), o.job_id)
}

type Item = HashMap<String, AttributeValue>;

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        other => Err(StoreError::Permanent(format!(
            "attribute {name} is not a string: {other:?}"
        ))),
    }
}

fn get_opt_s(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        other => Err(StoreError::Permanent(format!(
            "attribute {name} is not a string: {other:?}"
        ))),
    }
}

fn get_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|e| StoreError::Permanent(format!("attribute {name}={v:?}: {e}"))),
        other => Err(StoreError::Permanent(format!(
            "attribute {name} is not a number: {other:?}"
        ))),
    }
}

/// An idempotency item, as [`claim_decision`] reads it.
fn record_of(item: &Item) -> Result<Existing, StoreError> {
    Ok(Existing {
        result: get_opt_s(item, RESULT)?,
        expires_at: from_ms(get_n(item, EXPIRES_AT)?),
        payload_hash: get_opt_s(item, PAYLOAD_HASH)?,
    })
}

fn outcome_of(item: &Item) -> Result<JobOutcome, StoreError> {
    let job_id = get_s(item, "job_id")?.to_string();
    let stored = get_s(item, "status")?;
    let Some(status) = OutcomeStatus::from_stored(stored) else {
        return Err(StoreError::Permanent(format!(
            "outcome {job_id} has unknown status {stored:?}"
        )));
    };
    Ok(JobOutcome {
        v: CONTRACT_VERSION,
        kind: get_s(item, "kind")?.to_string(),
        status,
        submitted_at: from_ms(get_n(item, "submitted_at")?),
        // Items written before finish times were filed by submission time.
        finished_at: match item.get("finished_at") {
            Some(_) => from_ms(get_n(item, "finished_at")?),
            None => from_ms(get_n(item, "submitted_at")?),
        },
        latency_ms: get_n(item, "latency_ms")?.max(0) as u64,
        error: get_opt_s(item, "error")?,
        job_id,
    })
}

fn complete_names() -> HashMap<String, String> {
    [
        ("#result", RESULT),
        ("#exp", EXPIRES_AT),
        ("#ttl", TTL_ATTRIBUTE),
        ("#owner", OWNER),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn complete_values(owner: &str, result: &str, expires_at: DateTime<Utc>) -> Item {
    [
        (":result", s(result)),
        (":exp", n(ms(expires_at))),
        (":ttl", n(ttl_seconds(expires_at))),
        (":owner", s(owner)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A write conditional on the claim's owner: a failed condition means the claim is not ours.
fn owned<T, E>(
    what: &str,
    result: Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
) -> Result<Settled, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(Settled::Done),
        Err(SdkError::ServiceError(service))
            if service.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(Settled::NotOwner)
        }
        Err(e) => Err(classify(what, e)),
    }
}

/// Reasons DynamoDB cancels a transaction for that a retry can get past: a conflicting
/// concurrent write, throttling, capacity.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html>
const TRANSIENT_CANCELLATIONS: &[&str] = &[
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
];

/// The reason codes of a cancelled transaction, one per item (`None` for items that were fine).
fn cancellation_codes(
    err: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
) -> Vec<&str> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match err {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => cancelled
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None"))
            .collect(),
        _ => Vec::new(),
    }
}

/// True when a cancelled transaction failed only on the claim's owner condition.
fn lost_the_claim(
    err: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
) -> bool {
    let codes = cancellation_codes(err);
    codes.contains(&"ConditionalCheckFailed")
        && codes
            .iter()
            .all(|c| matches!(*c, "None" | "ConditionalCheckFailed"))
}

impl DynamoStore {
    /// The item of a job outcome, in its day and shard by finish time.
    fn outcome_item(&self, outcome: &JobOutcome) -> Item {
        let day = outcome.finished_at.date_naive();
        let retention = chrono::Duration::from_std(self.outcome_retention)
            .unwrap_or(chrono::Duration::days(90));
        let mut item: Item = [
            (PARTITION_KEY, s(outcome_pk(day, shard_of(&outcome.job_id)))),
            (SORT_KEY, s(outcome_sk(outcome))),
            ("v", n(i64::from(outcome.v))),
            ("job_id", s(&outcome.job_id)),
            ("kind", s(&outcome.kind)),
            ("status", s(outcome.status.as_str())),
            ("submitted_at", n(ms(outcome.submitted_at))),
            ("finished_at", n(ms(outcome.finished_at))),
            (
                "latency_ms",
                n(i64::try_from(outcome.latency_ms).unwrap_or(i64::MAX)),
            ),
            (
                TTL_ATTRIBUTE,
                n(ttl_seconds(outcome.finished_at + retention)),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(error) = &outcome.error {
            item.insert("error".into(), s(error));
        }
        item
    }

    /// Consumes `sequence` of `key` with `delta` (0 for a skip): one conditional
    /// `UpdateItem`; when its condition fails, a strongly consistent read of `last` says
    /// whether the number was consumed already or an earlier one is missing.
    /// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html>
    async fn consume(
        &self,
        key: &str,
        sequence: u64,
        delta: i64,
    ) -> Result<SequenceOutcome, StoreError> {
        let stored = i64::try_from(sequence).map_err(|_| {
            StoreError::Permanent(format!(
                "sequence {sequence} of {key:?} is beyond what the store keeps"
            ))
        })?;
        for _ in 0..CLAIM_ATTEMPTS {
            let update = self
                .client()
                .await
                .update_item()
                .table_name(&self.table)
                .key(PARTITION_KEY, s(sequence_pk(key)))
                .key(SORT_KEY, s(SEQUENCE_SORT_KEY))
                .update_expression(CONSUME_EXPRESSION)
                .expression_attribute_names("#last", LAST)
                .expression_attribute_names("#balance", BALANCE)
                .expression_attribute_values(":seq", n(stored))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":delta", n(delta))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
            let update = if sequence == 1 {
                update.condition_expression("attribute_not_exists(#last)")
            } else {
                update
                    .condition_expression("#last = :prev")
                    .expression_attribute_values(":prev", n(stored - 1))
            };
            match update.send().await {
                Ok(out) => {
                    let balance = out
                        .attributes()
                        .ok_or_else(|| {
                            StoreError::Permanent(format!(
                                "dynamodb update_item of {key:?} returned no attributes"
                            ))
                        })
                        .and_then(|item| get_n(item, BALANCE))?;
                    return Ok(SequenceOutcome::Applied { balance });
                }
                Err(SdkError::ServiceError(service))
                    if service.err().code() == Some("ConditionalCheckFailedException") => {}
                Err(e) => return Err(classify("update_item", e)),
            }
            let last = self
                .client()
                .await
                .get_item()
                .table_name(&self.table)
                .key(PARTITION_KEY, s(sequence_pk(key)))
                .key(SORT_KEY, s(SEQUENCE_SORT_KEY))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| classify("get_item", e))?
                .item()
                .map(|item| get_n(item, LAST))
                .transpose()?
                .unwrap_or(0);
            // `None`: the key moved on to just before this number between the two requests.
            if let Some(answer) = SequenceOutcome::decide(last.max(0) as u64, sequence) {
                return Ok(answer);
            }
        }
        Err(StoreError::Transient(format!(
            "sequence {sequence} of {key:?} kept racing with other writers"
        )))
    }

    /// Reads an idempotency record with a strongly consistent read.
    async fn read_record(&self, key: &str) -> Result<Option<Existing>, StoreError> {
        let out = self
            .client()
            .await
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, s(idempotency_pk(key)))
            .key(SORT_KEY, s(IDEMPOTENCY_SORT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("get_item", e))?;
        out.item().map(record_of).transpose()
    }

    /// Reads one shard of one day, `[from, to)`, every page.
    async fn query_partition(
        &self,
        pk: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        into: &mut Vec<JobOutcome>,
    ) -> Result<(), StoreError> {
        let client = self.client().await;
        let mut start: Option<Item> = None;
        for _ in 0..MAX_PAGES {
            // `sk` starts with the 15-digit time, so every key of [from, to) lies between the
            // bare `from` digits and the bare `to` digits, and a key at exactly `to` ("<to>#id")
            // sorts after the bare `to`.
            let out = client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", PARTITION_KEY)
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":lo", s(time_key(from)))
                .expression_attribute_values(":hi", s(time_key(to)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("query", e))?;
            for item in out.items() {
                into.push(outcome_of(item)?);
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(()),
            }
        }
        Err(StoreError::Permanent(format!(
            "query of {pk} did not finish within {MAX_PAGES} pages"
        )))
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn claim(&self, key: &str, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        let (now, in_progress_until) = (request.now, request.until);
        for _ in 0..CLAIM_ATTEMPTS {
            let put = self
                .client()
                .await
                .put_item()
                .table_name(&self.table)
                .item(PARTITION_KEY, s(idempotency_pk(key)))
                .item(SORT_KEY, s(IDEMPOTENCY_SORT_KEY))
                .item(EXPIRES_AT, n(ms(in_progress_until)))
                .item(TTL_ATTRIBUTE, n(ttl_seconds(in_progress_until)))
                .item(OWNER, s(request.owner))
                .item(PAYLOAD_HASH, s(request.payload_hash))
                .condition_expression("attribute_not_exists(#pk) OR #exp <= :now")
                .expression_attribute_names("#pk", PARTITION_KEY)
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_values(":now", n(ms(now)))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let existing = match put {
                Ok(_) => return Ok(Claim::Acquired),
                Err(e) => match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        match failed.item() {
                            Some(item) => Some(record_of(item)?),
                            // Endpoints that ignore ReturnValuesOnConditionCheckFailure: read it.
                            None => self.read_record(key).await?,
                        }
                    }
                    _ => return Err(classify("put_item", e)),
                },
            };
            match claim_decision(existing, request) {
                // The record expired or vanished between the condition and the read: try again.
                Claim::Acquired => continue,
                held => return Ok(held),
            }
        }
        Err(StoreError::Transient(format!(
            "claim of {key:?} kept racing with other writers"
        )))
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        result: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        let updated = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, s(idempotency_pk(key)))
            .key(SORT_KEY, s(IDEMPOTENCY_SORT_KEY))
            .update_expression(COMPLETE_EXPRESSION)
            .condition_expression(OWNER_CONDITION)
            .set_expression_attribute_names(Some(complete_names()))
            .set_expression_attribute_values(Some(complete_values(owner, result, expires_at)))
            .send()
            .await;
        owned("update_item", updated)
    }

    async fn release(&self, key: &str, owner: &str) -> Result<Settled, StoreError> {
        let deleted = self
            .client()
            .await
            .delete_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, s(idempotency_pk(key)))
            .key(SORT_KEY, s(IDEMPOTENCY_SORT_KEY))
            // Only our in-progress claim is released; a completed record, or a claim another
            // invocation took over after ours lapsed, stays.
            .condition_expression("attribute_not_exists(#result) AND #owner = :owner")
            .expression_attribute_names("#result", RESULT)
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        owned("delete_item", deleted)
    }

    async fn complete_with_outcome(
        &self,
        key: &str,
        owner: &str,
        result: &str,
        expires_at: DateTime<Utc>,
        outcome: &JobOutcome,
    ) -> Result<Settled, StoreError> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Permanent(e.to_string());
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.outcome_item(outcome)))
            .build()
            .map_err(build)?;
        let update = Update::builder()
            .table_name(&self.table)
            .key(PARTITION_KEY, s(idempotency_pk(key)))
            .key(SORT_KEY, s(IDEMPOTENCY_SORT_KEY))
            .update_expression(COMPLETE_EXPRESSION)
            .condition_expression(OWNER_CONDITION)
            .set_expression_attribute_names(Some(complete_names()))
            .set_expression_attribute_values(Some(complete_values(owner, result, expires_at)))
            .build()
            .map_err(build)?;
        let written = self
            .client()
            .await
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        match written {
            Ok(_) => Ok(Settled::Done),
            Err(SdkError::ServiceError(service))
                if service.err().is_transaction_canceled_exception()
                    && lost_the_claim(service.err()) =>
            {
                // The claim is no longer ours; the outcome still happened, so record it alone.
                self.record_outcome(outcome).await?;
                Ok(Settled::NotOwner)
            }
            Err(e) => {
                let transient = e.as_service_error().is_some_and(|err| {
                    cancellation_codes(err)
                        .iter()
                        .any(|c| TRANSIENT_CANCELLATIONS.contains(c))
                });
                Err(match classify("transact_write_items", e) {
                    StoreError::Permanent(text) if transient => StoreError::Transient(text),
                    other => other,
                })
            }
        }
    }

    async fn consume_in_sequence(
        &self,
        key: &str,
        sequence: u64,
        delta: Option<i64>,
    ) -> Result<SequenceOutcome, StoreError> {
        self.consume(key, sequence, delta.unwrap_or(0)).await
    }

    async fn record_outcome(&self, outcome: &JobOutcome) -> Result<(), StoreError> {
        self.client()
            .await
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.outcome_item(outcome)))
            .send()
            .await
            .map_err(|e| classify("put_item", e))?;
        Ok(())
    }

    async fn outcomes_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<JobOutcome>, StoreError> {
        let mut outcomes = Vec::new();
        if from >= to {
            return Ok(outcomes);
        }
        let first = from.date_naive();
        let last = (to - chrono::Duration::milliseconds(1)).date_naive();
        let days = (last - first).num_days().max(0) as u64 + 1;
        if days > MAX_DAYS {
            return Err(StoreError::Permanent(format!(
                "outcomes between {from} and {to}: {days} days is more than {MAX_DAYS}"
            )));
        }
        for offset in 0..days {
            let day = first
                .checked_add_days(Days::new(offset))
                .ok_or_else(|| StoreError::Permanent(format!("day {first} + {offset}")))?;
            for shard in 0..OUTCOME_SHARDS {
                self.query_partition(outcome_pk(day, shard), from, to, &mut outcomes)
                    .await?;
            }
        }
        // The key range is exact; times before 1970 are clamped to 0 in keys, so filter too.
        outcomes.retain(|o| o.finished_at >= from && o.finished_at < to);
        // A job recorded twice has an item per finish time: its latest outcome counts, once.
        crate::ports::latest_per_job(&mut outcomes);
        Ok(outcomes)
    }

    async fn suppress(&self, suppression: &Suppression) -> Result<(), StoreError> {
        let key = suppression_key(&suppression.address);
        self.client()
            .await
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, s(format!("{SUPPRESSION_PREFIX}{key}")))
            .item(SORT_KEY, s(SUPPRESSION_SORT_KEY))
            .item(CAUSE, s(suppression.cause.as_str()))
            .item(DETAIL, s(suppression.detail.clone()))
            .item(AT, n(ms(suppression.at)))
            .send()
            .await
            .map_err(|e| classify("put_item", e))?;
        Ok(())
    }

    async fn suppression(&self, address: &str) -> Result<Option<Suppression>, StoreError> {
        let key = suppression_key(address);
        // An eventually consistent read: a bounce recorded a second ago and missed once costs
        // at most one more send to that address, and halves the read's price.
        let out = self
            .client()
            .await
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, s(format!("{SUPPRESSION_PREFIX}{key}")))
            .key(SORT_KEY, s(SUPPRESSION_SORT_KEY))
            .send()
            .await
            .map_err(|e| classify("get_item", e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let cause = get_s(item, CAUSE)?;
        let cause = SuppressionCause::parse(cause).ok_or_else(|| {
            StoreError::Permanent(format!("suppression of {key} has unknown cause {cause:?}"))
        })?;
        Ok(Some(Suppression {
            address: key,
            cause,
            detail: get_s(item, DETAIL)?.to_string(),
            at: from_ms(get_n(item, AT)?),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_types::body::SdkBody;
    use serde_json::{Value, json};

    const ENDPOINT: &str = "https://dynamodb.eu-central-1.amazonaws.com/";

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn store(replay: &StaticReplayClient) -> DynamoStore {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .http_client(replay.clone())
            // One attempt: these tests are about request shapes and classification.
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        DynamoStore::new(Client::from_conf(config), "nightshift-state")
    }

    fn reply(status: u16, body: Value) -> ReplayEvent {
        ReplayEvent::new(
            http::Request::builder()
                .uri(ENDPOINT)
                .body(SdkBody::empty())
                .unwrap(),
            http::Response::builder()
                .status(status)
                .header("content-type", "application/x-amz-json-1.0")
                .body(SdkBody::from(body.to_string()))
                .unwrap(),
        )
    }

    fn error(code: &str, extra: Value) -> ReplayEvent {
        let mut body = json!({
            "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
            "message": format!("{code} in a test"),
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        reply(400, body)
    }

    /// The operation (from `X-Amz-Target`) and JSON body of each request sent.
    fn sent(replay: &StaticReplayClient) -> Vec<(String, Value)> {
        replay
            .actual_requests()
            .map(|r| {
                assert_eq!(r.uri(), ENDPOINT);
                let target = r.headers().get("x-amz-target").unwrap_or_default();
                let op = target
                    .strip_prefix("DynamoDB_20120810.")
                    .unwrap_or(target)
                    .to_string();
                let body = serde_json::from_slice(r.body().bytes().expect("buffered")).unwrap();
                (op, body)
            })
            .collect()
    }

    /// A suppression is one `PutItem` under its lowercased address (the IAM policy lets
    /// email-sender touch only `suppressed#` keys), read back with one `GetItem`.
    #[tokio::test]
    async fn a_suppression_is_one_put_and_one_get_by_lowercased_address() {
        let item = json!({"pk": {"S": "suppressed#ada@example.com"}, "sk": {"S": "suppressed"},
            "cause": {"S": "bounce"}, "detail": {"S": "Permanent/General"},
            "at": {"N": "1795253400000"}});
        let replay = StaticReplayClient::new(vec![
            reply(200, json!({})),
            reply(200, json!({"Item": item})),
            reply(200, json!({})),
        ]);
        let s = store(&replay);
        let suppression = Suppression {
            address: "Ada@Example.com".into(),
            cause: SuppressionCause::Bounce,
            detail: "Permanent/General".into(),
            at: t("2026-11-21T09:30:00Z"),
        };
        s.suppress(&suppression).await.unwrap();
        assert_eq!(
            s.suppression("ADA@example.com").await.unwrap(),
            Some(Suppression {
                address: "ada@example.com".into(),
                ..suppression
            })
        );
        assert_eq!(s.suppression("bob@example.com").await.unwrap(), None);
        let requests = sent(&replay);
        assert_eq!(
            requests[0],
            (
                "PutItem".to_string(),
                json!({"TableName": "nightshift-state", "Item": item})
            )
        );
        assert_eq!(
            requests[1],
            (
                "GetItem".to_string(),
                json!({"TableName": "nightshift-state",
                    "Key": {"pk": {"S": "suppressed#ada@example.com"}, "sk": {"S": "suppressed"}}})
            )
        );
    }

    #[tokio::test]
    async fn a_sequence_number_is_one_conditional_update_then_a_consistent_read() {
        let item = |last: i64, balance: i64| {
            json!({"pk": {"S": "seq#inventory:A"}, "sk": {"S": "seq"},
                   "last": {"N": last.to_string()}, "balance": {"N": balance.to_string()}})
        };
        let replay = StaticReplayClient::new(vec![
            reply(200, json!({"Attributes": item(1, 10)})),
            reply(200, json!({"Attributes": item(2, 7)})),
            error("ConditionalCheckFailedException", json!({})),
            reply(200, json!({"Item": item(2, 7)})),
            error("ConditionalCheckFailedException", json!({})),
            reply(200, json!({"Item": item(2, 7)})),
            error("ThrottlingException", json!({})),
        ]);
        let s = store(&replay);
        let key = "inventory:A";
        assert_eq!(
            s.apply_in_sequence(key, 1, 10).await.unwrap(),
            SequenceOutcome::Applied { balance: 10 }
        );
        assert_eq!(
            s.apply_in_sequence(key, 2, -3).await.unwrap(),
            SequenceOutcome::Applied { balance: 7 }
        );
        assert_eq!(
            s.apply_in_sequence(key, 2, -3).await.unwrap(),
            SequenceOutcome::AlreadyApplied
        );
        assert_eq!(
            s.skip_in_sequence(key, 5).await.unwrap(),
            SequenceOutcome::Gap { expected: 3 }
        );
        assert!(matches!(
            s.apply_in_sequence(key, 3, 1).await,
            Err(StoreError::Transient(_))
        ));
        let requests = sent(&replay);
        let ops: Vec<&str> = requests.iter().map(|(op, _)| op.as_str()).collect();
        assert_eq!(
            ops,
            [
                "UpdateItem",
                "UpdateItem",
                "UpdateItem",
                "GetItem",
                "UpdateItem",
                "GetItem",
                "UpdateItem"
            ]
        );
        // The first number: the item must not exist yet.
        assert_eq!(
            requests[0].1,
            json!({
                "TableName": "nightshift-state",
                "Key": {"pk": {"S": "seq#inventory:A"}, "sk": {"S": "seq"}},
                "UpdateExpression": CONSUME_EXPRESSION,
                "ConditionExpression": "attribute_not_exists(#last)",
                "ExpressionAttributeNames": {"#last": "last", "#balance": "balance"},
                "ExpressionAttributeValues": {
                    ":seq": {"N": "1"}, ":zero": {"N": "0"}, ":delta": {"N": "10"}
                },
                "ReturnValues": "ALL_NEW"
            })
        );
        // The next ones: `last` must be the one before.
        assert_eq!(requests[1].1["ConditionExpression"], "#last = :prev");
        assert_eq!(
            requests[1].1["ExpressionAttributeValues"][":prev"],
            json!({"N": "1"})
        );
        // A skip adds nothing.
        assert_eq!(
            requests[4].1["ExpressionAttributeValues"][":delta"],
            json!({"N": "0"})
        );
        assert_eq!(requests[3].1["ConsistentRead"], json!(true));
    }

    #[tokio::test]
    async fn claim_is_one_conditional_put_with_ttl() {
        let replay = StaticReplayClient::new(vec![reply(200, json!({}))]);
        let now = t("2026-11-22T10:00:00Z");
        let until = t("2026-11-22T10:00:30.250Z");
        let request = ClaimRequest {
            now,
            until,
            owner: "o-1",
            payload_hash: "h-1",
        };
        let claim = store(&replay).claim("email:r-1", &request).await.unwrap();
        assert_eq!(claim, Claim::Acquired);
        let requests = sent(&replay);
        assert_eq!(requests.len(), 1);
        let (op, body) = &requests[0];
        assert_eq!(op, "PutItem");
        assert_eq!(
            body,
            &json!({
                "TableName": "nightshift-state",
                "Item": {
                    "pk": {"S": "idem#email:r-1"},
                    "sk": {"S": "idem"},
                    "expires_at": {"N": until.timestamp_millis().to_string()},
                    // Rounded up: DynamoDB must not delete the claim before it expires.
                    "ttl": {"N": (until.timestamp() + 1).to_string()},
                    "owner": {"S": "o-1"},
                    "payload_hash": {"S": "h-1"},
                },
                "ConditionExpression": "attribute_not_exists(#pk) OR #exp <= :now",
                "ExpressionAttributeNames": {"#pk": "pk", "#exp": "expires_at"},
                "ExpressionAttributeValues": {":now": {"N": now.timestamp_millis().to_string()}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            })
        );
    }

    #[tokio::test]
    async fn a_held_claim_is_read_from_the_failed_condition() {
        let until = t("2026-11-22T10:00:30Z");
        let held = |result: Option<&str>| {
            let mut item = json!({
                "pk": {"S": "idem#k"},
                "sk": {"S": "idem"},
                "expires_at": {"N": until.timestamp_millis().to_string()},
                "ttl": {"N": until.timestamp().to_string()},
            });
            if let Some(r) = result {
                item["result"] = json!({"S": r});
            }
            error("ConditionalCheckFailedException", json!({"Item": item}))
        };
        let now = t("2026-11-22T10:00:00Z");
        let replay = StaticReplayClient::new(vec![held(Some("m-1")), held(None)]);
        let s = store(&replay);
        let request = ClaimRequest {
            now,
            until,
            owner: "o",
            payload_hash: "h",
        };
        assert_eq!(
            s.claim("k", &request).await.unwrap(),
            Claim::Completed("m-1".into())
        );
        assert_eq!(
            s.claim("k", &request).await.unwrap(),
            Claim::InProgress { until }
        );
        assert_eq!(sent(&replay).len(), 2, "no extra reads");
    }

    #[tokio::test]
    async fn without_the_old_item_the_claim_reads_it_consistently() {
        let until = t("2026-11-22T10:00:30Z");
        let replay = StaticReplayClient::new(vec![
            error("ConditionalCheckFailedException", json!({})),
            reply(
                200,
                json!({"Item": {
                    "pk": {"S": "idem#k"}, "sk": {"S": "idem"},
                    "expires_at": {"N": until.timestamp_millis().to_string()},
                }}),
            ),
        ]);
        let request = ClaimRequest {
            now: t("2026-11-22T10:00:00Z"),
            until,
            owner: "o",
            payload_hash: "h",
        };
        assert_eq!(
            store(&replay).claim("k", &request).await.unwrap(),
            Claim::InProgress { until }
        );
        let requests = sent(&replay);
        assert_eq!(requests[1].0, "GetItem");
        assert_eq!(requests[1].1["ConsistentRead"], json!(true));
        assert_eq!(
            requests[1].1["Key"],
            json!({"pk": {"S": "idem#k"}, "sk": {"S": "idem"}})
        );
    }

    #[tokio::test]
    async fn throttling_is_transient_a_missing_table_is_permanent() {
        let cases = [
            ("ProvisionedThroughputExceededException", true),
            ("ThrottlingException", true),
            ("RequestLimitExceeded", true),
            ("TransactionConflictException", true),
            ("ResourceNotFoundException", false),
            ("ValidationException", false),
            ("AccessDeniedException", false),
        ];
        for (code, transient) in cases {
            let replay = StaticReplayClient::new(vec![error(code, json!({}))]);
            let err = store(&replay)
                .complete("k", "o", "done", t("2026-11-23T00:00:00Z"))
                .await
                .unwrap_err();
            assert_eq!(
                matches!(err, StoreError::Transient(_)),
                transient,
                "{code}: {err}"
            );
            assert!(err.to_string().contains(code), "{err}");
        }
        let replay = StaticReplayClient::new(vec![reply(500, json!({}))]);
        let err = store(&replay).release("k", "o").await.unwrap_err();
        assert!(matches!(err, StoreError::Transient(_)), "{err}");
    }

    #[tokio::test]
    async fn release_deletes_only_its_own_in_progress_claim() {
        let replay = StaticReplayClient::new(vec![
            reply(200, json!({})),
            error("ConditionalCheckFailedException", json!({})),
        ]);
        let s = store(&replay);
        assert_eq!(s.release("k", "o").await.unwrap(), Settled::Done);
        // A completed record, or another owner's, fails the condition and stays.
        assert_eq!(s.release("k", "o").await.unwrap(), Settled::NotOwner);
        let requests = sent(&replay);
        assert_eq!(requests[0].0, "DeleteItem");
        assert_eq!(
            requests[0].1["ConditionExpression"],
            "attribute_not_exists(#result) AND #owner = :owner"
        );
        assert_eq!(
            requests[0].1["ExpressionAttributeNames"],
            json!({"#result": "result", "#owner": "owner"})
        );
        assert_eq!(
            requests[0].1["ExpressionAttributeValues"],
            json!({":owner": {"S": "o"}})
        );
    }

    #[tokio::test]
    async fn complete_with_outcome_is_one_transaction_and_survives_a_lost_claim() {
        let cancelled = error(
            "TransactionCanceledException",
            json!({"CancellationReasons": [{"Code": "None"}, {"Code": "ConditionalCheckFailed"}]}),
        );
        let replay = StaticReplayClient::new(vec![
            reply(200, json!({})),
            cancelled,
            reply(200, json!({})),
        ]);
        let s = store(&replay);
        let o = outcome("job-1", "2026-11-21T10:00:00Z", None);
        let expires = t("2026-12-05T10:00:00Z");
        assert_eq!(
            s.complete_with_outcome("job:job-1", "o", "done", expires, &o)
                .await
                .unwrap(),
            Settled::Done
        );
        assert_eq!(
            s.complete_with_outcome("job:job-1", "o", "done", expires, &o)
                .await
                .unwrap(),
            Settled::NotOwner
        );
        let requests = sent(&replay);
        assert_eq!(requests[0].0, "TransactWriteItems");
        let items = requests[0].1["TransactItems"].as_array().unwrap();
        let without_ttl = |mut v: Value| {
            v.as_object_mut().unwrap().remove("ttl");
            v
        };
        assert_eq!(without_ttl(items[0]["Put"]["Item"].clone()), item(&o));
        let update = &items[1]["Update"];
        assert_eq!(update["ConditionExpression"], OWNER_CONDITION);
        assert_eq!(
            update["ExpressionAttributeValues"][":owner"],
            json!({"S": "o"})
        );
        // The claim was lost: the outcome is still recorded, alone.
        assert_eq!(requests[2].0, "PutItem");
        assert_eq!(without_ttl(requests[2].1["Item"].clone()), item(&o));
    }

    fn outcome(id: &str, at: &str, error: Option<&str>) -> JobOutcome {
        JobOutcome {
            v: 1,
            job_id: id.into(),
            kind: "order.placed".into(),
            status: if error.is_some() {
                OutcomeStatus::Failed
            } else {
                OutcomeStatus::Succeeded
            },
            submitted_at: t(at) - chrono::Duration::hours(1),
            finished_at: t(at),
            latency_ms: 42,
            error: error.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn outcomes_go_to_a_day_shard_with_a_time_ordered_sort_key() {
        let replay = StaticReplayClient::new(vec![reply(200, json!({}))]);
        let o = outcome("job-1", "2026-11-21T23:59:59.500Z", Some("boom"));
        store(&replay)
            .with_outcome_retention(Duration::from_secs(3600))
            .record_outcome(&o)
            .await
            .unwrap();
        let (op, body) = &sent(&replay)[0];
        assert_eq!(op, "PutItem");
        assert_eq!(
            body["Item"],
            json!({
                "pk": {"S": format!("outcome#2026-11-21#{}", shard_of("job-1"))},
                "sk": {"S": format!("{:015}#job-1", o.finished_at.timestamp_millis())},
                "v": {"N": "1"},
                "job_id": {"S": "job-1"},
                "kind": {"S": "order.placed"},
                "status": {"S": "failed"},
                "submitted_at": {"N": o.submitted_at.timestamp_millis().to_string()},
                "finished_at": {"N": o.finished_at.timestamp_millis().to_string()},
                "latency_ms": {"N": "42"},
                "error": {"S": "boom"},
                "ttl": {"N": (o.finished_at.timestamp() + 3600 + 1).to_string()},
            })
        );
        assert!(body.get("ConditionExpression").is_none());
    }

    fn item(o: &JobOutcome) -> Value {
        json!({
            "pk": {"S": outcome_pk(o.finished_at.date_naive(), shard_of(&o.job_id))},
            "sk": {"S": outcome_sk(o)},
            "v": {"N": "1"},
            "job_id": {"S": o.job_id},
            "kind": {"S": o.kind},
            "status": {"S": o.status.as_str()},
            "submitted_at": {"N": o.submitted_at.timestamp_millis().to_string()},
            "finished_at": {"N": o.finished_at.timestamp_millis().to_string()},
            "latency_ms": {"N": o.latency_ms.to_string()},
        })
    }

    #[tokio::test]
    async fn a_day_is_one_paged_query_per_shard_and_no_scan() {
        let a = outcome("a", "2026-11-21T08:00:00Z", None);
        let b = outcome("b", "2026-11-21T07:00:00Z", None);
        let c = outcome("c", "2026-11-21T09:00:00Z", None);
        let page_key = json!({"pk": {"S": "outcome#2026-11-21#0"}, "sk": {"S": outcome_sk(&a)}});
        let replay = StaticReplayClient::new(vec![
            reply(
                200,
                json!({"Items": [item(&a)], "LastEvaluatedKey": page_key}),
            ),
            reply(200, json!({"Items": [item(&b)]})),
            reply(200, json!({"Items": []})),
            reply(200, json!({"Items": [item(&c)]})),
            reply(200, json!({"Items": []})),
        ]);
        let from = t("2026-11-21T00:00:00Z");
        let to = t("2026-11-22T00:00:00Z");
        let got = store(&replay).outcomes_between(from, to).await.unwrap();
        assert_eq!(got, vec![b, a, c]);
        let requests = sent(&replay);
        assert_eq!(requests.len(), 5);
        assert!(requests.iter().all(|(op, _)| op == "Query"));
        let (_, first) = &requests[0];
        assert_eq!(
            first["KeyConditionExpression"],
            "#pk = :pk AND #sk BETWEEN :lo AND :hi"
        );
        assert_eq!(first["ConsistentRead"], json!(true));
        assert_eq!(
            first["ExpressionAttributeValues"],
            json!({
                ":pk": {"S": "outcome#2026-11-21#0"},
                ":lo": {"S": format!("{:015}", from.timestamp_millis())},
                ":hi": {"S": format!("{:015}", to.timestamp_millis())},
            })
        );
        assert!(first.get("ExclusiveStartKey").is_none());
        assert_eq!(requests[1].1["ExclusiveStartKey"], page_key);
        let partitions: Vec<&str> = requests
            .iter()
            .map(|(_, b)| b["ExpressionAttributeValues"][":pk"]["S"].as_str().unwrap())
            .collect();
        assert_eq!(
            partitions,
            [
                "outcome#2026-11-21#0",
                "outcome#2026-11-21#0",
                "outcome#2026-11-21#1",
                "outcome#2026-11-21#2",
                "outcome#2026-11-21#3"
            ]
        );
    }

    #[tokio::test]
    async fn a_transaction_cancelled_by_a_conflict_is_transient_by_validation_permanent() {
        let cancelled = |code: &str| {
            error(
                "TransactionCanceledException",
                json!({"CancellationReasons": [{"Code": "None"}, {"Code": code}]}),
            )
        };
        let replay = StaticReplayClient::new(vec![
            cancelled("TransactionConflict"),
            cancelled("ValidationError"),
        ]);
        let s = store(&replay);
        let o = outcome("job-1", "2026-11-21T10:00:00Z", None);
        let expires = t("2026-12-05T10:00:00Z");
        let err = s
            .complete_with_outcome("job:job-1", "o", "done", expires, &o)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Transient(_)), "{err}");
        let err = s
            .complete_with_outcome("job:job-1", "o", "done", expires, &o)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Permanent(_)), "{err}");
    }

    #[tokio::test]
    async fn a_job_recorded_twice_counts_once_with_its_latest_outcome() {
        let first = outcome("a", "2026-11-21T08:00:00Z", Some("throttled"));
        let again = outcome("a", "2026-11-21T09:00:00Z", None);
        let other = outcome("b", "2026-11-21T08:30:00Z", None);
        let mut replies = vec![reply(
            200,
            json!({"Items": [item(&first), item(&other), item(&again)]}),
        )];
        replies.extend((1..OUTCOME_SHARDS).map(|_| reply(200, json!({"Items": []}))));
        let replay = StaticReplayClient::new(replies);
        let got = store(&replay)
            .outcomes_between(t("2026-11-21T00:00:00Z"), t("2026-11-22T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(got, vec![other, again]);
    }

    #[tokio::test]
    async fn a_local_day_spans_two_utc_days_and_empty_ranges_send_nothing() {
        let replay = StaticReplayClient::new(
            (0..2 * OUTCOME_SHARDS)
                .map(|_| reply(200, json!({"Items": []})))
                .collect(),
        );
        let s = store(&replay);
        // Berlin's 2026-11-21 is 2026-11-20T23:00Z .. 2026-11-21T23:00Z.
        let got = s
            .outcomes_between(t("2026-11-20T23:00:00Z"), t("2026-11-21T23:00:00Z"))
            .await
            .unwrap();
        assert!(got.is_empty());
        let days: Vec<String> = sent(&replay)
            .iter()
            .map(|(_, b)| {
                b["ExpressionAttributeValues"][":pk"]["S"].as_str().unwrap()[8..18].to_string()
            })
            .collect();
        assert_eq!(days.iter().filter(|d| *d == "2026-11-20").count(), 4);
        assert_eq!(days.iter().filter(|d| *d == "2026-11-21").count(), 4);
        let at = t("2026-11-21T00:00:00Z");
        assert!(s.outcomes_between(at, at).await.unwrap().is_empty());
        assert_eq!(sent(&replay).len(), 8);
    }

    #[test]
    fn names_ttl_and_shards() {
        assert!(validate_table_name("nightshift-prod-state").is_ok());
        assert!(validate_table_name("ab").is_err());
        assert!(validate_table_name("has space").is_err());
        assert_eq!(
            ttl_seconds(t("2026-11-22T10:00:00Z")),
            t("2026-11-22T10:00:00Z").timestamp()
        );
        assert_eq!(
            ttl_seconds(t("2026-11-22T10:00:00.001Z")),
            t("2026-11-22T10:00:01Z").timestamp()
        );
        // Stable: these values are in stored keys, a change would hide old outcomes.
        // FNV-1a 32 of each id, modulo 4.
        assert_eq!(["a", "b", "job-1", "order-7"].map(shard_of), [0, 1, 2, 3]);
        let counts = (0..1000).fold([0u32; OUTCOME_SHARDS as usize], |mut acc, i| {
            acc[shard_of(&format!("job-{i}")) as usize] += 1;
            acc
        });
        assert!(counts.iter().all(|c| (200..=300).contains(c)), "{counts:?}");
    }
}
