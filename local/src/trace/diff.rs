//! Where a replayed response differs from the recorded one: [`diff()`] lists every
//! [`Difference`] with its JSON path.

use std::fmt;

use serde_json::Value;

/// One difference between a recorded and a replayed response.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// Where: `outcome`, or a JSON path into the response (`$.batchItemFailures[0]`).
    pub path: String,
    /// The recorded value; `None` when it was absent.
    pub expected: Option<Value>,
    /// The replayed value; `None` when it is absent.
    pub actual: Option<Value>,
}

/// Longest rendering of a value in a difference, in characters.
const SHOWN_CHARS: usize = 300;

fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= SHOWN_CHARS {
        return text;
    }
    let cut: String = text.chars().take(SHOWN_CHARS).collect();
    format!("{cut}…")
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.expected, &self.actual) {
            (Some(e), Some(a)) => write!(f, "{}: expected {}, got {}", self.path, show(e), show(a)),
            (Some(e), None) => write!(f, "{}: expected {}, missing", self.path, show(e)),
            (None, Some(a)) => write!(f, "{}: unexpected {}", self.path, show(a)),
            (None, None) => write!(f, "{}: differs", self.path),
        }
    }
}

/// Every place where `actual` differs from `expected`, with its JSON path: objects key by
/// key, arrays index by index, anything else by value.
pub fn diff(expected: &Value, actual: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    diff_at("$".to_owned(), expected, actual, &mut out);
    out
}

fn child_path(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::from(key))
    }
}

fn diff_at(path: String, expected: &Value, actual: &Value, out: &mut Vec<Difference>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                let child = child_path(&path, key);
                match a.get(key) {
                    Some(av) => diff_at(child, ev, av, out),
                    None => out.push(Difference {
                        path: child,
                        expected: Some(ev.clone()),
                        actual: None,
                    }),
                }
            }
            for (key, av) in a {
                if !e.contains_key(key) {
                    out.push(Difference {
                        path: child_path(&path, key),
                        expected: None,
                        actual: Some(av.clone()),
                    });
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            for i in 0..e.len().max(a.len()) {
                let child = format!("{path}[{i}]");
                match (e.get(i), a.get(i)) {
                    (Some(ev), Some(av)) => diff_at(child, ev, av, out),
                    (ev, av) => out.push(Difference {
                        path: child,
                        expected: ev.cloned(),
                        actual: av.cloned(),
                    }),
                }
            }
        }
        _ if expected == actual => {}
        _ => out.push(Difference {
            path,
            expected: Some(expected.clone()),
            actual: Some(actual.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_paths_quote_keys_that_are_not_identifiers() {
        assert_eq!(child_path("$", "batchItemFailures"), "$.batchItemFailures");
        assert_eq!(child_path("$", "detail-type"), "$[\"detail-type\"]");
        assert_eq!(child_path("$", "0x"), "$[\"0x\"]");
    }

    #[test]
    fn long_values_are_cut_when_shown() {
        let long = Value::from("x".repeat(1000));
        let shown = show(&long);
        assert_eq!(shown.chars().count(), SHOWN_CHARS + 1);
        assert!(shown.ends_with('…'));
    }
}
