//! poller: one mapping's loop: wait for a free concurrency slot, gather a batch, invoke the
//! function in a task of its own, settle the result.
//!
//! Batches are gathered one at a time and only once a slot is free, so the poller never hides
//! messages (by receiving them) that it could not send yet. Messages received but left out of
//! a batch by the 6 MB cap are carried to the next batch; at shutdown, the ones never sent are
//! handed back with a visibility timeout of 0 so they are not stuck until their timeout.
//!
//! Waiting for messages goes through the engine's [`QueueSubscription`], which sleeps on the
//! engine's clock only, and receives never wait: a long-polling receive is also capped by real
//! time, which under a stopped manual clock would wake the poller every 20 s for nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::event::{self, EVENT_OVERHEAD, Record};
use super::settle::{self, SettleReason, Settlement, Verdict, settle};
use super::{Counters, MappingConfig, RECEIVE_MAX};
use crate::invoker::{InvokeError, InvokeRequest, Invoker, MAX_PAYLOAD_BYTES, Slot};
use crate::shutdown::Signal;
use crate::sqs::{QueueSubscription, ReceiveOptions, SqsEngine, SqsError};

/// Pause after an SQS error (queue deleted, journal failure) before polling again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Pause when the queue keeps reporting visible messages that receives do not return, so a
/// disagreement between the two never becomes a busy loop.
const EMPTY_RECEIVE_BACKOFF: Duration = Duration::from_millis(20);

/// What the poller logs when the engine fails it.
const POLL_FAILED: &str = "cannot poll the queue, retrying";

/// Empty receives in a row, with messages said to be visible, before backing off.
const EMPTY_RECEIVES_BEFORE_BACKOFF: u32 = 3;

/// What a gathering pass ended with.
enum Gathered {
    /// A batch to invoke.
    Batch(Vec<Record>),
    /// Shutdown: the messages gathered so far, unsent.
    Stopped(Vec<Record>),
    /// The engine failed; the messages gathered so far are put back in the carry.
    Failed(SqsError, Vec<Record>),
    /// The function cannot take an invocation (unknown, or no concurrency); the messages
    /// gathered so far are put back in the carry.
    Unavailable(InvokeError, Vec<Record>),
}

/// Why no place among the function's instances was reserved.
enum NoSlot {
    Shutdown,
    Unavailable(InvokeError),
}

impl NoSlot {
    /// How the gathering pass ends, with the records gathered so far.
    fn with(self, records: Vec<Record>) -> Gathered {
        match self {
            NoSlot::Shutdown => Gathered::Stopped(records),
            NoSlot::Unavailable(err) => Gathered::Unavailable(err, records),
        }
    }
}

/// What the invocation tasks share.
struct Shared {
    config: MappingConfig,
    engine: SqsEngine,
    invoker: Arc<dyn Invoker>,
    counters: Arc<Counters>,
}

pub(super) struct Poller {
    shared: Arc<Shared>,
    shutdown: Signal,
    /// Received messages that did not fit the previous batch, oldest first.
    carry: VecDeque<Record>,
    empty_receives: u32,
    /// The source's `FilterCriteria`; empty delivers everything.
    filter: super::filter::FilterSet,
    /// A place among the function's instances, reserved before the batch being gathered
    /// was received (see [`Poller::reserve`]).
    reserved: Option<Slot>,
}

impl Poller {
    pub(super) fn new(
        config: MappingConfig,
        engine: SqsEngine,
        invoker: Arc<dyn Invoker>,
        counters: Arc<Counters>,
        shutdown: Signal,
    ) -> Self {
        // The patterns were checked when the mapping was resolved from the template; one that
        // fails here (a hand-made config) filters nothing rather than everything.
        let filter = super::filter::FilterSet::parse(&config.filter_patterns).unwrap_or_else(|e| {
            tracing::warn!(error = %e, mapping = %config.id, "invalid filter criteria ignored");
            super::filter::FilterSet::default()
        });
        Poller {
            filter,
            shared: Arc::new(Shared {
                config,
                engine,
                invoker,
                counters,
            }),
            shutdown,
            carry: VecDeque::new(),
            empty_receives: 0,
            reserved: None,
        }
    }

    pub(super) async fn run(mut self) {
        let config = &self.shared.config;
        let span = tracing::info_span!("mapping", id = %config.id, function = %config.function, queue = %config.queue);
        async move {
            let config = &self.shared.config;
            if !config.enabled || config.max_concurrency == 0 {
                tracing::info!(
                    enabled = config.enabled,
                    max_concurrency = config.max_concurrency,
                    "mapping idle: disabled or no concurrency"
                );
                self.shutdown.recv().await;
                return;
            }
            tracing::debug!(
                batch_size = config.batch_size,
                window_ms = config.window.as_millis() as u64,
                max_concurrency = config.max_concurrency,
                report_batch_item_failures = config.report_batch_item_failures,
                "mapping started"
            );
            self.poll().await;
            tracing::debug!("mapping stopped");
        }
        .instrument(span)
        .await
    }

    async fn poll(&mut self) {
        let slots = Arc::new(Semaphore::new(self.shared.config.max_concurrency as usize));
        let mut in_flight = JoinSet::new();
        let mut subscription = None;
        loop {
            while let Some(done) = in_flight.try_join_next() {
                log_join(done);
            }
            if self.shutdown.is_triggered() {
                break;
            }
            let permit = tokio::select! {
                biased;
                () = self.shutdown.recv() => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    // The semaphore is never closed.
                    Err(_) => break,
                },
            };
            if subscription.is_none() {
                match self.shared.engine.subscribe(&self.shared.config.queue) {
                    Ok(sub) => subscription = Some(sub),
                    Err(err) => {
                        drop(permit);
                        if !self.back_off(&err, POLL_FAILED).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            let Some(sub) = subscription.as_ref() else {
                continue;
            };
            match self.gather(sub).await {
                Gathered::Batch(batch) => {
                    // Counted here, before the task runs, so the batch is never in neither
                    // `buffered` nor `in_flight`.
                    let counters = &self.shared.counters;
                    Counters::add(&counters.in_flight, 1);
                    Counters::add(&counters.batches, 1);
                    Counters::add(&counters.records, batch.len());
                    Counters::set(&counters.buffered, self.carry.len());
                    let shared = self.shared.clone();
                    let slot = self.reserved.take().unwrap_or_else(Slot::unlimited);
                    in_flight.spawn(invoke(shared, batch, permit, slot));
                }
                Gathered::Stopped(partial) => {
                    self.carry.extend(partial);
                    break;
                }
                Gathered::Unavailable(err, partial) => {
                    drop(permit);
                    self.put_back(partial);
                    if !self
                        .back_off(&err, "the function cannot take the batch, retrying")
                        .await
                    {
                        break;
                    }
                }
                Gathered::Failed(err, partial) => {
                    drop(permit);
                    self.put_back(partial);
                    if matches!(err, SqsError::QueueDoesNotExist) {
                        // A queue created again under the same name is a new queue.
                        subscription = None;
                    }
                    if !self.back_off(&err, POLL_FAILED).await {
                        break;
                    }
                }
            }
        }
        self.reserved = None;
        self.release_carry();
        while let Some(done) = in_flight.join_next().await {
            log_join(done);
        }
    }

    /// Puts gathered but unsent records back at the front of the carry, in their order.
    fn put_back(&mut self, records: Vec<Record>) {
        for record in records.into_iter().rev() {
            self.carry.push_front(record);
        }
    }

    /// Logs `err` with `message` and waits a little; false if shutdown came meanwhile.
    async fn back_off(&mut self, err: &(dyn std::fmt::Display + Sync), message: &str) -> bool {
        tracing::warn!(error = %err, "{message}");
        tokio::select! {
            biased;
            () = self.shutdown.recv() => false,
            () = tokio::time::sleep(ERROR_BACKOFF) => true,
        }
    }

    /// Gathers one batch: at most `batch_size` records and 6 MB of event, within the window.
    async fn gather(&mut self, sub: &QueueSubscription) -> Gathered {
        let shared = self.shared.clone();
        let config = &shared.config;
        let clock = self.shared.engine.clock().clone();
        let batch_size = config.batch_size.max(1) as usize;
        let mut batch = Batch::default();
        if !self.carry.is_empty()
            && let Err(stop) = self.reserve().await
        {
            return stop.with(batch.records);
        }
        while let Some(record) = self.carry.pop_front() {
            if !batch.fits(&record) {
                self.carry.push_front(record);
                return Gathered::Batch(batch.records);
            }
            batch.push(record);
            if batch.len() >= batch_size {
                return Gathered::Batch(batch.records);
            }
        }
        let window = TimeDelta::from_std(config.window).unwrap_or(TimeDelta::MAX);
        let mut deadline = (!batch.is_empty()).then(|| clock.now() + window);
        // Ends by returning: each pass receives, or waits for messages, the window or shutdown.
        loop {
            if batch.is_empty() {
                match sub.visible() {
                    Ok(0) => {
                        self.empty_receives = 0;
                        tokio::select! {
                            biased;
                            () = self.shutdown.recv() => return Gathered::Stopped(batch.records),
                            visible = sub.wait_visible(None) => {
                                if let Err(err) = visible {
                                    return Gathered::Failed(err, batch.records);
                                }
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(err) => return Gathered::Failed(err, batch.records),
                }
            }
            if self.shutdown.is_triggered() {
                return Gathered::Stopped(batch.records);
            }
            // Messages are visible: hold a place among the function's instances before taking
            // them, so their visibility timeouts never run while they wait for one.
            if let Err(stop) = self.reserve().await {
                return stop.with(batch.records);
            }
            let want = (batch_size - batch.len()).min(RECEIVE_MAX as usize) as u32;
            let options = ReceiveOptions::all_attributes(want).wait(Duration::ZERO);
            let counters = &self.shared.counters;
            // Reserved before receiving: what leaves the queue is counted at once.
            Counters::set(
                &counters.buffered,
                batch.len() + self.carry.len() + want as usize,
            );
            let received = self
                .shared
                .engine
                .receive_message(&config.queue, &options)
                .await;
            let received = match received {
                Ok(received) => received,
                Err(err) => {
                    Counters::set(&counters.buffered, batch.len() + self.carry.len());
                    return Gathered::Failed(err, batch.records);
                }
            };
            let got = received.len();
            let mut full = false;
            for message in received {
                let record = Record::render(message, &config.queue_arn, &config.region);
                if !self.filter.matches(&record.json) {
                    // As Lambda does: a record no filter matches is deleted, never invoked.
                    if let Err(err) = self
                        .shared
                        .engine
                        .delete_message(&config.queue, &record.receipt_handle)
                    {
                        tracing::warn!(error = %err, "cannot delete a filtered-out record");
                    }
                    tracing::debug!(message_id = %record.message_id, "record filtered out");
                    continue;
                }
                if full || !batch.fits(&record) {
                    full = true;
                    self.carry.push_back(record);
                } else {
                    batch.push(record);
                }
            }
            Counters::set(&counters.buffered, batch.len() + self.carry.len());
            if full || batch.len() >= batch_size {
                return Gathered::Batch(batch.records);
            }
            if got == 0 {
                self.empty_receives += 1;
            } else {
                self.empty_receives = 0;
            }
            let stalled = self.empty_receives >= EMPTY_RECEIVES_BEFORE_BACKOFF;
            if batch.is_empty() {
                if stalled {
                    tokio::select! {
                        biased;
                        () = self.shutdown.recv() => return Gathered::Stopped(batch.records),
                        () = tokio::time::sleep(EMPTY_RECEIVE_BACKOFF) => {}
                    }
                }
                continue;
            }
            let deadline = *deadline.get_or_insert_with(|| clock.now() + window);
            if config.window.is_zero() {
                // No window: invoke with what is there now, receiving again only while
                // receives come back full (batches above 10).
                if (got as u32) < want {
                    return Gathered::Batch(batch.records);
                }
                continue;
            }
            if clock.now() >= deadline {
                return Gathered::Batch(batch.records);
            }
            if got as u32 == want {
                continue;
            }
            if stalled {
                tokio::select! {
                    biased;
                    () = self.shutdown.recv() => return Gathered::Stopped(batch.records),
                    () = clock.sleep_until(deadline) => return Gathered::Batch(batch.records),
                    () = tokio::time::sleep(EMPTY_RECEIVE_BACKOFF) => {}
                }
                continue;
            }
            tokio::select! {
                biased;
                () = self.shutdown.recv() => return Gathered::Stopped(batch.records),
                () = clock.sleep_until(deadline) => return Gathered::Batch(batch.records),
                visible = sub.wait_visible(None) => {
                    if let Err(err) = visible {
                        return Gathered::Failed(err, batch.records);
                    }
                }
            }
        }
    }

    /// Waits for a place among the function's instances unless one is already held. Lambda's
    /// pollers never hand a batch to a function that has no room for it; the emulator's pool
    /// is shared with asynchronous and direct invocations, so the poller reserves first and
    /// receives second.
    async fn reserve(&mut self) -> Result<(), NoSlot> {
        if self.reserved.is_some() {
            return Ok(());
        }
        let shared = self.shared.clone();
        let function = shared.config.function.as_str();
        tokio::select! {
            biased;
            () = self.shutdown.recv() => Err(NoSlot::Shutdown),
            slot = shared.invoker.reserve(function) => {
                self.reserved = Some(slot.map_err(NoSlot::Unavailable)?);
                Ok(())
            }
        }
    }

    /// Hands the received but unsent messages back to the queue at once.
    fn release_carry(&mut self) {
        Counters::set(&self.shared.counters.buffered, 0);
        if self.carry.is_empty() {
            return;
        }
        let records: Vec<Record> = self.carry.drain(..).collect();
        let count = records.len();
        let shared = &self.shared;
        let mut failed = 0;
        for chunk in records.chunks(RECEIVE_MAX as usize) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| (i.to_string(), r.receipt_handle.clone(), 0))
                .collect();
            match shared
                .engine
                .change_message_visibility_batch(&shared.config.queue, entries)
            {
                Ok(outcome) => failed += outcome.failed.len(),
                Err(_) => failed += chunk.len(),
            }
        }
        Counters::add(&shared.counters.released, count);
        if failed > 0 {
            tracing::warn!(
                count,
                failed,
                "some unsent messages could not be released; they return after their visibility timeout"
            );
        } else {
            tracing::debug!(count, "unsent messages released");
        }
    }
}

/// A batch being gathered: its records and the size its event will have.
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    by_id: HashMap<String, usize>,
    event_bytes: usize,
}

impl Batch {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether `record` can join without the event going over 6 MB. A first record always
    /// fits: alone, it can only be sent alone.
    fn fits(&self, record: &Record) -> bool {
        if self.records.is_empty() {
            return true;
        }
        let replaced = self
            .by_id
            .get(&record.message_id)
            .map(|&i| self.records[i].json.len() + 1);
        let added = record.json.len() + 1;
        self.event_bytes + added - replaced.unwrap_or(0) <= MAX_PAYLOAD_BYTES
    }

    fn push(&mut self, record: Record) {
        if self.records.is_empty() {
            self.event_bytes = EVENT_OVERHEAD - 1;
        }
        // The same message received again (its visibility ran out during the window): only
        // the newest receipt handle can delete it, and it must be sent only once.
        if let Some(&i) = self.by_id.get(&record.message_id) {
            self.event_bytes -= self.records[i].json.len();
            self.event_bytes += record.json.len();
            self.records[i] = record;
            return;
        }
        self.event_bytes += record.json.len() + 1;
        self.by_id
            .insert(record.message_id.clone(), self.records.len());
        self.records.push(record);
    }
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(err) = done {
        tracing::error!(error = %err, "an invocation task failed");
    }
}

/// Warns of each record a FIFO batch's response acknowledged after a failed one of its group:
/// Lambda deletes it all the same, which breaks the group's order in AWS as it does here.
fn warn_order_breaks(batch: &[Record], keep: &[String]) {
    let records: Vec<(&str, Option<&str>)> = batch
        .iter()
        .map(|r| (r.message_id.as_str(), r.group_id.as_deref()))
        .collect();
    for broken in settle::fifo_order_breaks(&records, keep) {
        tracing::warn!(
            group = %broken.group,
            failed = %broken.failed,
            acknowledged = %broken.acknowledged,
            "fifo order broken: the response acknowledged a record after a failed one of its group, so lambda deletes it and the failed one runs after it; report every record after the first failure"
        );
    }
}

/// Invokes the function with `batch`, settles the result, frees the slot.
async fn invoke(shared: Arc<Shared>, batch: Vec<Record>, permit: OwnedSemaphorePermit, slot: Slot) {
    let config = &shared.config;
    let counters = &shared.counters;
    let request_id = crate::ids::uuid_string();
    let records = batch.len();
    let span = tracing::info_span!("invoke", function = %config.function, request_id = %request_id, records);
    async {
        let payload = event::assemble(&batch);
        let ids: Vec<String> = batch.iter().map(|r| r.message_id.clone()).collect();
        let (trace_header, trace_links) = event::trace(&batch);
        let request = InvokeRequest {
            function: config.function.clone(),
            payload: payload.into(),
            request_id: request_id.clone(),
            trigger: format!("sqs:{}", config.queue),
            message_ids: ids.clone(),
            trace_header,
            trace_links,
        };
        tracing::debug!("invoking");
        let settlement = match shared.invoker.invoke_in(slot, request).await {
            Ok(response) => settle(&ids, &response.outcome, config.report_batch_item_failures),
            Err(err) => Settlement::failed(&ids, SettleReason::InvokeFailed(err.to_string())),
        };
        apply(&shared, &batch, &settlement);
        match settlement.verdict() {
            Verdict::Success => {
                Counters::add(&counters.successes, 1);
                tracing::debug!("batch succeeded");
            }
            Verdict::PartialFailure => {
                Counters::add(&counters.partial_failures, 1);
                if config.queue.ends_with(".fifo") {
                    warn_order_breaks(&batch, &settlement.keep);
                }
                tracing::info!(
                    failed = settlement.keep.len(),
                    "batch partially failed: failed records return after their visibility timeout"
                );
            }
            Verdict::Failure => {
                Counters::add(&counters.full_failures, 1);
                tracing::warn!(
                    reason = %settlement.reason,
                    "batch failed: its records return after their visibility timeout"
                );
            }
        }
        Counters::add(&counters.kept, settlement.keep.len());
        counters
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
    .instrument(span)
    .await;
    drop(permit);
}

/// Deletes the settled messages with the receipt handles of this receive.
fn apply(shared: &Shared, batch: &[Record], settlement: &Settlement) {
    if settlement.delete.is_empty() {
        return;
    }
    let handles: HashMap<&str, &str> = batch
        .iter()
        .map(|r| (r.message_id.as_str(), r.receipt_handle.as_str()))
        .collect();
    let to_delete: Vec<&str> = settlement
        .delete
        .iter()
        .filter_map(|id| handles.get(id.as_str()).copied())
        .collect();
    let counters = &shared.counters;
    for chunk in to_delete.chunks(RECEIVE_MAX as usize) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, handle)| (i.to_string(), (*handle).to_owned()))
            .collect();
        match shared
            .engine
            .delete_message_batch(&shared.config.queue, entries)
        {
            Ok(outcome) => {
                let failures = outcome.failed;
                Counters::add(&counters.deleted, outcome.successful.len());
                if !failures.is_empty() {
                    Counters::add(&counters.delete_errors, failures.len());
                    for failure in &failures {
                        tracing::warn!(code = %failure.code, error = %failure.message, "delete failed: the message will be delivered again");
                    }
                }
            }
            Err(err) => {
                Counters::add(&counters.delete_errors, chunk.len());
                tracing::warn!(error = %err, count = chunk.len(), "delete failed: the messages will be delivered again");
            }
        }
    }
}
