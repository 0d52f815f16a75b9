//! The control endpoint: the emulator's operations over HTTP, under `/_nightshift/` on the same
//! port as SQS, so `nightshift send|fire|advance|status|dlq` talk to a running `nightshift up`.
//! Also the client those commands use.
//!
//! Errors come back as `{"error": "..."}` with a 4xx/5xx status; the client turns them into
//! [`ControlError::Remote`] with the server's message.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::duration::parse_duration;
use crate::emulator::{DlqMessage, Emulator, EmulatorError, Status};
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
}

/// Answer to a redrive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedriveResponse {
    /// The move task handle.
    pub task_handle: String,
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
    Ok(Json(AdvanceResponse {
        now: e.advance(by).await?,
    }))
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
    Ok(Json(RedriveResponse {
        task_handle: e.redrive(&req.dlq)?,
    }))
}

/// A control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing answers on the port.
    #[error(
        "no emulator answers on {endpoint} ({reason}); start one with `nightshift up` (same --port)"
    )]
    NotRunning {
        /// The endpoint tried.
        endpoint: String,
        /// The connection error.
        reason: String,
    },
    /// The emulator answered with an error.
    #[error("{0}")]
    Remote(String),
    /// The answer was not understood.
    #[error("unexpected answer from {endpoint}: {reason}")]
    Protocol {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
}

/// Talks to a running emulator's control endpoint.
pub struct ControlClient {
    endpoint: String,
    client: Client<HttpConnector, Body>,
}

impl ControlClient {
    /// A client for `http://127.0.0.1:{port}`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        ControlClient {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ControlError> {
        let uri = format!("{}{PREFIX}{path}", self.endpoint);
        let request = Request::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json")
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .map_err(|e| ControlError::Protocol {
                endpoint: self.endpoint.clone(),
                reason: e.to_string(),
            })?;
        let response = tokio::time::timeout(Duration::from_secs(120), self.client.request(request))
            .await
            .map_err(|_| ControlError::NotRunning {
                endpoint: self.endpoint.clone(),
                reason: "no answer in 120 s".into(),
            })?
            .map_err(|e| ControlError::NotRunning {
                endpoint: self.endpoint.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), 64 * 1024 * 1024)
            .await
            .map_err(|e| ControlError::Protocol {
                endpoint: self.endpoint.clone(),
                reason: e.to_string(),
            })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| format!("{status}: {}", String::from_utf8_lossy(&bytes)));
            return Err(ControlError::Remote(message));
        }
        serde_json::from_slice(&bytes).map_err(|e| ControlError::Protocol {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        })
    }

    /// The emulator's status.
    pub async fn status(&self) -> Result<Status, ControlError> {
        self.call(Method::GET, "/status", None).await
    }

    /// Sends a message.
    pub async fn send(&self, queue: &str, body: &str) -> Result<SendResponse, ControlError> {
        self.send_message(&SendRequest {
            queue: queue.to_owned(),
            body: body.to_owned(),
            group_id: None,
            dedup_id: None,
        })
        .await
    }

    /// Sends a message with its FIFO group and deduplication ids.
    pub async fn send_message(&self, request: &SendRequest) -> Result<SendResponse, ControlError> {
        let body = serde_json::to_value(request).unwrap_or_default();
        self.call(Method::POST, "/send", Some(body)).await
    }

    /// Fires a schedule.
    pub async fn fire(&self, schedule: &str) -> Result<FireResponse, ControlError> {
        self.call(
            Method::POST,
            "/fire",
            Some(serde_json::json!({"schedule": schedule})),
        )
        .await
    }

    /// Invokes a function, synchronously or (`asynchronous`) as an `Event`.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &str,
        asynchronous: bool,
    ) -> Result<FireResponse, ControlError> {
        self.call(
            Method::POST,
            "/invoke",
            Some(serde_json::json!({"function": function, "payload": payload, "async": asynchronous})),
        )
        .await
    }

    /// Advances the manual clock.
    pub async fn advance(&self, by: &str) -> Result<AdvanceResponse, ControlError> {
        self.call(
            Method::POST,
            "/advance",
            Some(serde_json::json!({"by": by})),
        )
        .await
    }

    /// Lists a DLQ.
    pub async fn dlq_list(&self, queue: &str) -> Result<Vec<DlqMessage>, ControlError> {
        let q: String = queue
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        self.call(Method::GET, &format!("/dlq?queue={q}"), None)
            .await
    }

    /// Redrives a DLQ.
    pub async fn redrive(&self, dlq: &str) -> Result<RedriveResponse, ControlError> {
        self.call(
            Method::POST,
            "/dlq/redrive",
            Some(serde_json::json!({"dlq": dlq})),
        )
        .await
    }
}
