//! `user.follow_up`: the "getting started" email a user gets 3 days after signing up, unless
//! they ordered before then.
//!
//! `user.signup` schedules it ([`schedule_for`]) under the schedule id `follow-up-USER`
//! ([`schedule_id`]); EventBridge Scheduler puts the job on the jobs queue at its time and
//! deletes the schedule; `order.placed` with a `customer_id` cancels it. Its job id is the
//! schedule id, so a delivery Scheduler repeats is a duplicate job, and its email id derives
//! from the job id, so a re-run never sends a second email.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use nightshift::contracts::{EmailRequest, JobEnvelope};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Effects, Job, JobError, LaterJob, address, payload};

/// The kind of the follow-up job.
pub const KIND: &str = "user.follow_up";

/// How long after signing up the follow-up goes out.
pub const DELAY: chrono::Duration = chrono::Duration::days(3);

/// The follow-up's payload: who, and how to greet them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// The user, as `user.signup` named them.
    pub user_id: String,
    /// Where the email goes.
    pub email: String,
    /// The name it greets.
    pub name: String,
}

impl Payload {
    /// The payload of `envelope`, checked: a user id and a name that are not blank, and a
    /// valid email address. `user.signup` carries the same three fields and reads them here.
    pub fn read(envelope: &JobEnvelope) -> Result<Self, JobError> {
        let p: Payload = payload(envelope)?;
        if p.user_id.trim().is_empty() {
            return Err(JobError::InvalidPayload(
                "`user_id` must not be empty".into(),
            ));
        }
        if p.name.trim().is_empty() {
            return Err(JobError::InvalidPayload("`name` must not be empty".into()));
        }
        address("email", &p.email)?;
        Ok(p)
    }
}

/// The schedule id (and job id) of `user_id`'s follow-up: `follow-up-USER`, which must be a
/// schedule name ([`nightshift::ports::schedule_name`]: at most 64 of `[0-9a-zA-Z-_.]`, so a
/// user id of at most 54 of them); `None` for a user id that cannot have one.
pub fn schedule_id(user_id: &str) -> Option<String> {
    let id = format!("follow-up-{user_id}");
    nightshift::ports::schedule_name(&id).is_ok().then_some(id)
}

/// The follow-up of a user who signed up at `signed_up_at` (the signup job's submission time,
/// so a retried or redelivered signup schedules the same time): [`DELAY`] later. A user id
/// that cannot name a schedule is an invalid payload naming `user_id`.
pub fn schedule_for(user: Payload, signed_up_at: DateTime<Utc>) -> Result<LaterJob, JobError> {
    let id = schedule_id(&user.user_id).ok_or_else(|| {
        JobError::InvalidPayload(format!(
            "`user_id` {:?} cannot name its follow-up schedule: at most 54 ASCII letters, \
             digits, - _ and .",
            user.user_id
        ))
    })?;
    let at = signed_up_at + DELAY;
    let payload = serde_json::to_value(&user)
        .map_err(|e| JobError::InvalidPayload(format!("follow-up payload: {e}")))?;
    Ok(LaterJob {
        envelope: JobEnvelope::new(id.clone(), KIND, payload, at),
        id,
        at,
    })
}

/// The `user.follow_up` job.
#[derive(Debug, Default, Clone, Copy)]
pub struct UserFollowUp;

impl Job for UserFollowUp {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run(&self, envelope: &JobEnvelope) -> Result<Effects, JobError> {
        let p = Payload::read(envelope)?;
        let email = EmailRequest::from_template(
            format!("getting-started-{}", envelope.id),
            vec![p.email],
            "Getting started with nightshift",
            "getting_started",
            BTreeMap::from([("name".to_string(), json!(p.name))]),
        );
        Ok(Effects {
            emails: vec![email],
            result: json!({"user_id": p.user_id}),
            ..Effects::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grace() -> Payload {
        Payload {
            user_id: "u-1".into(),
            email: "grace@example.com".into(),
            name: "Grace".into(),
        }
    }

    #[test]
    fn scheduled_three_days_after_signing_up_under_the_users_id() {
        let signed_up: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        let later = schedule_for(grace(), signed_up).unwrap();
        assert_eq!(later.id, "follow-up-u-1");
        assert_eq!(later.at.to_rfc3339(), "2026-11-24T10:00:00+00:00");
        assert_eq!(later.envelope.id, "follow-up-u-1");
        assert_eq!(later.envelope.kind, KIND);
        assert_eq!(later.envelope.submitted_at, later.at);
        // What Scheduler sends is a valid job of this kind.
        let sent = JobEnvelope::parse(&serde_json::to_string(&later.envelope).unwrap()).unwrap();
        let effects = UserFollowUp.run(&sent).unwrap();
        assert_eq!(effects.emails.len(), 1);
        let email = &effects.emails[0];
        assert_eq!(email.id, "getting-started-follow-up-u-1");
        assert_eq!(email.to, ["grace@example.com"]);
        assert_eq!(email.template.as_deref(), Some("getting_started"));
        assert_eq!(email.vars["name"], json!("Grace"));
        assert!(effects.schedules.is_empty() && effects.cancels.is_empty());
    }

    #[test]
    fn user_ids_that_cannot_name_a_schedule_are_refused() {
        let at: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        assert_eq!(schedule_id(&"u".repeat(54)).unwrap().len(), 64);
        assert_eq!(schedule_id(&"u".repeat(55)), None);
        assert_eq!(schedule_id("u:1"), None);
        let err = schedule_for(
            Payload {
                user_id: "tenant/7".into(),
                ..grace()
            },
            at,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid payload: `user_id` \"tenant/7\" cannot name"),
            "{err}"
        );
    }

    #[test]
    fn bad_follow_ups_name_the_field() {
        let at: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        for (payload, expected) in [
            (
                json!({"user_id":"u-1","email":"nope","name":"G"}),
                "`email`",
            ),
            (
                json!({"user_id":" ","email":"a@b.co","name":"G"}),
                "`user_id` must not be empty",
            ),
            (
                json!({"user_id":"u-1","email":"a@b.co"}),
                "missing field `name`",
            ),
        ] {
            let envelope = JobEnvelope::new("follow-up-u-1", KIND, payload, at);
            let err = UserFollowUp.run(&envelope).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }
}
