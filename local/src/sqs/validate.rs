//! Checks on what is sent: body characters, message attributes, sizes and batch entry ids,
//! with the error codes and wording SQS uses.

use std::collections::{BTreeMap, HashSet};

use nightshift_contract::record::TRACE_HEADER_ATTRIBUTE;

use super::attributes::QueueConfig;
use super::error::SqsError;
use super::model::{MessageAttributeValue, OutgoingMessage};

/// Most entries in a batch.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Most message attributes on a message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// Whether `c` is allowed in a message body: `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
/// #x10000-#x10FFFF` (XML 1.0 characters).
pub fn is_allowed_char(c: char) -> bool {
    matches!(c as u32,
        0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

fn check_chars(text: &str, what: &str) -> Result<(), SqsError> {
    // Bodies are mostly ASCII: one pass over the bytes (which the compiler vectorises) instead
    // of decoding every char; the char check runs only when a byte is outside printable ASCII.
    // It was 4.5% of the SQS endpoint's CPU under SendMessageBatch load.
    let printable = |b: &u8| (0x20..0x7f).contains(b) || matches!(b, b'\t' | b'\n' | b'\r');
    if text.as_bytes().iter().all(printable) || text.chars().all(is_allowed_char) {
        Ok(())
    } else {
        Err(SqsError::InvalidMessageContents(format!(
            "Invalid characters found in {what}. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
        )))
    }
}

/// Validates a message for a queue with `config`; returns its size (body plus attribute
/// names, types and values).
///
/// On a FIFO queue, from the SendMessage reference,
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html>:
/// `MessageGroupId` is required; `MessageDeduplicationId` is required unless the queue has
/// ContentBasedDeduplication; both are 1 to 128 alphanumeric or punctuation characters; a
/// per-message `DelaySeconds` above 0 is refused ("you can't set DelaySeconds per message").
pub fn validate_message(
    message: &OutgoingMessage,
    config: &QueueConfig,
) -> Result<usize, SqsError> {
    let max_size = config.maximum_message_size;
    if message.body.is_empty() {
        return Err(SqsError::MissingParameter(
            "The request must contain the parameter MessageBody.".to_string(),
        ));
    }
    check_chars(&message.body, "the message body")?;
    if let Some(delay) = message.delay_seconds
        && delay > super::attributes::MAX_DELAY_SECONDS
    {
        return Err(SqsError::invalid_value(
            "DelaySeconds",
            delay,
            "DelaySeconds must be >= 0 and <= 900.",
        ));
    }
    match &config.fifo {
        Some(fifo) => {
            // Zero is accepted (SDKs and frameworks send it by default); only a real
            // per-message delay is refused.
            if let Some(delay) = message.delay_seconds.filter(|d| *d > 0) {
                return Err(SqsError::invalid_value(
                    "DelaySeconds",
                    delay,
                    "The request include parameter that is not valid for this queue type.",
                ));
            }
            if message.message_group_id.is_none() {
                return Err(SqsError::MissingParameter(
                    "The request must contain the parameter MessageGroupId.".to_string(),
                ));
            }
            match &message.message_deduplication_id {
                Some(id) => check_token("MessageDeduplicationId", id)?,
                None if fifo.content_based_deduplication => {}
                None => {
                    return Err(SqsError::InvalidParameterValue(
                        "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly".to_string(),
                    ));
                }
            }
        }
        None => {
            if message.message_deduplication_id.is_some() {
                return Err(SqsError::InvalidParameterValue(
                    "The request include parameter MessageDeduplicationId that is not valid for this queue type".to_string(),
                ));
            }
        }
    }
    if let Some(group) = &message.message_group_id {
        check_token("MessageGroupId", group)?;
    }
    let attributes_size = validate_attributes(&message.message_attributes)?;
    validate_system_attributes(&message.message_system_attributes)?;
    let size = message.body.len() + attributes_size;
    if size > max_size as usize {
        return Err(SqsError::InvalidParameterValue(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {max_size} bytes."
        )));
    }
    Ok(size)
}

/// Checks a group or deduplication id: 1 to 128 alphanumeric or punctuation characters.
fn check_token(name: &str, value: &str) -> Result<(), SqsError> {
    let valid =
        !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        return Ok(());
    }
    Err(SqsError::invalid_value(
        name,
        value,
        &format!(
            "{name} can only include alphanumeric and punctuation characters. 1 to 128 in length."
        ),
    ))
}

/// Validates message (user) attributes; returns the bytes they count toward the size limit.
pub fn validate_attributes(
    attributes: &BTreeMap<String, MessageAttributeValue>,
) -> Result<usize, SqsError> {
    if attributes.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(SqsError::InvalidParameterValue(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_MESSAGE_ATTRIBUTES}].",
            attributes.len()
        )));
    }
    let mut size = 0;
    for (name, value) in attributes {
        validate_attribute_name(name)?;
        validate_attribute_value(name, value, "message (user)")?;
        size += name.len() + value.size();
    }
    Ok(size)
}

fn validate_system_attributes(
    attributes: &BTreeMap<String, MessageAttributeValue>,
) -> Result<(), SqsError> {
    for (name, value) in attributes {
        if name != TRACE_HEADER_ATTRIBUTE {
            return Err(SqsError::InvalidParameterValue(format!(
                "Message system attribute name '{name}' is invalid."
            )));
        }
        if value.data_type != "String" {
            return Err(SqsError::InvalidParameterValue(format!(
                "The message system attribute '{name}' must have the data type 'String'."
            )));
        }
        validate_attribute_value(name, value, "message system")?;
    }
    Ok(())
}

fn validate_attribute_name(name: &str) -> Result<(), SqsError> {
    let lower = name.to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.");
    if valid {
        Ok(())
    } else {
        Err(SqsError::InvalidParameterValue(format!(
            "Message (user) attribute name '{name}' is invalid. It can contain only alphanumerics, '_', '-' and '.', up to 256 characters, must not start or end with '.' nor contain '..', and must not start with 'AWS.' or 'Amazon.'."
        )))
    }
}

fn validate_attribute_value(
    name: &str,
    value: &MessageAttributeValue,
    kind: &str,
) -> Result<(), SqsError> {
    let base = value.data_type.split('.').next().unwrap_or("");
    let custom_ok =
        value.data_type.len() <= 256 && check_chars(&value.data_type, "the data type").is_ok();
    if !matches!(base, "String" | "Number" | "Binary") || !custom_ok {
        return Err(SqsError::InvalidParameterValue(format!(
            "The type of {kind} attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
        )));
    }
    let empty = || {
        SqsError::InvalidParameterValue(format!(
            "The {kind} attribute '{name}' must contain a non-empty value of type '{base}'."
        ))
    };
    if base == "Binary" {
        if value.binary_value.as_ref().is_none_or(|b| b.is_empty()) {
            return Err(empty());
        }
        if value.string_value.is_some() {
            return Err(SqsError::InvalidParameterValue(format!(
                "The {kind} attribute '{name}' with type 'Binary' must use field 'Binary'."
            )));
        }
        return Ok(());
    }
    if value.binary_value.is_some() {
        return Err(SqsError::InvalidParameterValue(format!(
            "The {kind} attribute '{name}' with type '{base}' must use field 'String'."
        )));
    }
    let text = value
        .string_value
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(empty)?;
    check_chars(text, &format!("{kind} attribute '{name}'"))?;
    if base == "Number" && !is_sqs_number(text) {
        return Err(SqsError::InvalidParameterValue(format!(
            "Can't cast the value of {kind} attribute '{name}' to a number."
        )));
    }
    Ok(())
}

/// SQS numbers: decimal, up to 38 significant digits, between -10^128 and 10^126.
fn is_sqs_number(text: &str) -> bool {
    let Ok(value) = text.trim().parse::<f64>() else {
        return false;
    };
    if !value.is_finite() || value.abs() >= 1e126 {
        return false;
    }
    let digits = text
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect::<String>();
    digits.trim_start_matches('0').trim_end_matches('0').len() <= 38
}

/// Validates batch entry ids: some entries, at most 10, each id distinct, alphanumerics
/// `-` and `_` up to 80 characters.
pub fn validate_batch_ids<'a>(
    entry_kind: &str,
    ids: impl ExactSizeIterator<Item = &'a str>,
) -> Result<(), SqsError> {
    let count = ids.len();
    if count == 0 {
        return Err(SqsError::EmptyBatchRequest(format!(
            "There should be at least one {entry_kind} in the request."
        )));
    }
    if count > MAX_BATCH_ENTRIES {
        return Err(SqsError::TooManyEntriesInBatchRequest(format!(
            "Maximum number of entries per request are {MAX_BATCH_ENTRIES}. You have sent {count}."
        )));
    }
    let mut seen = HashSet::new();
    for id in ids {
        let valid = !id.is_empty()
            && id.len() <= 80
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(SqsError::InvalidBatchEntryId(
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.".to_string(),
            ));
        }
        if !seen.insert(id) {
            return Err(SqsError::BatchEntryIdsNotDistinct(format!(
                "Id {id} repeated."
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(maximum_message_size: u32) -> QueueConfig {
        QueueConfig {
            maximum_message_size,
            ..QueueConfig::default()
        }
    }

    #[test]
    fn body_characters() {
        assert!(
            validate_message(&OutgoingMessage::new("ok\t\n\r é 😀 ~\u{7f}"), &sized(1024)).is_ok()
        );
        for bad in ["a\u{0}", "\u{1b}", "\u{FFFE}", "\u{FFFF}", "x\u{8}y"] {
            let err = validate_message(&OutgoingMessage::new(bad), &sized(1024)).unwrap_err();
            assert!(
                matches!(err, SqsError::InvalidMessageContents(_)),
                "{bad:?}"
            );
        }
        assert!(matches!(
            validate_message(&OutgoingMessage::new(""), &sized(1024)),
            Err(SqsError::MissingParameter(_))
        ));
    }

    #[test]
    fn size_counts_body_and_attributes() {
        let body = "x".repeat(1000);
        let msg =
            OutgoingMessage::new(body.clone()).attribute("n", MessageAttributeValue::string("abc"));
        // 1000 + "n" + "String" + "abc"
        assert_eq!(validate_message(&msg, &sized(1010)).unwrap(), 1010);
        assert!(matches!(
            validate_message(&msg, &sized(1009)),
            Err(SqsError::InvalidParameterValue(_))
        ));
    }

    #[test]
    fn attributes() {
        let ok = |name: &str, v: MessageAttributeValue| {
            validate_message(
                &OutgoingMessage::new("b").attribute(name, v),
                &sized(1 << 20),
            )
        };
        assert!(ok("a-b_c.d", MessageAttributeValue::string("v")).is_ok());
        assert!(ok("n", MessageAttributeValue::number("-12.5e3")).is_ok());
        assert!(ok("bin", MessageAttributeValue::binary(vec![0, 1])).is_ok());
        let custom = MessageAttributeValue {
            data_type: "Number.int".into(),
            string_value: Some("7".into()),
            binary_value: None,
        };
        assert!(ok("c", custom).is_ok());
        for (name, value) in [
            ("AWS.x", MessageAttributeValue::string("v")),
            ("amazon.x", MessageAttributeValue::string("v")),
            (".x", MessageAttributeValue::string("v")),
            ("a..b", MessageAttributeValue::string("v")),
            ("a b", MessageAttributeValue::string("v")),
            ("e", MessageAttributeValue::string("")),
            ("n", MessageAttributeValue::number("twelve")),
            ("b", MessageAttributeValue::binary(Vec::new())),
            (
                "t",
                MessageAttributeValue {
                    data_type: "Text".into(),
                    string_value: Some("v".into()),
                    binary_value: None,
                },
            ),
        ] {
            assert!(
                matches!(ok(name, value), Err(SqsError::InvalidParameterValue(_))),
                "{name}"
            );
        }
        let mut eleven = OutgoingMessage::new("b");
        for i in 0..11 {
            eleven = eleven.attribute(format!("a{i}"), MessageAttributeValue::string("v"));
        }
        assert!(matches!(
            validate_message(&eleven, &sized(1 << 20)),
            Err(SqsError::InvalidParameterValue(_))
        ));
    }

    #[test]
    fn batch_ids() {
        assert!(validate_batch_ids("E", ["a", "b-1", "c_2"].into_iter()).is_ok());
        assert!(matches!(
            validate_batch_ids("E", [].into_iter()),
            Err(SqsError::EmptyBatchRequest(_))
        ));
        let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        assert!(matches!(
            validate_batch_ids("E", eleven.iter().map(String::as_str)),
            Err(SqsError::TooManyEntriesInBatchRequest(_))
        ));
        assert!(matches!(
            validate_batch_ids("E", ["a", "a"].into_iter()),
            Err(SqsError::BatchEntryIdsNotDistinct(_))
        ));
        assert!(matches!(
            validate_batch_ids("E", ["a.b"].into_iter()),
            Err(SqsError::InvalidBatchEntryId(_))
        ));
        let long = "x".repeat(81);
        assert!(matches!(
            validate_batch_ids("E", [long.as_str()].into_iter()),
            Err(SqsError::InvalidBatchEntryId(_))
        ));
    }
}
