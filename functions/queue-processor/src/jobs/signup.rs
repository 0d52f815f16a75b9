//! `user.signup`: send the welcome email, and schedule the "getting started" follow-up 3 days
//! later ([`super::follow_up`]).

use std::collections::BTreeMap;

use nightshift::contracts::{EmailRequest, JobEnvelope};
use serde_json::json;

use super::follow_up;
use super::{Effects, Job, JobError};

/// The `user.signup` job.
#[derive(Debug, Default, Clone, Copy)]
pub struct UserSignup;

impl Job for UserSignup {
    fn kind(&self) -> &'static str {
        "user.signup"
    }

    fn run(&self, envelope: &JobEnvelope) -> Result<Effects, JobError> {
        // The signup's payload is the follow-up's: who, where to write, and how to greet them.
        let p = follow_up::Payload::read(envelope)?;
        let email = EmailRequest::from_template(
            format!("welcome-{}", envelope.id),
            vec![p.email.clone()],
            "Welcome to nightshift",
            "welcome",
            BTreeMap::from([("name".to_string(), json!(p.name))]),
        );
        let result = json!({"user_id": p.user_id});
        Ok(Effects {
            emails: vec![email],
            schedules: vec![follow_up::schedule_for(p, envelope.submitted_at)?],
            result,
            ..Effects::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_email() {
        let env = JobEnvelope::new(
            "job-2",
            "user.signup",
            json!({"user_id":"u-1","email":"grace@example.com","name":"Grace"}),
            "2026-11-21T10:00:00Z".parse().unwrap(),
        );
        let effects = UserSignup.run(&env).unwrap();
        assert_eq!(effects.emails[0].id, "welcome-job-2");
        assert_eq!(effects.emails[0].template.as_deref(), Some("welcome"));
        // The follow-up: 3 days after the signup's submission, under the user's id.
        assert_eq!(effects.schedules.len(), 1);
        let later = &effects.schedules[0];
        assert_eq!(later.id, "follow-up-u-1");
        assert_eq!(later.at.to_rfc3339(), "2026-11-24T10:00:00+00:00");
        assert_eq!(later.envelope.kind, "user.follow_up");
        assert_eq!(
            later.envelope.payload,
            json!({"user_id":"u-1","email":"grace@example.com","name":"Grace"})
        );
        let bad = JobEnvelope::new(
            "j",
            "user.signup",
            json!({"user_id":"u","email":"x","name":"G"}),
            env.submitted_at,
        );
        assert!(
            UserSignup
                .run(&bad)
                .unwrap_err()
                .to_string()
                .contains("`email`")
        );
    }
}
