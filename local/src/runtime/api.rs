//! The Lambda Runtime API (2018-06-01) as one instance sees it.
//!
//! Every instance gets its own listener on 127.0.0.1 and finds it in
//! `AWS_LAMBDA_RUNTIME_API` as `host:port`, exactly the format Lambda uses, so any
//! runtime client works unchanged and the server always knows which instance is
//! calling. The pool hands events over through [`Dispatch`]es and learns what the
//! instance did through [`ApiEvent`]s.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::invoker::FunctionError;

/// An event handed to an instance.
#[derive(Debug)]
pub(crate) struct Dispatch {
    pub request_id: Arc<str>,
    pub payload: Bytes,
    pub trace_id: String,
    /// A deadline fixed before the pickup: an init retried in the invoke phase shares the
    /// function timeout with the invocation. `None`: the timeout runs from the pickup.
    pub deadline: Option<Instant>,
}

/// What an instance did, as seen on its Runtime API.
#[derive(Debug)]
pub(crate) enum ApiEvent {
    /// `/next` handed out the event; the deadline starts now.
    Picked {
        request_id: Arc<str>,
        at: Instant,
        deadline: Instant,
    },
    /// `/invocation/{id}/response`.
    Response {
        request_id: Arc<str>,
        at: Instant,
        body: Bytes,
    },
    /// `/invocation/{id}/error`, or a response over the size limit.
    Error {
        request_id: Arc<str>,
        at: Instant,
        error: FunctionError,
    },
    /// `/init/error`.
    InitError(FunctionError),
}

/// The invocation an instance holds.
struct Current {
    request_id: Arc<str>,
    answered: bool,
}

/// One instance's side of the Runtime API.
pub(crate) struct ApiState {
    function_arn: String,
    timeout: Duration,
    dispatch: tokio::sync::Mutex<mpsc::Receiver<Dispatch>>,
    events: mpsc::UnboundedSender<ApiEvent>,
    current: Mutex<Option<Current>>,
}

impl ApiState {
    pub(crate) fn new(
        function_arn: String,
        timeout: Duration,
        dispatch: mpsc::Receiver<Dispatch>,
        events: mpsc::UnboundedSender<ApiEvent>,
    ) -> Self {
        Self {
            function_arn,
            timeout,
            dispatch: tokio::sync::Mutex::new(dispatch),
            events,
            current: Mutex::new(None),
        }
    }

    /// The request id of the invocation the instance holds (or held last), for
    /// attributing its log lines.
    pub(crate) fn current_request_id(&self) -> Option<Arc<str>> {
        lock(&self.current).as_ref().map(|c| c.request_id.clone())
    }

    /// Marks `request_id` answered if it is the one the instance holds.
    fn take_answer(&self, request_id: &str) -> Option<Arc<str>> {
        let mut current = lock(&self.current);
        match current.as_mut() {
            Some(c) if !c.answered && &*c.request_id == request_id => {
                c.answered = true;
                Some(c.request_id.clone())
            }
            _ => None,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded state stays consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds a listener on 127.0.0.1 and serves `state` on it until the task is aborted.
pub(crate) async fn serve(state: Arc<ApiState>) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        // Small request/response exchanges: never wait for Nagle.
        let _ = tcp.set_nodelay(true);
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "runtime api server stopped");
        }
    });
    Ok((addr, task))
}

/// A Runtime API error document with its status.
fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = FunctionError::new(error_type, message).to_json();
    (status, [("content-type", "application/json")], body).into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

/// `GET /runtime/invocation/next`: waits for the next event.
async fn next(State(state): State<Arc<ApiState>>) -> Response {
    let dispatch = {
        let mut rx = state.dispatch.lock().await;
        rx.recv().await
    };
    let Some(dispatch) = dispatch else {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Runtime.Shutdown",
            "the instance is being shut down",
        );
    };
    let at = Instant::now();
    let deadline = dispatch.deadline.unwrap_or(at + state.timeout);
    let deadline_ms = (SystemTime::now() + deadline.saturating_duration_since(at))
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    *lock(&state.current) = Some(Current {
        request_id: dispatch.request_id.clone(),
        answered: false,
    });
    let _ = state.events.send(ApiEvent::Picked {
        request_id: dispatch.request_id.clone(),
        at,
        deadline,
    });
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put("lambda-runtime-aws-request-id", &dispatch.request_id);
    put("lambda-runtime-deadline-ms", &deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", &state.function_arn);
    put("lambda-runtime-trace-id", &dispatch.trace_id);
    put("content-type", "application/json");
    (StatusCode::OK, headers, dispatch.payload).into_response()
}

/// The most a function may post to the Runtime API as its response or error: Lambda's
/// "Function.ResponseSizeTooLarge" names 6,291,556 bytes, 100 more than the 6 MiB invocation
/// payload limit. <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>
pub const MAX_RESPONSE_BYTES: usize = 6_291_556;

/// Reads a body up to [`MAX_RESPONSE_BYTES`]; `None` if it is larger.
async fn read_body(req: Request) -> Result<Option<Bytes>, Response> {
    match axum::body::to_bytes(Body::new(req.into_body()), MAX_RESPONSE_BYTES + 1).await {
        Ok(body) if body.len() > MAX_RESPONSE_BYTES => Ok(None),
        Ok(body) => Ok(Some(body)),
        Err(_) => Err(api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "cannot read the request body",
        )),
    }
}

fn invalid_request_id() -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "Invalid request ID",
    )
}

fn too_large(state: &ApiState, request_id: Arc<str>) -> Response {
    let error = FunctionError::new(
        "Function.ResponseSizeTooLarge",
        format!(
            "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
        ),
    );
    let _ = state.events.send(ApiEvent::Error {
        request_id,
        at: Instant::now(),
        error: error.clone(),
    });
    api_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &error.error_type,
        &error.error_message,
    )
}

/// `POST /runtime/invocation/{id}/response`.
async fn response(
    State(state): State<Arc<ApiState>>,
    Path(request_id): Path<String>,
    req: Request,
) -> Response {
    let Some(request_id) = state.take_answer(&request_id) else {
        return invalid_request_id();
    };
    match read_body(req).await {
        Err(response) => response,
        Ok(None) => too_large(&state, request_id),
        Ok(Some(body)) => {
            let _ = state.events.send(ApiEvent::Response {
                request_id,
                at: Instant::now(),
                body,
            });
            accepted()
        }
    }
}

/// `POST /runtime/invocation/{id}/error`.
async fn error(
    State(state): State<Arc<ApiState>>,
    Path(request_id): Path<String>,
    req: Request,
) -> Response {
    let Some(request_id) = state.take_answer(&request_id) else {
        return invalid_request_id();
    };
    let fallback = error_type_header(req.headers());
    match read_body(req).await {
        Err(response) => response,
        Ok(None) => too_large(&state, request_id),
        Ok(Some(body)) => {
            let _ = state.events.send(ApiEvent::Error {
                request_id,
                at: Instant::now(),
                error: FunctionError::from_body(&body, &fallback),
            });
            accepted()
        }
    }
}

/// `POST /runtime/init/error`.
async fn init_error(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let fallback = error_type_header(req.headers());
    match read_body(req).await {
        Err(response) => response,
        Ok(body) => {
            let body = body.unwrap_or_default();
            let error = FunctionError::from_body(&body, &fallback);
            let _ = state.events.send(ApiEvent::InitError(error));
            accepted()
        }
    }
}

fn error_type_header(headers: &HeaderMap) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unhandled")
        .to_owned()
}
