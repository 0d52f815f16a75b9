//! What the check needs from the template: the queues and functions it sends to and reads.

use std::path::PathBuf;
use std::time::Duration;

use super::CheckError;
use crate::emulator::Status;
use crate::template::Template;

/// What the check needs from the template.
#[derive(Debug, Clone)]
pub(super) struct Targets {
    pub(super) jobs_queue: String,
    pub(super) jobs_dlq: String,
    pub(super) emails_queue: String,
    pub(super) emails_dlq: String,
    /// The store, relative to the functions' work dir.
    pub(super) store: PathBuf,
    /// The outbox, relative to the functions' work dir.
    pub(super) outbox: PathBuf,
    pub(super) binaries: Vec<String>,
    /// The longest function timeout: how long a dead invocation's claim can live.
    pub(super) longest_timeout: Duration,
}

impl Targets {
    pub(super) fn of(template: &Template) -> Result<Targets, CheckError> {
        let function = |binary: &str| {
            template
                .functions
                .values()
                .find(|f| f.binary == binary)
                .ok_or_else(|| CheckError::Template(format!("no function runs {binary}")))
        };
        let queues_of = |logical_id: &str| -> Result<(String, String), CheckError> {
            let source = template
                .event_sources
                .iter()
                .find(|s| s.function == logical_id)
                .ok_or_else(|| CheckError::Template(format!("{logical_id} has no SQS source")))?;
            let queue = template
                .queue(&source.queue)
                .ok_or_else(|| CheckError::Template(format!("no queue {}", source.queue)))?;
            let dlq = queue.redrive.as_ref().ok_or_else(|| {
                CheckError::Template(format!("{} has no dead-letter queue", queue.name))
            })?;
            Ok((queue.name.clone(), dlq.dlq_name.clone()))
        };
        let local = |f: &crate::template::FunctionDef, var: &str, scheme: &str| {
            f.env
                .get(var)
                .and_then(|v| v.strip_prefix(scheme))
                .map(PathBuf::from)
                .ok_or_else(|| {
                    CheckError::Template(format!(
                        "{} needs {var}={scheme}… (the local adapters; see infra/env.local.json)",
                        f.name
                    ))
                })
        };
        let qp = function("queue-processor")?;
        let es = function("email-sender")?;
        let (jobs_queue, jobs_dlq) = queues_of(&qp.logical_id)?;
        let (emails_queue, emails_dlq) = queues_of(&es.logical_id)?;
        let store = local(qp, "STORE_URL", "sqlite://")?;
        if local(es, "STORE_URL", "sqlite://")? != store {
            return Err(CheckError::Template(
                "queue-processor and email-sender must share one store".into(),
            ));
        }
        Ok(Targets {
            jobs_queue,
            jobs_dlq,
            emails_queue,
            emails_dlq,
            store,
            outbox: local(es, "MAIL_URL", "file://")?,
            binaries: template
                .functions
                .values()
                .map(|f| f.binary.clone())
                .collect(),
            longest_timeout: template
                .functions
                .values()
                .map(|f| Duration::from_secs(f.timeout_s.into()))
                .max()
                .unwrap_or_default(),
        })
    }

    pub(super) fn settled(&self, status: &Status) -> bool {
        let queues_empty = status
            .queues
            .iter()
            .filter(|q| q.name == self.jobs_queue || q.name == self.emails_queue)
            .all(|q| q.visible == 0 && q.in_flight == 0 && q.delayed == 0);
        queues_empty && status.functions.iter().all(|f| f.busy == 0)
    }
}
