//! Errors of template loading: each names the resource and the property at fault.

use std::path::PathBuf;

/// Why a template (or its env file) could not be turned into a [`super::Template`].
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template or env file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed; line and column are 1-based.
    #[error("yaml syntax error at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the YAML parser reported.
        message: String,
    },
    /// The YAML is malformed and the parser gave no position.
    #[error("yaml syntax error: {message}")]
    SyntaxUnlocated {
        /// What the YAML parser reported.
        message: String,
    },
    /// A top-level section (`Resources`, `Globals`, `Parameters`, ...) has the wrong shape.
    #[error("template: {0}")]
    Structure(String),
    /// A resource is malformed as a whole (missing `Type`, unsupported `Condition`, ...).
    #[error("resource {resource}: {message}")]
    Resource {
        /// Logical id of the resource.
        resource: String,
        /// What is wrong with it.
        message: String,
    },
    /// A property of a resource is missing, has the wrong type, or does not resolve.
    #[error("resource {resource}: property {property}: {message}")]
    Property {
        /// Logical id of the resource.
        resource: String,
        /// Dotted path of the property below `Properties` (or `Metadata...`).
        property: String,
        /// What is wrong with it.
        message: String,
    },
    /// A modelled resource depends on a resource whose type the emulator does not run.
    #[error(
        "resource {resource}: type {kind} is not modelled by the emulator \
         (needed by resource {needed_by} property {property}){}",
        unmodelled_hint(.needed_by, .property)
    )]
    Unmodelled {
        /// Logical id of the unmodelled resource.
        resource: String,
        /// Its CloudFormation type.
        kind: String,
        /// The modelled resource that refers to it.
        needed_by: String,
        /// The property of `needed_by` holding the reference.
        property: String,
    },
    /// A template parameter or a parameter override is invalid.
    #[error("parameter {name}: {message}")]
    Parameter {
        /// Name of the parameter.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// The env file (`sam local --env-vars` format) is malformed.
    #[error("env file {path}: {message}")]
    EnvFile {
        /// The env file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl TemplateError {
    /// Builds a [`TemplateError::Property`] error.
    pub(crate) fn property(
        resource: impl Into<String>,
        property: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Property {
            resource: resource.into(),
            property: property.into(),
            message: message.into(),
        }
    }

    /// Builds a [`TemplateError::Resource`] error.
    pub(crate) fn resource(resource: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Resource {
            resource: resource.into(),
            message: message.into(),
        }
    }
}

/// How to run without an unmodelled resource, when there is a way: a variable is the common
/// case (a table's name, a bucket's), and the env file replaces the template's value before
/// it is resolved, so the function runs against a local stand-in, as `sam local --env-vars`
/// does.
fn unmodelled_hint(function: &str, property: &str) -> String {
    match property.strip_prefix("Environment.Variables.") {
        Some(variable) => format!(
            "; give {variable} a local value in the env file (--env-file, sam local \
             --env-vars format: {{\"{function}\": {{\"{variable}\": \"...\"}}}}) to run \
             {function} without it"
        ),
        None => String::new(),
    }
}
