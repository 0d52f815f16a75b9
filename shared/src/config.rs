//! Configuration from environment variables (12-factor, as Lambda gives it).
//!
//! Each port is chosen by a URL in one variable: `STORE_URL`, `MAIL_URL`, `BLOBS_URL`. A
//! missing or malformed value is a startup error that names the variable, so a misconfigured
//! function fails at init with a clear message instead of at the first message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::adapters::blobs::FsBlobs;
use crate::adapters::dynamodb::{DynamoStore, validate_table_name};
use crate::adapters::mail::{OutboxMailer, SmtpMailer};
use crate::adapters::s3::S3Blobs;
use crate::adapters::ses::SesMailer;
use crate::adapters::sqlite::SqliteStore;
use crate::ports::{Blobs, Mailer, Store};

/// Variable selecting the store.
pub const STORE_URL: &str = "STORE_URL";
/// Variable selecting the mailer.
pub const MAIL_URL: &str = "MAIL_URL";
/// Variable selecting the blob store.
pub const BLOBS_URL: &str = "BLOBS_URL";
/// Optional variable: how long completed idempotency records live, in seconds.
pub const IDEMPOTENCY_TTL_SECONDS: &str = "IDEMPOTENCY_TTL_SECONDS";
/// Variable holding the fault list of the emulator's fault injection (test builds only);
/// unset or blank means no fault injection.
pub const FAULTS_VAR: &str = "NIGHTSHIFT_FAULTS";

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
    fn invalid(var: &str, value: &str, reason: impl Into<String>) -> Self {
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
        let url = url::Url::parse(&value)
            .map_err(|e| ConfigError::invalid(var, &value, e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::invalid(
                var,
                &value,
                "expected an http(s) queue URL",
            ));
        }
        Ok(value)
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

/// Opens the store named by `STORE_URL`: `sqlite://PATH` or `dynamodb://TABLE`; with
/// `NIGHTSHIFT_FAULTS` set in a build with the `faults` feature, wrapped to inject store
/// faults.
pub fn store(env: &Env) -> Result<Arc<dyn Store>, ConfigError> {
    let store = store_by_url(env)?;
    #[cfg(feature = "faults")]
    return crate::faults::wrap_store(env, store);
    #[cfg(not(feature = "faults"))]
    {
        refuse_faults(env)?;
        Ok(store)
    }
}

/// Sets the fault injection of a batch processor from `NIGHTSHIFT_FAULTS`: parsed in builds
/// with the `faults` feature (an invalid value is an error here, at init, never a panic);
/// refused in deploy builds, which carry no fault injection, so that a variable meant to
/// break things does not silently do nothing either.
pub fn apply_faults(env: &Env, config: &mut crate::batch::BatchConfig) -> Result<(), ConfigError> {
    #[cfg(feature = "faults")]
    {
        config.faults = crate::faults::Faults::from_env(env)
            .map_err(|e| {
                ConfigError::invalid(
                    FAULTS_VAR,
                    &env.get(FAULTS_VAR).unwrap_or_default(),
                    e.to_string(),
                )
            })?
            .map(Arc::new);
        Ok(())
    }
    #[cfg(not(feature = "faults"))]
    {
        let _ = config;
        refuse_faults(env)
    }
}

/// A deploy build refuses `NIGHTSHIFT_FAULTS`: it has no fault injection to apply.
#[cfg(not(feature = "faults"))]
fn refuse_faults(env: &Env) -> Result<(), ConfigError> {
    match env.get(FAULTS_VAR) {
        None => Ok(()),
        Some(value) => Err(ConfigError::invalid(
            FAULTS_VAR,
            &value,
            "this build has no fault injection (it is a test feature of the emulator's \
             builds); remove the variable from the function's environment",
        )),
    }
}

/// The store named by `STORE_URL`, without fault injection.
fn store_by_url(env: &Env) -> Result<Arc<dyn Store>, ConfigError> {
    let value = env.required(STORE_URL)?;
    let (scheme, rest) = split_url(STORE_URL, &value)?;
    match scheme {
        "sqlite" => {
            let path = local_path(STORE_URL, &value, rest)?;
            let store = SqliteStore::open(&path)
                .map_err(|e| ConfigError::invalid(STORE_URL, &value, e.to_string()))?;
            Ok(Arc::new(store))
        }
        "dynamodb" => {
            validate_table_name(rest)
                .map_err(|reason| ConfigError::invalid(STORE_URL, &value, reason))?;
            Ok(Arc::new(DynamoStore::lazy(rest)))
        }
        other => Err(ConfigError::invalid(
            STORE_URL,
            &value,
            format!("unknown scheme {other:?}; expected sqlite:// or dynamodb://"),
        )),
    }
}

/// Opens the mailer named by `MAIL_URL`: `file://DIR`, `smtp://HOST:PORT` or `ses`; with
/// `NIGHTSHIFT_FAULTS` set in a build with the `faults` feature, wrapped to inject mailer
/// faults.
pub fn mailer(env: &Env) -> Result<Arc<dyn Mailer>, ConfigError> {
    let mailer = mailer_by_url(env)?;
    #[cfg(feature = "faults")]
    return crate::faults::wrap_mailer(env, mailer);
    #[cfg(not(feature = "faults"))]
    {
        refuse_faults(env)?;
        Ok(mailer)
    }
}

/// The mailer named by `MAIL_URL`, without fault injection.
fn mailer_by_url(env: &Env) -> Result<Arc<dyn Mailer>, ConfigError> {
    let value = env.required(MAIL_URL)?;
    if value == "ses" {
        return Ok(Arc::new(SesMailer::lazy()));
    }
    let (scheme, rest) = split_url(MAIL_URL, &value)?;
    match scheme {
        "file" => {
            let dir = local_path(MAIL_URL, &value, rest)?;
            let mailer = OutboxMailer::new(dir)
                .map_err(|e| ConfigError::invalid(MAIL_URL, &value, e.to_string()))?;
            Ok(Arc::new(mailer))
        }
        "smtp" => {
            let url = url::Url::parse(&value)
                .map_err(|e| ConfigError::invalid(MAIL_URL, &value, e.to_string()))?;
            let host = url
                .host_str()
                .ok_or_else(|| ConfigError::invalid(MAIL_URL, &value, "missing host"))?;
            Ok(Arc::new(SmtpMailer::new(host, url.port().unwrap_or(25))))
        }
        other => Err(ConfigError::invalid(
            MAIL_URL,
            &value,
            format!("unknown scheme {other:?}; expected file://, smtp:// or ses"),
        )),
    }
}

/// Opens the blob store named by `BLOBS_URL`: `file://DIR` or `s3://BUCKET/PREFIX`.
pub fn blobs(env: &Env) -> Result<Arc<dyn Blobs>, ConfigError> {
    let value = env.required(BLOBS_URL)?;
    let (scheme, rest) = split_url(BLOBS_URL, &value)?;
    match scheme {
        "file" => {
            let dir = local_path(BLOBS_URL, &value, rest)?;
            let blobs = FsBlobs::new(dir)
                .map_err(|e| ConfigError::invalid(BLOBS_URL, &value, e.to_string()))?;
            Ok(Arc::new(blobs))
        }
        "s3" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let blobs = S3Blobs::from_env(bucket, prefix)
                .map_err(|e| ConfigError::invalid(BLOBS_URL, &value, e.to_string()))?;
            Ok(Arc::new(blobs))
        }
        other => Err(ConfigError::invalid(
            BLOBS_URL,
            &value,
            format!("unknown scheme {other:?}; expected file:// or s3://"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_invalid_name_the_variable() {
        let env = Env::from_map([
            ("STORE_URL", "postgres://x"),
            ("MAIL_URL", "nope"),
            ("BLOBS_URL", "  "),
        ]);
        assert_eq!(
            store(&env).err().unwrap().to_string(),
            "environment variable STORE_URL=\"postgres://x\" is invalid: unknown scheme \"postgres\"; expected sqlite:// or dynamodb://"
        );
        assert!(
            mailer(&env)
                .err()
                .unwrap()
                .to_string()
                .starts_with("environment variable MAIL_URL=\"nope\" is invalid")
        );
        assert_eq!(
            blobs(&env).err().unwrap().to_string(),
            "environment variable BLOBS_URL is not set"
        );
        assert_eq!(
            env.queue_url("JOBS_QUEUE_URL").unwrap_err(),
            ConfigError::Missing {
                var: "JOBS_QUEUE_URL".into()
            }
        );
    }

    #[test]
    fn local_urls_open() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let env = Env::from_map([
            ("STORE_URL", format!("sqlite://{d}/state.db")),
            ("MAIL_URL", format!("file://{d}/outbox")),
            ("BLOBS_URL", format!("file://{d}/reports")),
            ("Q", "http://127.0.0.1:9324/000000000000/jobs".to_string()),
            ("IDEMPOTENCY_TTL_SECONDS", "60".to_string()),
        ]);
        assert!(store(&env).is_ok());
        assert!(mailer(&env).is_ok());
        assert!(blobs(&env).is_ok());
        assert!(dir.path().join("outbox").is_dir());
        assert_eq!(
            env.queue_url("Q").unwrap(),
            "http://127.0.0.1:9324/000000000000/jobs"
        );
        assert_eq!(env.idempotency_ttl().unwrap(), Duration::from_secs(60));
    }

    #[test]
    fn bad_values() {
        let env = Env::from_map([
            ("Q", "ftp://x/y"),
            ("IDEMPOTENCY_TTL_SECONDS", "soon"),
            ("MAIL_URL", "smtp://"),
            ("STORE_URL", "dynamodb://t"),
        ]);
        assert!(
            env.queue_url("Q")
                .unwrap_err()
                .to_string()
                .contains("expected an http(s) queue URL")
        );
        assert!(
            env.idempotency_ttl()
                .unwrap_err()
                .to_string()
                .contains("IDEMPOTENCY_TTL_SECONDS=\"soon\"")
        );
        assert!(mailer(&env).is_err());
        assert_eq!(
            store(&env).err().unwrap().to_string(),
            "environment variable STORE_URL=\"dynamodb://t\" is invalid: invalid table name \"t\": \
             3 to 255 characters of A-Z, a-z, 0-9, _, - and ."
        );
        let env = Env::from_map([
            ("STORE_URL", "dynamodb://"),
            ("BLOBS_URL", "s3://Not_A_Bucket/reports"),
            ("MAIL_URL", "ses://x"),
        ]);
        assert!(
            store(&env)
                .err()
                .unwrap()
                .to_string()
                .contains("invalid table name \"\"")
        );
        assert!(
            blobs(&env)
                .err()
                .unwrap()
                .to_string()
                .contains("invalid bucket name \"Not_A_Bucket\"")
        );
        assert!(
            mailer(&env)
                .err()
                .unwrap()
                .to_string()
                .contains("unknown scheme \"ses\"")
        );
    }

    #[cfg(not(feature = "faults"))]
    #[test]
    fn deploy_builds_refuse_fault_injection() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_map([
            (
                "STORE_URL",
                format!("sqlite://{}/s.db", dir.path().display()),
            ),
            ("NIGHTSHIFT_FAULTS", "crash".to_string()),
        ]);
        let err = store(&env).err().unwrap().to_string();
        assert!(err.contains("this build has no fault injection"), "{err}");
        let mut config = crate::batch::BatchConfig::default();
        assert!(apply_faults(&env, &mut config).is_err());
        assert!(apply_faults(&Env::from_map([("X", "1")]), &mut config).is_ok());
    }

    #[cfg(feature = "faults")]
    #[test]
    fn emulator_builds_read_fault_injection_and_reject_bad_values_at_init() {
        let mut config = crate::batch::BatchConfig::default();
        apply_faults(&Env::from_map([(FAULTS_VAR, "crash=0.5")]), &mut config).unwrap();
        assert!(config.faults.is_some());
        let err = apply_faults(&Env::from_map([(FAULTS_VAR, "crash=9")]), &mut config)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("environment variable NIGHTSHIFT_FAULTS=\"crash=9\" is invalid"),
            "{err}"
        );
    }

    #[test]
    fn cloud_urls_open_without_touching_the_network() {
        let env = Env::from_map([
            ("STORE_URL", "dynamodb://nightshift-dev-state"),
            ("MAIL_URL", "ses"),
            ("BLOBS_URL", "s3://nightshift-dev-reports-123/reports"),
        ]);
        assert!(store(&env).is_ok());
        assert!(mailer(&env).is_ok());
        assert!(blobs(&env).is_ok());
    }
}
