//! Turns the parsed template into the emulator's model: queues, functions, event sources
//! and schedules, each validated against the limits AWS enforces.
//!
//! This file reads the template's structure (syntax, `Globals`, resources) and runs the
//! [`Builder`], which resolves names first and then each resource kind in its own file:
//! - [`queues`]: queues, their redrive settings and the checks across queues;
//! - [`functions`]: functions, their binary, settings and environment;
//! - [`event_invoke`]: the asynchronous invocation settings of functions;
//! - [`event_sources`]: SQS event sources, from SAM events and event source mappings;
//! - [`schedules`]: schedules from SAM events, EventBridge Scheduler and EventBridge rules.

mod event_invoke;
mod event_sources;
mod functions;
mod queues;
mod schedules;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::env::EnvOverrides;
use super::error::TemplateError;
use super::expr::Expr;
use super::params;
use super::resolve::{
    At, EVENT_INVOKE_CONFIG, EVENT_SOURCE_MAPPING, QUEUE, RULE, Resolver, Resource, SAM_FUNCTION,
    SCHEDULE, SCHEDULE_GROUP, entries, is_function,
};
use super::{Destination, LoadOptions, ScheduleTarget, SkippedEvent, SkippedFunction, Template};
use event_sources::check_visibility_covers_timeouts;
use queues::{check_redrive_allowed, check_redrive_kinds};
use schedules::add_sam_dead_letter_queues;

const SAM_TRANSFORM: &str = "AWS::Serverless-2016-10-31";
/// An SES configuration set's event destination: not modelled, but announced
/// ([`Template::ses_event_destinations`]).
const SES_EVENT_DESTINATION: &str = "AWS::SES::ConfigurationSetEventDestination";

/// Parses, resolves and validates a whole template.
pub(crate) fn build(
    text: &str,
    base_dir: &Path,
    opts: &LoadOptions,
    env: Option<&EnvOverrides>,
) -> Result<Template, TemplateError> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(syntax_error)?;
    let root = Expr::from_yaml(&value);
    if !matches!(root, Expr::Map(_)) {
        return Err(TemplateError::Structure(format!(
            "expected a mapping at the top level, got {root}"
        )));
    }
    let params = params::resolve(root.get("Parameters"), &opts.parameter_overrides)?;
    let resources = collect_resources(&root)?;
    let resolver = Resolver::new(
        &resources,
        params,
        &opts.stack_name,
        &opts.region,
        opts.port,
    )
    .with_mappings(root.get("Mappings"));
    let mut builder = Builder {
        r: &resolver,
        opts,
        base_dir,
        env,
        queue_by_arn: HashMap::new(),
        function_by_arn: HashMap::new(),
        function_by_name: HashMap::new(),
    };
    builder.build()
}

fn syntax_error(e: serde_yaml::Error) -> TemplateError {
    let message = e.to_string();
    match e.location() {
        Some(loc) => {
            // The parser puts the position in its message; it is reported separately.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let message = message.replacen(&suffix, "", 1);
            TemplateError::Syntax {
                line: loc.line(),
                column: loc.column(),
                message,
            }
        }
        None => TemplateError::SyntaxUnlocated { message },
    }
}

/// SAM's `Globals` rule: maps merge (local keys win), lists concatenate (global first),
/// anything else (scalars, intrinsics) is taken from the function.
fn merge_globals(global: &Expr, local: &Expr) -> Expr {
    match (global, local) {
        (Expr::Map(g), Expr::Map(l)) => {
            let mut out = g.clone();
            for (k, v) in l {
                match out.iter_mut().find(|(gk, _)| gk == k) {
                    Some(slot) => slot.1 = merge_globals(&slot.1, v),
                    None => out.push((k.clone(), v.clone())),
                }
            }
            Expr::Map(out)
        }
        (Expr::List(g), Expr::List(l)) => Expr::List(g.iter().chain(l).cloned().collect()),
        _ => local.clone(),
    }
}

fn collect_resources(root: &Expr) -> Result<BTreeMap<String, Resource>, TemplateError> {
    let structure = |m: String| TemplateError::Structure(m);
    let globals_fn = match root.get("Globals") {
        None | Some(Expr::Null) => None,
        Some(g @ Expr::Map(_)) => match g.get("Function") {
            None | Some(Expr::Null) => None,
            Some(f @ Expr::Map(_)) => Some(f.clone()),
            Some(other) => {
                return Err(structure(format!(
                    "Globals.Function: expected a mapping, got {other}"
                )));
            }
        },
        Some(other) => {
            return Err(structure(format!(
                "Globals: expected a mapping, got {other}"
            )));
        }
    };
    let declared = match root.get("Resources") {
        Some(Expr::Map(entries)) => entries,
        Some(other) => {
            return Err(structure(format!(
                "Resources: expected a mapping, got {other}"
            )));
        }
        None => return Err(structure("Resources is required but missing".to_owned())),
    };
    let mut resources = BTreeMap::new();
    for (id, decl) in declared {
        let at = At::new(id);
        entries(decl, &at)?;
        let kind = match decl.get("Type") {
            Some(Expr::Str(t)) => t.clone(),
            Some(other) => return Err(at.err(format!("Type: expected a string, got {other}"))),
            None => return Err(at.err("Type is required but missing")),
        };
        let mut properties = match decl.get("Properties") {
            None | Some(Expr::Null) => Expr::Map(Vec::new()),
            Some(p @ Expr::Map(_)) => p.clone(),
            Some(other) => {
                return Err(at.err(format!("Properties: expected a mapping, got {other}")));
            }
        };
        if kind == SAM_FUNCTION
            && let Some(g) = &globals_fn
        {
            properties = merge_globals(g, &properties);
        }
        let condition = match decl.get("Condition") {
            None => None,
            Some(Expr::Str(c)) => Some(c.clone()),
            Some(other) => {
                return Err(at.err(format!("Condition: expected a string, got {other}")));
            }
        };
        let metadata = decl.get("Metadata").cloned().unwrap_or(Expr::Null);
        resources.insert(
            id.clone(),
            Resource {
                kind,
                properties,
                metadata,
                condition,
            },
        );
    }
    let uses_sam = resources
        .values()
        .any(|r| r.kind.starts_with("AWS::Serverless::"));
    let transformed = match root.get("Transform") {
        Some(Expr::Str(t)) => t == SAM_TRANSFORM,
        Some(Expr::List(ts)) => ts
            .iter()
            .any(|t| matches!(t, Expr::Str(s) if s == SAM_TRANSFORM)),
        _ => false,
    };
    if uses_sam && !transformed {
        return Err(structure(format!(
            "AWS::Serverless resources need Transform: {SAM_TRANSFORM}"
        )));
    }
    add_sam_dead_letter_queues(&mut resources)?;
    Ok(resources)
}

/// The SQS and schedule events of a skipped SAM function, listed as skipped without being
/// read further (ids as [`Builder::sam_events`] gives them: `{function}{event}`).
fn skipped_sam_events(id: &str, res: &Resource) -> Vec<SkippedEvent> {
    let Some(Expr::Map(events)) = res.properties.get("Events") else {
        return Vec::new();
    };
    events
        .iter()
        .filter_map(|(event, decl)| {
            let kind = match decl.get("Type") {
                Some(Expr::Str(t)) if t == "SQS" => "event source",
                Some(Expr::Str(t)) if t == "Schedule" || t == "ScheduleV2" => "schedule",
                _ => return None,
            };
            Some(SkippedEvent {
                id: format!("{id}{event}"),
                kind,
                function: id.to_owned(),
                reason: format!("its function {id} is skipped"),
            })
        })
        .collect()
}

struct Builder<'a, 't> {
    r: &'a Resolver<'t>,
    opts: &'a LoadOptions,
    base_dir: &'a Path,
    env: Option<&'a EnvOverrides>,
    queue_by_arn: HashMap<String, String>,
    function_by_arn: HashMap<String, String>,
    function_by_name: HashMap<String, String>,
}

impl Builder<'_, '_> {
    fn build(&mut self) -> Result<Template, TemplateError> {
        let resources = self.r.resources();
        for (id, res) in resources {
            let modelled = res.kind == QUEUE
                || is_function(&res.kind)
                || res.kind == SCHEDULE
                || res.kind == RULE
                || res.kind == EVENT_SOURCE_MAPPING
                || res.kind == EVENT_INVOKE_CONFIG
                || res.kind == SCHEDULE_GROUP;
            if !modelled {
                tracing::debug!(resource = %id, r#type = %res.kind, "resource not modelled, ignored");
                continue;
            }
            if let Some(c) = &res.condition {
                return Err(TemplateError::resource(
                    id,
                    format!("Condition {c}: conditions are not supported by the emulator"),
                ));
            }
        }

        // Names first: redrive targets, event sources and schedule targets are given as ARNs
        // and are looked up by them.
        for (id, res) in resources {
            let at = At::new(id);
            if res.kind == QUEUE {
                let name = self.r.physical_name(id, &at)?;
                self.queue_by_arn
                    .insert(self.r.queue_arn(&name), id.clone());
            } else if is_function(&res.kind) {
                let name = self.r.physical_name(id, &at)?;
                self.function_by_arn
                    .insert(self.r.function_arn(&name), id.clone());
                self.function_by_name.insert(name, id.clone());
            }
        }

        let mut queues = BTreeMap::new();
        for (id, res) in resources.iter().filter(|(_, r)| r.kind == QUEUE) {
            queues.insert(id.clone(), self.queue(id, res)?);
        }
        check_redrive_kinds(&queues)?;

        let mut functions = BTreeMap::new();
        let mut skipped_functions = Vec::new();
        for (id, res) in resources.iter().filter(|(_, r)| is_function(&r.kind)) {
            if let Some(reason) = self.skip_reason(id, res)? {
                tracing::warn!(function = %id, %reason, "function not run by the emulator, skipped");
                skipped_functions.push(SkippedFunction {
                    logical_id: id.clone(),
                    reason,
                });
                continue;
            }
            functions.insert(id.clone(), self.function(id, res)?);
        }
        let skipped = |id: &str| skipped_functions.iter().any(|s| s.logical_id == id);
        self.apply_event_invoke_configs(&mut functions)?;
        event_invoke::check_destination_queues(&functions, &queues)?;
        for f in functions.values_mut() {
            let config = &mut f.event_invoke;
            for slot in [&mut config.on_success, &mut config.on_failure] {
                if let Some(Destination::Function(target)) = slot.as_ref()
                    && skipped(target)
                {
                    tracing::warn!(function = %f.logical_id, destination = %target, "destination function not run by the emulator: its records are logged and dropped");
                    *slot = Some(Destination::Unmodelled {
                        kind: "Lambda".to_owned(),
                        target: target.clone(),
                    });
                }
            }
        }
        if let Some(env) = self.env {
            for unused in env.unused_entries(|k| {
                functions.contains_key(k)
                    || functions.values().any(|f| f.name == k)
                    || skipped(k)
                    || self.function_by_name.get(k).is_some_and(|id| skipped(id))
            }) {
                tracing::warn!(entry = unused, file = %env.path().display(), "env file entry names no function of the template");
            }
        }

        let mut event_sources = Vec::new();
        let mut schedules = Vec::new();
        let mut skipped_events = Vec::new();
        for (id, res) in resources {
            match res.kind.as_str() {
                // A skipped function's own events are not read: its template may use
                // properties of its language the emulator does not check.
                SAM_FUNCTION if skipped(id) => skipped_events.extend(skipped_sam_events(id, res)),
                SAM_FUNCTION => {
                    self.sam_events(id, res, &queues, &mut event_sources, &mut schedules)?
                }
                EVENT_SOURCE_MAPPING => {
                    if let Some(source) = self.event_source_mapping(id, res, &queues)? {
                        event_sources.push(source);
                    }
                }
                SCHEDULE => schedules.push(self.scheduler_schedule(id, res)?),
                RULE => schedules.extend(self.events_rule(id, res)?),
                _ => {}
            }
        }
        let reason = |function: &str| format!("its function {function} is skipped");
        event_sources.retain(|source| {
            if !skipped(&source.function) {
                return true;
            }
            skipped_events.push(SkippedEvent {
                id: source.id.clone(),
                kind: "event source",
                function: source.function.clone(),
                reason: reason(&source.function),
            });
            false
        });
        schedules.retain(|schedule| {
            let ScheduleTarget::Function(function) = &schedule.target else {
                return true;
            };
            if !skipped(function) {
                return true;
            }
            skipped_events.push(SkippedEvent {
                id: schedule.id.clone(),
                kind: "schedule",
                function: function.clone(),
                reason: reason(function),
            });
            false
        });
        for event in &skipped_events {
            tracing::warn!(function = %event.function, "{} {} left out: {}", event.kind, event.id, event.reason);
        }
        check_redrive_allowed(&queues)?;
        schedules::check_fifo_targets(&schedules, &queues)?;
        check_visibility_covers_timeouts(&event_sources, &queues, &functions)?;
        let mut schedule_groups = Vec::new();
        for (id, _) in resources.iter().filter(|(_, r)| r.kind == SCHEDULE_GROUP) {
            schedule_groups.push(self.r.physical_name(id, &At::new(id))?);
        }
        let ses_event_destinations = resources
            .iter()
            .any(|(_, r)| r.kind == SES_EVENT_DESTINATION);
        Ok(Template {
            functions,
            queues,
            event_sources,
            schedules,
            schedule_groups,
            skipped_functions,
            skipped_events,
            ses_event_destinations,
        })
    }

    /// The logical id of the function `FunctionName` names (by name or ARN).
    fn function_named(&self, p: &Expr, at: &At) -> Result<String, TemplateError> {
        let target = self.r.req_string(p, "FunctionName", at)?;
        self.function_by_name
            .get(&target)
            .or_else(|| self.function_by_arn.get(&target))
            .cloned()
            .ok_or_else(|| {
                at.key("FunctionName")
                    .err(format!("{target} is not a function of this template"))
            })
    }

    fn queue_id_by_arn(&self, arn: &str, at: &At) -> Result<String, TemplateError> {
        self.queue_by_arn
            .get(arn)
            .cloned()
            .ok_or_else(|| at.err(format!("{arn} is not a queue of this template")))
    }

    /// The type of the resource an ARN expression syntactically points at, if it does.
    fn referenced_kind(&self, e: &Expr) -> Option<&str> {
        self.referenced(e).map(|(_, kind)| kind)
    }

    /// The logical id and type of the resource an expression refers to (`!Ref`, `!GetAtt`).
    fn referenced<'e>(&self, e: &'e Expr) -> Option<(&'e str, &str)> {
        let id = match e {
            Expr::Ref(id) => id,
            Expr::GetAtt { resource, .. } => resource,
            _ => return None,
        };
        self.r
            .resources()
            .get(id)
            .map(|r| (id.as_str(), r.kind.as_str()))
    }
}
