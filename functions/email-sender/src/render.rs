//! Templates: each named template is a pair `NAME.txt` + `NAME.html` rendered with minijinja
//! (HTML auto-escaped, undefined variables are errors, not blanks). The shipped templates are
//! compiled into the binary.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};

/// Templates compiled into the binary: (name, text source, html source).
const BUILTIN: &[(&str, &str, &str)] = &[
    (
        "order_confirmation",
        include_str!("../templates/order_confirmation.txt"),
        include_str!("../templates/order_confirmation.html"),
    ),
    (
        "welcome",
        include_str!("../templates/welcome.txt"),
        include_str!("../templates/welcome.html"),
    ),
    (
        "getting_started",
        include_str!("../templates/getting_started.txt"),
        include_str!("../templates/getting_started.html"),
    ),
    (
        "daily_report",
        include_str!("../templates/daily_report.txt"),
        include_str!("../templates/daily_report.html"),
    ),
];

/// A rendered body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

/// A template could not be loaded or rendered. Always permanent: the same input fails again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// No template of that name.
    #[error("unknown template {name:?}; known templates: {known}")]
    Unknown {
        /// The requested name.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
    /// The template is broken or a variable is missing; names the file and line.
    #[error("template {file} line {line}: {reason}")]
    Failed {
        /// `name.txt` or `name.html`.
        file: String,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// What went wrong.
        reason: String,
    },
}

fn failed(err: minijinja::Error) -> RenderError {
    RenderError::Failed {
        file: err.name().unwrap_or("?").to_string(),
        line: err.line().unwrap_or(0),
        reason: err
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| err.kind().to_string()),
    }
}

/// An undefined value, said precisely: minijinja only reports "undefined value", so name the
/// missing variable when the failing expression uses one the caller did not pass, or else
/// quote the expression (an attribute missing from a variable that is there).
fn undefined(
    template: &minijinja::Template<'_, '_>,
    vars: &BTreeMap<String, serde_json::Value>,
    err: minijinja::Error,
) -> RenderError {
    let expression = err
        .range()
        .and_then(|range| template.source().get(range))
        .map(str::trim);
    let reason = match expression {
        Some(expression) => {
            let used: Vec<&str> = expression
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .collect();
            let mut missing: Vec<String> = template
                .undeclared_variables(false)
                .into_iter()
                .filter(|name| !vars.contains_key(name) && used.contains(&name.as_str()))
                .collect();
            missing.sort();
            if missing.is_empty() {
                format!("undefined value `{expression}`")
            } else {
                // Several when the expression uses more than one missing variable.
                format!("undefined variable `{}`", missing.join("`, `"))
            }
        }
        None => "undefined value".to_string(),
    };
    RenderError::Failed {
        file: err.name().unwrap_or("?").to_string(),
        line: err.line().unwrap_or(0),
        reason,
    }
}

/// A set of named text+HTML templates.
pub struct Templates {
    env: Environment<'static>,
    names: Vec<String>,
}

impl Templates {
    /// The templates shipped with the email sender.
    pub fn builtin() -> Self {
        Templates::from_sources(
            BUILTIN
                .iter()
                .map(|(n, t, h)| (n.to_string(), t.to_string(), h.to_string())),
        )
        .expect("builtin templates compile")
    }

    /// Templates from `(name, text, html)` sources; a syntax error names the file and line.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String, String)>,
    ) -> Result<Self, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut names = Vec::new();
        for (name, text, html) in sources {
            env.add_template_owned(format!("{name}.txt"), text)
                .map_err(failed)?;
            env.add_template_owned(format!("{name}.html"), html)
                .map_err(failed)?;
            names.push(name);
        }
        names.sort();
        Ok(Templates { env, names })
    }

    /// Renders template `name` with `vars`.
    pub fn render(
        &self,
        name: &str,
        vars: &BTreeMap<String, serde_json::Value>,
    ) -> Result<Rendered, RenderError> {
        if !self.names.iter().any(|n| n == name) {
            return Err(RenderError::Unknown {
                name: name.to_string(),
                known: self.names.join(", "),
            });
        }
        let render = |file: String| -> Result<String, RenderError> {
            let template = self.env.get_template(&file).map_err(failed)?;
            template.render(vars).map_err(|err| {
                if err.kind() == minijinja::ErrorKind::UndefinedError {
                    undefined(&template, vars, err)
                } else {
                    failed(err)
                }
            })
        };
        Ok(Rendered {
            text: render(format!("{name}.txt"))?,
            html: render(format!("{name}.html"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_with_escaping() {
        let t = Templates::builtin();
        let vars = BTreeMap::from([("name".to_string(), json!("<Ada & co>"))]);
        let r = t.render("welcome", &vars).unwrap();
        assert!(r.text.contains("Welcome, <Ada & co>!"));
        assert!(
            r.html.contains("Welcome, &lt;Ada &amp; co&gt;!"),
            "{}",
            r.html
        );
    }

    /// A report email enqueued by a daily-report from before `dead_letters` existed (in the
    /// emails queue or its DLQ during a deploy) still renders; a new one shows the DLQs.
    #[test]
    fn report_emails_render_with_and_without_dead_letter_depths() {
        let t = Templates::builtin();
        let mut vars = BTreeMap::from([
            ("date".to_string(), json!("2026-11-21")),
            ("time_zone".to_string(), json!("Europe/Berlin")),
            ("total".to_string(), json!(3)),
            ("succeeded".to_string(), json!(2)),
            ("failed".to_string(), json!(1)),
            ("p50_ms".to_string(), json!(4)),
            ("p95_ms".to_string(), json!(6)),
            ("top_errors".to_string(), json!([])),
            ("csv_key".to_string(), json!("reports/2026-11-21.csv")),
            ("html_key".to_string(), json!("reports/2026-11-21.html")),
        ]);
        let old = t.render("daily_report", &vars).unwrap();
        assert!(!old.text.contains("dead-letter"), "{}", old.text);
        vars.insert(
            "dead_letters".into(),
            json!([{"queue": "nightshift-jobs-dlq", "messages": 2}]),
        );
        vars.insert("dead_letters_total".into(), json!(2));
        let new = t.render("daily_report", &vars).unwrap();
        assert!(
            new.text
                .contains("Waiting in dead-letter queues now: 2\n  nightshift-jobs-dlq: 2"),
            "{}",
            new.text
        );
        assert!(
            new.html.contains("<li>nightshift-jobs-dlq: 2</li>"),
            "{}",
            new.html
        );
    }

    #[test]
    fn missing_variable_names_file_and_line() {
        let t = Templates::builtin();
        let err = t.render("welcome", &BTreeMap::new()).unwrap_err();
        assert!(
            matches!(&err, RenderError::Failed { file, line: 1, .. } if file == "welcome.txt"),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "template welcome.txt line 1: undefined variable `name`"
        );
    }

    #[test]
    fn missing_attribute_quotes_the_expression() {
        let t = Templates::from_sources([(
            "x".into(),
            "Hi\n{{ user.name }} and {{ greeting }}".into(),
            "".into(),
        )])
        .unwrap();
        let user = BTreeMap::from([("user".to_string(), json!({"id": 1}))]);
        let err = t.render("x", &user).unwrap_err().to_string();
        assert_eq!(err, "template x.txt line 2: undefined value `user.name`");
        let err = t
            .render(
                "x",
                &BTreeMap::from([("user".to_string(), json!({"name": "n"}))]),
            )
            .unwrap_err()
            .to_string();
        assert_eq!(err, "template x.txt line 2: undefined variable `greeting`");
    }

    #[test]
    fn unknown_and_broken_templates() {
        let t = Templates::builtin();
        let err = t.render("nope", &BTreeMap::new()).unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown template \"nope\"; known templates: daily_report, getting_started, order_confirmation, welcome"
        );
        let err = Templates::from_sources([("x".into(), "ok\n{% if %}".into(), "".into())])
            .err()
            .unwrap();
        assert!(
            matches!(&err, RenderError::Failed { file, line: 2, .. } if file == "x.txt"),
            "{err}"
        );
    }
}
