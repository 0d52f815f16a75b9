//! The client of the control endpoint: what `nightshift send|fire|advance|status|dlq|logs`
//! and other programs use to drive a running emulator.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use super::live::LogsQuery;
use super::{
    AdvanceResponse, FireResponse, PREFIX, RedriveRequest, RedriveResponse, SendRequest,
    SendResponse,
};
use crate::emulator::{DlqMessage, ScheduleDetail, Status};
use crate::history::TraceChain;
use crate::logs::LogRecord;

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

    fn protocol(&self, e: impl std::fmt::Display) -> ControlError {
        ControlError::Protocol {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        }
    }

    /// Sends a request and checks its status; the body is the caller's to read. The answer's
    /// head must come within 120 s (a followed log stream's body may last for ever).
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<axum::http::Response<Body>, ControlError> {
        let uri = format!("{}{PREFIX}{path}", self.endpoint);
        let request = Request::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json")
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .map_err(|e| self.protocol(e))?;
        let wait = Duration::from_secs(120);
        let response = tokio::time::timeout(wait, self.client.request(request))
            .await
            .map_err(|_| ControlError::NotRunning {
                endpoint: self.endpoint.clone(),
                reason: format!("no answer in {} s", wait.as_secs()),
            })?
            .map_err(|e| ControlError::NotRunning {
                endpoint: self.endpoint.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status();
        if !status.is_success() {
            let bytes = axum::body::to_bytes(Body::new(response.into_body()), 1024 * 1024)
                .await
                .map_err(|e| self.protocol(e))?;
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| format!("{status}: {}", String::from_utf8_lossy(&bytes)));
            return Err(ControlError::Remote(message));
        }
        Ok(response.map(Body::new))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ControlError> {
        let response = self.request(method, path, body).await?;
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
            .await
            .map_err(|e| self.protocol(e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.protocol(e))
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

    /// The functions' EMF metrics matching `query`, with their statistics.
    pub async fn metrics(
        &self,
        query: &crate::metrics::MetricsQuery,
    ) -> Result<Vec<crate::metrics::MetricSummary>, ControlError> {
        let mut path = "/metrics?".to_string();
        if let Some(function) = &query.function {
            path.push_str(&format!("function={}&", encode(function)));
        }
        if let Some(since) = query.since_s {
            path.push_str(&format!("since_s={since}"));
        }
        self.call(Method::GET, path.trim_end_matches(['?', '&']), None)
            .await
    }

    /// Lists a DLQ.
    pub async fn dlq_list(&self, queue: &str) -> Result<Vec<DlqMessage>, ControlError> {
        self.call(Method::GET, &format!("/dlq?queue={}", encode(queue)), None)
            .await
    }

    /// Redrives a DLQ.
    pub async fn redrive(&self, dlq: &str) -> Result<RedriveResponse, ControlError> {
        self.redrive_messages(dlq, &[]).await
    }

    /// Redrives the chosen messages of a DLQ (all of them when `message_ids` is empty).
    pub async fn redrive_messages(
        &self,
        dlq: &str,
        message_ids: &[String],
    ) -> Result<RedriveResponse, ControlError> {
        let body = serde_json::to_value(RedriveRequest {
            dlq: dlq.to_owned(),
            message_ids: message_ids.to_vec(),
        })
        .unwrap_or_default();
        self.call(Method::POST, "/dlq/redrive", Some(body)).await
    }

    /// Purges a queue; returns its name.
    pub async fn purge(&self, queue: &str) -> Result<String, ControlError> {
        let answer: serde_json::Value = self
            .call(
                Method::POST,
                "/purge",
                Some(serde_json::json!({ "queue": queue })),
            )
            .await?;
        Ok(answer["queue"].as_str().unwrap_or(queue).to_owned())
    }

    /// Enables or disables a schedule.
    pub async fn set_schedule_state(
        &self,
        schedule: &str,
        enabled: bool,
    ) -> Result<ScheduleDetail, ControlError> {
        self.call(
            Method::POST,
            "/schedules/state",
            Some(serde_json::json!({ "schedule": schedule, "enabled": enabled })),
        )
        .await
    }

    /// The chain of invocations a message or job caused, in the order they started
    /// (`nightshift trace`).
    pub async fn trace(&self, id: &str) -> Result<TraceChain, ControlError> {
        self.call(Method::GET, &format!("/trace/{}", encode(id)), None)
            .await
    }

    /// Reads the log stream, calling `each` for every line, until the emulator ends it (at
    /// once without `follow`; when it stops, with it).
    pub async fn logs(
        &self,
        query: &LogsQuery,
        mut each: impl FnMut(LogRecord),
    ) -> Result<(), ControlError> {
        let mut path = String::from("/logs?follow=");
        path.push_str(if query.follow { "true" } else { "false" });
        if let Some(f) = &query.function {
            path.push_str(&format!("&function={}", encode(f)));
        }
        if let Some(id) = &query.request_id {
            path.push_str(&format!("&request_id={}", encode(id)));
        }
        let response = self.request(Method::GET, &path, None).await?;
        let mut body = response.into_body().into_data_stream();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(data) = futures::StreamExt::next(&mut body).await {
            let data = data.map_err(|e| self.protocol(e))?;
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let record: LogRecord =
                    serde_json::from_slice(&line).map_err(|e| self.protocol(e))?;
                each(record);
            }
        }
        Ok(())
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
