//! The control endpoint: the emulator's operations over HTTP, under `/_nightshift/` on the same
//! port as SQS, so `nightshift send|fire|advance|status|dlq` talk to a running `nightshift up`.
//! Also the client those commands use.
//!
//! Errors come back as `{"error": "..."}` with a 4xx/5xx status; the client turns them into
//! [`ControlError::Remote`] with the server's message.
//!
//! Layout: this file holds the request shapes and the routes; [`client`] the client the CLI
//! and the harness use; `live` the long-lived answers (the server-sent events of the
//! dashboard, the log stream of `nightshift logs`). The dashboard's pages call these same
//! routes, so every action has one implementation.

mod client;
mod live;

pub use client::{ControlClient, ControlError};
pub use live::LogsQuery;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::duration::parse_duration;
use crate::emulator::{DlqMessage, Emulator, EmulatorError, ScheduleDetail, Status};
use crate::history::{Invocation, InvocationQuery, InvocationSummary, TraceChain};
use crate::invoker::InvokeOutcome;
use crate::sqs::OutgoingMessage;

/// Prefix of every control route.
pub const PREFIX: &str = "/_nightshift";

/// `POST /_nightshift/send`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendRequest {
    /// Queue: logical id, name or short name.
    pub queue: String,
    /// Message body.
    pub body: String,
    /// `MessageGroupId` (required by FIFO queues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// `MessageDeduplicationId` (FIFO queues without content-based deduplication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
}

/// Answer to a send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendResponse {
    /// The queue the message went to.
    pub queue: String,
    /// The message id.
    pub message_id: String,
}

/// `POST /_nightshift/fire`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FireRequest {
    /// Schedule name.
    pub schedule: String,
}

/// `POST /_nightshift/invoke`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvokeBody {
    /// Function: logical id, name, ARN or short name.
    pub function: String,
    /// The event, JSON text.
    pub payload: String,
    /// Invoke asynchronously (`Event`) instead of waiting for the answer.
    #[serde(default)]
    pub r#async: bool,
}

/// Answer to a fire or an invoke: what the function returned (`accepted` and no payload for an
/// asynchronous invoke).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FireResponse {
    /// Request id of the invocation.
    pub request_id: String,
    /// `success`, `error`, `timeout`, `crash` or `init_error`.
    pub outcome: String,
    /// The response payload or the error document.
    pub payload: serde_json::Value,
    /// Duration in milliseconds.
    pub duration_ms: f64,
}

/// `POST /_nightshift/advance`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdvanceRequest {
    /// How far, like `6h` or `1d`.
    pub by: String,
}

/// Answer to an advance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdvanceResponse {
    /// The clock's time after the move.
    pub now: DateTime<Utc>,
}

/// `POST /_nightshift/dlq/redrive`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedriveRequest {
    /// The dead-letter queue.
    pub dlq: String,
    /// Only these messages (by id); every visible message when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
}

/// Answer to a redrive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedriveResponse {
    /// The move task handle of a whole-queue redrive (`StartMessageMoveTask`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_handle: Option<String>,
    /// How many of the chosen messages moved, for a redrive of chosen messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved: Option<u64>,
}

/// `POST /_nightshift/purge`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurgeRequest {
    /// The queue.
    pub queue: String,
}

/// `POST /_nightshift/schedules/state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleStateRequest {
    /// Schedule name (or `group/name`).
    pub schedule: String,
    /// Enable (true) or disable (false).
    pub enabled: bool,
}

/// `GET /_nightshift/queues/{queue}/messages`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MessagesQuery {
    /// Only messages whose id, body or attribute values contain this.
    #[serde(default)]
    pub q: Option<String>,
    /// At most this many (100 when unset).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct ScheduleQuery {
    name: String,
}

#[derive(Debug, Deserialize)]
struct DlqQuery {
    queue: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

impl From<EmulatorError> for ApiError {
    fn from(e: EmulatorError) -> Self {
        let status = match e {
            EmulatorError::NotFound { .. } => StatusCode::NOT_FOUND,
            EmulatorError::Invoke(crate::invoker::InvokeError::UnknownFunction(_)) => {
                StatusCode::NOT_FOUND
            }
            EmulatorError::Invoke(crate::invoker::InvokeError::PayloadTooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            EmulatorError::Clock(_) => StatusCode::CONFLICT,
            EmulatorError::Sqs(_) => StatusCode::BAD_REQUEST,
            EmulatorError::Schedule(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

type Shared = Arc<Emulator>;

/// The control routes, to merge with the SQS router.
pub fn router(emulator: Shared) -> Router {
    Router::new()
        .route(&format!("{PREFIX}/status"), get(status))
        .route(&format!("{PREFIX}/send"), post(send))
        .route(&format!("{PREFIX}/fire"), post(fire))
        .route(&format!("{PREFIX}/invoke"), post(invoke))
        .route(&format!("{PREFIX}/advance"), post(advance))
        .route(&format!("{PREFIX}/dlq"), get(dlq_list))
        .route(&format!("{PREFIX}/dlq/redrive"), post(redrive))
        .route(&format!("{PREFIX}/purge"), post(purge))
        .route(
            &format!("{PREFIX}/queues/{{queue}}/messages"),
            get(queue_messages),
        )
        .route(&format!("{PREFIX}/invocations"), get(invocations))
        .route(
            &format!("{PREFIX}/invocations/{{request_id}}"),
            get(invocation),
        )
        .route(&format!("{PREFIX}/trace/{{id}}"), get(trace))
        .route(&format!("{PREFIX}/schedule"), get(schedule))
        .route(&format!("{PREFIX}/schedules/state"), post(schedule_state))
        .route(&format!("{PREFIX}/series"), get(series))
        .route(&format!("{PREFIX}/metrics"), get(metrics))
        .route(&format!("{PREFIX}/events"), get(live::events))
        .route(&format!("{PREFIX}/logs"), get(live::logs))
        .with_state(emulator)
}

async fn status(State(e): State<Shared>) -> Json<Status> {
    Json(e.status())
}

async fn send(
    State(e): State<Shared>,
    Json(req): Json<SendRequest>,
) -> Result<Json<SendResponse>, ApiError> {
    let queue = e.resolve_queue(&req.queue)?;
    let mut message = OutgoingMessage::new(req.body);
    message.message_group_id = req.group_id;
    message.message_deduplication_id = req.dedup_id;
    let message_id = e.send_message(&queue, message)?;
    Ok(Json(SendResponse { queue, message_id }))
}

async fn fire(
    State(e): State<Shared>,
    Json(req): Json<FireRequest>,
) -> Result<Json<FireResponse>, ApiError> {
    let response = e.fire(&req.schedule).await?;
    Ok(Json(answer(&response)))
}

async fn invoke(
    State(e): State<Shared>,
    Json(req): Json<InvokeBody>,
) -> Result<Json<FireResponse>, ApiError> {
    if req.r#async {
        let accepted = e.invoke_async(&req.function, req.payload)?;
        return Ok(Json(FireResponse {
            request_id: accepted.request_id,
            outcome: "accepted".into(),
            payload: serde_json::Value::Null,
            duration_ms: 0.0,
        }));
    }
    let response = e.invoke(&req.function, req.payload).await?;
    Ok(Json(answer(&response)))
}

/// What an invocation returned, as `fire` and `invoke` print it.
fn answer(response: &crate::invoker::InvokeResponse) -> FireResponse {
    let payload_json = |b: &[u8]| {
        serde_json::from_slice(b)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(b).into()))
    };
    let (outcome, payload) = match &response.outcome {
        InvokeOutcome::Success(b) => ("success", payload_json(b)),
        InvokeOutcome::FunctionError(err) => {
            ("error", serde_json::to_value(err).unwrap_or_default())
        }
        InvokeOutcome::InitError(err) => {
            ("init_error", serde_json::to_value(err).unwrap_or_default())
        }
        InvokeOutcome::Timeout { after } => (
            "timeout",
            serde_json::json!({"after_ms": after.as_millis() as u64}),
        ),
        InvokeOutcome::Crashed(exit) => ("crash", serde_json::json!({"exit": exit.to_string()})),
    };
    FireResponse {
        request_id: response.request_id.clone(),
        outcome: outcome.into(),
        payload,
        duration_ms: response.duration.as_secs_f64() * 1000.0,
    }
}

async fn advance(
    State(e): State<Shared>,
    Json(req): Json<AdvanceRequest>,
) -> Result<Json<AdvanceResponse>, ApiError> {
    let by = parse_duration(&req.by)
        .map_err(|err| ApiError(StatusCode::BAD_REQUEST, err.to_string()))?;
    // In its own task: a client that goes away (a browser tab navigating on) must not cancel
    // an advance half-way through its steps.
    let now = tokio::spawn(async move { e.advance(by).await })
        .await
        .map_err(|err| ApiError(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))??;
    Ok(Json(AdvanceResponse { now }))
}

async fn dlq_list(
    State(e): State<Shared>,
    Query(q): Query<DlqQuery>,
) -> Result<Json<Vec<DlqMessage>>, ApiError> {
    Ok(Json(e.dlq_list(&q.queue, q.limit)?))
}

async fn redrive(
    State(e): State<Shared>,
    Json(req): Json<RedriveRequest>,
) -> Result<Json<RedriveResponse>, ApiError> {
    if req.message_ids.is_empty() {
        return Ok(Json(RedriveResponse {
            task_handle: Some(e.redrive(&req.dlq)?),
            moved: None,
        }));
    }
    Ok(Json(RedriveResponse {
        task_handle: None,
        moved: Some(e.redrive_messages(&req.dlq, &req.message_ids)?),
    }))
}

async fn purge(
    State(e): State<Shared>,
    Json(req): Json<PurgeRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let queue = e.purge(&req.queue)?;
    Ok(Json(serde_json::json!({ "queue": queue })))
}

async fn queue_messages(
    State(e): State<Shared>,
    Path(queue): Path<String>,
    Query(q): Query<MessagesQuery>,
) -> Result<Json<Vec<DlqMessage>>, ApiError> {
    Ok(Json(e.queue_messages(
        &queue,
        q.q.as_deref(),
        q.limit.unwrap_or(100),
    )?))
}

async fn metrics(
    State(e): State<Shared>,
    Query(q): Query<crate::metrics::MetricsQuery>,
) -> Json<Vec<crate::metrics::MetricSummary>> {
    Json(e.history().metrics().query(&q))
}

async fn invocations(
    State(e): State<Shared>,
    Query(q): Query<InvocationQuery>,
) -> Json<Vec<InvocationSummary>> {
    Json(e.history().list(&q))
}

async fn invocation(
    State(e): State<Shared>,
    Path(request_id): Path<String>,
) -> Result<Json<Invocation>, ApiError> {
    e.history().get(&request_id).map(Json).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no invocation {request_id} in the history (it keeps the last {} of each function)",
                crate::history::KEEP_PER_FUNCTION
            ),
        )
    })
}

/// `GET /_nightshift/trace/{id}`: the chain of invocations a message or job caused
/// ([`crate::history::History::chain`]); an empty chain when nothing matches.
async fn trace(State(e): State<Shared>, Path(id): Path<String>) -> Json<TraceChain> {
    Json(e.history().chain(&id))
}

async fn schedule(
    State(e): State<Shared>,
    Query(q): Query<ScheduleQuery>,
) -> Result<Json<ScheduleDetail>, ApiError> {
    Ok(Json(e.schedule_detail(&q.name)?))
}

async fn schedule_state(
    State(e): State<Shared>,
    Json(req): Json<ScheduleStateRequest>,
) -> Result<Json<ScheduleDetail>, ApiError> {
    e.set_schedule_enabled(&req.schedule, req.enabled)?;
    Ok(Json(e.schedule_detail(&req.schedule)?))
}

async fn series(State(e): State<Shared>) -> Json<Vec<crate::series::Sample>> {
    Json(e.series().samples())
}
