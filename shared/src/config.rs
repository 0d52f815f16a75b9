//! Configuration from environment variables (12-factor, as Lambda gives it), parsed into
//! typed values and nothing more: this module opens no adapter ([`crate::wiring`] does).
//!
//! Each port is chosen by a URL in one variable: `STORE_URL` ([`StoreUrl`]), `MAIL_URL`
//! ([`MailUrl`]), `BLOBS_URL` ([`BlobsUrl`]). A missing or malformed value is a startup error
//! that names the variable, so a misconfigured function fails at init with a clear message
//! instead of at the first message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Variable selecting the store.
pub const STORE_URL: &str = "STORE_URL";
/// Variable selecting the mailer.
pub const MAIL_URL: &str = "MAIL_URL";
/// Variable: the SES configuration set every email is sent with (`ses` mailer only), whose
/// event destination publishes bounces, complaints and deliveries to the feedback queue.
pub const MAIL_CONFIGURATION_SET: &str = "MAIL_CONFIGURATION_SET";
/// Variable selecting the blob store.
pub const BLOBS_URL: &str = "BLOBS_URL";
/// Variable naming the EventBridge Scheduler schedule group of run-time schedules.
pub const SCHEDULER_GROUP: &str = "SCHEDULER_GROUP";
/// Variable holding the ARN of the role EventBridge Scheduler assumes to send to the jobs
/// queue.
pub const SCHEDULER_ROLE_ARN: &str = "SCHEDULER_ROLE_ARN";
/// Variable holding the ARN of the jobs queue, the target of run-time schedules.
pub const JOBS_QUEUE_ARN: &str = "JOBS_QUEUE_ARN";
/// Optional variable: how long completed idempotency records live, in seconds.
pub const IDEMPOTENCY_TTL_SECONDS: &str = "IDEMPOTENCY_TTL_SECONDS";
/// Variable holding the fault list of the emulator's fault injection (test builds only);
/// unset or blank means no fault injection.
pub use nightshift_contract::faults::FAULTS_VAR;

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set (or empty).
    #[error("environment variable {var} is not set")]
    Missing {
        /// The variable.
        var: String,
    },
    /// A variable has a value that cannot be used.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
}

impl ConfigError {
    /// [`ConfigError::Invalid`] for `var`'s `value`.
    pub(crate) fn invalid(var: &str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            var: var.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Looks a variable up by name.
type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where variables come from: the process environment, or a map in tests.
pub struct Env {
    lookup: Lookup,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Env {
            lookup: Box::new(|k| std::env::var(k).ok()),
        }
    }

    /// A fixed set of variables.
    ///
    /// ```
    /// use nightshift::config::{Env, StoreUrl};
    ///
    /// let env = Env::from_map([("STORE_URL", "sqlite://.nightshift/state.db")]);
    /// assert_eq!(
    ///     env.store_url().unwrap(),
    ///     StoreUrl::Sqlite(".nightshift/state.db".into())
    /// );
    /// assert!(env.required("MAIL_URL").is_err());
    /// ```
    pub fn from_map<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let map: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Env {
            lookup: Box::new(move |k| map.get(k).cloned()),
        }
    }

    /// Variables answered by `lookup`, e.g. to record which variables a function reads.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Env {
            lookup: Box::new(lookup),
        }
    }

    /// The value of `var`, `None` when unset or blank.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    /// The value of `var`, or [`ConfigError::Missing`].
    pub fn required(&self, var: &str) -> Result<String, ConfigError> {
        self.get(var).ok_or_else(|| ConfigError::Missing {
            var: var.to_string(),
        })
    }

    /// Parses `var` with `FromStr`, `default` when unset.
    pub fn parse_or<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::invalid(var, &v, e.to_string())),
        }
    }

    /// A required queue URL (`http(s)://…`).
    pub fn queue_url(&self, var: &str) -> Result<String, ConfigError> {
        let value = self.required(var)?;
        check_queue_url(var, &value, &value)?;
        Ok(value)
    }

    /// An optional comma-separated list of queue URLs (unset or empty: none), each checked
    /// as [`Env::queue_url`] checks one; the error quotes the whole value and names the entry.
    pub fn queue_urls(&self, var: &str) -> Result<Vec<String>, ConfigError> {
        let Some(value) = self.get(var) else {
            return Ok(Vec::new());
        };
        value
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| check_queue_url(var, &value, entry).map(|()| entry.to_string()))
            .collect()
    }

    /// The idempotency TTL (default [`crate::idempotency::DEFAULT_TTL`], 28 days and an hour).
    pub fn idempotency_ttl(&self) -> Result<Duration, ConfigError> {
        let secs = self.parse_or::<u64>(
            IDEMPOTENCY_TTL_SECONDS,
            crate::idempotency::DEFAULT_TTL.as_secs(),
        )?;
        if secs == 0 {
            return Err(ConfigError::invalid(
                IDEMPOTENCY_TTL_SECONDS,
                "0",
                "must be at least 1 second",
            ));
        }
        Ok(Duration::from_secs(secs))
    }
}

impl Env {
    /// The CloudWatch namespace of the function's metrics, from
    /// [`crate::metrics::NAMESPACE_VAR`] (default [`crate::metrics::DEFAULT_NAMESPACE`]): 1 to
    /// 255 characters, not starting with `AWS/`, which AWS reserves for its own services
    /// (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Namespace>).
    pub fn metrics_namespace(&self) -> Result<String, ConfigError> {
        use crate::metrics::{DEFAULT_NAMESPACE, NAMESPACE_VAR};
        let Some(namespace) = self.get(NAMESPACE_VAR) else {
            return Ok(DEFAULT_NAMESPACE.to_string());
        };
        if namespace.len() > 255 || namespace.starts_with("AWS/") {
            return Err(ConfigError::invalid(
                NAMESPACE_VAR,
                &namespace,
                "a namespace has at most 255 characters and does not start with AWS/",
            ));
        }
        Ok(namespace)
    }
}

impl Env {
    /// The retry plan of the consumer ([`crate::retry::RetryPlan::for_consumer`]) for
    /// `RETRY_HORIZON_SECONDS` (default [`crate::retry::DEFAULT_HORIZON`]): the backoff, and the
    /// `maxReceiveCount` the template gives the source queue.
    pub fn retry_plan(&self) -> Result<crate::retry::RetryPlan, ConfigError> {
        use crate::retry::{DEFAULT_HORIZON, RETRY_HORIZON_SECONDS, RetryPlan};
        let secs = self.parse_or::<u64>(RETRY_HORIZON_SECONDS, DEFAULT_HORIZON.as_secs())?;
        RetryPlan::for_consumer(Duration::from_secs(secs)).map_err(|e| {
            ConfigError::invalid(RETRY_HORIZON_SECONDS, &secs.to_string(), e.to_string())
        })
    }
}

impl Env {
    /// The target of run-time schedules from `SCHEDULER_GROUP` (a schedule group name: 1 to
    /// 64 of `[0-9a-zA-Z-_.]`), `SCHEDULER_ROLE_ARN` (an IAM role ARN) and `JOBS_QUEUE_ARN`
    /// (an SQS queue ARN).
    pub fn scheduler_target(&self) -> Result<crate::ports::SchedulerTarget, ConfigError> {
        let group = self.required(SCHEDULER_GROUP)?;
        crate::ports::schedule_name(&group).map_err(|_| {
            ConfigError::invalid(
                SCHEDULER_GROUP,
                &group,
                "a schedule group name has 1 to 64 ASCII letters, digits, - _ and .",
            )
        })?;
        let role_arn = self.required(SCHEDULER_ROLE_ARN)?;
        if !(role_arn.starts_with("arn:")
            && role_arn.contains(":iam::")
            && role_arn.contains(":role/"))
        {
            return Err(ConfigError::invalid(
                SCHEDULER_ROLE_ARN,
                &role_arn,
                "expected an IAM role ARN like arn:aws:iam::123456789012:role/NAME",
            ));
        }
        let queue_arn = self.required(JOBS_QUEUE_ARN)?;
        if !(queue_arn.starts_with("arn:") && queue_arn.split(':').nth(2) == Some("sqs")) {
            return Err(ConfigError::invalid(
                JOBS_QUEUE_ARN,
                &queue_arn,
                "expected an SQS queue ARN like arn:aws:sqs:eu-central-1:123456789012:NAME",
            ));
        }
        Ok(crate::ports::SchedulerTarget {
            group,
            role_arn,
            queue_arn,
        })
    }
}

/// The store `STORE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://PATH`: a SQLite file (local default).
    Sqlite(PathBuf),
    /// `dynamodb://TABLE`: a DynamoDB table (cloud default).
    DynamoDb(String),
}

/// The mailer `MAIL_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailUrl {
    /// `file://DIR`: `.eml` files in an outbox directory (local default).
    Outbox(PathBuf),
    /// `smtp://HOST[:PORT]` (port 25 by default).
    Smtp {
        /// The server's host.
        host: String,
        /// Its port.
        port: u16,
    },
    /// `ses`: SES v2 (cloud default).
    Ses,
}

/// The blob store `BLOBS_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobsUrl {
    /// `file://DIR`: files in a directory (local default).
    Dir(PathBuf),
    /// `s3://BUCKET/PREFIX` (cloud default).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, possibly empty.
        prefix: String,
    },
}

impl Env {
    /// The store of `STORE_URL`: `sqlite://PATH` or `dynamodb://TABLE`.
    pub fn store_url(&self) -> Result<StoreUrl, ConfigError> {
        let value = self.required(STORE_URL)?;
        let (scheme, rest) = split_url(STORE_URL, &value)?;
        match scheme {
            "sqlite" => Ok(StoreUrl::Sqlite(local_path(STORE_URL, &value, rest)?)),
            "dynamodb" => Ok(StoreUrl::DynamoDb(rest.to_owned())),
            other => Err(ConfigError::invalid(
                STORE_URL,
                &value,
                format!("unknown scheme {other:?}; expected sqlite:// or dynamodb://"),
            )),
        }
    }

    /// The mailer of `MAIL_URL`: `file://DIR`, `smtp://HOST:PORT` or `ses`.
    pub fn mail_url(&self) -> Result<MailUrl, ConfigError> {
        let value = self.required(MAIL_URL)?;
        if value == "ses" {
            return Ok(MailUrl::Ses);
        }
        let (scheme, rest) = split_url(MAIL_URL, &value)?;
        match scheme {
            "file" => Ok(MailUrl::Outbox(local_path(MAIL_URL, &value, rest)?)),
            "smtp" => {
                let url = url::Url::parse(&value)
                    .map_err(|e| ConfigError::invalid(MAIL_URL, &value, e.to_string()))?;
                let host = url
                    .host_str()
                    .ok_or_else(|| ConfigError::invalid(MAIL_URL, &value, "missing host"))?;
                Ok(MailUrl::Smtp {
                    host: host.to_owned(),
                    port: url.port().unwrap_or(25),
                })
            }
            other => Err(ConfigError::invalid(
                MAIL_URL,
                &value,
                format!("unknown scheme {other:?}; expected file://, smtp:// or ses"),
            )),
        }
    }

    /// The blob store of `BLOBS_URL`: `file://DIR` or `s3://BUCKET/PREFIX`.
    pub fn blobs_url(&self) -> Result<BlobsUrl, ConfigError> {
        let value = self.required(BLOBS_URL)?;
        let (scheme, rest) = split_url(BLOBS_URL, &value)?;
        match scheme {
            "file" => Ok(BlobsUrl::Dir(local_path(BLOBS_URL, &value, rest)?)),
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                Ok(BlobsUrl::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                })
            }
            other => Err(ConfigError::invalid(
                BLOBS_URL,
                &value,
                format!("unknown scheme {other:?}; expected file:// or s3://"),
            )),
        }
    }
}

/// Parses a URL of a port; `file://` and `sqlite://` paths may be relative (`sqlite://.nightshift/state.db`).
fn split_url<'a>(var: &str, value: &'a str) -> Result<(&'a str, &'a str), ConfigError> {
    value
        .split_once("://")
        .ok_or_else(|| ConfigError::invalid(var, value, "expected a URL like scheme://…"))
}

fn local_path(var: &str, value: &str, rest: &str) -> Result<PathBuf, ConfigError> {
    if rest.is_empty() {
        return Err(ConfigError::invalid(var, value, "the path is empty"));
    }
    Ok(PathBuf::from(rest))
}

/// Checks that `entry` (all of `value`, or one entry of a list) is an http(s) queue URL.
fn check_queue_url(var: &str, value: &str, entry: &str) -> Result<(), ConfigError> {
    let what = |reason: String| {
        if entry == value {
            reason
        } else {
            format!("entry {entry:?}: {reason}")
        }
    };
    let url = url::Url::parse(entry)
        .map_err(|e| ConfigError::invalid(var, value, what(e.to_string())))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            var,
            value,
            what("expected an http(s) queue URL".into()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_namespace_defaults_and_refuses_aws_namespaces() {
        let namespace = |value: &str| {
            Env::from_map([(crate::metrics::NAMESPACE_VAR, value)]).metrics_namespace()
        };
        assert_eq!(namespace("").unwrap(), "nightshift");
        assert_eq!(namespace("shop/prod").unwrap(), "shop/prod");
        assert_eq!(
            namespace("AWS/Lambda").unwrap_err().to_string(),
            "environment variable NIGHTSHIFT_METRICS_NAMESPACE=\"AWS/Lambda\" is invalid: a namespace has at most 255 characters and does not start with AWS/"
        );
        assert!(namespace(&"n".repeat(256)).is_err());
    }

    #[test]
    fn urls_parse_into_what_they_name() {
        let env = Env::from_map([
            ("STORE_URL", "sqlite://.nightshift/state.db"),
            ("MAIL_URL", "smtp://mail.example.com"),
            ("BLOBS_URL", "s3://reports-123/daily/x"),
        ]);
        assert_eq!(
            env.store_url().unwrap(),
            StoreUrl::Sqlite(".nightshift/state.db".into())
        );
        assert_eq!(
            env.mail_url().unwrap(),
            MailUrl::Smtp {
                host: "mail.example.com".into(),
                port: 25
            }
        );
        assert_eq!(
            env.blobs_url().unwrap(),
            BlobsUrl::S3 {
                bucket: "reports-123".into(),
                prefix: "daily/x".into()
            }
        );
        let env = Env::from_map([
            ("STORE_URL", "dynamodb://t"),
            ("MAIL_URL", "ses"),
            ("BLOBS_URL", "file://out"),
        ]);
        assert_eq!(env.store_url().unwrap(), StoreUrl::DynamoDb("t".into()));
        assert_eq!(env.mail_url().unwrap(), MailUrl::Ses);
        assert_eq!(env.blobs_url().unwrap(), BlobsUrl::Dir("out".into()));
    }

    #[test]
    fn queue_urls_and_ttls() {
        let env = Env::from_map([
            ("Q", "http://127.0.0.1:9324/000000000000/jobs"),
            ("IDEMPOTENCY_TTL_SECONDS", "60"),
            ("BAD_Q", "ftp://x/y"),
        ]);
        assert_eq!(
            env.queue_url("Q").unwrap(),
            "http://127.0.0.1:9324/000000000000/jobs"
        );
        assert_eq!(env.idempotency_ttl().unwrap(), Duration::from_secs(60));
        assert!(
            env.queue_url("BAD_Q")
                .unwrap_err()
                .to_string()
                .contains("expected an http(s) queue URL")
        );
        assert_eq!(
            env.queue_url("JOBS_QUEUE_URL").unwrap_err(),
            ConfigError::Missing {
                var: "JOBS_QUEUE_URL".into()
            }
        );
        let env = Env::from_map([("IDEMPOTENCY_TTL_SECONDS", "soon")]);
        assert!(
            env.idempotency_ttl()
                .unwrap_err()
                .to_string()
                .contains("IDEMPOTENCY_TTL_SECONDS=\"soon\"")
        );
    }

    #[test]
    fn scheduler_targets_name_the_bad_variable() {
        let good = [
            ("SCHEDULER_GROUP", "nightshift-jobs"),
            (
                "SCHEDULER_ROLE_ARN",
                "arn:aws:iam::123456789012:role/nightshift-jobs-scheduler",
            ),
            (
                "JOBS_QUEUE_ARN",
                "arn:aws:sqs:eu-central-1:123456789012:nightshift-jobs",
            ),
        ];
        let target = Env::from_map(good).scheduler_target().unwrap();
        assert_eq!(target.group, "nightshift-jobs");
        for (var, bad, reason) in [
            ("SCHEDULER_GROUP", "jobs/eu", "a schedule group name"),
            (
                "SCHEDULER_ROLE_ARN",
                "nightshift-role",
                "expected an IAM role ARN",
            ),
            (
                "JOBS_QUEUE_ARN",
                "https://sqs.eu-central-1.amazonaws.com/1/jobs",
                "expected an SQS queue ARN",
            ),
        ] {
            let env = Env::from_map(good.map(|(k, v)| (k, if k == var { bad } else { v })));
            let err = env.scheduler_target().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "environment variable {var}=\"{bad}\" is invalid: {reason}"
                )),
                "{err}"
            );
        }
        let env = Env::from_map(good.map(|(k, v)| (k, if k == "JOBS_QUEUE_ARN" { "" } else { v })));
        assert_eq!(
            env.scheduler_target().unwrap_err(),
            ConfigError::Missing {
                var: "JOBS_QUEUE_ARN".into()
            }
        );
    }

    #[test]
    fn queue_url_lists_are_optional_and_name_a_bad_entry() {
        let env = Env::from_map([
            (
                "DLQS",
                "http://127.0.0.1:9324/000000000000/a, http://127.0.0.1:9324/000000000000/b,",
            ),
            ("EMPTY", ""),
            ("BAD", "http://127.0.0.1:9324/000000000000/a,jobs-dlq"),
        ]);
        assert_eq!(
            env.queue_urls("DLQS").unwrap(),
            [
                "http://127.0.0.1:9324/000000000000/a",
                "http://127.0.0.1:9324/000000000000/b"
            ]
        );
        assert!(env.queue_urls("EMPTY").unwrap().is_empty());
        assert!(env.queue_urls("UNSET").unwrap().is_empty());
        let err = env.queue_urls("BAD").unwrap_err().to_string();
        assert!(
            err.starts_with("environment variable BAD=\"http://"),
            "{err}"
        );
        assert!(err.contains("entry \"jobs-dlq\""), "{err}");
    }
}
