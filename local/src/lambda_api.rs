//! lambda_api: Lambda's Invoke API on the emulator's endpoint, so `aws lambda invoke
//! --endpoint-url http://127.0.0.1:9324` and aws-sdk-lambda reach the template's functions.
//!
//! `POST /2015-03-31/functions/{FunctionName}/invocations`, the function named by name, ARN,
//! partial ARN or logical id, with an optional `:$LATEST` qualifier (or `?Qualifier=`):
//! - `X-Amz-Invocation-Type: RequestResponse` (default): runs the function and answers `200`
//!   with its response, or its error document and `X-Amz-Function-Error: Unhandled`;
//! - `Event`: queues the event on the function's asynchronous queue ([`crate::invoke_async`])
//!   and answers `202` at once;
//! - `DryRun`: checks the function and the payload, answers `204`.
//!
//! Errors have AWS's REST-JSON shape (`X-Amzn-ErrorType` header, `{"Type","message"}` body):
//! `ResourceNotFoundException` (404), `RequestTooLargeException` (413),
//! `InvalidRequestContentException` (400), `TooManyRequestsException` (429).
//!
//! `X-Amz-Log-Type: Tail` returns the last 4 KB of the invocation's log, base64 in
//! `X-Amz-Log-Result`, when the functions run under the emulator's runtime; under another
//! invoker (`cargo lambda watch`, in-process handlers) only the platform lines (`START`, `END`,
//! `REPORT`), since their output is elsewhere.
//!
//! A call with an `X-Amzn-Trace-Id` header, `RequestResponse` or `Event` (every attempt of the
//! queued event), continues the caller's X-Ray trace ([`xray::continue_header`]), as Lambda
//! does for a function with active tracing; without one, the invocation starts a new trace.
//! Not modelled: `ClientContext` is ignored; requests are not authenticated.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde::Deserialize;

use crate::emulator::{Emulator, EmulatorError};
use crate::invoke_async::MAX_ASYNC_PAYLOAD_BYTES;
use crate::invoker::{InvokeError, InvokeRequest, InvokeResponse, MAX_PAYLOAD_BYTES};
use crate::xray;

/// The route of the Invoke API.
pub const INVOKE_PATH: &str = "/2015-03-31/functions/{function}/invocations";

/// The HTTP header a traced caller sends its X-Ray trace in.
const TRACE_HEADER: &str = "x-amzn-trace-id";

/// Longest `X-Amz-Log-Result` Lambda returns: the last 4 KB of the log.
const MAX_LOG_TAIL_BYTES: usize = 4 * 1024;

/// The Invoke API's routes, to merge with the emulator's other routers.
pub fn router(emulator: Arc<Emulator>) -> Router {
    Router::new()
        .route(INVOKE_PATH, post(invoke))
        // Above the 6 MB limit, so an oversized payload gets Lambda's error, not axum's.
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES + 1024 * 1024))
        .with_state(emulator)
}

#[derive(Debug, Deserialize)]
struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

/// An error in AWS's REST-JSON shape.
struct LambdaError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl LambdaError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        LambdaError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for LambdaError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"Type": "User", "message": self.message});
        let mut response = (self.status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        response
    }
}

impl From<InvokeError> for LambdaError {
    fn from(e: InvokeError) -> Self {
        match &e {
            InvokeError::UnknownFunction(_) => LambdaError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                e.to_string(),
            ),
            InvokeError::PayloadTooLarge { limit, .. } => too_large(*limit),
            InvokeError::Throttled(_) => LambdaError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "Rate Exceeded.",
            ),
            _ => LambdaError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                e.to_string(),
            ),
        }
    }
}

fn too_large(limit: usize) -> LambdaError {
    LambdaError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestTooLargeException",
        format!("Request must be smaller than {limit} bytes for the InvokeFunction operation"),
    )
}

/// The function name and the qualifier (version or alias) of an Invoke path: a name,
/// `arn:...:function:NAME[:QUALIFIER]`, `ACCOUNT:function:NAME[:QUALIFIER]`, or
/// `NAME[:QUALIFIER]`.
fn split_function(path: &str) -> (&str, Option<&str>) {
    let parts: Vec<&str> = path.split(':').collect();
    let (name, rest) = match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", name, rest @ ..]
        | [_, "function", name, rest @ ..]
        | [name, rest @ ..] => (*name, rest),
        [] => (path, &[][..]),
    };
    let qualifier = match rest {
        [q] => Some(*q),
        _ => None,
    };
    (name, qualifier)
}

/// The function name of an Invoke path (see [`split_function`]).
fn function_name(path: &str) -> &str {
    split_function(path).0
}

/// The qualifier of an Invoke path, if any (see [`split_function`]).
fn qualifier(path: &str) -> Option<&str> {
    split_function(path).1
}

async fn invoke(
    State(emulator): State<Arc<Emulator>>,
    Path(function): Path<String>,
    Query(query): Query<InvokeQuery>,
    headers: HeaderMap,
    payload: Bytes,
) -> Result<Response, LambdaError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let invocation_type = header("x-amz-invocation-type").unwrap_or("RequestResponse");
    if let Some(q) = query.qualifier.as_deref().or(qualifier(&function))
        && q != "$LATEST"
    {
        tracing::debug!(%function, qualifier = %q, "the emulator runs one version of each function");
        crate::divergence::announce_once("qualifiers");
    }
    let name = emulator
        .resolve_function(function_name(&function))
        .map_err(|_| {
            LambdaError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Function not found: {function}"),
            )
        })?;
    let limit = match invocation_type {
        "Event" => MAX_ASYNC_PAYLOAD_BYTES,
        "RequestResponse" | "DryRun" => MAX_PAYLOAD_BYTES,
        other => {
            return Err(LambdaError::new(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                format!(
                    "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
                ),
            ));
        }
    };
    if payload.len() > limit {
        return Err(too_large(limit));
    }
    // An empty body stands for `{}`, as the CLI sends it without --payload.
    let payload = if payload.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        payload
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
        return Err(LambdaError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json: Could not parse payload into json",
        ));
    }
    match invocation_type {
        "DryRun" => Ok(StatusCode::NO_CONTENT.into_response()),
        "Event" => {
            // Queued with the caller's trace, as a `RequestResponse` call continues it below.
            let accepted = match header(TRACE_HEADER).and_then(xray::continue_header) {
                Some(trace) => emulator.invoke_async_traced(&name, payload, trace),
                None => emulator.invoke_async(&name, payload),
            }
            .map_err(app_error)?;
            let mut response = StatusCode::ACCEPTED.into_response();
            set(&mut response, "x-amzn-requestid", &accepted.request_id);
            Ok(response)
        }
        _ => {
            let mut request = InvokeRequest::new(name, payload);
            // A caller with active tracing sends its trace: Lambda, with `Tracing: Active`,
            // "will respect any tracing header it receives from an upstream service"
            // (https://docs.aws.amazon.com/lambda/latest/api/API_TracingConfig.html), so the
            // invocation is a new segment of the caller's trace, not a new trace.
            if let Some(continued) = header(TRACE_HEADER).and_then(xray::continue_header) {
                request = request.with_trace_header(continued);
            }
            let tail = header("x-amz-log-type") == Some("Tail");
            let (answer, log) = emulator
                .invoke_request(request, tail)
                .await
                .map_err(app_error)?;
            if !tail {
                return Ok(sync_response(&answer, None));
            }
            if log.is_none() {
                crate::divergence::announce_once("log-tail");
            }
            let log = log.unwrap_or_else(|| platform_lines(&answer));
            Ok(sync_response(&answer, Some(&log)))
        }
    }
}

fn app_error(e: EmulatorError) -> LambdaError {
    match e {
        EmulatorError::Invoke(e) => e.into(),
        EmulatorError::NotFound { name, .. } => LambdaError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Function not found: {name}"),
        ),
        other => LambdaError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            other.to_string(),
        ),
    }
}

/// The `200` answer of a `RequestResponse` invocation, with the end of its log when asked.
fn sync_response(answer: &InvokeResponse, log: Option<&str>) -> Response {
    let (body, error) = match answer.lambda_error() {
        None => (answer.payload().cloned().unwrap_or_default(), false),
        Some(e) => (e.to_json(), true),
    };
    let mut response = (StatusCode::OK, body).into_response();
    set(&mut response, "content-type", "application/json");
    set(&mut response, "x-amzn-requestid", &answer.request_id);
    set(&mut response, "x-amz-executed-version", "$LATEST");
    if error {
        set(&mut response, "x-amz-function-error", "Unhandled");
    }
    if let Some(log) = log {
        // "LogResult: The last 4 KB of the execution log, which is base64-encoded."
        // (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html)
        let mut start = log.len().saturating_sub(MAX_LOG_TAIL_BYTES);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        let tail = &log[start..];
        set(
            &mut response,
            "x-amz-log-result",
            &base64::engine::general_purpose::STANDARD.encode(tail),
        );
    }
    response
}

/// The platform lines of an invocation, for an invoker whose functions log elsewhere
/// (`cargo lambda watch`, in-process handlers).
fn platform_lines(answer: &InvokeResponse) -> String {
    let id = &answer.request_id;
    let ms = answer.duration.as_secs_f64() * 1000.0;
    format!(
        "START RequestId: {id} Version: $LATEST\nEND RequestId: {id}\nREPORT RequestId: {id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\t\n",
        ms.ceil() as u64
    )
}

fn set(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers_from_every_form() {
        assert_eq!(qualifier("my-function"), None);
        assert_eq!(qualifier("my-function:live"), Some("live"));
        assert_eq!(qualifier("000000000000:function:my-function:7"), Some("7"));
        assert_eq!(
            qualifier("arn:aws:lambda:us-east-1:000000000000:function:my-function:$LATEST"),
            Some("$LATEST")
        );
        assert_eq!(
            qualifier("arn:aws:lambda:us-east-1:000000000000:function:my-function"),
            None
        );
    }

    #[test]
    fn function_names_from_every_form() {
        assert_eq!(function_name("my-function"), "my-function");
        assert_eq!(function_name("my-function:$LATEST"), "my-function");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:000000000000:function:my-function"),
            "my-function"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:000000000000:function:my-function:$LATEST"),
            "my-function"
        );
        assert_eq!(
            function_name("000000000000:function:my-function"),
            "my-function"
        );
    }
}
