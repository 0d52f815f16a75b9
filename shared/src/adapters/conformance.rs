//! Behaviour every [`Store`] adapter must show, as checks the adapters' own tests run (and,
//! with feature `test-util`, the cloud tests against moto): one rule, one place.

use crate::ports::{SequenceOutcome, Store, Suppression, SuppressionCause};

/// Checks [`Store::suppress`] and [`Store::suppression`] on `store` for addresses starting
/// with `prefix`: an address is found in any case, a later suppression replaces the earlier
/// one, other addresses are not suppressed. Panics on a difference.
pub async fn check_suppressions(store: &dyn Store, prefix: &str) {
    let address = format!("{prefix}ada@example.com");
    assert_eq!(store.suppression(&address).await.unwrap(), None);
    let bounce = Suppression {
        address: format!("{prefix}Ada@Example.com"),
        cause: SuppressionCause::Bounce,
        detail: "Permanent/General: smtp; 550 5.1.1 user unknown".into(),
        at: "2026-11-21T09:30:00.250Z".parse().unwrap(),
    };
    store.suppress(&bounce).await.unwrap();
    let found = store
        .suppression(&address.to_uppercase())
        .await
        .unwrap()
        .expect("suppressed in any case");
    assert_eq!(
        found,
        Suppression {
            address: address.clone(),
            ..bounce.clone()
        }
    );
    let complaint = Suppression {
        address: address.clone(),
        cause: SuppressionCause::Complaint,
        detail: String::new(),
        at: "2026-11-22T10:00:00Z".parse().unwrap(),
    };
    store.suppress(&complaint).await.unwrap();
    assert_eq!(store.suppression(&address).await.unwrap(), Some(complaint));
    let other = format!("{prefix}bob@example.com");
    assert_eq!(store.suppression(&other).await.unwrap(), None);
}

/// Checks [`Store::apply_in_sequence`] and [`Store::skip_in_sequence`] on `store` under keys
/// starting with `prefix` (so one table can run it twice): the first number is 1, each number
/// is consumed once in order, a redelivery changes nothing, a gap changes nothing, a skip keeps
/// the balance and lets the next number apply, keys are independent. Panics on a difference.
pub async fn check_sequences(store: &dyn Store, prefix: &str) {
    let (a, b) = (format!("{prefix}sku-a"), format!("{prefix}sku-b"));
    let applied = |balance| SequenceOutcome::Applied { balance };
    // Nothing before 1: 2 is a gap, and changes nothing.
    assert_eq!(
        store.apply_in_sequence(&a, 2, 5).await.unwrap(),
        SequenceOutcome::Gap { expected: 1 }
    );
    assert_eq!(
        store.apply_in_sequence(&a, 1, 10).await.unwrap(),
        applied(10)
    );
    // A redelivery of 1 is a duplicate, whatever its delta.
    assert_eq!(
        store.apply_in_sequence(&a, 1, 10).await.unwrap(),
        SequenceOutcome::AlreadyApplied
    );
    assert_eq!(
        store.apply_in_sequence(&a, 3, -1).await.unwrap(),
        SequenceOutcome::Gap { expected: 2 }
    );
    assert_eq!(
        store.apply_in_sequence(&a, 2, -3).await.unwrap(),
        applied(7)
    );
    // A skip consumes 3 without a delta; 3 is then a duplicate, and 4 applies.
    assert_eq!(store.skip_in_sequence(&a, 3).await.unwrap(), applied(7));
    assert_eq!(
        store.skip_in_sequence(&a, 3).await.unwrap(),
        SequenceOutcome::AlreadyApplied
    );
    assert_eq!(
        store.apply_in_sequence(&a, 3, 100).await.unwrap(),
        SequenceOutcome::AlreadyApplied
    );
    assert_eq!(
        store.skip_in_sequence(&a, 6).await.unwrap(),
        SequenceOutcome::Gap { expected: 4 }
    );
    assert_eq!(store.apply_in_sequence(&a, 4, 1).await.unwrap(), applied(8));
    // Another key has its own sequence; a skip can be its first number.
    assert_eq!(store.skip_in_sequence(&b, 1).await.unwrap(), applied(0));
    assert_eq!(
        store.apply_in_sequence(&b, 2, -4).await.unwrap(),
        applied(-4)
    );
    assert_eq!(
        store.apply_in_sequence(&a, 5, 2).await.unwrap(),
        applied(10)
    );
    assert_eq!(
        store.apply_in_sequence(&a, 0, 1).await.unwrap(),
        SequenceOutcome::AlreadyApplied
    );
}

/// Checks that of `n` concurrent calls for one sequence number, exactly one applies.
pub async fn check_sequence_race(store: &dyn Store, key: &str, n: usize) {
    let calls = (0..n).map(|_| store.apply_in_sequence(key, 1, 1));
    let answers = futures::future::join_all(calls).await;
    let applied = answers
        .iter()
        .filter(|a| matches!(a, Ok(SequenceOutcome::Applied { balance: 1 })))
        .count();
    assert_eq!(applied, 1, "{answers:?}");
    assert!(
        answers.iter().all(|a| matches!(
            a,
            Ok(SequenceOutcome::Applied { balance: 1 } | SequenceOutcome::AlreadyApplied)
        )),
        "{answers:?}"
    );
}
