//! `user.signup`: send the welcome email.

use std::collections::BTreeMap;

use nightshift::contracts::{EmailRequest, JobEnvelope};
use serde::Deserialize;
use serde_json::json;

use super::{Effects, Job, JobError, address, payload};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    user_id: String,
    email: String,
    name: String,
}

/// The `user.signup` job.
#[derive(Debug, Default, Clone, Copy)]
pub struct UserSignup;

impl Job for UserSignup {
    fn kind(&self) -> &'static str {
        "user.signup"
    }

    fn run(&self, envelope: &JobEnvelope) -> Result<Effects, JobError> {
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
        let email = EmailRequest::from_template(
            format!("welcome-{}", envelope.id),
            vec![p.email],
            "Welcome to nightshift",
            "welcome",
            BTreeMap::from([("name".to_string(), json!(p.name))]),
        );
        Ok(Effects {
            adjustment: None,
            emails: vec![email],
            result: json!({"user_id": p.user_id}),
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
