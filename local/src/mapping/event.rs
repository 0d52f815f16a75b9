//! event: the SQS event JSON Lambda sends, record by record.
//!
//! Each received message is serialised once, when it is received, so the poller knows the
//! exact size an event will have before building it (the 6 MB cap is on the whole payload).
//! The shape and key order are those of Lambda's events as the AWS docs show them
//! (`messageId`, `receiptHandle`, `body`, `attributes`, `messageAttributes`, `md5OfBody`,
//! `eventSource`, `eventSourceARN`, `awsRegion`), and they deserialise into
//! `aws_lambda_events::sqs::SqsEvent`:
//! - `attributes` lists `ApproximateReceiveCount`, `SentTimestamp`, `SenderId`,
//!   `ApproximateFirstReceiveTimestamp` first, then any other system attribute by name;
//! - each message attribute has `stringValue` or `binaryValue` (base64), empty
//!   `stringListValues` and `binaryListValues`, and `dataType`;
//! - `md5OfMessageAttributes` follows `messageAttributes` when the message has attributes.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde::ser::SerializeMap;

use nightshift_contract::record::TRACE_HEADER_ATTRIBUTE;

use crate::sqs::{MessageAttributeValue, ReceivedMessage};
use crate::xray;

/// `eventSource` of every SQS record.
pub const EVENT_SOURCE: &str = "aws:sqs";

const PREFIX: &[u8] = b"{\"Records\":[";
const SUFFIX: &[u8] = b"]}";

/// Bytes of an event with no record: `{"Records":[]}`.
pub const EVENT_OVERHEAD: usize = PREFIX.len() + SUFFIX.len();

/// The system attributes Lambda lists first, in its order.
const LEADING_ATTRIBUTES: [&str; 4] = [
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
];

/// One message as a serialised event record, with what settling it needs.
#[derive(Debug, Clone)]
pub struct Record {
    /// The message id (`messageId`).
    pub message_id: String,
    /// The receipt handle of the receive that produced this record.
    pub receipt_handle: String,
    /// The record's JSON.
    pub json: Vec<u8>,
    /// The message group (`attributes.MessageGroupId`), if it has one.
    pub group_id: Option<String>,
    /// The X-Ray trace the message was sent in (`attributes.AWSTraceHeader`), if any.
    pub trace_header: Option<String>,
}

impl Record {
    /// Serialises `message` as a record from queue `queue_arn` in `region`.
    pub fn render(message: ReceivedMessage, queue_arn: &str, region: &str) -> Record {
        let wire = WireRecord {
            message_id: &message.message_id,
            receipt_handle: &message.receipt_handle,
            body: &message.body,
            attributes: OrderedAttributes(&message.attributes),
            message_attributes: message
                .message_attributes
                .iter()
                .map(|(name, value)| (name.as_str(), WireAttribute::from(value)))
                .collect(),
            md5_of_message_attributes: message.md5_of_message_attributes.as_deref(),
            md5_of_body: &message.md5_of_body,
            event_source: EVENT_SOURCE,
            event_source_arn: queue_arn,
            aws_region: region,
        };
        // Plain strings and maps of strings: serialising cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        Record {
            group_id: message.attributes.get("MessageGroupId").cloned(),
            trace_header: message
                .attributes
                .get(TRACE_HEADER_ATTRIBUTE)
                .filter(|h| !h.is_empty())
                .cloned(),
            message_id: message.message_id,
            receipt_handle: message.receipt_handle,
            json,
        }
    }
}

/// The X-Ray trace of the invocation of `batch`, as Lambda makes it: a new trace (its header)
/// linked to the traces of the batch's messages (their `AWSTraceHeader` roots, see
/// [`xray::links`]). "Traces from upstream message producers are automatically linked to
/// traces from downstream Lambda consumer nodes"
/// (<https://docs.aws.amazon.com/xray/latest/devguide/xray-tracelinking.html>): the consumer
/// does not continue a producer's trace, since one batch holds messages of many traces.
/// `nightshift trace` follows the links ([`crate::history::History::chain`]).
pub fn trace(batch: &[Record]) -> (String, Vec<String>) {
    let links = xray::links(batch.iter().filter_map(|r| r.trace_header.as_deref()));
    (xray::new_header(), links)
}

/// The size of an event holding records of these sizes.
pub fn event_size(record_sizes: impl IntoIterator<Item = usize>) -> usize {
    let mut total = EVENT_OVERHEAD;
    let mut count: usize = 0;
    for size in record_sizes {
        total += size;
        count += 1;
    }
    total + count.saturating_sub(1)
}

/// The event JSON of `records`, in order.
pub fn assemble<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<u8> {
    let records: Vec<&Record> = records.into_iter().collect();
    let mut out = Vec::with_capacity(event_size(records.iter().map(|r| r.json.len())));
    out.extend_from_slice(PREFIX);
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&record.json);
    }
    out.extend_from_slice(SUFFIX);
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord<'a> {
    message_id: &'a str,
    receipt_handle: &'a str,
    body: &'a str,
    attributes: OrderedAttributes<'a>,
    message_attributes: BTreeMap<&'a str, WireAttribute<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    md5_of_message_attributes: Option<&'a str>,
    md5_of_body: &'a str,
    event_source: &'static str,
    #[serde(rename = "eventSourceARN")]
    event_source_arn: &'a str,
    aws_region: &'a str,
}

/// System attributes, Lambda's four first, then the others by name.
struct OrderedAttributes<'a>(&'a BTreeMap<String, String>);

impl Serialize for OrderedAttributes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for name in LEADING_ATTRIBUTES {
            if let Some(value) = self.0.get(name) {
                map.serialize_entry(name, value)?;
            }
        }
        for (name, value) in self.0 {
            if !LEADING_ATTRIBUTES.contains(&name.as_str()) {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireAttribute<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    string_value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary_value: Option<String>,
    // SQS reserves the list values and never fills them; Lambda still sends them empty.
    string_list_values: [&'a str; 0],
    binary_list_values: [&'a str; 0],
    data_type: &'a str,
}

impl<'a> From<&'a MessageAttributeValue> for WireAttribute<'a> {
    fn from(value: &'a MessageAttributeValue) -> Self {
        let binary = value.is_binary();
        WireAttribute {
            string_value: if binary {
                None
            } else {
                value.string_value.as_deref()
            },
            binary_value: if binary {
                value.binary_value.as_ref().map(|b| STANDARD.encode(b))
            } else {
                None
            },
            string_list_values: [],
            binary_list_values: [],
            data_type: &value.data_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> ReceivedMessage {
        let mut attributes = BTreeMap::new();
        attributes.insert("AWSTraceHeader".to_owned(), "Root=1-abc".to_owned());
        attributes.insert("SenderId".to_owned(), "000000000000".to_owned());
        attributes.insert("SentTimestamp".to_owned(), "1".to_owned());
        attributes.insert("ApproximateReceiveCount".to_owned(), "1".to_owned());
        attributes.insert(
            "ApproximateFirstReceiveTimestamp".to_owned(),
            "2".to_owned(),
        );
        ReceivedMessage {
            message_id: "m1".into(),
            receipt_handle: "r1".into(),
            body: "say \"hi\"".into(),
            md5_of_body: "x".into(),
            attributes,
            message_attributes: BTreeMap::new(),
            md5_of_message_attributes: None,
        }
    }

    #[test]
    fn leading_attributes_come_first_and_md5_of_attributes_is_omitted() {
        let record = Record::render(
            message(),
            "arn:aws:sqs:eu-west-1:000000000000:q",
            "eu-west-1",
        );
        let text = String::from_utf8(record.json).unwrap();
        let attrs = &text[text.find("\"attributes\"").unwrap()..];
        let order: Vec<usize> = [
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
            "AWSTraceHeader",
        ]
        .iter()
        .map(|k| attrs.find(k).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(!text.contains("md5OfMessageAttributes"), "{text}");
        assert!(text.contains(r#""body":"say \"hi\"""#), "{text}");
    }

    fn traced(id: &str, header: Option<&str>) -> Record {
        let mut message = message();
        message.message_id = id.into();
        match header {
            Some(header) => message
                .attributes
                .insert("AWSTraceHeader".into(), header.into()),
            None => message.attributes.remove("AWSTraceHeader"),
        };
        Record::render(message, "arn:aws:sqs:eu-west-1:000000000000:q", "eu-west-1")
    }

    /// A batch's invocation starts a new trace linked to each distinct trace of its records,
    /// as Lambda does (<https://docs.aws.amazon.com/xray/latest/devguide/xray-tracelinking.html>);
    /// a batch of untraced messages starts an unlinked trace.
    #[test]
    fn a_batch_starts_a_new_trace_linked_to_its_records_traces() {
        let first = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let again = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000003;Sampled=1";
        let second = "Root=1-5759e989-000000000000000000000002;Parent=0000000000000002;Sampled=0";
        let batch = [
            traced("m0", None),
            traced("m1", Some(first)),
            traced("m2", Some(second)),
            traced("m3", Some(again)),
        ];
        assert_eq!(batch[1].trace_header.as_deref(), Some(first));
        let (header, links) = trace(&batch);
        assert_eq!(
            links,
            [
                "1-5759e988-bd862e3fe1be46a994272793",
                "1-5759e989-000000000000000000000002"
            ]
        );
        let root = xray::root(&header).unwrap();
        assert!(!links.iter().any(|l| l == root), "a new root: {header}");

        let untraced = [traced("m0", None), traced("m1", Some(""))];
        assert_eq!(untraced[1].trace_header, None);
        let (fresh, links) = trace(&untraced);
        assert!(xray::root(&fresh).is_some(), "{fresh}");
        assert!(links.is_empty());
        assert_ne!(xray::root(&fresh), xray::root(&trace(&untraced).0));
    }

    #[test]
    fn event_size_matches_assembled_length() {
        let a = Record::render(message(), "arn", "r");
        let b = Record::render(message(), "arn", "r");
        let event = assemble([&a, &b]);
        assert_eq!(event.len(), event_size([a.json.len(), b.json.len()]));
        assert_eq!(assemble([]).len(), EVENT_OVERHEAD);
        assert_eq!(assemble([]), b"{\"Records\":[]}");
    }
}
