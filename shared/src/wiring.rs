//! wiring: opens each port's adapter from the typed configuration of [`crate::config`] and
//! applies its decorators (fault injection, in the emulator's builds only). The one module
//! that knows both the configuration and the adapters; a function's `main.rs` calls it and
//! nothing below it.

use std::sync::Arc;

use crate::adapters::blobs::FsBlobs;
use crate::adapters::dynamodb::{DynamoStore, validate_table_name};
use crate::adapters::mail::{OutboxMailer, SmtpMailer};
use crate::adapters::s3::S3Blobs;
use crate::adapters::ses::SesMailer;
use crate::adapters::simulator::MailboxSimulator;
use crate::adapters::sqlite::SqliteStore;
use crate::config::{
    BLOBS_URL, BlobsUrl, ConfigError, Env, FAULTS_VAR, MAIL_CONFIGURATION_SET, MAIL_URL, MailUrl,
    STORE_URL, StoreUrl,
};
use crate::metrics::{Emitter, Stdout};
use crate::ports::{Blobs, Clock, Mailer, Queue, Store};

/// What every function's `main` does before it starts the Lambda runtime: logs (JSON when
/// `AWS_LAMBDA_LOG_FORMAT=JSON`), the SQS client, then the function's dependencies read from
/// the process environment by `deps`. A configuration error is logged before it is returned,
/// so it shows in the function's log as the init error Lambda reports.
///
/// ```no_run
/// # struct Deps;
/// # impl Deps {
/// #     fn from_env(
/// #         _: &nightshift::config::Env,
/// #         _: std::sync::Arc<dyn nightshift::ports::Queue>,
/// #     ) -> Result<Self, nightshift::config::ConfigError> { Ok(Deps) }
/// # }
/// # async fn main_body() -> Result<(), nightshift::config::ConfigError> {
/// let deps = nightshift::wiring::function_deps(Deps::from_env).await?;
/// # Ok(()) }
/// ```
pub async fn function_deps<D>(
    deps: impl FnOnce(&Env, Arc<dyn Queue>) -> Result<D, ConfigError>,
) -> Result<Arc<D>, ConfigError> {
    crate::telemetry::init();
    let queue = Arc::new(crate::adapters::sqs::SqsQueue::from_env().await);
    deps(&Env::process(), queue)
        .map(Arc::new)
        .inspect_err(|e| tracing::error!(error = %e, "configuration error"))
}

/// The metrics emitter of `function`: EMF documents on stdout in the namespace of
/// `NIGHTSHIFT_METRICS_NAMESPACE` ([`Env::metrics_namespace`]).
pub fn metrics(env: &Env, function: &'static str) -> Result<Emitter, ConfigError> {
    Ok(Emitter::new(
        &env.metrics_namespace()?,
        function,
        Arc::new(Stdout),
    ))
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
    let invalid = |reason: String| invalid(env, STORE_URL, reason);
    match env.store_url()? {
        StoreUrl::Sqlite(path) => {
            let store = SqliteStore::open(&path).map_err(|e| invalid(e.to_string()))?;
            Ok(Arc::new(store))
        }
        StoreUrl::DynamoDb(table) => {
            validate_table_name(&table).map_err(invalid)?;
            Ok(Arc::new(DynamoStore::lazy(&table)))
        }
    }
}

/// [`ConfigError::Invalid`] for the value `var` has in `env`.
fn invalid(env: &Env, var: &str, reason: String) -> ConfigError {
    ConfigError::invalid(var, &env.get(var).unwrap_or_default(), reason)
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

/// The mailer of [`mailer`], and for a local one (outbox, SMTP) with `feedback_queue_url`,
/// SES's mailbox simulator in front of it ([`MailboxSimulator`]): mail to the simulator's
/// addresses puts the events SES would publish on that queue. SES itself publishes them in
/// the cloud, so the `ses` mailer is never wrapped.
pub fn mailer_with_feedback(
    env: &Env,
    feedback_queue_url: Option<&str>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Mailer>, ConfigError> {
    let mailer = mailer(env)?;
    match (env.mail_url()?, feedback_queue_url) {
        (MailUrl::Outbox(_) | MailUrl::Smtp { .. }, Some(url)) => {
            Ok(Arc::new(MailboxSimulator::new(mailer, queue, url, clock)))
        }
        _ => Ok(mailer),
    }
}

/// The mailer named by `MAIL_URL`, without fault injection.
fn mailer_by_url(env: &Env) -> Result<Arc<dyn Mailer>, ConfigError> {
    // Read whatever the mailer: the template sets it for every stage.
    let configuration_set = env
        .get(MAIL_CONFIGURATION_SET)
        .filter(|name| !name.trim().is_empty());
    match env.mail_url()? {
        MailUrl::Ses => Ok(Arc::new(
            SesMailer::lazy().with_configuration_set(configuration_set),
        )),
        MailUrl::Outbox(dir) => {
            let mailer =
                OutboxMailer::new(dir).map_err(|e| invalid(env, MAIL_URL, e.to_string()))?;
            Ok(Arc::new(mailer))
        }
        MailUrl::Smtp { host, port } => Ok(Arc::new(SmtpMailer::new(&host, port))),
    }
}

/// Opens the scheduler of run-time schedules: EventBridge Scheduler (its endpoint as the SDK
/// reads it: `AWS_ENDPOINT_URL_SCHEDULER`, else `AWS_ENDPOINT_URL`) for the target of
/// `SCHEDULER_GROUP`, `SCHEDULER_ROLE_ARN` and `JOBS_QUEUE_ARN`
/// ([`Env::scheduler_target`]). The client is built on first use.
#[cfg(feature = "scheduler")]
pub fn scheduler(env: &Env) -> Result<Arc<dyn crate::ports::Scheduler>, ConfigError> {
    let target = env.scheduler_target()?;
    Ok(Arc::new(
        crate::adapters::scheduler::EventBridgeScheduler::lazy(target),
    ))
}

/// Opens the blob store named by `BLOBS_URL`: `file://DIR` or `s3://BUCKET/PREFIX`.
pub fn blobs(env: &Env) -> Result<Arc<dyn Blobs>, ConfigError> {
    let invalid = |reason: String| invalid(env, BLOBS_URL, reason);
    match env.blobs_url()? {
        BlobsUrl::Dir(dir) => Ok(Arc::new(
            FsBlobs::new(dir).map_err(|e| invalid(e.to_string()))?,
        )),
        BlobsUrl::S3 { bucket, prefix } => Ok(Arc::new(
            S3Blobs::from_env(&bucket, &prefix).map_err(|e| invalid(e.to_string()))?,
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
    }

    #[test]
    fn local_urls_open() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let env = Env::from_map([
            ("STORE_URL", format!("sqlite://{d}/state.db")),
            ("MAIL_URL", format!("file://{d}/outbox")),
            ("BLOBS_URL", format!("file://{d}/reports")),
        ]);
        assert!(store(&env).is_ok());
        assert!(mailer(&env).is_ok());
        assert!(blobs(&env).is_ok());
        assert!(dir.path().join("outbox").is_dir());
    }

    #[test]
    fn bad_values() {
        let env = Env::from_map([("MAIL_URL", "smtp://"), ("STORE_URL", "dynamodb://t")]);
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
