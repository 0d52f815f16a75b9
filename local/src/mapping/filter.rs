//! Event filtering of SQS event sources (`FilterCriteria`), as Lambda applies it: each pattern
//! is matched against the record (`body` as JSON when the body is a JSON object, else as its
//! string; `messageAttributes`, `attributes`); a record that matches no pattern is deleted
//! from the queue without invoking the function, and the patterns of one source are OR-ed.
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html>
//!
//! The syntax is EventBridge's: a pattern is a JSON object whose leaves are arrays of matchers;
//! a leaf matches when any of its matchers matches the field (or any element of an array
//! field). Matchers: a literal (string, number, boolean, null), `{"prefix": s}`,
//! `{"suffix": s}`, `{"equals-ignore-case": s}`, `{"anything-but": v | [v…] | {"prefix": s}}`,
//! `{"numeric": [op, n, (op, n)]}` with `=`, `<`, `<=`, `>`, `>=`, and `{"exists": bool}`.
//! <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html>

use serde_json::Value;

/// A pattern that Lambda would refuse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter {index}: {reason}")]
pub struct FilterError {
    /// Which pattern of the source (0-based).
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The parsed patterns of one event source.
#[derive(Debug, Clone, Default)]
pub struct FilterSet {
    patterns: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Fields(Vec<(String, Node)>),
    Leaf(Vec<Matcher>),
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    Numeric(Vec<(String, f64)>),
    Exists(bool),
}

impl FilterSet {
    /// Parses the patterns of `FilterCriteria.Filters[].Pattern` (JSON text each).
    pub fn parse(patterns: &[String]) -> Result<FilterSet, FilterError> {
        let patterns = patterns
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let err = |reason: String| FilterError { index, reason };
                let value: Value = serde_json::from_str(text)
                    .map_err(|e| err(format!("pattern is not JSON: {e}")))?;
                node(&value, "$").map_err(err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FilterSet { patterns })
    }

    /// True when there is nothing to filter.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the record (its JSON as Lambda sends it) passes: no patterns, or any pattern
    /// matches.
    pub fn matches(&self, record_json: &[u8]) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let Ok(mut record) = serde_json::from_slice::<Value>(record_json) else {
            return false;
        };
        // A JSON object body is filtered as JSON; any other body as its string.
        if let Some(body) = record.get_mut("body")
            && let Some(text) = body.as_str()
            && let Ok(parsed @ Value::Object(_)) = serde_json::from_str::<Value>(text)
        {
            *body = parsed;
        }
        self.patterns.iter().any(|p| matches(p, Some(&record)))
    }
}

fn node(value: &Value, path: &str) -> Result<Node, String> {
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            let mut out = Vec::with_capacity(fields.len());
            for (key, child) in fields {
                if key.starts_with('$') {
                    return Err(format!(
                        "{path}.{key}: {key} is not supported by the emulator's filtering"
                    ));
                }
                out.push((key.clone(), node(child, &format!("{path}.{key}"))?));
            }
            Ok(Node::Fields(out))
        }
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|m| matcher(m, path))
            .collect::<Result<Vec<_>, _>>()
            .map(Node::Leaf),
        Value::Object(_) | Value::Array(_) => Err(format!("{path}: must not be empty")),
        other => Err(format!(
            "{path}: expected an object or an array of matchers, got {other}"
        )),
    }
}

fn matcher(value: &Value, path: &str) -> Result<Matcher, String> {
    let Value::Object(map) = value else {
        return Ok(Matcher::Exact(value.clone()));
    };
    let [(op, arg)] = map.iter().collect::<Vec<_>>()[..] else {
        return Err(format!(
            "{path}: a matcher has exactly one key, got {value}"
        ));
    };
    let string = |what: &str| {
        arg.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{path}: {what} takes a string, got {arg}"))
    };
    Ok(match op.as_str() {
        "prefix" => Matcher::Prefix(string("prefix")?),
        "suffix" => Matcher::Suffix(string("suffix")?),
        "equals-ignore-case" => Matcher::EqualsIgnoreCase(string("equals-ignore-case")?),
        "exists" => Matcher::Exists(
            arg.as_bool()
                .ok_or_else(|| format!("{path}: exists takes true or false, got {arg}"))?,
        ),
        "anything-but" => match arg {
            Value::Array(values) => Matcher::AnythingBut(values.clone()),
            Value::Object(inner) => match inner.get("prefix").and_then(Value::as_str) {
                Some(prefix) if inner.len() == 1 => Matcher::AnythingButPrefix(prefix.into()),
                _ => {
                    return Err(format!(
                        "{path}: anything-but takes a value, a list or {{\"prefix\": …}}, got {arg}"
                    ));
                }
            },
            scalar => Matcher::AnythingBut(vec![scalar.clone()]),
        },
        "numeric" => {
            let Value::Array(parts) = arg else {
                return Err(format!("{path}: numeric takes [op, number, …], got {arg}"));
            };
            if parts.is_empty() || parts.len() % 2 != 0 || parts.len() > 4 {
                return Err(format!(
                    "{path}: numeric takes one or two [op, number] pairs"
                ));
            }
            let mut checks = Vec::new();
            for pair in parts.chunks(2) {
                let op = pair[0]
                    .as_str()
                    .filter(|o| matches!(*o, "=" | "<" | "<=" | ">" | ">="));
                match (op, pair[1].as_f64()) {
                    (Some(op), Some(n)) => checks.push((op.to_string(), n)),
                    _ => {
                        return Err(format!(
                            "{path}: numeric pairs are an operator (=, <, <=, >, >=) and a number, got {} {}",
                            pair[0], pair[1]
                        ));
                    }
                }
            }
            Matcher::Numeric(checks)
        }
        other => return Err(format!("{path}: unknown matcher {other:?}")),
    })
}

fn matches(node: &Node, value: Option<&Value>) -> bool {
    match node {
        Node::Fields(fields) => fields.iter().all(|(key, child)| match value {
            // An array of objects: any element may supply the field.
            Some(Value::Array(items)) => items.iter().any(|item| matches(child, item.get(key))),
            Some(v) => matches(child, v.get(key)),
            None => matches(child, None),
        }),
        Node::Leaf(matchers) => matchers.iter().any(|m| leaf(m, value)),
    }
}

fn leaf(matcher: &Matcher, value: Option<&Value>) -> bool {
    match (matcher, value) {
        (Matcher::Exists(wanted), v) => v.is_some() == *wanted,
        (_, None) => false,
        (_, Some(Value::Array(items))) => items.iter().any(|item| scalar(matcher, item)),
        (_, Some(v)) => scalar(matcher, v),
    }
}

fn scalar(matcher: &Matcher, value: &Value) -> bool {
    match matcher {
        Matcher::Exact(expected) => match (expected.as_f64(), value.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => expected == value,
        },
        Matcher::Prefix(p) => value.as_str().is_some_and(|s| s.starts_with(p.as_str())),
        Matcher::Suffix(p) => value.as_str().is_some_and(|s| s.ends_with(p.as_str())),
        Matcher::EqualsIgnoreCase(p) => value
            .as_str()
            .is_some_and(|s| s.to_lowercase() == p.to_lowercase()),
        Matcher::AnythingBut(values) => !values
            .iter()
            .any(|v| scalar(&Matcher::Exact(v.clone()), value)),
        Matcher::AnythingButPrefix(p) => value.as_str().is_some_and(|s| !s.starts_with(p.as_str())),
        Matcher::Numeric(checks) => value.as_f64().is_some_and(|n| {
            checks.iter().all(|(op, bound)| match op.as_str() {
                "=" => n == *bound,
                "<" => n < *bound,
                "<=" => n <= *bound,
                ">" => n > *bound,
                _ => n >= *bound,
            })
        }),
        Matcher::Exists(wanted) => *wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(patterns: &[Value]) -> FilterSet {
        FilterSet::parse(&patterns.iter().map(Value::to_string).collect::<Vec<_>>()).unwrap()
    }

    fn record(body: &str) -> Vec<u8> {
        json!({
            "messageId": "m",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {"tier": {"stringValue": "gold", "dataType": "String"}},
        })
        .to_string()
        .into_bytes()
    }

    /// The examples of Lambda's filtering page, on SQS bodies.
    #[test]
    fn the_documented_operators() {
        let order =
            record(r#"{"kind":"order.placed","total":42,"region":"eu-west-1","tags":["a","b"]}"#);
        let cases = [
            (json!({"body": {"kind": ["order.placed"]}}), true),
            (json!({"body": {"kind": ["user.signup"]}}), false),
            (json!({"body": {"kind": [{"prefix": "order."}]}}), true),
            (json!({"body": {"region": [{"suffix": "-1"}]}}), true),
            (
                json!({"body": {"kind": [{"equals-ignore-case": "ORDER.PLACED"}]}}),
                true,
            ),
            (
                json!({"body": {"kind": [{"anything-but": ["order.placed"]}]}}),
                false,
            ),
            (
                json!({"body": {"kind": [{"anything-but": {"prefix": "user."}}]}}),
                true,
            ),
            (
                json!({"body": {"total": [{"numeric": [">", 10, "<=", 42]}]}}),
                true,
            ),
            (json!({"body": {"total": [{"numeric": ["<", 10]}]}}), false),
            (json!({"body": {"coupon": [{"exists": false}]}}), true),
            (json!({"body": {"coupon": [{"exists": true}]}}), false),
            (json!({"body": {"tags": ["b"]}}), true),
            (
                json!({"messageAttributes": {"tier": {"stringValue": ["gold"]}}}),
                true,
            ),
            (
                json!({"attributes": {"ApproximateReceiveCount": ["2"]}}),
                false,
            ),
        ];
        for (pattern, expected) in cases {
            assert_eq!(
                set(std::slice::from_ref(&pattern)).matches(&order),
                expected,
                "{pattern}"
            );
        }
        // Filters are OR-ed.
        let either = set(&[
            json!({"body": {"kind": ["user.signup"]}}),
            json!({"body": {"total": [42]}}),
        ]);
        assert!(either.matches(&order));
        // A body that is not a JSON object is matched as its string.
        let plain = record("hello world");
        assert!(set(&[json!({"body": [{"prefix": "hello"}]})]).matches(&plain));
        assert!(!set(&[json!({"body": {"kind": ["x"]}})]).matches(&plain));
        assert!(FilterSet::default().matches(&plain));
    }

    #[test]
    fn bad_patterns_say_where() {
        let err = |p: &str| FilterSet::parse(&[p.to_string()]).unwrap_err().to_string();
        assert!(err("{").starts_with("filter 0: pattern is not JSON"));
        assert_eq!(
            err(r#"{"body": {"kind": "order"}}"#),
            "filter 0: $.body.kind: expected an object or an array of matchers, got \"order\""
        );
        assert_eq!(
            err(r#"{"body": {"n": [{"numeric": [">>", 1]}]}}"#),
            "filter 0: $.body.n: numeric pairs are an operator (=, <, <=, >, >=) and a number, got \">>\" 1"
        );
        assert_eq!(
            err(r#"{"body": {"k": [{"wildcard": "a*"}]}}"#),
            "filter 0: $.body.k: unknown matcher \"wildcard\""
        );
        assert_eq!(
            err(r#"{"body": {"k": []}}"#),
            "filter 0: $.body.k: must not be empty"
        );
    }
}
