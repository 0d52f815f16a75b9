//! The AWS SDK plumbing every cloud adapter shares, below them all: one HTTPS client (rustls on
//! ring), the process's TLS provider for object_store, and the SDK configuration (region,
//! credentials, per-service endpoints, timeouts, retries). The adapters build their clients
//! from here; nothing here knows about ports or environment variables of nightshift's own.

use std::time::Duration;

/// The HTTPS client every AWS SDK client here uses: rustls with the ring crypto provider,
/// built once per process (its connection pool is shared by the clients). The SDK's default
/// client would link aws-lc-rs, about 1 MB more in each function binary for the same TLS.
pub fn https_client() -> aws_sdk_sqs::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    static CLIENT: std::sync::OnceLock<aws_sdk_sqs::config::SharedHttpClient> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https()
        })
        .clone()
}

/// Whether a retry of the call that failed with `err` can succeed: no answer came (timeout,
/// dispatch or response failure), or the service answered with one of `transient_codes`
/// (throttling, overload); a request that could not be built, or any other service error, is
/// rejected. The SQS and Scheduler adapters sort their errors with it; each SDK re-exports
/// the same `SdkError`, so one function serves every client.
pub fn is_transient<E, R>(
    err: &aws_sdk_sqs::error::SdkError<E, R>,
    transient_codes: &[&str],
) -> bool
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata,
{
    use aws_sdk_sqs::error::SdkError;
    match err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => service
            .err()
            .code()
            .is_some_and(|code| transient_codes.contains(&code)),
        _ => true,
    }
}

/// Makes rustls on ring the process's TLS provider, for the clients that take the process
/// default (object_store's reqwest client for S3); idempotent. Call it before building one.
pub fn install_tls_provider() {
    // An error means a provider is installed already, which is all this asks.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The AWS SDK configuration the cloud adapters share: region, credentials and per-service
/// endpoints (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SESV2`, ...) from the standard
/// sources, with short timeouts and three attempts, so a handler never spends its whole
/// deadline on an unreachable service. SES overrides the attempts and timeouts: a retried
/// `SendEmail` can send twice ([`crate::adapters::ses::ses_client`]).
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(12))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(timeouts)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}
