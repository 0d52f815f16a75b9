//! Message contracts between the functions: what goes on the queues and into the store.
//!
//! Every contract carries a version `v`; a reader accepts the versions it knows and rejects the
//! rest with [`ContractError::UnsupportedVersion`], so a producer that moves ahead never has its
//! messages half-understood. Parsing checks size first, then JSON, then the fields, and every
//! error says which field was wrong and why.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The contract version this crate writes and reads.
pub const CONTRACT_VERSION: u32 = 1;

/// Largest message body accepted, in bytes: the classic SQS limit, well under the 1 MiB
/// maximum, so an envelope plus the DLQ attributes always fits in one SQS message.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Most recipients one [`EmailRequest`] may address (SES allows 50 per message).
pub const MAX_RECIPIENTS: usize = 50;

/// Longest subject accepted (RFC 5322's line limit).
pub const MAX_SUBJECT_CHARS: usize = 998;

/// Why a message body was rejected. All of these are permanent: retrying cannot fix them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContractError {
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("message body is {size} bytes, over the {limit} byte limit")]
    TooLarge {
        /// Size of the rejected body.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// The body is not valid JSON, or does not have the contract's shape.
    #[error("malformed json at line {line} column {column}: {message}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What serde_json found wrong.
        message: String,
    },
    /// The contract version is not one this code reads.
    #[error("unsupported contract version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The `v` found in the message.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A field has an invalid value.
    #[error("field `{field}`: {reason}")]
    Field {
        /// Path of the field, like `to[2]` or `payload.items`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ContractError {
    /// Shorthand for a [`ContractError::Field`].
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ContractError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<serde_json::Error> for ContractError {
    fn from(err: serde_json::Error) -> Self {
        // serde_json appends " at line X column Y"; the position lives in its own fields.
        let text = err.to_string();
        let message = match text.rfind(" at line ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        ContractError::Json {
            line: err.line(),
            column: err.column(),
            message,
        }
    }
}

fn check_size(body: &str) -> Result<(), ContractError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ContractError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}

fn check_version(v: u32) -> Result<(), ContractError> {
    if v != CONTRACT_VERSION {
        return Err(ContractError::UnsupportedVersion {
            found: v,
            supported: CONTRACT_VERSION,
        });
    }
    Ok(())
}

/// Ids become idempotency keys, file names and log fields: keep them short and printable.
fn check_id(field: &str, id: &str) -> Result<(), ContractError> {
    if id.is_empty() {
        return Err(ContractError::field(field, "must not be empty"));
    }
    if id.len() > 128 {
        return Err(ContractError::field(
            field,
            format!("is {} characters, over the 128 limit", id.len()),
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(ContractError::field(
            field,
            format!("contains {c:?}; allowed are ASCII letters, digits and - _ . :"),
        ));
    }
    Ok(())
}

/// Implements `Deserialize` for a contract whose derived deserializer was made an inherent
/// function by `#[serde(remote = "Self")]`, so that it reads only a JSON object with named
/// fields. serde's derive also reads a JSON array as the fields in order, which accepted
/// `[1,"job-1","order.placed",{},"2026-11-21T09:30:00Z"]` as a job and made a wrapped body
/// (`[{...}]`) fail with a baffling type error about its first field; now anything but an
/// object gets "invalid type: sequence, expected struct X".
macro_rules! deserialize_only_from_object {
    ($ty:ident, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectVisitor;
                impl<'de> Visitor<'de> for ObjectVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$ty, A::Error> {
                        // The inherent (derived) function, not this trait method.
                        $ty::deserialize(MapAccessDeserializer::new(map))
                    }
                }
                deserializer.deserialize_map(ObjectVisitor)
            }
        }
    };
}

/// A [`JobEnvelope`] as it is on the wire, before `submitted_at` is read as a time: parsing
/// the time here (not in serde) lets its error name the field and the expected format.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
struct JobEnvelopeWire {
    v: u32,
    id: String,
    kind: String,
    payload: serde_json::Value,
    submitted_at: String,
}

deserialize_only_from_object!(JobEnvelopeWire, "struct JobEnvelope");

impl TryFrom<JobEnvelopeWire> for JobEnvelope {
    type Error = ContractError;

    fn try_from(wire: JobEnvelopeWire) -> Result<Self, ContractError> {
        Ok(JobEnvelope {
            v: wire.v,
            id: wire.id,
            kind: wire.kind,
            payload: wire.payload,
            submitted_at: parse_time("submitted_at", &wire.submitted_at)?,
        })
    }
}

/// A unit of background work on the jobs queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "JobEnvelopeWire")]
pub struct JobEnvelope {
    /// Contract version, [`CONTRACT_VERSION`].
    pub v: u32,
    /// Unique job id; the idempotency key of the job.
    pub id: String,
    /// Job kind, like `order.placed`; selects the handler.
    pub kind: String,
    /// Kind-specific payload, validated by the job's handler.
    pub payload: serde_json::Value,
    /// When the producer submitted the job.
    pub submitted_at: DateTime<Utc>,
}

impl JobEnvelope {
    /// Builds a version-1 envelope.
    pub fn new(
        id: impl Into<String>,
        kind: impl Into<String>,
        payload: serde_json::Value,
        submitted_at: DateTime<Utc>,
    ) -> Self {
        JobEnvelope {
            v: CONTRACT_VERSION,
            id: id.into(),
            kind: kind.into(),
            payload,
            submitted_at,
        }
    }

    /// Parses and validates a message body.
    pub fn parse(body: &str) -> Result<Self, ContractError> {
        check_size(body)?;
        let wire: JobEnvelopeWire = serde_json::from_str(body)?;
        let envelope = JobEnvelope::try_from(wire)?;
        envelope.validate()?;
        Ok(envelope)
    }

    /// Checks version, id and kind.
    pub fn validate(&self) -> Result<(), ContractError> {
        check_version(self.v)?;
        check_id("id", &self.id)?;
        if self.kind.is_empty() {
            return Err(ContractError::field("kind", "must not be empty"));
        }
        if !self
            .kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ContractError::field(
                "kind",
                format!(
                    "{:?} must be lowercase letters, digits and . _ -",
                    self.kind
                ),
            ));
        }
        Ok(())
    }
}

/// A request to send one email, on the emails queue.
// `remote = "Self"` makes the derives inherent functions, so the trait impls below can
// wrap them: deserializing reads only a JSON object (see `deserialize_only_from_object`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct EmailRequest {
    /// Contract version, [`CONTRACT_VERSION`].
    pub v: u32,
    /// Unique request id; the email is sent at most once per id.
    pub id: String,
    /// Recipient addresses, 1 to [`MAX_RECIPIENTS`].
    pub to: Vec<String>,
    /// Subject line; no CR or LF.
    pub subject: String,
    /// Name of a template to render; exactly one of `template` and `body` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Plain-text body to send as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Template variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, serde_json::Value>,
}

impl Serialize for EmailRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EmailRequest::serialize(self, serializer)
    }
}

deserialize_only_from_object!(EmailRequest, "struct EmailRequest");

impl EmailRequest {
    /// A version-1 request rendering `template` with `vars`.
    pub fn from_template(
        id: impl Into<String>,
        to: Vec<String>,
        subject: impl Into<String>,
        template: impl Into<String>,
        vars: BTreeMap<String, serde_json::Value>,
    ) -> Self {
        EmailRequest {
            v: CONTRACT_VERSION,
            id: id.into(),
            to,
            subject: subject.into(),
            template: Some(template.into()),
            body: None,
            vars,
        }
    }

    /// Parses and validates a message body.
    pub fn parse(body: &str) -> Result<Self, ContractError> {
        check_size(body)?;
        let request: EmailRequest = serde_json::from_str(body)?;
        request.validate()?;
        Ok(request)
    }

    /// Checks version, id, recipients (syntax only: the mailer has the final word), subject
    /// and the template/body choice.
    pub fn validate(&self) -> Result<(), ContractError> {
        check_version(self.v)?;
        check_id("id", &self.id)?;
        if self.to.is_empty() {
            return Err(ContractError::field("to", "needs at least one recipient"));
        }
        if self.to.len() > MAX_RECIPIENTS {
            return Err(ContractError::field(
                "to",
                format!(
                    "{} recipients, over the {MAX_RECIPIENTS} limit",
                    self.to.len()
                ),
            ));
        }
        for (i, address) in self.to.iter().enumerate() {
            validate_address(address)
                .map_err(|reason| ContractError::field(format!("to[{i}]"), reason))?;
        }
        if self.subject.trim().is_empty() {
            return Err(ContractError::field("subject", "must not be empty"));
        }
        check_header_value("subject", &self.subject)?;
        if self.subject.chars().count() > MAX_SUBJECT_CHARS {
            return Err(ContractError::field(
                "subject",
                format!("over the {MAX_SUBJECT_CHARS} character limit"),
            ));
        }
        match (&self.template, &self.body) {
            (Some(_), Some(_)) => Err(ContractError::field(
                "template",
                "set either `template` or `body`, not both",
            )),
            (None, None) => Err(ContractError::field(
                "body",
                "set either `template` or `body`",
            )),
            (Some(t), None) if t.is_empty() => {
                Err(ContractError::field("template", "must not be empty"))
            }
            _ => Ok(()),
        }
    }
}

/// Rejects CR and LF in a value bound for a mail header: they would let a sender inject
/// headers (`Bcc:`) or a second body.
pub fn check_header_value(field: &str, value: &str) -> Result<(), ContractError> {
    if let Some(pos) = value.find(['\r', '\n']) {
        return Err(ContractError::field(
            field,
            format!("contains a line break at byte {pos} (header injection)"),
        ));
    }
    Ok(())
}

/// Checks an email address: `local@domain`, printable ASCII, no spaces, no line breaks, a
/// domain with a dot-separated label structure. Returns the reason when it is invalid.
pub fn validate_address(address: &str) -> Result<(), String> {
    if address.contains(['\r', '\n']) {
        return Err("contains a line break (header injection)".into());
    }
    if address.len() > 254 {
        return Err(format!("{} characters, over the 254 limit", address.len()));
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(format!("{address:?} has no @"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(format!("{address:?} has an empty or over-long local part"));
    }
    if let Some(c) = local
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(*c)))
    {
        return Err(format!("{address:?} has {c:?} in its local part"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(format!("{address:?} has a misplaced dot in its local part"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(format!("{address:?} has no dot in its domain"));
    }
    for label in labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!("{address:?} has an invalid domain label {label:?}"));
        }
    }
    Ok(())
}

/// Whether a job succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// The handler finished.
    Succeeded,
    /// The handler failed permanently (the message went to the DLQ).
    Failed,
}

impl OutcomeStatus {
    /// Stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Succeeded => "succeeded",
            OutcomeStatus::Failed => "failed",
        }
    }

    /// Reads a stored name back ([`OutcomeStatus::as_str`]); `None` for anything else.
    pub fn from_stored(name: &str) -> Option<Self> {
        [OutcomeStatus::Succeeded, OutcomeStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// What happened to one job: the data the daily report aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// Contract version, [`CONTRACT_VERSION`].
    pub v: u32,
    /// The job id.
    pub job_id: String,
    /// The job kind.
    pub kind: String,
    /// Success or failure.
    pub status: OutcomeStatus,
    /// When the job was submitted (from the envelope).
    pub submitted_at: DateTime<Utc>,
    /// When its outcome was decided (succeeded, or failed for good). The daily report's day
    /// is taken from it: a job lands in the report of the day it finished, however late
    /// (backlog, backoff, redrive), so every outcome lands in exactly one report.
    pub finished_at: DateTime<Utc>,
    /// End-to-end latency: queue wait (first receive − submitted) plus processing time.
    pub latency_ms: u64,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The daily report's input, from either schedule payload shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportInput {
    /// The scheduled time of the schedule invocation, when the event carries one.
    pub scheduled_time: Option<DateTime<Utc>>,
    /// An explicit report date, overriding the default (the day before `scheduled_time`).
    pub date: Option<NaiveDate>,
    /// Regenerate the report even when it was made already (`{"date": ..., "force": true}`).
    pub force: bool,
}

/// The plain JSON an EventBridge Scheduler target gets: whatever the schedule's Input says,
/// here `{"scheduled_time": "<aws.scheduler.scheduled-time>"}` and optionally a `date`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulerInput {
    #[serde(default)]
    v: Option<u32>,
    #[serde(default)]
    scheduled_time: Option<String>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    force: bool,
}

impl ReportInput {
    /// Reads a schedule payload: the legacy rule envelope (`"detail-type": "Scheduled Event"`,
    /// `time`) or the Scheduler's plain JSON input (`scheduled_time`, `date`).
    pub fn from_event(event: &serde_json::Value) -> Result<Self, ContractError> {
        let Some(object) = event.as_object() else {
            return Err(ContractError::field("$", "expected a JSON object"));
        };
        if let Some(detail_type) = object.get("detail-type") {
            if detail_type != "Scheduled Event" {
                return Err(ContractError::field(
                    "detail-type",
                    format!("expected \"Scheduled Event\", got {detail_type}"),
                ));
            }
            let time = object
                .get("time")
                .and_then(|t| t.as_str())
                .ok_or_else(|| ContractError::field("time", "missing in the scheduled event"))?;
            let date = object
                .get("detail")
                .and_then(|d| d.get("date"))
                .and_then(|d| d.as_str())
                .map(|d| parse_date("detail.date", d))
                .transpose()?;
            let force = object
                .get("detail")
                .and_then(|d| d.get("force"))
                .map(|f| {
                    f.as_bool().ok_or_else(|| {
                        ContractError::field("detail.force", "expected true or false")
                    })
                })
                .transpose()?
                .unwrap_or(false);
            return Ok(ReportInput {
                scheduled_time: Some(parse_time("time", time)?),
                date,
                force,
            });
        }
        let input: SchedulerInput = serde_json::from_value(event.clone())
            .map_err(|e| ContractError::field("$", format!("not a scheduler input: {e}")))?;
        if let Some(v) = input.v {
            check_version(v)?;
        }
        Ok(ReportInput {
            scheduled_time: input
                .scheduled_time
                .as_deref()
                .map(|t| parse_time("scheduled_time", t))
                .transpose()?,
            date: input
                .date
                .as_deref()
                .map(|d| parse_date("date", d))
                .transpose()?,
            force: input.force,
        })
    }
}

fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, ContractError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ContractError::field(
                field,
                format!("{value:?} is not an RFC 3339 time like 2026-11-21T09:30:00Z ({e})"),
            )
        })
}

fn parse_date(field: &str, value: &str) -> Result<NaiveDate, ContractError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|e| {
        ContractError::field(field, format!("{value:?} is not a YYYY-MM-DD date: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_body() -> String {
        json!({"v":1,"id":"job-1","kind":"order.placed","payload":{"order_id":"o-1"},"submitted_at":"2026-11-21T10:00:00Z"}).to_string()
    }

    #[test]
    fn job_envelope_round_trips() {
        let env = JobEnvelope::parse(&order_body()).unwrap();
        assert_eq!(env.kind, "order.placed");
        let again = JobEnvelope::parse(&serde_json::to_string(&env).unwrap()).unwrap();
        assert_eq!(env, again);
    }

    #[test]
    fn job_envelope_errors_are_precise() {
        let err = JobEnvelope::parse("{\"v\":1,").unwrap_err();
        assert!(
            matches!(
                err,
                ContractError::Json {
                    line: 1,
                    column: 7,
                    ..
                }
            ),
            "{err}"
        );
        let err = JobEnvelope::parse(&order_body().replace("\"v\":1", "\"v\":2")).unwrap_err();
        assert_eq!(
            err,
            ContractError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        );
        let err = JobEnvelope::parse(&order_body().replace("job-1", "")).unwrap_err();
        assert_eq!(err.to_string(), "field `id`: must not be empty");
        let err = JobEnvelope::parse(&order_body().replace("job-1", "job 1")).unwrap_err();
        assert!(
            err.to_string().starts_with("field `id`: contains ' '"),
            "{err}"
        );
        let err =
            JobEnvelope::parse(&order_body().replace("order.placed", "Order Placed")).unwrap_err();
        assert!(err.to_string().starts_with("field `kind`"), "{err}");
        let err = JobEnvelope::parse(&order_body().replace("\"kind\"", "\"kynd\"")).unwrap_err();
        assert!(err.to_string().contains("unknown field `kynd`"), "{err}");
        let err = JobEnvelope::parse(&order_body().replace("2026-11-21T10:00:00Z", "yesterday"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `submitted_at`: \"yesterday\" is not an RFC 3339 time like \
             2026-11-21T09:30:00Z (premature end of input)"
        );
        for body in [
            r#"[1,"job-1","order.placed",{},"2026-11-21T10:00:00Z"]"#.to_string(),
            format!("[{}]", order_body()),
        ] {
            let err = JobEnvelope::parse(&body).unwrap_err();
            assert_eq!(
                err.to_string(),
                "malformed json at line 1 column 0: invalid type: sequence, expected struct \
                 JobEnvelope"
            );
        }
        let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
        assert!(matches!(
            JobEnvelope::parse(&huge),
            Err(ContractError::TooLarge { .. })
        ));
    }

    fn email() -> EmailRequest {
        EmailRequest::from_template(
            "mail-1",
            vec!["ada@example.com".into()],
            "Hello",
            "welcome",
            BTreeMap::from([("name".to_string(), json!("Ada"))]),
        )
    }

    #[test]
    fn email_request_round_trips() {
        let body = serde_json::to_string(&email()).unwrap();
        assert_eq!(EmailRequest::parse(&body).unwrap(), email());
        // The trait impls read and write the same object as `parse`.
        let value = serde_json::to_value(email()).unwrap();
        assert_eq!(value["to"], json!(["ada@example.com"]));
        assert_eq!(
            serde_json::from_value::<EmailRequest>(value).unwrap(),
            email()
        );
        let positional = json!([1, "mail-1", ["ada@example.com"], "Hello", "welcome"]);
        let err = serde_json::from_value::<EmailRequest>(positional).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid type: sequence, expected struct EmailRequest"
        );
    }

    #[test]
    fn email_request_validation_errors() {
        let mut e = email();
        e.to = vec![];
        assert_eq!(
            e.validate().unwrap_err().to_string(),
            "field `to`: needs at least one recipient"
        );
        let mut e = email();
        e.to = vec!["ok@example.com".into(), "not-an-address".into()];
        assert_eq!(
            e.validate().unwrap_err().to_string(),
            "field `to[1]`: \"not-an-address\" has no @"
        );
        let mut e = email();
        e.to = vec!["a@example.com\r\nBcc: evil@example.com".into()];
        assert!(
            e.validate()
                .unwrap_err()
                .to_string()
                .contains("header injection")
        );
        let mut e = email();
        e.subject = "Hi\r\nBcc: evil@example.com".into();
        assert_eq!(
            e.validate().unwrap_err().to_string(),
            "field `subject`: contains a line break at byte 2 (header injection)"
        );
        let mut e = email();
        e.subject = " ".into();
        assert!(e.validate().is_err());
        let mut e = email();
        e.body = Some("text".into());
        assert!(e.validate().unwrap_err().to_string().contains("not both"));
        let mut e = email();
        e.template = None;
        assert!(e.validate().unwrap_err().to_string().contains("either"));
        let mut e = email();
        e.to = (0..51).map(|i| format!("u{i}@example.com")).collect();
        assert!(
            e.validate()
                .unwrap_err()
                .to_string()
                .contains("over the 50 limit")
        );
        let mut e = email();
        e.subject = "x".repeat(999);
        assert!(e.validate().is_err());
    }

    #[test]
    fn addresses() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.com",
            "o'brien@example.ie",
        ] {
            assert_eq!(validate_address(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a",
            "@b.co",
            "a@",
            "a@b",
            "a b@c.de",
            "a..b@c.de",
            "a@-b.de",
            "a@b..de",
            ".a@b.de",
        ] {
            assert!(validate_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn report_input_scheduler_shape() {
        let input =
            ReportInput::from_event(&json!({"scheduled_time":"2026-11-22T01:00:00Z"})).unwrap();
        assert_eq!(
            input.scheduled_time.unwrap().to_rfc3339(),
            "2026-11-22T01:00:00+00:00"
        );
        assert_eq!(input.date, None);
        let input = ReportInput::from_event(&json!({"date":"2026-11-01"})).unwrap();
        assert_eq!(input.date, NaiveDate::from_ymd_opt(2026, 11, 1));
        let input = ReportInput::from_event(&json!({})).unwrap();
        assert_eq!(
            input,
            ReportInput {
                scheduled_time: None,
                date: None,
                force: false,
            }
        );
        let input = ReportInput::from_event(&json!({"date":"2026-11-01","force":true})).unwrap();
        assert!(input.force);
        assert!(ReportInput::from_event(&json!({"force":"yes"})).is_err());
    }

    #[test]
    fn report_input_legacy_shape() {
        let event = json!({
            "version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event",
            "source":"aws.events","account":"123456789012","time":"2026-11-22T01:00:00Z",
            "region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/daily"],"detail":{}
        });
        let input = ReportInput::from_event(&event).unwrap();
        assert_eq!(
            input.scheduled_time.unwrap().to_rfc3339(),
            "2026-11-22T01:00:00+00:00"
        );
    }

    #[test]
    fn report_input_errors() {
        let err = ReportInput::from_event(&json!({"scheduled_time":"tomorrow"})).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("field `scheduled_time`: \"tomorrow\" is not an RFC 3339"),
            "{err}"
        );
        let err = ReportInput::from_event(&json!({"date":"2026-13-01"})).unwrap_err();
        assert!(err.to_string().starts_with("field `date`"), "{err}");
        let err = ReportInput::from_event(&json!({"detail-type":"Other"})).unwrap_err();
        assert!(err.to_string().starts_with("field `detail-type`"), "{err}");
        let err = ReportInput::from_event(&json!({"detail-type":"Scheduled Event"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `time`: missing in the scheduled event"
        );
        let err = ReportInput::from_event(&json!([1])).unwrap_err();
        assert!(err.to_string().contains("expected a JSON object"));
        let err = ReportInput::from_event(&json!({"when":"x"})).unwrap_err();
        assert!(err.to_string().contains("unknown field `when`"), "{err}");
    }

    #[test]
    fn outcome_round_trips() {
        let o = JobOutcome {
            v: 1,
            job_id: "j".into(),
            kind: "k".into(),
            status: OutcomeStatus::Failed,
            submitted_at: "2026-11-21T10:00:00Z".parse().unwrap(),
            finished_at: "2026-11-21T10:00:01Z".parse().unwrap(),
            latency_ms: 12,
            error: Some("boom".into()),
        };
        let back: JobOutcome = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(o, back);
    }
}
