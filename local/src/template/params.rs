//! Template `Parameters`: declarations, defaults, overrides and their validation.
//!
//! Values are validated up front, as CloudFormation does when a stack is created; a parameter
//! with neither a default nor an override is only an error where the emulator needs it, so a
//! template can keep parameters for resources the emulator does not run.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::error::TemplateError;
use super::expr::Expr;

/// The value a `!Ref` to a parameter resolves to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ParamValue {
    /// A string (`String`, `Number`, ...) or a list of strings (`CommaDelimitedList`, `List<...>`).
    Value(Json),
    /// No value is available; the reason is reported where the parameter is referenced.
    Missing(String),
}

fn err(name: &str, message: impl Into<String>) -> TemplateError {
    TemplateError::Parameter {
        name: name.to_owned(),
        message: message.into(),
    }
}

fn scalar(e: &Expr) -> Option<String> {
    match e {
        Expr::Str(s) => Some(s.clone()),
        Expr::Number(n) => Some(n.to_string()),
        Expr::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn number_property(name: &str, decl: &Expr, key: &str) -> Result<Option<f64>, TemplateError> {
    match decl.get(key) {
        None => Ok(None),
        Some(e) => scalar(e)
            .and_then(|s| s.parse::<f64>().ok())
            .map(Some)
            .ok_or_else(|| err(name, format!("{key}: expected a number, got {e}"))),
    }
}

/// Resolves every declared parameter from its override or default, and rejects overrides of
/// parameters the template does not declare.
pub(crate) fn resolve(
    section: Option<&Expr>,
    overrides: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, ParamValue>, TemplateError> {
    let decls: &[(String, Expr)] = match section {
        None | Some(Expr::Null) => &[],
        Some(Expr::Map(entries)) => entries,
        Some(other) => {
            return Err(TemplateError::Structure(format!(
                "Parameters: expected a mapping, got {other}"
            )));
        }
    };
    for name in overrides.keys() {
        if !decls.iter().any(|(n, _)| n == name) {
            return Err(err(
                name,
                "an override was given but the template declares no such parameter",
            ));
        }
    }
    let mut out = BTreeMap::new();
    for (name, decl) in decls {
        if !matches!(decl, Expr::Map(_)) {
            return Err(err(name, format!("expected a mapping, got {decl}")));
        }
        let kind = match decl.get("Type") {
            Some(Expr::Str(t)) => t.as_str(),
            Some(other) => return Err(err(name, format!("Type: expected a string, got {other}"))),
            None => return Err(err(name, "Type is required but missing")),
        };
        let default = match decl.get("Default") {
            None => None,
            Some(e) => Some(
                scalar(e)
                    .ok_or_else(|| err(name, format!("Default: expected a string, got {e}")))?,
            ),
        };
        // An SSM parameter's default is a Parameter Store path, not the value, and the
        // emulator has no parameter store: only an override gives it a value.
        let is_ssm = kind.starts_with("AWS::SSM::Parameter::Value<");
        let given = match overrides.get(name) {
            Some(v) => Some(v.clone()),
            None if is_ssm => None,
            None => default,
        };
        let value = match given {
            None if is_ssm => ParamValue::Missing(format!(
                "parameter {name} reads SSM Parameter Store, which the emulator does not have; \
                 pass a parameter override"
            )),
            None => ParamValue::Missing(format!(
                "parameter {name} has no value (it has no Default and no override was given)"
            )),
            Some(raw) => typed(name, kind, decl, raw)?,
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

fn typed(name: &str, kind: &str, decl: &Expr, raw: String) -> Result<ParamValue, TemplateError> {
    let is_list = kind == "CommaDelimitedList"
        || kind.starts_with("List<")
        || kind.starts_with("AWS::SSM::Parameter::Value<List<")
        || kind == "AWS::SSM::Parameter::Value<CommaDelimitedList>";
    let items: Vec<String> = if is_list {
        raw.split(',').map(|s| s.trim().to_owned()).collect()
    } else {
        vec![raw.clone()]
    };
    let numeric = kind == "Number" || kind == "List<Number>";
    if let Some(Expr::List(allowed)) = decl.get("AllowedValues") {
        let allowed: Vec<String> = allowed.iter().filter_map(scalar).collect();
        for item in &items {
            if !allowed.contains(item) {
                return Err(err(
                    name,
                    format!(
                        "value {} is not one of the AllowedValues {}",
                        Json::String(item.clone()),
                        Json::from(allowed.clone())
                    ),
                ));
            }
        }
    }
    if decl.get("AllowedPattern").is_some() {
        tracing::debug!(
            parameter = name,
            "allowed pattern not checked by the emulator"
        );
    }
    let (min, max) = (
        number_property(name, decl, "MinValue")?,
        number_property(name, decl, "MaxValue")?,
    );
    let (min_len, max_len) = (
        number_property(name, decl, "MinLength")?,
        number_property(name, decl, "MaxLength")?,
    );
    for item in &items {
        if numeric {
            let n: f64 = item.parse().map_err(|_| {
                err(
                    name,
                    format!("value {} is not a number", Json::String(item.clone())),
                )
            })?;
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                return Err(err(
                    name,
                    format!("value {item} is outside MinValue/MaxValue"),
                ));
            }
        } else {
            let len = item.chars().count() as f64;
            if min_len.is_some_and(|m| len < m) || max_len.is_some_and(|m| len > m) {
                return Err(err(
                    name,
                    format!(
                        "value {} is outside MinLength/MaxLength",
                        Json::String(item.clone())
                    ),
                ));
            }
        }
    }
    Ok(ParamValue::Value(if is_list {
        Json::from(items)
    } else {
        Json::String(raw)
    }))
}
