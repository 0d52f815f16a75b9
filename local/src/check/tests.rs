//! Unit tests of the plan, the verdict and the log readers.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;

fn at() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

#[test]
fn plans_are_seeded_and_mixed() {
    let jobs = plan_jobs(60, 0.25, 9, at());
    assert_eq!(jobs, plan_jobs(60, 0.25, 9, at()));
    assert_ne!(jobs, plan_jobs(60, 0.25, 10, at()));
    let malformed: Vec<Malformation> = jobs
        .iter()
        .filter_map(|j| match j.expect {
            Expect::Malformed(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(malformed.len(), 15);
    for kind in [
        Malformation::BrokenJson,
        Malformation::UnknownKind,
        Malformation::InvalidPayload,
    ] {
        assert_eq!(malformed.iter().filter(|m| **m == kind).count(), 5);
    }
    for job in &jobs {
        let parsed = serde_json::from_str::<serde_json::Value>(&job.body);
        match &job.expect {
            Expect::Malformed(Malformation::BrokenJson) => assert!(parsed.is_err()),
            Expect::Valid { email_id } => {
                let body = parsed.unwrap();
                assert_eq!(body["id"], job.id.as_str());
                assert!(email_id.ends_with(&job.id));
            }
            Expect::Malformed(_) => assert!(parsed.is_ok()),
        }
    }
    let bodies: BTreeSet<&str> = jobs.iter().map(|j| j.body.as_str()).collect();
    assert_eq!(bodies.len(), 60, "bodies identify jobs in the DLQ");
}

fn dead(body: &str, reason: Option<&str>) -> DeadLetter {
    DeadLetter {
        body: body.into(),
        reason: reason.map(str::to_string),
    }
}

/// A clean run of `jobs`: valid ones processed with one email each, malformed ones
/// dead-lettered with a reason.
fn clean(jobs: &[PlannedJob]) -> Observed {
    let mut o = Observed::default();
    for j in jobs {
        match &j.expect {
            Expect::Valid { email_id } => {
                o.outcomes.insert(j.id.clone(), "succeeded".into());
                o.outbox.push(Some(email_id.clone()));
            }
            Expect::Malformed(_) => o.jobs_dlq.push(dead(&j.body, Some("malformed job"))),
        }
    }
    o
}

#[test]
fn a_clean_run_passes() {
    let jobs = plan_jobs(20, 0.2, 1, at());
    let v = verify(&jobs, &clean(&jobs));
    assert!(v.passed(), "{:?}", v.problems);
    assert_eq!(
        v.summary(),
        "sent=20 processed=16 dead_lettered=4 lost=0 duplicates=0"
    );
    assert_eq!((v.emails_expected, v.emails_sent), (16, 16));
}

#[test]
fn duplicates_and_losses_are_found() {
    let jobs = plan_jobs(20, 0.2, 1, at());
    let valid: Vec<&PlannedJob> = jobs
        .iter()
        .filter(|j| matches!(j.expect, Expect::Valid { .. }))
        .collect();
    let mut o = clean(&jobs);
    // One email twice, one job gone, one malformed job gone, one email gone.
    o.outbox.push(o.outbox[0].clone());
    o.outcomes.remove(&valid[1].id);
    let Expect::Valid { email_id } = &valid[2].expect else {
        unreachable!()
    };
    o.outbox
        .retain(|id| id.as_deref() != Some(email_id.as_str()));
    o.jobs_dlq.remove(0);
    let v = verify(&jobs, &o);
    assert!(!v.passed());
    assert_eq!(v.duplicates, 1);
    assert_eq!(v.lost, 3, "{:?}", v.problems);
    assert_eq!(
        v.summary(),
        "sent=20 processed=15 dead_lettered=3 lost=3 duplicates=1"
    );
    assert!(v.problems.iter().any(|p| p.contains("was sent 2 times")));
}

#[test]
fn exhausted_and_dead_lettered_work_is_accounted_for() {
    let jobs = plan_jobs(10, 0.0, 2, at());
    let mut o = clean(&jobs);
    // Job 0 exhausted its retries: no outcome, in the DLQ by SQS redrive, email never sent.
    o.outcomes.remove(&jobs[0].id);
    let Expect::Valid { email_id: e0 } = &jobs[0].expect else {
        unreachable!()
    };
    o.outbox.retain(|id| id.as_deref() != Some(e0.as_str()));
    o.jobs_dlq
        .push(dead(&jobs[0].body, Some("maxReceiveCount exceeded")));
    // Job 1's email exhausted its retries; job 2 was dead-lettered twice.
    let Expect::Valid { email_id: e1 } = &jobs[1].expect else {
        unreachable!()
    };
    o.outbox.retain(|id| id.as_deref() != Some(e1.as_str()));
    o.emails_dlq.push(dead(
        &json!({"v": 1, "id": e1, "to": ["a@example.com"], "subject": "s", "body": "b"})
            .to_string(),
        Some("throttled"),
    ));
    o.jobs_dlq.push(dead(&jobs[2].body, Some("x")));
    o.jobs_dlq.push(dead(&jobs[2].body, Some("x")));
    let v = verify(&jobs, &o);
    assert!(v.passed(), "{:?}", v.problems);
    assert_eq!((v.processed, v.exhausted, v.dead_lettered), (9, 1, 2));
    assert_eq!((v.emails_expected, v.emails_dead_lettered), (9, 1));
    assert_eq!(v.dlq_copies, 1);
    // A dead letter without a reason and leftovers fail the run.
    o.jobs_dlq.push(dead(&jobs[3].body, None));
    o.pending = 2;
    let v = verify(&jobs, &o);
    assert!(!v.passed());
    assert_eq!(v.problems.len(), 2, "{:?}", v.problems);
}

#[test]
fn reads_request_ids_and_injected_faults() {
    let eml = "From: a@example.com\r\nx-nightshift-request-id: welcome-1\r\nSubject: s\r\n\r\nX-Nightshift-Request-Id: no\r\n";
    assert_eq!(request_id_of(eml).as_deref(), Some("welcome-1"));
    assert_eq!(request_id_of("Subject: s\r\n\r\nbody"), None);
    let log = "INFO x: injected fault: crash\n{\"message\":\"injected fault: crash-after-send\"}\nWARN injected fault: malformed-response function=f\nnothing\n";
    let counts = count_injected(log);
    assert_eq!(counts["crash"], 1);
    assert_eq!(counts["crash-after-send"], 1);
    assert_eq!(counts["malformed-response"], 1);
    assert_eq!(counts.len(), 3);
}

#[test]
fn adjustments_keep_each_sku_in_sequence_with_power_of_two_deltas() {
    let planned = plan_adjustments(3, 5, 4, true, at());
    assert_eq!(planned, plan_adjustments(3, 5, 4, true, at()));
    assert_eq!(planned.len(), 15);
    for sku in ["CHK-4-0", "CHK-4-1", "CHK-4-2"] {
        let sequences: Vec<u64> = planned
            .iter()
            .filter(|a| a.sku == sku)
            .map(|a| a.sequence)
            .collect();
        assert_eq!(sequences, [1, 2, 3, 4, 5], "{sku} in send order");
    }
    let invalid: Vec<_> = planned.iter().filter(|a| !a.valid()).collect();
    assert_eq!(invalid.len(), 1);
    assert_eq!(
        (invalid[0].sku.as_str(), invalid[0].sequence),
        ("CHK-4-0", 3)
    );
    assert!(
        planned
            .iter()
            .filter(|a| a.valid())
            .all(|a| a.delta == 1 << (a.sequence - 1))
    );
}

/// What a correct run leaves: every sequence consumed, balances the sums of the valid
/// adjustments, the invalid one in the DLQ with its reason.
fn correct_run(planned: &[PlannedAdjustment]) -> Observed {
    let mut observed = Observed::default();
    for a in planned {
        let key = format!("{INVENTORY_KEY_PREFIX}{}", a.sku);
        let entry = observed.sequences.entry(key).or_insert((0, 0));
        entry.0 = entry.0.max(a.sequence);
        if a.valid() {
            entry.1 += a.delta;
            observed.outcomes.insert(a.id.clone(), "succeeded".into());
        } else {
            observed.inventory_dlq.push(DeadLetter {
                body: a.body.clone(),
                reason: Some("invalid payload: delta must not be 0".into()),
            });
        }
    }
    observed
}

#[test]
fn the_adjustment_verdict_finds_losses_and_double_applications() {
    let planned = plan_adjustments(2, 4, 7, true, at());
    let good = correct_run(&planned);
    let mut v = Verdict::default();
    verify_adjustments(&planned, &good, &mut v);
    assert!(v.passed(), "{:?}", v.problems);
    assert_eq!(
        (
            v.adjustments,
            v.adjustments_applied,
            v.adjustments_dead_lettered
        ),
        (8, 7, 1)
    );

    // One adjustment of CHK-7-1 never applied, and not in the DLQ: lost.
    let mut lost = correct_run(&planned);
    lost.sequences.get_mut("inventory:CHK-7-1").unwrap().1 -= 2;
    let mut v = Verdict::default();
    verify_adjustments(&planned, &lost, &mut v);
    assert_eq!((v.lost, v.duplicates), (1, 0), "{:?}", v.problems);

    // Sequence 1 of CHK-7-1 applied twice: the balance is off by its delta.
    let mut twice = correct_run(&planned);
    twice.sequences.get_mut("inventory:CHK-7-1").unwrap().1 += 1;
    let mut v = Verdict::default();
    verify_adjustments(&planned, &twice, &mut v);
    assert_eq!(v.duplicates, 1, "{:?}", v.problems);

    // The invalid one missing from the DLQ is lost; a sequence not consumed is a problem.
    let mut gone = correct_run(&planned);
    gone.inventory_dlq.clear();
    gone.sequences.get_mut("inventory:CHK-7-0").unwrap().0 = 2;
    let mut v = Verdict::default();
    verify_adjustments(&planned, &gone, &mut v);
    assert_eq!(v.lost, 1, "{:?}", v.problems);
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains("consumed its sequence up to 2"))
    );
}
