//! Functions: `AWS::Serverless::Function` and `AWS::Lambda::Function`, their binary, settings
//! and environment (with the env file's overrides).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::Builder;
use crate::template::error::TemplateError;
use crate::template::expr::Expr;
use crate::template::resolve::{At, Resource, SAM_FUNCTION, entries, json_string};
use crate::template::{FunctionDef, Prebuilt};

impl Builder<'_, '_> {
    pub(super) fn function(&self, id: &str, res: &Resource) -> Result<FunctionDef, TemplateError> {
        let r = self.r;
        let at = At::new(id);
        let p = &res.properties;
        let name = r.physical_name(id, &at)?;
        let (binary, code_uri, prebuilt) = self.binary(id, res)?;
        let (log_format, log_level) = match p.get("LoggingConfig") {
            None => (None, None),
            Some(lc) => {
                let lc_at = at.key("LoggingConfig");
                entries(lc, &lc_at)?;
                (
                    r.opt_string(lc, "LogFormat", &lc_at)?,
                    r.opt_string(lc, "ApplicationLogLevel", &lc_at)?,
                )
            }
        };
        Ok(FunctionDef {
            logical_id: id.to_owned(),
            arn: r.function_arn(&name),
            env: self.environment(id, &name, p, &at)?,
            name,
            binary,
            code_uri,
            prebuilt,
            runtime: r.opt_string(p, "Runtime", &at)?,
            timeout_s: r.opt_u32(p, "Timeout", &at, 1..=900)?.unwrap_or(3),
            memory_mb: r
                .opt_u32(p, "MemorySize", &at, 128..=10_240)?
                .unwrap_or(128),
            reserved_concurrency: r.opt_u32(
                p,
                "ReservedConcurrentExecutions",
                &at,
                0..=u32::MAX,
            )?,
            log_format,
            log_level,
            event_invoke: self.sam_event_invoke(p, &at)?,
            dead_letter_queue: self.function_dead_letter_queue(res, &at)?,
        })
    }

    /// Why a function is not run, or `None` when it is: the emulator runs the native
    /// executables of Lambda's OS-only runtimes, the `provided` family ("Languages such as
    /// Go, Rust, Swift, and C++ compile natively to an executable binary"; `provided.al2023`
    /// and `provided.al2`:
    /// <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-provided.html>). A function
    /// without `Runtime` (after `Globals.Function`) is run too. Another language's runtime
    /// (`nodejs*`, `python*`, `java*`, `dotnet*`, `ruby*`, ...) or a container image is left
    /// out rather than failing the load, so the rest of a mixed template runs.
    pub(super) fn skip_reason(
        &self,
        id: &str,
        res: &Resource,
    ) -> Result<Option<String>, TemplateError> {
        let at = At::new(id);
        let p = &res.properties;
        if self.r.opt_string(p, "PackageType", &at)?.as_deref() == Some("Image") {
            return Ok(Some(
                "PackageType Image: container image functions are not run by the emulator"
                    .to_owned(),
            ));
        }
        Ok(match self.r.opt_string(p, "Runtime", &at)? {
            Some(runtime) if !runtime.starts_with("provided") => Some(format!(
                "runtime {runtime} is not an OS-only runtime (provided.al2023, provided.al2): \
                 the emulator runs native executables only"
            )),
            _ => None,
        })
    }

    /// The binary, code path and prebuilt artifact of a function.
    fn binary(
        &self,
        id: &str,
        res: &Resource,
    ) -> Result<(String, Option<PathBuf>, Option<Prebuilt>), TemplateError> {
        let r = self.r;
        let meta_at = At::new(id).key("Metadata");
        let from_metadata = match res.metadata.get("BuildProperties") {
            None => None,
            Some(bp) => {
                let bp_at = meta_at.key("BuildProperties");
                entries(bp, &bp_at)?;
                r.opt_string(bp, "Binary", &bp_at)?
            }
        };
        let code_key = if res.kind == SAM_FUNCTION {
            "CodeUri"
        } else {
            "Code"
        };
        let code_at = At::new(id).key(code_key);
        // An S3 location or inline code is not a local crate; only a path string is.
        let code_path = match res.properties.get(code_key) {
            None | Some(Expr::Map(_)) => None,
            Some(e) => self
                .r
                .resolve(e, &code_at)?
                .map(|v| json_string(&v, &code_at))
                .transpose()?,
        };
        let code_uri = code_path.as_deref().map(|p| self.base_dir.join(p));
        let prebuilt = code_uri
            .as_deref()
            .map(prebuilt)
            .transpose()
            .map_err(|m| code_at.err(m))?
            .flatten();
        if let Some(artifact) = &prebuilt {
            let binary = from_metadata
                .or_else(|| artifact_name(artifact))
                .ok_or_else(|| {
                    code_at.err("cannot name this artifact: set Metadata.BuildProperties.Binary")
                })?;
            return Ok((binary, code_uri, prebuilt));
        }
        // As `sam build` with cargo-lambda: Metadata.BuildProperties.Binary, else the package
        // at CodeUri, whose default binary has the package's name; the directory's name only
        // when there is no Cargo.toml to read (a not yet written crate).
        let binary = from_metadata
            .or_else(|| code_uri.as_deref().and_then(package_name))
            .or_else(|| {
                code_path
                    .as_deref()
                    .and_then(|p| last_segment(self.base_dir, p))
            })
            .ok_or_else(|| {
                code_at.err(
                    "cannot tell which binary runs this function: set a local path here \
                     or Metadata.BuildProperties.Binary",
                )
            })?;
        Ok((binary, code_uri, None))
    }

    fn environment(
        &self,
        id: &str,
        name: &str,
        p: &Expr,
        at: &At,
    ) -> Result<BTreeMap<String, String>, TemplateError> {
        let mut env = BTreeMap::new();
        let overrides = self.env.map(|e| e.for_function(id, name));
        let vars = match p.get("Environment") {
            None => None,
            Some(e) => {
                let env_at = at.key("Environment");
                entries(e, &env_at)?;
                e.get("Variables").map(|v| (v, env_at.key("Variables")))
            }
        };
        let declared: &[(String, Expr)] = match &vars {
            None => &[],
            Some((v, vars_at)) => entries(v, vars_at)?,
        };
        for (key, value) in declared {
            // An overridden variable is never resolved, so env.local.json can stand in for
            // values the emulator cannot produce (a table name, a secret's ARN, ...).
            if let Some(v) = overrides.as_ref().and_then(|o| o.get(key)) {
                env.insert(key.clone(), v.to_owned());
                continue;
            }
            let var_at = at.key("Environment").key("Variables").key(key);
            if let Some(v) = self.r.resolve(value, &var_at)? {
                env.insert(key.clone(), json_string(&v, &var_at)?);
            }
        }
        if let Some(o) = &overrides {
            for key in o.own_keys().filter(|k| !env.contains_key(*k)) {
                // The SAM CLI only overrides variables the template declares; so does this.
                tracing::warn!(function = %id, variable = key, "env file variable not declared in the template, ignored");
            }
        }
        Ok(env)
    }
}

/// The prebuilt deployment package at a code path, if it is one. `CodeUri` (SAM) and `Code`
/// (`AWS::Lambda::Function`) may be a local file or folder, relative to the template: "If
/// you specify a file, the command directly uploads it ... If you specify a folder, the
/// command zips the folder" (`sam package`/`aws cloudformation package`:
/// <https://docs.aws.amazon.com/cli/latest/reference/cloudformation/package.html>,
/// <https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/deploy-upload-local-files.html>),
/// and a custom runtime's package is an executable named `bootstrap` at the root of the
/// `.zip` (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html>). So:
/// - a `.zip` file, or a file named `bootstrap`, is the package itself;
/// - a directory with a `bootstrap` and no `Cargo.toml` holds it (`target/lambda/<name>/`);
/// - a directory with a `Cargo.toml` is a crate, built with cargo (`None`).
///
/// A path that names an artifact (`.zip`, `bootstrap`, or under `target/lambda/`) but does
/// not exist is an error; any other missing path is a crate not yet written (`None`).
fn prebuilt(path: &Path) -> Result<Option<Prebuilt>, String> {
    let named_bootstrap = path.file_name().is_some_and(|n| n == "bootstrap");
    let zip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if zip || named_bootstrap {
        if !path.is_file() {
            return Err(format!(
                "the prebuilt artifact {} does not exist (or is not a file)",
                path.display()
            ));
        }
        return Ok(Some(if zip {
            Prebuilt::Zip(path.to_owned())
        } else {
            Prebuilt::Bootstrap(path.to_owned())
        }));
    }
    if path.join("Cargo.toml").is_file() {
        return Ok(None);
    }
    let bootstrap = path.join("bootstrap");
    if bootstrap.is_file() {
        return Ok(Some(Prebuilt::Bootstrap(bootstrap)));
    }
    let components: Vec<Component<'_>> = path.components().collect();
    let under_cargo_lambda = components
        .windows(2)
        .any(|w| w[0].as_os_str() == "target" && w[1].as_os_str() == "lambda");
    if under_cargo_lambda {
        return Err(format!(
            "{} has no bootstrap executable (run cargo lambda build first)",
            path.display()
        ));
    }
    if path.is_file() {
        return Err(format!(
            "{} is a file, but neither a bootstrap executable nor a .zip package",
            path.display()
        ));
    }
    Ok(None)
}

/// The binary name of a prebuilt artifact: the directory `cargo lambda build` named after it
/// (`target/lambda/<name>/bootstrap`), or a zip's own name when it is not `bootstrap.zip`.
fn artifact_name(artifact: &Prebuilt) -> Option<String> {
    let (path, own) = match artifact {
        Prebuilt::Bootstrap(p) => (p, None),
        Prebuilt::Zip(p) => (
            p,
            p.file_stem()
                .filter(|s| *s != "bootstrap")
                .map(|s| s.to_string_lossy().into_owned()),
        ),
    };
    own.or_else(|| {
        path.parent()?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    })
}

/// The `name` of the `[package]` table of `dir/Cargo.toml`, read line by line: a package's
/// name is always a plain string there (cargo does not let it be inherited from the
/// workspace), so no TOML parser is needed. None without a file or a package table.
fn package_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if !in_package {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() == "name" {
            let value = value.trim();
            let name = value.strip_prefix('"')?.split('"').next()?;
            return (!name.is_empty()).then(|| name.to_owned());
        }
    }
    None
}

/// The binary name a code path implies: its last segment (the crate directory).
fn last_segment(base_dir: &Path, code: &str) -> Option<String> {
    let path = Path::new(code.trim_end_matches(['/', '\\']));
    match path.file_name() {
        Some(name) => Some(name.to_string_lossy().into_owned()),
        // `.` or `..`: the name of the directory they stand for.
        None => base_dir
            .join(path)
            .canonicalize()
            .ok()?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
    }
}
