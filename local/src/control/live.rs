//! The control endpoint's long-lived answers: the dashboard's server-sent events and the log
//! stream `nightshift logs` reads. Both end when the emulator stops (so its graceful shutdown
//! does not wait on an open browser tab) or when the client goes away.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::{ApiError, Shared};
use crate::history::LiveEvent;
use crate::logs::LogRecord;

/// Invocation events sent to one subscriber per second at most; the rest are counted in the
/// next status event (`skipped`), so a load test cannot flood a browser tab.
const MAX_EVENTS_PER_SECOND: u32 = 200;

/// Log events sent to one subscriber per second at most (with `?logs=true`), likewise.
const MAX_LOG_EVENTS_PER_SECOND: u32 = 1_000;

/// `GET /_nightshift/events` query.
#[derive(Debug, Default, Deserialize)]
pub(super) struct EventsQuery {
    /// Also stream every function log line (`log` events).
    #[serde(default)]
    logs: bool,
}

/// `GET /_nightshift/logs` query.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct LogsQuery {
    /// Only this function (logical id, name or short name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Only this invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Keep the answer open and stream new lines as they are written.
    #[serde(default)]
    pub follow: bool,
}

fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

/// Server-sent events: `status` (the whole status and the last second's sample) at once and
/// every second, `invocation` when one starts or ends, `log` for each line when `?logs=true`.
pub(super) async fn events(
    State(e): State<Shared>,
    Query(q): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(1024);
    tokio::spawn(pump_events(e, q.logs, tx));
    Sse::new(futures::StreamExt::map(receiver_stream(rx), Ok))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn pump_events(e: Shared, logs: bool, tx: mpsc::Sender<Event>) {
    let mut live = Some(e.history().subscribe());
    let mut stop = e.stopped();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (mut sent, mut logs_sent, mut skipped) = (0u32, 0u32, 0u64);
    // Once a second's caps are reached the pump unsubscribes until the next tick, so a load
    // test neither wakes it for each of the thousands of events it would only count nor
    // makes the history keep them for it (a broadcast with no receiver stores nothing):
    // what it missed is the history's published count since.
    let mut paused: Option<u64> = None;
    loop {
        let event = tokio::select! {
            biased;
            () = stop.recv() => return,
            () = tx.closed() => return,
            _ = tick.tick() => {
                if let Some(mark) = paused.take() {
                    skipped += e.history().published().saturating_sub(mark);
                    live = Some(e.history().subscribe());
                }
                let status = serde_json::json!({
                    "status": e.status(),
                    "sample": e.series().last(),
                    "skipped": std::mem::take(&mut skipped),
                });
                (sent, logs_sent) = (0, 0);
                json_event("status", &status)
            }
            got = recv(&mut live), if live.is_some() => match got {
                Ok(LiveEvent::Invocation(summary)) => {
                    if sent >= MAX_EVENTS_PER_SECOND {
                        skipped += 1;
                        if !logs || logs_sent >= MAX_LOG_EVENTS_PER_SECOND {
                            paused = Some(pause(&e, &mut live, &mut skipped));
                        }
                        continue;
                    }
                    sent += 1;
                    json_event("invocation", summary.as_ref())
                }
                Ok(LiveEvent::Log(record)) if logs => {
                    if logs_sent >= MAX_LOG_EVENTS_PER_SECOND {
                        skipped += 1;
                        if sent >= MAX_EVENTS_PER_SECOND {
                            paused = Some(pause(&e, &mut live, &mut skipped));
                        }
                        continue;
                    }
                    logs_sent += 1;
                    json_event("log", record.as_ref())
                }
                Ok(LiveEvent::Log(_)) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    skipped += n;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

/// The next live event; only polled while subscribed.
async fn recv(
    live: &mut Option<broadcast::Receiver<LiveEvent>>,
) -> Result<LiveEvent, broadcast::error::RecvError> {
    match live {
        Some(live) => live.recv().await,
        None => std::future::pending().await,
    }
}

/// Unsubscribes, counting the events still queued as skipped; the mark to count the rest
/// from at the next tick.
fn pause(e: &Shared, live: &mut Option<broadcast::Receiver<LiveEvent>>, skipped: &mut u64) -> u64 {
    if let Some(rx) = live.take() {
        *skipped += rx.len() as u64;
    }
    e.history().published()
}

fn json_event<T: Serialize>(name: &str, value: &T) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(value).unwrap_or_default())
}

/// The kept lines, oldest first, one JSON [`LogRecord`] per line; with `follow`, then every new
/// line until the emulator stops or the client goes away.
pub(super) async fn logs(
    State(e): State<Shared>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let function = match &q.function {
        Some(f) => Some(e.resolve_function(f)?),
        None => None,
    };
    // Subscribed before the kept lines are read, so no line falls between the two.
    let live = q.follow.then(|| e.history().subscribe());
    let kept = e
        .history()
        .logs(function.as_deref(), q.request_id.as_deref());
    let (tx, rx) = mpsc::channel::<bytes::Bytes>(1024);
    let last_kept = kept.last().map(|r| r.time);
    tokio::spawn(async move {
        for record in &kept {
            if tx.send(ndjson(record)).await.is_err() {
                return;
            }
        }
        let Some(mut live) = live else { return };
        let mut stop = e.stopped();
        loop {
            let record = tokio::select! {
                () = stop.recv() => return,
                () = tx.closed() => return,
                got = live.recv() => match got {
                    Ok(LiveEvent::Log(record)) => record,
                    Ok(LiveEvent::Invocation(_)) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if !wanted(&record, function.as_deref(), q.request_id.as_deref())
                || last_kept.is_some_and(|t| record.time <= t)
                    && kept.iter().any(|k| k == record.as_ref())
            {
                continue;
            }
            if tx.send(ndjson(&record)).await.is_err() {
                return;
            }
        }
    });
    let body = Body::from_stream(futures::StreamExt::map(
        receiver_stream(rx),
        Ok::<_, std::convert::Infallible>,
    ));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response())
}

fn wanted(record: &LogRecord, function: Option<&str>, request_id: Option<&str>) -> bool {
    function.is_none_or(|f| record.function == f)
        && request_id.is_none_or(|id| record.request_id.as_deref() == Some(id))
}

fn ndjson(record: &LogRecord) -> bytes::Bytes {
    let mut line = serde_json::to_vec(record).unwrap_or_default();
    line.push(b'\n');
    line.into()
}
