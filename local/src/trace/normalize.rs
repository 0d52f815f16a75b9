//! The normalisation rules of the [module docs](super): [`Normalizer`] replaces what the
//! emulator draws at random by numbered placeholders, across one trace.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde_json::{Map, Value};

use nightshift_contract::record::{ORIGINAL_ID_ATTRIBUTE, TRACE_HEADER_ATTRIBUTE};

use super::format::{MASKED_TIMESTAMP, NormalizeOptions, TimeMode, TraceEntry};
use crate::harness::Invocation;
use crate::sqs::MessageAttributeValue;

/// The SQS record attributes that hold receive-time clock readings.
const CLOCK_ATTRIBUTES: [&str; 2] = ["SentTimestamp", "ApproximateFirstReceiveTimestamp"];

/// Placeholders for one kind of id, numbered from 1 in order of first appearance.
#[derive(Debug, Default, Clone)]
struct IdMap {
    map: HashMap<String, String>,
    next: u64,
}

impl IdMap {
    fn map(&mut self, prefix: &str, raw: &str) -> String {
        if let Some(known) = self.map.get(raw) {
            return known.clone();
        }
        self.next += 1;
        let placeholder = format!("{prefix}-{}", self.next);
        self.map.insert(raw.to_owned(), placeholder.clone());
        placeholder
    }
}

/// Applies the normalisation rules of the [module docs](crate::trace) across one trace: the
/// placeholders depend on everything seen before, so one normalizer serves one trace, event
/// then response, in trace order.
#[derive(Debug, Default, Clone)]
pub struct Normalizer {
    options: NormalizeOptions,
    messages: IdMap,
    receipts: IdMap,
    traces: IdMap,
    events: IdMap,
    executions: IdMap,
}

impl Normalizer {
    /// A normalizer that has seen nothing yet.
    pub fn new(options: NormalizeOptions) -> Self {
        Normalizer {
            options,
            ..Normalizer::default()
        }
    }

    /// The options it applies.
    pub fn options(&self) -> NormalizeOptions {
        self.options
    }

    /// The placeholder a raw message id got, if it was seen.
    pub fn message_id(&self, raw: &str) -> Option<&str> {
        self.messages.map.get(raw).map(String::as_str)
    }

    /// A normalised copy of an event.
    pub fn event(&mut self, event: &Value) -> Value {
        let mut event = event.clone();
        let sqs = match event.get_mut("Records").and_then(Value::as_array_mut) {
            Some(records) => {
                let mut any = false;
                for record in records.iter_mut() {
                    if record.get("eventSource").and_then(Value::as_str) == Some("aws:sqs") {
                        self.sqs_record(record);
                        any = true;
                    }
                }
                any
            }
            None => false,
        };
        if sqs {
            return event;
        }
        let scheduled = event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
        if scheduled && let Some(id) = event.get_mut("id") {
            if let Value::String(raw) = id {
                *raw = self.events.map("event", raw);
            }
            return event;
        }
        self.execution_ids(&mut event);
        event
    }

    fn sqs_record(&mut self, record: &mut Value) {
        let Some(fields) = record.as_object_mut() else {
            return;
        };
        if let Some(Value::String(id)) = fields.get_mut("messageId") {
            *id = self.messages.map("msg", id);
        }
        if let Some(Value::String(handle)) = fields.get_mut("receiptHandle") {
            *handle = self.receipts.map("rh", handle);
        }
        // A new trace is drawn for every invocation that continues none, so a record's
        // `AWSTraceHeader` (the trace its sender ran in) is numbered by its root; the parent,
        // drawn too, is dropped.
        if let Some(Value::Object(attributes)) = fields.get_mut("attributes")
            && let Some(Value::String(header)) = attributes.get_mut(TRACE_HEADER_ATTRIBUTE)
            && let Some(root) = crate::xray::root(header)
        {
            let root = root.to_owned();
            *header = format!("Root={}", self.traces.map("trace", &root));
        }
        if self.options.times == TimeMode::Mask
            && let Some(Value::Object(attributes)) = fields.get_mut("attributes")
        {
            for name in CLOCK_ATTRIBUTES {
                if let Some(value) = attributes.get_mut(name) {
                    *value = Value::from(MASKED_TIMESTAMP);
                }
            }
        }
        let mut remapped = false;
        if let Some(Value::Object(attributes)) = fields.get_mut("messageAttributes")
            && let Some(Value::String(original)) = attributes
                .get_mut(ORIGINAL_ID_ATTRIBUTE)
                .and_then(|a| a.get_mut("stringValue"))
        {
            let mapped = self.messages.map("msg", original);
            remapped = mapped != *original;
            *original = mapped;
        }
        if remapped
            && fields.contains_key("md5OfMessageAttributes")
            && let Some(Value::Object(attributes)) = fields.get("messageAttributes")
            && let Some(md5) = md5_of_event_attributes(attributes)
        {
            fields.insert("md5OfMessageAttributes".into(), Value::from(md5));
        }
    }

    fn execution_ids(&mut self, value: &mut Value) {
        match value {
            Value::Object(fields) => {
                // Keys in sorted order, so the numbering does not depend on how the map
                // iterates (serde_json's `preserve_order` or not).
                let mut keys: Vec<String> = fields.keys().cloned().collect();
                keys.sort_unstable();
                for key in keys {
                    let Some(child) = fields.get_mut(&key) else {
                        continue;
                    };
                    match child {
                        Value::String(raw) if is_execution_id_key(&key) => {
                            *raw = self.executions.map("exec", raw);
                        }
                        _ => self.execution_ids(child),
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.execution_ids(item);
                }
            }
            _ => {}
        }
    }

    /// A normalised copy of a response.
    pub fn response(&mut self, response: &Value) -> Value {
        let mut response = response.clone();
        if let Some(failures) = response
            .get_mut("batchItemFailures")
            .and_then(Value::as_array_mut)
        {
            for failure in failures.iter_mut() {
                if let Some(Value::String(id)) = failure.get_mut("itemIdentifier")
                    && !id.is_empty()
                {
                    *id = self.messages.map("msg", id);
                }
            }
            failures.sort_by(|a, b| {
                let id = |v: &Value| {
                    v.get("itemIdentifier")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                id(a).cmp(&id(b))
            });
        }
        self.known_strings(&mut response);
        response
    }

    fn known_strings(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                let known = [
                    &self.messages,
                    &self.receipts,
                    &self.events,
                    &self.executions,
                ]
                .into_iter()
                .find_map(|ids| ids.map.get(text.as_str()));
                if let Some(placeholder) = known {
                    *text = placeholder.clone();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.known_strings(v)),
            Value::Object(fields) => fields.values_mut().for_each(|v| self.known_strings(v)),
            _ => {}
        }
    }

    /// A normalised copy of an entry: its event, its response and its time.
    pub fn entry(&mut self, entry: &TraceEntry) -> TraceEntry {
        let mut out = entry.clone();
        if !entry.raw {
            out.event = self.event(&entry.event);
        }
        out.response = entry.response.as_ref().map(|r| self.response(r));
        if self.options.times == TimeMode::Mask {
            out.at = None;
        }
        out
    }
}

/// Whether a key names an execution id, in any of its spellings (`executionId`,
/// `execution_id`, `Execution-Id`, ...).
fn is_execution_id_key(key: &str) -> bool {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .eq("executionid".chars())
}

/// The `md5OfMessageAttributes` of an SQS record's `messageAttributes`, as SQS computes it.
fn md5_of_event_attributes(attributes: &Map<String, Value>) -> Option<String> {
    let mut parsed = BTreeMap::new();
    for (name, value) in attributes {
        let data_type = value.get("dataType").and_then(Value::as_str)?.to_owned();
        let string_value = value
            .get("stringValue")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let binary_value = match value.get("binaryValue").and_then(Value::as_str) {
            Some(b64) => Some(base64::engine::general_purpose::STANDARD.decode(b64).ok()?),
            None => None,
        };
        parsed.insert(
            name.clone(),
            MessageAttributeValue {
                data_type,
                string_value,
                binary_value,
            },
        );
    }
    crate::sqs::md5::md5_of_attributes(&parsed)
}

/// Normalises the invocations a [`crate::harness::Harness`] recorded into trace entries, in
/// order of `seq`.
pub fn entries_from_invocations(
    invocations: &[Invocation],
    options: NormalizeOptions,
) -> Vec<TraceEntry> {
    let mut sorted: Vec<&Invocation> = invocations.iter().collect();
    sorted.sort_by_key(|i| i.seq);
    let mut normalizer = Normalizer::new(options);
    sorted
        .into_iter()
        .enumerate()
        .map(|(seq, i)| {
            let mut entry = TraceEntry::event(i.function.clone(), i.event.clone())
                .with_response(i.outcome.clone(), i.response.clone());
            entry.seq = seq as u64;
            entry.at = Some(i.at);
            normalizer.entry(&entry)
        })
        .collect()
}
