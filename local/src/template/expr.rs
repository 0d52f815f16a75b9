//! The template as a tree of values and CloudFormation intrinsic functions.
//!
//! YAML is first read by `serde_yaml` (short-form tags such as `!Ref` arrive as tagged
//! values), then turned into [`Expr`], where the short and the long (`Fn::GetAtt`) forms of
//! an intrinsic become the same node. Malformed or unsupported intrinsics become nodes that
//! fail only when resolved, so a broken intrinsic in a resource the emulator ignores never
//! stops the load.

use std::fmt;

use serde_yaml::Value;

/// One node of the template: a plain value or an intrinsic function call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// `null` or an empty value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number, kept as JSON so integers stay exact.
    Number(serde_json::Number),
    /// A string.
    Str(String),
    /// A sequence.
    List(Vec<Expr>),
    /// A mapping, in document order.
    Map(Vec<(String, Expr)>),
    /// `!Ref name` / `{Ref: name}`.
    Ref(String),
    /// `!GetAtt resource.attribute` / `{Fn::GetAtt: [resource, attribute]}`.
    GetAtt { resource: String, attribute: String },
    /// `!Sub template` / `!Sub [template, {vars}]`.
    Sub {
        template: String,
        vars: Vec<(String, Expr)>,
    },
    /// `!Join [delimiter, items]`; `items` resolves to a list.
    Join { delimiter: String, items: Box<Expr> },
    /// `!FindInMap [map, top-level key, second-level key]`, looked up in the template's
    /// `Mappings` (the keys may be expressions, like `!Ref Stage`).
    FindInMap {
        map: Box<Expr>,
        top: Box<Expr>,
        second: Box<Expr>,
    },
    /// A known CloudFormation function the emulator does not evaluate (`!If`, `!Select`, ...).
    Unsupported(String),
    /// An intrinsic with bad arguments, or an unknown tag.
    Malformed { function: String, reason: String },
}

/// CloudFormation functions recognised (so they are reported as unsupported rather than unknown).
const OTHER_FUNCTIONS: &[&str] = &[
    "Base64",
    "Cidr",
    "GetAZs",
    "ImportValue",
    "Select",
    "Split",
    "If",
    "Equals",
    "And",
    "Or",
    "Not",
    "Condition",
    "Transform",
    "Length",
    "ToJsonString",
];

impl Expr {
    /// Converts a parsed YAML value into an expression tree.
    pub(crate) fn from_yaml(value: &Value) -> Expr {
        match value {
            Value::Null => Expr::Null,
            Value::Bool(b) => Expr::Bool(*b),
            Value::Number(n) => number(n),
            Value::String(s) => Expr::Str(s.clone()),
            Value::Sequence(items) => Expr::List(items.iter().map(Expr::from_yaml).collect()),
            Value::Mapping(map) => {
                if map.len() == 1
                    && let Some((Value::String(key), arg)) = map.iter().next()
                {
                    if key == "Ref" {
                        return intrinsic("Ref", arg);
                    }
                    if let Some(name) = key.strip_prefix("Fn::") {
                        return intrinsic(name, arg);
                    }
                }
                Expr::Map(
                    map.iter()
                        .map(|(k, v)| (key_string(k), Expr::from_yaml(v)))
                        .collect(),
                )
            }
            Value::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                intrinsic(tag.trim_start_matches('!'), &tagged.value)
            }
        }
    }

    /// Looks a key up in a mapping node; `None` for other nodes or a missing key.
    pub(crate) fn get(&self, key: &str) -> Option<&Expr> {
        match self {
            Expr::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

fn number(n: &serde_yaml::Number) -> Expr {
    let json = if let Some(u) = n.as_u64() {
        Some(serde_json::Number::from(u))
    } else if let Some(i) = n.as_i64() {
        Some(serde_json::Number::from(i))
    } else {
        n.as_f64().and_then(serde_json::Number::from_f64)
    };
    // NaN and infinities have no JSON form; CloudFormation would see the text anyway.
    json.map_or_else(|| Expr::Str(n.to_string()), Expr::Number)
}

fn key_string(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".to_owned(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default(),
    }
}

fn malformed(function: &str, reason: impl Into<String>) -> Expr {
    Expr::Malformed {
        function: format!("!{function}"),
        reason: reason.into(),
    }
}

fn intrinsic(name: &str, arg: &Value) -> Expr {
    match name {
        "Ref" => match arg {
            Value::String(s) if !s.is_empty() => Expr::Ref(s.clone()),
            _ => malformed(name, "expected a logical id or parameter name"),
        },
        "GetAtt" => get_att(arg),
        "Sub" => sub(arg),
        "Join" => join(arg),
        "FindInMap" => match arg {
            Value::Sequence(items) if items.len() == 3 => {
                let key = |i: usize| Box::new(Expr::from_yaml(&items[i]));
                Expr::FindInMap {
                    map: key(0),
                    top: key(1),
                    second: key(2),
                }
            }
            _ => malformed(name, "expected [MapName, TopLevelKey, SecondLevelKey]"),
        },
        other if OTHER_FUNCTIONS.contains(&other) => Expr::Unsupported(format!("!{other}")),
        other => malformed(other, "unknown tag or function"),
    }
}

fn get_att(arg: &Value) -> Expr {
    let parts = match arg {
        Value::String(s) => s.split_once('.').map(|(r, a)| (r.to_owned(), a.to_owned())),
        Value::Sequence(items) => match items.as_slice() {
            [Value::String(r), Value::String(a)] => Some((r.clone(), a.clone())),
            _ => None,
        },
        _ => None,
    };
    match parts {
        Some((resource, attribute)) if !resource.is_empty() && !attribute.is_empty() => {
            Expr::GetAtt {
                resource,
                attribute,
            }
        }
        _ => malformed(
            "GetAtt",
            "expected \"Resource.Attribute\" or [Resource, Attribute]",
        ),
    }
}

fn sub(arg: &Value) -> Expr {
    match arg {
        Value::String(s) => Expr::Sub {
            template: s.clone(),
            vars: Vec::new(),
        },
        Value::Sequence(items) => match items.as_slice() {
            [Value::String(s), Value::Mapping(vars)] => Expr::Sub {
                template: s.clone(),
                vars: vars
                    .iter()
                    .map(|(k, v)| (key_string(k), Expr::from_yaml(v)))
                    .collect(),
            },
            [Value::String(s)] => Expr::Sub {
                template: s.clone(),
                vars: Vec::new(),
            },
            _ => malformed("Sub", "expected a string or [string, {variables}]"),
        },
        _ => malformed("Sub", "expected a string or [string, {variables}]"),
    }
}

fn join(arg: &Value) -> Expr {
    match arg {
        Value::Sequence(items) => match items.as_slice() {
            [Value::String(delimiter), list] => Expr::Join {
                delimiter: delimiter.clone(),
                items: Box::new(Expr::from_yaml(list)),
            },
            _ => malformed("Join", "expected [delimiter, [values]]"),
        },
        _ => malformed("Join", "expected [delimiter, [values]]"),
    }
}

/// Short-form rendering, used in error messages (`!GetAtt MissingQueue.Arn`).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Null => f.write_str("null"),
            Expr::Bool(b) => write!(f, "{b}"),
            Expr::Number(n) => write!(f, "{n}"),
            Expr::Str(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Expr::List(_) => f.write_str("a list"),
            Expr::Map(_) => f.write_str("a mapping"),
            Expr::Ref(name) => write!(f, "!Ref {name}"),
            Expr::GetAtt {
                resource,
                attribute,
            } => write!(f, "!GetAtt {resource}.{attribute}"),
            Expr::Sub { template, .. } => {
                write!(f, "!Sub {}", serde_json::Value::String(template.clone()))
            }
            Expr::Join { delimiter, .. } => {
                write!(
                    f,
                    "!Join [{}, ...]",
                    serde_json::Value::String(delimiter.clone())
                )
            }
            Expr::FindInMap { map, top, second } => {
                write!(f, "!FindInMap [{map}, {top}, {second}]")
            }
            Expr::Unsupported(function) => f.write_str(function),
            Expr::Malformed { function, .. } => f.write_str(function),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Expr {
        Expr::from_yaml(&serde_yaml::from_str::<Value>(yaml).unwrap())
    }

    #[test]
    fn short_and_long_forms_give_the_same_node() {
        assert_eq!(parse("!Ref JobsQueue"), parse("{Ref: JobsQueue}"));
        assert_eq!(parse("!GetAtt Q.Arn"), parse("!GetAtt [Q, Arn]"));
        assert_eq!(parse("!GetAtt Q.Arn"), parse("{'Fn::GetAtt': [Q, Arn]}"));
        assert_eq!(parse("!GetAtt Q.Arn"), parse("{'Fn::GetAtt': Q.Arn}"));
        assert_eq!(parse("!Sub 'a-${B}'"), parse("{'Fn::Sub': 'a-${B}'}"));
        assert_eq!(
            parse("!Join [',', [a, !Ref B]]"),
            parse("{'Fn::Join': [',', [a, {Ref: B}]]}")
        );
    }

    #[test]
    fn attribute_keeps_dots_after_the_first() {
        assert_eq!(
            parse("!GetAtt Db.Endpoint.Address"),
            Expr::GetAtt {
                resource: "Db".into(),
                attribute: "Endpoint.Address".into()
            }
        );
    }

    #[test]
    fn unsupported_and_malformed_are_recorded_not_fatal() {
        assert_eq!(parse("!If [C, a, b]"), Expr::Unsupported("!If".into()));
        assert_eq!(
            parse("{'Fn::Select': [0, [a]]}"),
            Expr::Unsupported("!Select".into())
        );
        assert!(matches!(parse("!GetAtt NoDot"), Expr::Malformed { .. }));
        assert!(matches!(parse("!Bogus x"), Expr::Malformed { .. }));
        assert!(matches!(parse("!Ref [a]"), Expr::Malformed { .. }));
    }

    #[test]
    fn find_in_map_takes_three_keys() {
        assert_eq!(
            parse("!FindInMap [M, !Ref Stage, K]"),
            parse("{'Fn::FindInMap': [M, {Ref: Stage}, K]}")
        );
        assert!(matches!(parse("!FindInMap [M, K]"), Expr::Malformed { .. }));
    }

    #[test]
    fn two_key_mapping_with_ref_is_plain_data() {
        let e = parse("{Ref: a, Other: b}");
        assert!(matches!(e, Expr::Map(ref m) if m.len() == 2));
    }
}
