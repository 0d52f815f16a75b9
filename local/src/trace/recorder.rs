//! Recording: [`TraceRecorder`] wraps an invoker and appends every invocation, normalised, to
//! a trace; [`recording_wrap`] plugs it into the emulator.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;
use tracing::warn;

use super::TraceError;
use super::format::{NormalizeOptions, TraceEntry, TraceWriter};
use super::normalize::Normalizer;
use crate::clock::SharedClock;
use crate::harness::describe;
use crate::invoker::{Decorator, InvokeError, InvokeRequest, InvokeResponse, Invoker, Slot, Wrap};

struct RecorderState {
    writer: TraceWriter<Box<dyn Write + Send>>,
    normalizer: Normalizer,
    next_seq: u64,
    error: Option<String>,
}

/// Wraps an invoker and appends every invocation, normalised, to a trace as it completes.
pub struct TraceRecorder {
    inner: Arc<dyn Invoker>,
    clock: OnceLock<SharedClock>,
    state: Mutex<RecorderState>,
}

impl TraceRecorder {
    /// Records what goes through `inner` to `writer` (whose header, if any, is written already).
    pub fn new(
        inner: Arc<dyn Invoker>,
        writer: TraceWriter<Box<dyn Write + Send>>,
        options: NormalizeOptions,
    ) -> Self {
        TraceRecorder {
            inner,
            clock: OnceLock::new(),
            state: Mutex::new(RecorderState {
                writer,
                normalizer: Normalizer::new(options),
                next_seq: 0,
                error: None,
            }),
        }
    }

    /// Stamps entries with this clock's time (the emulator's); the system clock until set.
    pub fn set_clock(&self, clock: SharedClock) {
        let _ = self.clock.set(clock);
    }

    /// Invocations written so far.
    pub fn recorded(&self) -> u64 {
        self.lock().next_seq
    }

    /// Flushes the trace; fails if any write failed since the recording began.
    pub fn flush(&self) -> Result<(), TraceError> {
        let mut state = self.lock();
        if let Some(error) = &state.error {
            return Err(TraceError::Io(std::io::Error::other(error.clone())));
        }
        state.writer.out.flush()?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecorderState> {
        // A panic while holding the lock leaves whole lines behind: the state stays usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(
        &self,
        function: String,
        payload: &[u8],
        at: DateTime<Utc>,
        result: &Result<InvokeResponse, InvokeError>,
    ) {
        let (event, raw) = match serde_json::from_slice::<Value>(payload) {
            Ok(event) => (event, false),
            Err(_) => (
                Value::String(String::from_utf8_lossy(payload).into_owned()),
                true,
            ),
        };
        let (outcome, response) = describe(result);
        let mut entry = TraceEntry::event(function, event).with_response(outcome, response);
        entry.raw = raw;
        entry.at = Some(at);
        let mut state = self.lock();
        entry.seq = state.next_seq;
        let entry = state.normalizer.entry(&entry);
        match state.writer.write_entry(&entry) {
            Ok(()) => state.next_seq += 1,
            Err(e) => {
                if state.error.is_none() {
                    warn!(error = %e, "cannot write the trace");
                }
                state.error = Some(e.to_string());
            }
        }
    }
}

impl Decorator for TraceRecorder {
    fn inner(&self) -> &Arc<dyn Invoker> {
        &self.inner
    }

    fn invoke_through(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        let at = self.clock.get().map(|c| c.now()).unwrap_or_else(Utc::now);
        Box::pin(async move {
            let function = req.function.clone();
            let payload = req.payload.clone();
            let result = self.inner.invoke_in(slot, req).await;
            self.record(function, &payload, at, &result);
            result
        })
    }
}

/// Where [`recording_wrap`] leaves the recorder once the emulator has built it.
pub type RecorderSlot = Arc<OnceLock<Arc<TraceRecorder>>>;

/// A [`Wrap`] for [`crate::emulator::Emulator::start_wrapped`] that records every invocation to
/// `writer`; the recorder appears in the slot when the emulator wraps its invoker.
pub fn recording_wrap(
    writer: TraceWriter<Box<dyn Write + Send>>,
    options: NormalizeOptions,
) -> (Wrap, RecorderSlot) {
    let slot: RecorderSlot = Arc::default();
    let filled = slot.clone();
    let wrap: Wrap = Box::new(move |inner: Arc<dyn Invoker>| -> Arc<dyn Invoker> {
        let recorder = Arc::new(TraceRecorder::new(inner, writer, options));
        let _ = filled.set(recorder.clone());
        recorder
    });
    (wrap, slot)
}
