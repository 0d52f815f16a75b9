//! ids: random identifiers (request ids, message ids) without a system call each.
//!
//! `uuid::Uuid::new_v4` asks the kernel for 16 bytes per id (`getrandom`): a stepped year of
//! schedules made a million such calls, and every SQS message and request pays one. These ids
//! must be unique, not unpredictable (AWS's are opaque strings a client only echoes), so they
//! come from the thread's `fastrand` generator, formatted as version-4 UUIDs.

/// A random version-4 UUID from the thread's fast generator.
pub fn uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}

/// A random version-4 UUID in its hyphenated form, as AWS request and message ids are.
pub fn uuid_string() -> String {
    uuid().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_version_4_and_distinct() {
        let ids: HashSet<String> = (0..10_000).map(|_| uuid_string()).collect();
        assert_eq!(ids.len(), 10_000);
        let id = uuid();
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
    }
}
