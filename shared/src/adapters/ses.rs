//! The mailer on Amazon SES through the SES v2 API (`MAIL_URL=ses`), the cloud default.
//!
//! Each email is sent as a raw MIME message built by the same code as the local outbox
//! ([`super::mail::build_message`]), so what lands in `.nightshift/outbox` locally is byte for
//! byte what SES receives: the text and HTML alternatives and the `X-Nightshift-Request-Id`
//! header. SES takes the recipients from the `To` header.
//!
//! Errors: throttling and the account's send-rate or daily-quota limits (`TooManyRequests`,
//! `LimitExceeded`, `Throttling`), `ServiceUnavailable` and a connection that never stood are
//! [`MailError::Transient`]: SES did not take the email. A timed-out attempt, a connection lost
//! after the request went out, an unreadable answer and other server errors are
//! [`MailError::Unconfirmed`]: SES may have taken it. A rejected message or recipient
//! (`MessageRejected`, e.g. an unverified address in the sandbox), an unverified sender domain,
//! a bad request, and an account whose sending is paused or suspended are permanent: they need
//! a person, so the request goes to the DLQ at once with the reason.
//!
//! One attempt per send: the SDK never retries `SendEmail` itself ([`ses_client`]). SES has no
//! idempotency token for `SendEmail`, so a retry after an attempt that timed out while SES was
//! accepting the email sends it twice; the caller sees [`MailError::Unconfirmed`] instead and
//! decides (email-sender keeps its claim until the invocation's deadline, then SQS redelivers).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{EmailContent, RawMessage};
use tokio::sync::OnceCell;

use super::mail::build_message;
use crate::ports::{MailError, Mailer, OutgoingEmail};

/// Error codes that say "not taken, not now": throttling, the account's sending limits, an
/// overloaded front end and a request SES did not receive in full. Other 5xx replies
/// (`InternalFailure`) leave open whether SES took the email.
const TRANSIENT_CODES: &[&str] = &[
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",
    "ServiceUnavailable",
    "RequestTimeout",
];

/// Longest wait for SES to answer one `SendEmail`. SES answers in well under a second, even
/// for a 40 MB raw message on Lambda's network, so this cuts off only a request that is lost;
/// it stays well inside the time email-sender keeps before its deadline for a send to finish
/// (`email_sender::SEND_MARGIN` is derived from it). The SDK's 5 s default attempt timeout for
/// the other clients is shorter because a retry there is harmless.
pub const SEND_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for a connection: nothing is sent before it stands, so timing out here is
/// always safe to retry.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The SES client: the shared SDK configuration (region, credentials, endpoint, HTTPS client)
/// with **one attempt** per `SendEmail` and [`SEND_ATTEMPT_TIMEOUT`]. The shared configuration
/// allows three attempts, which for `SendEmail` would turn an attempt that timed out after SES
/// accepted the email into a second email, inside one invocation and invisible to the caller.
pub fn ses_client(sdk: &aws_config::SdkConfig) -> Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(SEND_ATTEMPT_TIMEOUT)
        .operation_timeout(SEND_ATTEMPT_TIMEOUT)
        .build();
    let config = aws_sdk_sesv2::config::Builder::from(sdk)
        .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::standard().with_max_attempts(1))
        .timeout_config(timeouts)
        .build();
    Client::from_conf(config)
}

/// Sends through SES v2.
#[derive(Clone)]
pub struct SesMailer {
    client: Arc<OnceCell<Client>>,
    /// The configuration set every send names: its event destination publishes the
    /// bounces, complaints and deliveries ([`crate::feedback`]).
    configuration_set: Option<String>,
}

impl std::fmt::Debug for SesMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SesMailer")
            .field("configuration_set", &self.configuration_set)
            .finish_non_exhaustive()
    }
}

impl SesMailer {
    /// Uses `client` as it is configured; [`ses_client`] builds one with the settings a
    /// mailer needs.
    pub fn new(client: Client) -> Self {
        SesMailer {
            client: Arc::new(OnceCell::new_with(Some(client))),
            configuration_set: None,
        }
    }

    /// Sends every email with the configuration set `name` (`ConfigurationSetName`), so SES
    /// publishes its events; `None` sends without one.
    pub fn with_configuration_set(mut self, name: Option<String>) -> Self {
        self.configuration_set = name;
        self
    }

    /// Builds the client from the environment on first send (region, credentials and
    /// `AWS_ENDPOINT_URL_SESV2` as the SDK reads them).
    pub fn lazy() -> Self {
        SesMailer {
            client: Arc::new(OnceCell::new()),
            configuration_set: None,
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async { ses_client(&crate::adapters::aws::aws_sdk_config().await) })
            .await
    }
}

/// Sorts an SES error by what SES may have done with the email: not taken and retryable
/// ([`MailError::Transient`]), maybe taken ([`MailError::Unconfirmed`]), or rejected.
pub fn classify<E>(err: SdkError<E, aws_sdk_sesv2::config::http::HttpResponse>) -> MailError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = format!(
        "ses send_email: {}",
        aws_sdk_sesv2::error::DisplayErrorContext(&err)
    );
    match &err {
        SdkError::ConstructionFailure(_) => MailError::Rejected(text),
        SdkError::DispatchFailure(dispatch) if never_connected(dispatch.as_connector_error()) => {
            MailError::Transient(text)
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code();
            if code.is_some_and(|code| TRANSIENT_CODES.contains(&code)) {
                MailError::Transient(text)
            } else if service.raw().status().is_server_error() {
                MailError::Unconfirmed(text)
            } else {
                MailError::Rejected(text)
            }
        }
        // A timed-out attempt, a connection lost after the request went out, an answer that
        // could not be read (a 200 among them) and anything new: SES may have the email.
        _ => MailError::Unconfirmed(text),
    }
}

/// True when a dispatch failed before any byte of the request could reach SES: the connect
/// timeout (the client has no other timeout of its kind) or a refused connection.
fn never_connected(error: Option<&aws_sdk_sesv2::error::ConnectorError>) -> bool {
    error.is_some_and(|e| e.is_timeout() || super::mail::connection_refused(e))
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
            .set_configuration_set_name(self.configuration_set.clone())
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
    use crate::ports::Retryable;
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

    /// With a configuration set, every send names it, so SES publishes the email's events.
    #[tokio::test]
    async fn sends_name_the_configuration_set() {
        let replay = StaticReplayClient::new(vec![reply(200, None, r#"{"MessageId":"m-1"}"#)]);
        mailer(&replay)
            .with_configuration_set(Some("nightshift-dev-mail".into()))
            .send(&email())
            .await
            .unwrap();
        let request = replay.actual_requests().next().unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(request.body().bytes().expect("buffered body")).unwrap();
        assert_eq!(body["ConfigurationSetName"], "nightshift-dev-mail");
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
        // Without a configuration set, none is named.
        assert!(body.get("ConfigurationSetName").is_none(), "{body}");
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

    /// What SES may have done with the email, by error.
    #[derive(Debug, PartialEq)]
    enum Class {
        NotTaken,
        MaybeTaken,
        Rejected,
    }

    fn class(err: &MailError) -> Class {
        match err {
            MailError::Transient(_) => Class::NotTaken,
            MailError::Unconfirmed(_) => Class::MaybeTaken,
            MailError::Rejected(_) => Class::Rejected,
        }
    }

    #[tokio::test]
    async fn throttling_and_quota_are_retryable_rejections_are_not() {
        let cases = [
            (429, "TooManyRequestsException", Class::NotTaken),
            (400, "LimitExceededException", Class::NotTaken),
            (400, "ThrottlingException", Class::NotTaken),
            (503, "ServiceUnavailable", Class::NotTaken),
            (500, "InternalFailure", Class::MaybeTaken),
            (400, "MessageRejected", Class::Rejected),
            (400, "MailFromDomainNotVerifiedException", Class::Rejected),
            (400, "BadRequestException", Class::Rejected),
            (400, "SendingPausedException", Class::Rejected),
            (400, "AccountSuspendedException", Class::Rejected),
        ];
        for (status, code, expected) in cases {
            let body = format!(r#"{{"message":"{code} for the test"}}"#);
            let replay = StaticReplayClient::new(vec![reply(status, Some(code), &body)]);
            let err = mailer(&replay).send(&email()).await.unwrap_err();
            assert_eq!(
                err.is_retryable(),
                expected != Class::Rejected,
                "{code}: {err}"
            );
            assert_eq!(class(&err), expected, "{code}: {err}");
            assert!(err.to_string().contains(code), "{err}");
        }
    }

    /// A tokio sleep for the SDK's timeouts, so paused time drives them.
    #[derive(Debug)]
    struct TokioSleep;

    impl aws_sdk_sesv2::config::AsyncSleep for TokioSleep {
        fn sleep(&self, duration: Duration) -> aws_sdk_sesv2::config::Sleep {
            aws_sdk_sesv2::config::Sleep::new(tokio::time::sleep(duration))
        }
    }

    /// The shared SDK configuration as [`crate::adapters::aws::aws_sdk_config`] builds it (three
    /// attempts, a 5 s attempt timeout), over `http`.
    fn shared_sdk_config(
        http: impl aws_sdk_sesv2::config::HttpClient + 'static,
    ) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_sesv2::config::SharedCredentialsProvider::new(
                Credentials::new("AKIDTEST", "secret", None, None, "test"),
            ))
            .http_client(http)
            .sleep_impl(aws_sdk_sesv2::config::SharedAsyncSleep::new(TokioSleep))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn the_ses_client_never_retries_a_send() {
        // A 500 (SES may have the email) and throttling: the shared configuration would retry
        // both twice more; the SES client makes one attempt and leaves the retry to the caller.
        for (status, code, expected) in [
            (500, "InternalFailure", Class::MaybeTaken),
            (429, "TooManyRequestsException", Class::NotTaken),
        ] {
            let replay = StaticReplayClient::new(vec![
                reply(status, Some(code), r#"{"message":"not now"}"#),
                reply(200, None, r#"{"MessageId":"m-2"}"#),
            ]);
            let mailer = SesMailer::new(ses_client(&shared_sdk_config(replay.clone())));
            let err = mailer.send(&email()).await.unwrap_err();
            assert_eq!(class(&err), expected, "{err}");
            assert_eq!(replay.actual_requests().count(), 1, "{code}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_taken() {
        // Port 9 on loopback: nothing listens, so no byte of the request reached anyone.
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_sesv2::config::SharedCredentialsProvider::new(
                Credentials::new("AKIDTEST", "secret", None, None, "test"),
            ))
            .endpoint_url("http://127.0.0.1:9")
            .http_client(crate::adapters::aws::https_client())
            .sleep_impl(aws_sdk_sesv2::config::SharedAsyncSleep::new(TokioSleep))
            .build();
        let err = SesMailer::new(ses_client(&sdk))
            .send(&email())
            .await
            .unwrap_err();
        assert_eq!(class(&err), Class::NotTaken, "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_send_is_unconfirmed_after_one_attempt() {
        let never = aws_smithy_http_client::test_util::NeverClient::new();
        let mailer = SesMailer::new(ses_client(&shared_sdk_config(never.clone())));
        let started = tokio::time::Instant::now();
        let err = mailer.send(&email()).await.unwrap_err();
        // Not the shared 5 s: SES gets SEND_ATTEMPT_TIMEOUT, once.
        assert_eq!(started.elapsed(), SEND_ATTEMPT_TIMEOUT);
        assert_eq!(never.num_calls(), 1);
        assert_eq!(class(&err), Class::MaybeTaken, "{err}");
        assert!(err.is_retryable());
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
