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
    /// queue-processor's FIFO source and its DLQ (inventory adjustments), when the template
    /// has one.
    pub(super) inventory: Option<(String, String)>,
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
        // The function's standard (or, with `fifo`, FIFO) source queue and its DLQ.
        let source_of = |logical_id: &str, fifo: bool| {
            template
                .event_sources
                .iter()
                .filter(|s| s.function == logical_id)
                .filter_map(|s| template.queue(&s.queue))
                .find(|q| q.fifo == fifo)
        };
        let queues_of = |logical_id: &str| -> Result<(String, String), CheckError> {
            let queue = source_of(logical_id, false).ok_or_else(|| {
                CheckError::Template(format!("{logical_id} has no standard SQS source"))
            })?;
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
        let inventory = source_of(&qp.logical_id, true).and_then(|q| {
            let dlq = q.redrive.as_ref()?;
            Some((q.name.clone(), dlq.dlq_name.clone()))
        });
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
            inventory,
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
            .filter(|q| {
                q.name == self.jobs_queue
                    || q.name == self.emails_queue
                    || self.inventory.as_ref().is_some_and(|(i, _)| q.name == *i)
            })
            .all(|q| q.visible == 0 && q.in_flight == 0 && q.delayed == 0);
        queues_empty && status.functions.iter().all(|f| f.busy == 0)
    }
}
