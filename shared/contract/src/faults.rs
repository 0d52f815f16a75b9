//! faults: the grammar of a fault list and the faults the functions inject.
//!
//! A list is comma-separated items `[function:]fault[=value]`, e.g.
//! `crash=0.02,email-sender:mail-throttle=0.1,sigkill=2`. The functions apply the faults of
//! [`Fault`]; the emulator adds faults of its own (in its invoker, kills) with the same
//! syntax, the same `function:` matching ([`selects`]) and the same seeded decisions
//! ([`unit`]), so a seed means the same run on both sides.

/// Variable holding the fault list (unset or blank: no fault injection).
pub const FAULTS_VAR: &str = "NIGHTSHIFT_FAULTS";
/// Variable holding the seed of the fault decisions (an unsigned integer, default 0).
pub const FAULT_SEED_VAR: &str = "NIGHTSHIFT_FAULT_SEED";
/// Variable naming the function, which `function:` prefixes are matched against.
pub const FUNCTION_NAME_VAR: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// A fault the functions inject themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Abort the process mid-batch.
    Crash,
    /// Sleep past the invocation's deadline mid-batch.
    Timeout,
    /// Fail a record with a retryable error.
    Error,
    /// The mailer answers with a retryable throttling error.
    MailThrottle,
    /// Abort right after the mailer sent, before the idempotency record is completed.
    CrashAfterSend,
    /// Abort when an idempotency record is about to be completed.
    CrashBeforeComplete,
}

impl Fault {
    /// Every fault, in the order of their names in docs and errors.
    pub const ALL: [Fault; 6] = [
        Fault::Crash,
        Fault::Timeout,
        Fault::Error,
        Fault::MailThrottle,
        Fault::CrashAfterSend,
        Fault::CrashBeforeComplete,
    ];

    /// The name used in a fault list.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Crash => "crash",
            Fault::Timeout => "timeout",
            Fault::Error => "error",
            Fault::MailThrottle => "mail-throttle",
            Fault::CrashAfterSend => "crash-after-send",
            Fault::CrashBeforeComplete => "crash-before-complete",
        }
    }

    /// The fault named `name`.
    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The rate of a fault named without one. Low enough that a run of a few hundred jobs
    /// meets every fault several times without exhausting many messages; a timeout costs the
    /// function's whole timeout in real time, hence its lower rate.
    pub fn default_rate(self) -> f64 {
        match self {
            Fault::Crash => 0.02,
            Fault::Timeout => 0.005,
            Fault::Error => 0.05,
            Fault::MailThrottle => 0.05,
            Fault::CrashAfterSend => 0.02,
            Fault::CrashBeforeComplete => 0.02,
        }
    }
}

/// A fault list or seed that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// The item names no known fault.
    #[error("fault item {item:?}: unknown fault {name:?}; known: {known}")]
    Unknown {
        /// The item as written.
        item: String,
        /// The name in it.
        name: String,
        /// The names whoever applies the list knows.
        known: String,
    },
    /// The value is not what the fault takes (a rate from 0 to 1, a count).
    #[error("fault item {item:?}: {reason}")]
    Value {
        /// The item as written.
        item: String,
        /// What is wrong.
        reason: String,
    },
    /// An empty function prefix or fault name.
    #[error("fault item {item:?} is malformed; expected [function:]fault[=rate]")]
    Malformed {
        /// The item as written.
        item: String,
    },
    /// The seed is not an unsigned integer.
    #[error("{FAULT_SEED_VAR}={0:?} is not an unsigned integer")]
    Seed(String),
}

/// One item of a fault list, its shape checked, its name and value not yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultItem {
    /// The item as written, for errors.
    pub raw: String,
    /// The `function:` prefix, if any.
    pub function: Option<String>,
    /// The fault's name, lower-cased.
    pub name: String,
    /// The value after `=`, trimmed, if written.
    pub value: Option<String>,
}

impl FaultItem {
    /// The item's rate: its value as a number from 0 to 1, or `default` when it has none.
    pub fn rate_or(&self, default: f64) -> Result<f64, FaultError> {
        match &self.value {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| self.invalid("the rate must be a number from 0 to 1")),
        }
    }

    /// [`FaultError::Value`] for this item.
    pub fn invalid(&self, reason: &str) -> FaultError {
        FaultError::Value {
            item: self.raw.clone(),
            reason: reason.to_owned(),
        }
    }

    /// [`FaultError::Unknown`] for this item, listing `known`.
    pub fn unknown(&self, known: &str) -> FaultError {
        FaultError::Unknown {
            item: self.raw.clone(),
            name: self.name.clone(),
            known: known.to_owned(),
        }
    }
}

/// Splits a fault list into items, checking their shape (no empty prefix or name) but not
/// their names or values, which depend on who applies them.
pub fn parse_items(spec: &str) -> Result<Vec<FaultItem>, FaultError> {
    let mut items = Vec::new();
    for raw in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let malformed = || FaultError::Malformed {
            item: raw.to_owned(),
        };
        let (function, rest) = match raw.split_once(':') {
            Some((f, rest)) if !f.trim().is_empty() => (Some(f.trim().to_owned()), rest),
            Some(_) => return Err(malformed()),
            None => (None, raw),
        };
        let (name, value) = match rest.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().to_owned())),
            None => (rest.trim(), None),
        };
        if name.is_empty() {
            return Err(malformed());
        }
        items.push(FaultItem {
            raw: raw.to_owned(),
            function,
            name: name.to_ascii_lowercase(),
            value,
        });
    }
    Ok(items)
}

/// True when a `function:` prefix selects the function called `name`: the name contains it,
/// ignoring case and everything but letters and digits.
pub fn selects(prefix: &str, name: &str) -> bool {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let prefix = squash(prefix);
    !prefix.is_empty() && squash(name).contains(&prefix)
}

/// A deterministic number in `[0, 1)` from a seed and any parts: FNV-1a over the parts, then
/// the SplitMix64 finalizer, so that nearby inputs land far apart.
pub fn unit(seed: u64, parts: &[&[u8]]) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(&seed.to_le_bytes());
    for part in parts {
        eat(part);
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_keep_prefix_name_and_raw_value() {
        let items = parse_items(" crash , email-sender:Mail-Throttle=0.5,sigkill=2,").unwrap();
        let shapes: Vec<_> = items
            .iter()
            .map(|i| (i.function.as_deref(), i.name.as_str(), i.value.as_deref()))
            .collect();
        assert_eq!(
            shapes,
            [
                (None, "crash", None),
                (Some("email-sender"), "mail-throttle", Some("0.5")),
                (None, "sigkill", Some("2")),
            ]
        );
        assert_eq!(items[0].rate_or(0.02), Ok(0.02));
        assert_eq!(items[1].rate_or(0.02), Ok(0.5));
        assert!(matches!(
            parse_items("crash=2").unwrap()[0].rate_or(0.1),
            Err(FaultError::Value { .. })
        ));
        assert!(matches!(
            parse_items(":crash"),
            Err(FaultError::Malformed { .. })
        ));
        assert!(matches!(
            parse_items("f:=1"),
            Err(FaultError::Malformed { .. })
        ));
    }

    #[test]
    fn prefixes_match_names_loosely() {
        assert!(selects("email-sender", "nightshift-EmailSenderFunction"));
        assert!(selects("QueueProcessor", "nightshift-queue-processor"));
        assert!(!selects("email", "nightshift-QueueProcessorFunction"));
        assert!(!selects("--", "anything"));
    }

    #[test]
    fn decisions_are_deterministic_and_spread() {
        assert_eq!(unit(1, &[b"a"]), unit(1, &[b"a"]));
        assert_ne!(unit(1, &[b"a"]), unit(2, &[b"a"]));
        assert_ne!(unit(1, &[b"ab", b"c"]), unit(1, &[b"a", b"bc"]));
        let below: usize = (0..1000u32)
            .filter(|i| unit(7, &[&i.to_le_bytes()]) < 0.25)
            .count();
        assert!((200..300).contains(&below), "{below}");
    }
}
