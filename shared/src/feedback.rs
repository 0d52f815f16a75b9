//! Mail feedback: the events SES publishes about the emails it sent (bounces, complaints,
//! deliveries), read into what email-sender does with them, and the same events made up
//! locally for SES's mailbox simulator addresses.
//!
//! # The wire form
//!
//! A configuration set's event destination publishes each event to an SNS topic as JSON
//! (<https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html>,
//! examples at
//! <https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html>):
//! `eventType` (`Bounce`, `Complaint`, `Delivery`, `Reject`, ...; named `notificationType`
//! in an identity's feedback notifications, which [`parse`] reads too), the `mail` it is about
//! and one object named after the type. The feedback queue's subscription uses raw message
//! delivery, so an SQS body is that JSON itself; a body still in SNS's envelope
//! (`"Type": "Notification"`, the event as the `Message` string) is unwrapped, so a
//! subscription without raw delivery loses nothing.
//!
//! # What suppresses
//!
//! A `Permanent` bounce suppresses each bounced recipient (the address does not exist, or is
//! on SES's account-level suppression list: `OnAccountSuppressionList`), and a complaint
//! each complained recipient. `Transient` and `Undetermined` bounces (a full mailbox, an
//! out-of-office reply) do not: the next email may well arrive. SES reviews an account whose
//! bounce rate reaches 5% or complaint rate 0.1%
//! (<https://docs.aws.amazon.com/ses/latest/dg/reputationdashboard-messages.html>), and
//! sending again to those addresses is how a rate gets there.
//!
//! # The mailbox simulator, locally
//!
//! SES answers mail to `success@`, `bounce@`, `ooto@`, `complaint@` and `suppressionlist@`
//! `simulator.amazonses.com` (with an optional `+label` before the `@`) with a defined
//! outcome (<https://docs.aws.amazon.com/ses/latest/DeveloperGuide/mailbox-simulator.html>).
//! [`simulate`] makes the events SES would publish for those recipients, so a local mailer
//! can put them on the feedback queue (`nightshift::adapters::simulator`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ports::{
    OutgoingEmail, REQUEST_ID_HEADER, Suppression, SuppressionCause, suppression_key,
};

/// The mailbox simulator's domain.
pub const SIMULATOR_DOMAIN: &str = "simulator.amazonses.com";

/// A feedback message could not be read. Always permanent: the same body fails again, so
/// the record goes to the feedback DLQ with this as its reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    /// Not JSON, or JSON of another shape.
    #[error("feedback is not an SES event: {0}")]
    Malformed(String),
    /// An event of a known type without the object that type requires.
    #[error("{event} event has no {field} object")]
    Missing {
        /// The event type.
        event: String,
        /// The missing object (`bounce`, `complaint`).
        field: &'static str,
    },
}

/// One SES event, as much of it as email-sender uses.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackEvent {
    /// SES's id of the email (`mail.messageId`): what the mailer returned for it.
    pub message_id: String,
    /// The request id the email was sent for (its `X-Nightshift-Request-Id` header), when
    /// the event carries the headers.
    pub request_id: Option<String>,
    /// What happened.
    pub kind: FeedbackKind,
}

/// What an event says happened.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedbackKind {
    /// The receiving server refused the email.
    Bounce {
        /// `Permanent`, `Transient` or `Undetermined`.
        bounce_type: String,
        /// `General`, `NoEmail`, `Suppressed`, `OnAccountSuppressionList`, `MailboxFull`, ...
        sub_type: String,
        /// The bounced recipients with their diagnostic codes.
        recipients: Vec<(String, Option<String>)>,
        /// When the bounce was reported.
        at: DateTime<Utc>,
    },
    /// Recipients marked the email as spam.
    Complaint {
        /// The recipients who complained.
        recipients: Vec<String>,
        /// The report's `Feedback-Type` (`abuse`, ...), when given.
        feedback_type: Option<String>,
        /// When the complaint was received.
        at: DateTime<Utc>,
    },
    /// The receiving server accepted the email.
    Delivery {
        /// The recipients it was delivered to.
        recipients: Vec<String>,
    },
    /// Any other event type (`Reject`, `Send`, `DeliveryDelay`, ...): counted, not acted on.
    Other(String),
}

impl FeedbackEvent {
    /// The recipients this event puts on the suppression list: each bounced recipient of a
    /// permanent bounce, each complained recipient of a complaint, nobody otherwise.
    pub fn suppressions(&self) -> Vec<Suppression> {
        match &self.kind {
            FeedbackKind::Bounce {
                bounce_type,
                sub_type,
                recipients,
                at,
            } if bounce_type == "Permanent" => recipients
                .iter()
                .map(|(address, diagnostic)| Suppression {
                    address: suppression_key(address),
                    cause: SuppressionCause::Bounce,
                    detail: match diagnostic {
                        Some(code) => format!("{bounce_type}/{sub_type}: {code}"),
                        None => format!("{bounce_type}/{sub_type}"),
                    },
                    at: *at,
                })
                .collect(),
            FeedbackKind::Complaint {
                recipients,
                feedback_type,
                at,
            } => recipients
                .iter()
                .map(|address| Suppression {
                    address: suppression_key(address),
                    cause: SuppressionCause::Complaint,
                    detail: feedback_type.clone().unwrap_or_default(),
                    at: *at,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The event's type as SES names it (`Bounce`, `Complaint`, `Delivery`, or the other).
    pub fn type_name(&self) -> &str {
        match &self.kind {
            FeedbackKind::Bounce { .. } => "Bounce",
            FeedbackKind::Complaint { .. } => "Complaint",
            FeedbackKind::Delivery { .. } => "Delivery",
            FeedbackKind::Other(name) => name,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(alias = "notificationType")]
    event_type: String,
    mail: WireMail,
    bounce: Option<WireBounce>,
    complaint: Option<WireComplaint>,
    delivery: Option<WireDelivery>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMail {
    message_id: String,
    #[serde(default)]
    headers: Vec<WireHeader>,
}

#[derive(Deserialize)]
struct WireHeader {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: String,
    bounced_recipients: Vec<WireRecipient>,
    timestamp: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecipient {
    email_address: String,
    diagnostic_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireComplaint {
    complained_recipients: Vec<WireRecipient>,
    complaint_feedback_type: Option<String>,
    timestamp: DateTime<Utc>,
}

#[derive(Deserialize)]
struct WireDelivery {
    #[serde(default)]
    recipients: Vec<String>,
}

/// Reads one feedback message body: an SES event, raw or in SNS's notification envelope.
pub fn parse(body: &str) -> Result<FeedbackEvent, FeedbackError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| FeedbackError::Malformed(e.to_string()))?;
    // SNS's envelope when the subscription does not use raw message delivery.
    let value = match (&value["Type"], &value["Message"]) {
        (Value::String(t), Value::String(message)) if t == "Notification" => {
            serde_json::from_str(message)
                .map_err(|e| FeedbackError::Malformed(format!("sns message: {e}")))?
        }
        _ => value,
    };
    let wire: Wire =
        serde_json::from_value(value).map_err(|e| FeedbackError::Malformed(e.to_string()))?;
    let request_id = wire
        .mail
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(REQUEST_ID_HEADER))
        .map(|h| h.value.clone());
    let missing = |field| FeedbackError::Missing {
        event: wire.event_type.clone(),
        field,
    };
    let kind = match wire.event_type.as_str() {
        "Bounce" => {
            let b = wire.bounce.ok_or_else(|| missing("bounce"))?;
            FeedbackKind::Bounce {
                bounce_type: b.bounce_type,
                sub_type: b.bounce_sub_type,
                recipients: b
                    .bounced_recipients
                    .into_iter()
                    .map(|r| (r.email_address, r.diagnostic_code))
                    .collect(),
                at: b.timestamp,
            }
        }
        "Complaint" => {
            let c = wire.complaint.ok_or_else(|| missing("complaint"))?;
            FeedbackKind::Complaint {
                recipients: c
                    .complained_recipients
                    .into_iter()
                    .map(|r| r.email_address)
                    .collect(),
                feedback_type: c.complaint_feedback_type,
                at: c.timestamp,
            }
        }
        "Delivery" => FeedbackKind::Delivery {
            recipients: wire.delivery.map(|d| d.recipients).unwrap_or_default(),
        },
        other => FeedbackKind::Other(other.to_string()),
    };
    Ok(FeedbackEvent {
        message_id: wire.mail.message_id,
        request_id,
        kind,
    })
}

/// What the mailbox simulator does with mail to one of its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulated {
    /// `success@`: delivered.
    Success,
    /// `bounce@`: a hard bounce, SMTP 550 5.1.1 "user unknown".
    Bounce,
    /// `ooto@`: delivered, and an out-of-office reply goes to the sender (not an event).
    OutOfOffice,
    /// `complaint@`: delivered, then a complaint.
    Complaint,
    /// `suppressionlist@`: a hard bounce as if the address were on the suppression list.
    SuppressionList,
}

/// The simulator scenario of `address`, `None` for any other address. The local part may
/// carry a `+label` (`bounce+signup@simulator.amazonses.com`), as SES allows.
pub fn simulated(address: &str) -> Option<Simulated> {
    let (local, domain) = address.trim().rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(SIMULATOR_DOMAIN) {
        return None;
    }
    let scenario = local.split('+').next().unwrap_or_default();
    match scenario.to_ascii_lowercase().as_str() {
        "success" => Some(Simulated::Success),
        "bounce" => Some(Simulated::Bounce),
        "ooto" => Some(Simulated::OutOfOffice),
        "complaint" => Some(Simulated::Complaint),
        "suppressionlist" => Some(Simulated::SuppressionList),
        _ => None,
    }
}

/// The SES events (JSON bodies, as SNS delivers them raw) the mailbox simulator would cause
/// for `email`, sent at `at` with SES message id `message_id`: one per simulator recipient
/// and outcome (a complaint comes after its delivery), in recipient order. Recipients that
/// are not simulator addresses cause none.
pub fn simulate(email: &OutgoingEmail, message_id: &str, at: DateTime<Utc>) -> Vec<String> {
    let ts = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mail = json!({
        "timestamp": ts,
        "source": email.from,
        "sendingAccountId": "000000000000",
        "messageId": message_id,
        "destination": email.to,
        "headersTruncated": false,
        "headers": [
            {"name": "From", "value": email.from},
            {"name": "To", "value": email.to.join(", ")},
            {"name": "Subject", "value": email.subject},
            {"name": REQUEST_ID_HEADER, "value": email.request_id},
        ],
        "commonHeaders": {"from": [email.from], "to": email.to, "subject": email.subject},
    });
    let feedback_id = |n: usize| format!("{message_id}-feedback-{n}");
    let delivery = |to: &str| {
        json!({
            "eventType": "Delivery",
            "mail": mail,
            "delivery": {
                "timestamp": ts,
                "processingTimeMillis": 0,
                "recipients": [to],
                "smtpResponse": "250 2.6.0 Message received",
                "reportingMTA": "nightshift-local",
            },
        })
    };
    let bounce = |to: &str, sub_type: &str, diagnostic: &str, n: usize| {
        json!({
            "eventType": "Bounce",
            "mail": mail,
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": sub_type,
                "bouncedRecipients": [{
                    "emailAddress": to,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": diagnostic,
                }],
                "timestamp": ts,
                "feedbackId": feedback_id(n),
                "reportingMTA": "dsn; nightshift-local",
            },
        })
    };
    let mut events = Vec::new();
    for (n, to) in email.to.iter().enumerate() {
        let Some(scenario) = simulated(to) else {
            continue;
        };
        match scenario {
            Simulated::Success | Simulated::OutOfOffice => events.push(delivery(to)),
            Simulated::Bounce => {
                events.push(bounce(to, "General", "smtp; 550 5.1.1 user unknown", n))
            }
            Simulated::SuppressionList => events.push(bounce(
                to,
                "OnAccountSuppressionList",
                "Amazon SES did not send the message to this address because it is on the \
                 suppression list for your account.",
                n,
            )),
            Simulated::Complaint => {
                events.push(delivery(to));
                events.push(json!({
                    "eventType": "Complaint",
                    "mail": mail,
                    "complaint": {
                        "complainedRecipients": [{"emailAddress": to}],
                        "timestamp": ts,
                        "feedbackId": feedback_id(n),
                        "userAgent": "nightshift-local",
                        "complaintFeedbackType": "abuse",
                        "arrivalDate": ts,
                    },
                }));
            }
        }
    }
    events.into_iter().map(|e| e.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(to: &[&str]) -> OutgoingEmail {
        OutgoingEmail {
            request_id: "req-1".into(),
            from: "nightshift@example.com".into(),
            to: to.iter().map(|s| s.to_string()).collect(),
            subject: "hi".into(),
            text: "hello".into(),
            html: None,
        }
    }

    fn at() -> DateTime<Utc> {
        "2026-11-21T09:30:00Z".parse().unwrap()
    }

    #[test]
    fn simulator_addresses_with_and_without_labels() {
        assert_eq!(
            simulated("bounce@simulator.amazonses.com"),
            Some(Simulated::Bounce)
        );
        assert_eq!(
            simulated("Complaint+signup@Simulator.AmazonSES.com"),
            Some(Simulated::Complaint)
        );
        assert_eq!(simulated("bounce@example.com"), None);
        assert_eq!(simulated("nobody@simulator.amazonses.com"), None);
    }

    #[test]
    fn simulated_events_read_back_as_what_ses_would_say() {
        let events = simulate(
            &email(&[
                "ada@example.com",
                "bounce@simulator.amazonses.com",
                "complaint@simulator.amazonses.com",
                "suppressionlist@simulator.amazonses.com",
                "ooto@simulator.amazonses.com",
            ]),
            "m-1",
            at(),
        );
        let parsed: Vec<FeedbackEvent> = events.iter().map(|e| parse(e).unwrap()).collect();
        let types: Vec<&str> = parsed.iter().map(FeedbackEvent::type_name).collect();
        assert_eq!(
            types,
            ["Bounce", "Delivery", "Complaint", "Bounce", "Delivery"]
        );
        assert!(parsed.iter().all(|e| e.message_id == "m-1"));
        assert!(
            parsed
                .iter()
                .all(|e| e.request_id.as_deref() == Some("req-1"))
        );
        let suppressed: Vec<(String, SuppressionCause)> = parsed
            .iter()
            .flat_map(FeedbackEvent::suppressions)
            .map(|s| (s.address, s.cause))
            .collect();
        assert_eq!(
            suppressed,
            [
                (
                    "bounce@simulator.amazonses.com".to_string(),
                    SuppressionCause::Bounce
                ),
                (
                    "complaint@simulator.amazonses.com".to_string(),
                    SuppressionCause::Complaint
                ),
                (
                    "suppressionlist@simulator.amazonses.com".to_string(),
                    SuppressionCause::Bounce
                ),
            ]
        );
    }

    #[test]
    fn an_sns_envelope_is_unwrapped_and_garbage_is_named() {
        let raw = &simulate(&email(&["bounce@simulator.amazonses.com"]), "m-2", at())[0];
        let envelope = json!({"Type": "Notification", "MessageId": "x", "Message": raw});
        let event = parse(&envelope.to_string()).unwrap();
        assert_eq!(event.type_name(), "Bounce");
        assert!(matches!(
            parse("{not json"),
            Err(FeedbackError::Malformed(_))
        ));
        assert_eq!(
            parse(r#"{"eventType":"Bounce","mail":{"messageId":"m"}}"#)
                .unwrap_err()
                .to_string(),
            "Bounce event has no bounce object"
        );
        let other = parse(r#"{"eventType":"Reject","mail":{"messageId":"m"},"reject":{}}"#);
        assert_eq!(other.unwrap().kind, FeedbackKind::Other("Reject".into()));
    }
}
