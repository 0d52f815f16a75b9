//! The SQS HTTP endpoint: `POST /` with `X-Amz-Target: AmazonSQS.<Operation>` and an AWS
//! JSON 1.0 body, answered from the engine. Signatures are not verified (any credentials
//! work). Errors carry AWS's `__type` and message in the body and the query-compatible code in
//! `x-amzn-query-error`, which is what the SDKs map to typed errors.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::engine::SqsEngine;
use super::error::SqsError;
use super::protocol::dispatch_traced;

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const TARGET_PREFIX: &str = "AmazonSQS.";
/// Room for a 1 MiB batch after JSON escaping and base64 attributes.
const BODY_LIMIT: usize = 16 << 20;

/// A running endpoint.
#[derive(Debug)]
pub struct SqsServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SqsServer {
    /// The bound address (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, what clients use as `endpoint_url`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in progress finish, and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(err) = (&mut self.task).await {
            tracing::warn!(error = %err, "sqs server task ended abnormally");
        }
    }
}

impl Drop for SqsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds `addr` (use `127.0.0.1:0` for any free port), points the engine's queue URLs at it,
/// and serves until [`SqsServer::shutdown`] or drop.
pub async fn serve(engine: SqsEngine, addr: SocketAddr) -> Result<SqsServer, SqsError> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    engine.set_endpoint_url(&format!("http://{addr}"));
    let app = router(engine);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %err, "sqs server failed");
        }
    });
    tracing::info!(%addr, "sqs endpoint listening");
    Ok(SqsServer {
        addr,
        stop: Some(stop),
        task,
    })
}

/// The axum router of the endpoint, for embedding in another server.
pub fn router(engine: SqsEngine) -> Router {
    Router::new()
        .route("/", post(handle))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(engine)
}

async fn handle(State(engine): State<SqsEngine>, headers: HeaderMap, body: Bytes) -> Response {
    let request_id = crate::ids::uuid_string();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let result = match target.strip_prefix(TARGET_PREFIX) {
        Some(operation) => {
            let trace_header = headers
                .get("x-amzn-trace-id")
                .and_then(|v| v.to_str().ok());
            let result = dispatch_traced(&engine, operation, &body, trace_header).await;
            match &result {
                Ok(_) => tracing::debug!(operation, request_id, "sqs request"),
                Err(err) => tracing::debug!(operation, request_id, error = %err, "sqs request failed"),
            }
            result
        }
        None => Err(SqsError::UnsupportedOperation(
            "Only the AWS JSON 1.0 protocol is supported: send X-Amz-Target: AmazonSQS.<Operation> with an application/x-amz-json-1.0 body.".to_string(),
        )),
    };
    let mut response = match result {
        Ok(value) => (StatusCode::OK, value.to_string()).into_response(),
        Err(err) => error_response(&err),
    };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        out.insert("x-amzn-requestid", id);
    }
    response
}

/// The HTTP response AWS sends for `err`.
pub fn error_response(err: &SqsError) -> Response {
    let wire = err.wire();
    let body =
        serde_json::json!({"__type": wire.type_name, "message": err.aws_message()}).to_string();
    let status = StatusCode::from_u16(wire.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, body).into_response();
    let fault = if wire.sender_fault {
        "Sender"
    } else {
        "Receiver"
    };
    if let Ok(value) = HeaderValue::from_str(&format!("{};{fault}", wire.query_code)) {
        response.headers_mut().insert("x-amzn-query-error", value);
    }
    response
}
