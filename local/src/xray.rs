//! xray: X-Ray trace headers (`Root=1-…;Parent=…;Sampled=…`) as the emulator makes, carries
//! and reads them. Not to be confused with [`crate::trace`], the record/replay format.
//!
//! Every invocation has a trace header, handed to the function in `Lambda-Runtime-Trace-Id`
//! and kept by the invocation history, chosen as Lambda chooses it:
//! - an SQS event source mapping's batch starts a new trace, linked to the traces of its
//!   messages (their `AWSTraceHeader`): [`new_header`] and [`links`];
//! - an Invoke API call that carries an `X-Amzn-Trace-Id` continues the caller's trace
//!   ([`continue_header`]);
//! - anything else starts a new trace.
//!
//! `nightshift trace` follows traces and their links to find the chain of invocations a
//! message causes. The header's format:
//! <https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader>;
//! linked traces: <https://docs.aws.amazon.com/xray/latest/devguide/xray-tracelinking.html>.
//!
//! A leaf: it imports nothing of the crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// A new trace, as Lambda starts one for an invocation that continues none: a root of version
/// 1, the current epoch seconds in 8 hex digits and 96 random bits; a new parent (segment) id;
/// not sampled (the emulator sends no segments anywhere).
pub fn new_header() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let root = format!(
        "1-{:08x}-{:024x}",
        secs as u32,
        fastrand::u128(..) & ((1u128 << 96) - 1)
    );
    header(&root, "0")
}

/// The header of an invocation that continues `upstream` (a caller's `X-Amzn-Trace-Id`): the
/// same root and sampling decision under a new parent id, the invocation's own segment.
/// `None` when `upstream` names no root.
pub fn continue_header(upstream: &str) -> Option<String> {
    let root = root(upstream)?;
    let sampled = field(upstream, "Sampled").unwrap_or("0");
    Some(header(root, sampled))
}

/// The trace id (the `Root` field) of a header: what X-Ray groups a trace's segments by.
pub fn root(header: &str) -> Option<&str> {
    field(header, "Root").filter(|root| !root.is_empty())
}

/// Most traces one segment links to: "Each trace segment can be linked to up to 20 traces"
/// (<https://docs.aws.amazon.com/xray/latest/devguide/xray-tracelinking.html>).
pub const MAX_LINKS: usize = 20;

/// The trace ids a new trace links to, from the `upstream` headers that caused it (an SQS
/// batch's messages' `AWSTraceHeader`, in order): each distinct root once, in the order first
/// seen, at most [`MAX_LINKS`]; headers without a root are skipped. Lambda links the trace of
/// a batch's invocation to its messages' traces rather than continuing one of them
/// (<https://docs.aws.amazon.com/xray/latest/devguide/xray-tracelinking.html>); which 20 it
/// keeps of a batch from more traces is not documented, so the first ones here.
pub fn links<'a>(upstream: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut roots: Vec<String> = Vec::new();
    for root in upstream.into_iter().filter_map(root) {
        if roots.len() == MAX_LINKS {
            break;
        }
        if !roots.iter().any(|r| r == root) {
            roots.push(root.to_owned());
        }
    }
    roots
}

fn header(root: &str, sampled: &str) -> String {
    format!(
        "Root={root};Parent={:016x};Sampled={sampled}",
        fastrand::u64(..)
    )
}

/// The value of `name` in a `key=value;key=value` header (X-Ray allows spaces around `;`).
fn field<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (key, value) = part.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_headers_have_the_xray_shape() {
        let id = new_header();
        let root = id.strip_prefix("Root=1-").unwrap();
        let (time, rest) = root.split_once('-').unwrap();
        let (random, rest) = rest.split_once(";Parent=").unwrap();
        let (parent, sampled) = rest.split_once(';').unwrap();
        assert_eq!((time.len(), random.len(), parent.len()), (8, 24, 16));
        assert_eq!(sampled, "Sampled=0");
        assert_ne!(super::root(&new_header()), super::root(&id));
    }

    #[test]
    fn a_continued_trace_keeps_root_and_sampling_under_a_new_parent() {
        let upstream = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let continued = continue_header(upstream).unwrap();
        assert_eq!(
            root(&continued),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert!(continued.ends_with(";Sampled=1"), "{continued}");
        assert!(!continued.contains("53995c3f42cd8ad8"), "{continued}");
        // Spaces after `;`, and no parent or sampling decision yet.
        assert_eq!(
            root("Root=1-5759e988-bd862e3fe1be46a994272793; Sampled=1"),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        let bare = continue_header("Root=1-5759e988-bd862e3fe1be46a994272793").unwrap();
        assert!(bare.ends_with(";Sampled=0"), "{bare}");
        assert_eq!(continue_header("Parent=53995c3f42cd8ad8"), None);
        assert_eq!(continue_header("Root=;Sampled=1"), None);
    }

    #[test]
    fn links_are_the_distinct_roots_in_order_at_most_twenty() {
        let a = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let a_again = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000001;Sampled=1";
        let b = "Root=1-5759e989-000000000000000000000002;Sampled=0";
        assert_eq!(
            links([a, "Parent=53995c3f42cd8ad8", b, a_again, "Root="]),
            [
                "1-5759e988-bd862e3fe1be46a994272793",
                "1-5759e989-000000000000000000000002"
            ]
        );
        assert!(links([]).is_empty());
        let many: Vec<String> = (0..25)
            .map(|i| format!("Root=1-5759e988-{i:024x};Sampled=0"))
            .collect();
        let linked = links(many.iter().map(String::as_str));
        assert_eq!(linked.len(), MAX_LINKS);
        assert_eq!(linked[0], format!("1-5759e988-{:024x}", 0));
    }
}
