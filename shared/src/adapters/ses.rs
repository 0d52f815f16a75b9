//! The mailer on Amazon SES through the SES v2 API (`MAIL_URL=ses`), the cloud default.
//!
//! Each email is sent as a raw MIME message built by the same code as the local outbox
//! ([`super::mail::build_message`]), so what lands in `.nightshift/outbox` locally is byte for
//! byte what SES receives: the text and HTML alternatives and the `X-Nightshift-Request-Id`
//! header. SES takes the recipients from the `To` header.
//!
//! Errors: throttling and the account's send-rate or daily-quota limits (`TooManyRequests`,
//! `LimitExceeded`, `Throttling`), 5xx replies and network trouble are retryable; a rejected
//! message or recipient (`MessageRejected`, e.g. an unverified address in the sandbox), an
//! unverified sender domain, a bad request, and an account whose sending is paused or suspended
//! are permanent: they need a person, so the request goes to the DLQ at once with the reason.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{EmailContent, RawMessage};
use tokio::sync::OnceCell;

use super::mail::build_message;
use crate::ports::{MailError, Mailer, OutgoingEmail};

/// Error codes that say "not now": throttling and the account's sending limits.
const TRANSIENT_CODES: &[&str] = &[
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestTimeout",
];

/// Sends through SES v2.
#[derive(Clone)]
pub struct SesMailer {
    client: Arc<OnceCell<Client>>,
}

impl std::fmt::Debug for SesMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SesMailer").finish_non_exhaustive()
    }
}

impl SesMailer {
    /// Uses `client`.
    pub fn new(client: Client) -> Self {
        SesMailer {
            client: Arc::new(OnceCell::new_with(Some(client))),
        }
    }

    /// Builds the client from the environment on first send (region, credentials and
    /// `AWS_ENDPOINT_URL_SESV2` as the SDK reads them).
    pub fn lazy() -> Self {
        SesMailer {
            client: Arc::new(OnceCell::new()),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async { Client::new(&crate::config::aws_sdk_config().await) })
            .await
    }
}

/// Sorts an SES error into transient or rejected.
pub fn classify<E>(err: SdkError<E, aws_sdk_sesv2::config::http::HttpResponse>) -> MailError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = format!(
        "ses send_email: {}",
        aws_sdk_sesv2::error::DisplayErrorContext(&err)
    );
    let transient = match &err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || service
                    .err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => true,
    };
    if transient {
        MailError::Transient(text)
    } else {
        MailError::Rejected(text)
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let message = build_message(email)?;
        let raw = RawMessage::builder()
            .data(Blob::new(message.formatted()))
            .build()
            .map_err(|e| MailError::Rejected(format!("cannot build raw message: {e}")))?;
        let out = self
            .client()
            .await
            .send_email()
            .from_email_address(&email.from)
            .content(EmailContent::builder().raw(raw).build())
            .send()
            .await
            .map_err(classify)?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_types::body::SdkBody;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            request_id: "req-7".into(),
            from: "nightshift@example.com".into(),
            to: vec!["ada@example.com".into(), "bob@example.com".into()],
            subject: "Your order".into(),
            text: "Thanks for your order".into(),
            html: Some("<p>Thanks for your order</p>".into()),
        }
    }

    fn mailer(replay: &StaticReplayClient) -> SesMailer {
        let config = aws_sdk_sesv2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .http_client(replay.clone())
            // One attempt: the test is about classification, not the SDK's own retries.
            .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
            .build();
        SesMailer::new(Client::from_conf(config))
    }

    fn reply(status: u16, error_type: Option<&str>, body: &str) -> ReplayEvent {
        let mut response = http::Response::builder()
            .status(status)
            .header("content-type", "application/json");
        if let Some(t) = error_type {
            response = response.header("x-amzn-errortype", t);
        }
        ReplayEvent::new(
            http::Request::builder()
                .uri("https://email.eu-central-1.amazonaws.com/v2/email/outbound-emails")
                .body(SdkBody::empty())
                .unwrap(),
            response.body(SdkBody::from(body.to_string())).unwrap(),
        )
    }

    #[tokio::test]
    async fn request_shape_is_a_raw_mime_message() {
        let replay = StaticReplayClient::new(vec![reply(200, None, r#"{"MessageId":"m-1"}"#)]);
        let id = mailer(&replay).send(&email()).await.unwrap();
        assert_eq!(id, "m-1");
        let requests: Vec<_> = replay.actual_requests().collect();
        assert_eq!(requests.len(), 1);
        let request = requests[0];
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.uri(),
            "https://email.eu-central-1.amazonaws.com/v2/email/outbound-emails"
        );
        assert!(
            request
                .headers()
                .get("authorization")
                .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
                    && a.contains("/eu-central-1/ses/aws4_request"))
        );
        let body: serde_json::Value =
            serde_json::from_slice(request.body().bytes().expect("buffered body")).unwrap();
        assert_eq!(body["FromEmailAddress"], "nightshift@example.com");
        // Recipients come from the MIME headers, so no Destination is sent.
        assert!(body.get("Destination").is_none(), "{body}");
        let data = body["Content"]["Raw"]["Data"].as_str().expect("raw data");
        let mime = String::from_utf8(aws_smithy_types::base64::decode(data).unwrap()).unwrap();
        assert!(
            mime.contains("To: ada@example.com, bob@example.com"),
            "{mime}"
        );
        assert!(mime.contains("Subject: Your order"), "{mime}");
        assert!(mime.contains("X-Nightshift-Request-Id: req-7"), "{mime}");
        assert!(mime.contains("multipart/alternative"), "{mime}");
        assert!(mime.contains("Thanks for your order"), "{mime}");
    }

    #[tokio::test]
    async fn throttling_and_quota_are_retryable_rejections_are_not() {
        let cases = [
            (429, "TooManyRequestsException", true),
            (400, "LimitExceededException", true),
            (400, "ThrottlingException", true),
            (500, "InternalFailure", true),
            (503, "ServiceUnavailable", true),
            (400, "MessageRejected", false),
            (400, "MailFromDomainNotVerifiedException", false),
            (400, "BadRequestException", false),
            (400, "SendingPausedException", false),
            (400, "AccountSuspendedException", false),
        ];
        for (status, code, retryable) in cases {
            let body = format!(r#"{{"message":"{code} for the test"}}"#);
            let replay = StaticReplayClient::new(vec![reply(status, Some(code), &body)]);
            let err = mailer(&replay).send(&email()).await.unwrap_err();
            assert_eq!(
                matches!(err, MailError::Transient(_)),
                retryable,
                "{code}: {err}"
            );
            assert!(err.to_string().contains(code), "{err}");
        }
    }

    #[tokio::test]
    async fn an_invalid_address_is_rejected_before_any_request() {
        let replay = StaticReplayClient::new(vec![]);
        let mut e = email();
        e.to = vec!["not-an-address".into()];
        let err = mailer(&replay).send(&e).await.unwrap_err();
        assert!(matches!(err, MailError::Rejected(_)), "{err}");
        assert_eq!(replay.actual_requests().count(), 0);
    }
}
