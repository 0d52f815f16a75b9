//! The env file of `sam local --env-vars`: per-function environment overrides.
//!
//! Format: `{"LogicalId": {"KEY": "value"}, "Parameters": {"KEY": "value"}}`. As in the SAM
//! CLI, `Parameters` applies to every function, a function's own entry (by logical id, else by
//! function name) wins over it, and only variables the template declares are overridden.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::error::TemplateError;

/// Parsed env file.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvOverrides {
    path: PathBuf,
    all: BTreeMap<String, String>,
    per_function: BTreeMap<String, BTreeMap<String, String>>,
}

impl EnvOverrides {
    /// Reads and parses an env file.
    pub(crate) fn read(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses env file text; `path` is only used in error messages.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self, TemplateError> {
        let err = |message: String| TemplateError::EnvFile {
            path: path.to_owned(),
            message,
        };
        let root: Json =
            serde_json::from_str(text).map_err(|e| err(format!("invalid json: {e}")))?;
        let Json::Object(root) = root else {
            return Err(err("expected a json object at the top level".to_owned()));
        };
        let mut out = Self {
            path: path.to_owned(),
            ..Self::default()
        };
        for (key, vars) in root {
            let Json::Object(vars) = vars else {
                return Err(err(format!(
                    "{key}: expected an object of variable names to values"
                )));
            };
            let mut map = BTreeMap::new();
            for (name, value) in vars {
                let value = match value {
                    Json::String(s) => s,
                    Json::Number(n) => n.to_string(),
                    Json::Bool(b) => b.to_string(),
                    other => {
                        return Err(err(format!(
                            "{key}.{name}: expected a string, number or boolean, got {other}"
                        )));
                    }
                };
                map.insert(name, value);
            }
            if key == "Parameters" {
                out.all = map;
            } else {
                out.per_function.insert(key, map);
            }
        }
        Ok(out)
    }

    /// The overrides for one function: `Parameters`, then its own entry on top.
    pub(crate) fn for_function(&self, logical_id: &str, name: &str) -> Overrides<'_> {
        Overrides {
            all: &self.all,
            own: self
                .per_function
                .get(logical_id)
                .or_else(|| self.per_function.get(name)),
        }
    }

    /// Entries that name no function of the template (reported, as they are likely typos).
    pub(crate) fn unused_entries<'a>(
        &'a self,
        known: impl Fn(&str) -> bool + 'a,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.per_function
            .keys()
            .map(String::as_str)
            .filter(move |k| !known(k))
    }

    /// The file the overrides came from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The env-file view of one function.
pub(crate) struct Overrides<'a> {
    all: &'a BTreeMap<String, String>,
    own: Option<&'a BTreeMap<String, String>>,
}

impl Overrides<'_> {
    /// The override of one variable, if any.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.own
            .and_then(|own| own.get(key))
            .or_else(|| self.all.get(key))
            .map(String::as_str)
    }

    /// The function's own keys (not `Parameters`), to report those the template lacks.
    pub(crate) fn own_keys(&self) -> impl Iterator<Item = &str> {
        self.own
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_entry_wins_over_parameters() {
        let env = EnvOverrides::parse(
            r#"{"Parameters": {"A": "all", "B": "all"}, "Fn": {"A": "own", "N": 14}}"#,
            Path::new("env.json"),
        )
        .unwrap();
        let o = env.for_function("Fn", "stack-Fn");
        assert_eq!(o.get("A"), Some("own"));
        assert_eq!(o.get("B"), Some("all"));
        assert_eq!(o.get("N"), Some("14"));
        assert_eq!(o.get("Z"), None);
        let other = env.for_function("Other", "stack-Other");
        assert_eq!(other.get("A"), Some("all"));
    }

    #[test]
    fn entry_by_function_name_is_found() {
        let env = EnvOverrides::parse(r#"{"my-fn": {"A": "x"}}"#, Path::new("e")).unwrap();
        assert_eq!(env.for_function("Fn", "my-fn").get("A"), Some("x"));
    }

    #[test]
    fn malformed_files_are_rejected() {
        for bad in [r#"[1]"#, r#"{"Fn": "x"}"#, r#"{"Fn": {"A": [1]}}"#, "{"] {
            let e = EnvOverrides::parse(bad, Path::new("env.json")).unwrap_err();
            assert!(e.to_string().starts_with("env file env.json: "), "{e}");
        }
    }
}
