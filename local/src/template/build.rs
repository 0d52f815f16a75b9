//! Turns the parsed template into the emulator's model: queues, functions, event sources
//! and schedules, each validated against the limits AWS enforces. The asynchronous invocation
//! settings of functions are read in [`event_invoke`].

mod event_invoke;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::env::EnvOverrides;
use super::error::TemplateError;
use super::expr::Expr;
use super::params;
use super::resolve::{
    At, EVENT_INVOKE_CONFIG, EVENT_SOURCE_MAPPING, QUEUE, RULE, Resolver, Resource, SAM_FUNCTION,
    SCHEDULE, derive, entries, is_function, json_string, json_u32,
};
use super::{
    FunctionDef, LoadOptions, QueueDef, Redrive, RetryPolicy, ScheduleDef, ScheduleKind,
    ScheduleTarget, SqsEventSource, Template,
};
use crate::sqs::attributes::RedriveAllowPolicy;

const SAM_TRANSFORM: &str = "AWS::Serverless-2016-10-31";

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

/// SAM creates a queue for a `Schedule`/`ScheduleV2` event whose `DeadLetterConfig` has
/// `Type: SQS`; it is added here so it resolves and runs like a declared queue.
fn add_sam_dead_letter_queues(
    resources: &mut BTreeMap<String, Resource>,
) -> Result<(), TemplateError> {
    let mut generated = Vec::new();
    for (id, res) in resources.iter() {
        if res.kind != SAM_FUNCTION {
            continue;
        }
        let Some(Expr::Map(events)) = res.properties.get("Events") else {
            continue;
        };
        for (event, decl) in events {
            if let Some(queue_id) = sam_generated_dlq(id, event, decl) {
                generated.push((
                    format!("Events.{event}.Properties.DeadLetterConfig"),
                    id.clone(),
                    queue_id,
                ));
            }
        }
    }
    for (property, owner, queue_id) in generated {
        if resources.contains_key(&queue_id) {
            return Err(TemplateError::property(
                owner,
                property,
                format!(
                    "the dead-letter queue SAM creates, {queue_id}, clashes with a declared resource"
                ),
            ));
        }
        resources.insert(
            queue_id,
            Resource {
                kind: QUEUE.to_owned(),
                properties: Expr::Map(Vec::new()),
                metadata: Expr::Null,
                condition: None,
            },
        );
    }
    Ok(())
}

/// Logical id of the queue SAM generates for an event's `DeadLetterConfig: {Type: SQS}`.
fn sam_generated_dlq(function: &str, event: &str, decl: &Expr) -> Option<String> {
    let ty = decl.get("Type");
    if !matches!(ty, Some(Expr::Str(t)) if t == "Schedule" || t == "ScheduleV2") {
        return None;
    }
    sam_dlq_id(
        function,
        event,
        decl.get("Properties")?.get("DeadLetterConfig")?,
    )
}

/// `QueueLogicalId`, else `{function}{event}Queue`, when a `DeadLetterConfig` asks SAM to
/// create the queue.
fn sam_dlq_id(function: &str, event: &str, dlc: &Expr) -> Option<String> {
    if !matches!(dlc.get("Type"), Some(Expr::Str(t)) if t == "SQS") {
        return None;
    }
    Some(match dlc.get("QueueLogicalId") {
        Some(Expr::Str(id)) => id.clone(),
        _ => format!("{function}{event}Queue"),
    })
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
                || res.kind == EVENT_INVOKE_CONFIG;
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
        for (id, res) in resources.iter().filter(|(_, r)| is_function(&r.kind)) {
            functions.insert(id.clone(), self.function(id, res)?);
        }
        self.apply_event_invoke_configs(&mut functions)?;
        event_invoke::check_destination_queues(&functions, &queues)?;
        if let Some(env) = self.env {
            for unused in env.unused_entries(|k| {
                functions.contains_key(k) || functions.values().any(|f| f.name == k)
            }) {
                tracing::warn!(entry = unused, file = %env.path().display(), "env file entry names no function of the template");
            }
        }

        let mut event_sources = Vec::new();
        let mut schedules = Vec::new();
        for (id, res) in resources {
            match res.kind.as_str() {
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
        check_redrive_allowed(&queues)?;
        check_visibility_covers_timeouts(&event_sources, &queues, &functions)?;
        Ok(Template {
            functions,
            queues,
            event_sources,
            schedules,
        })
    }

    // ------------------------------------------------------------- queues

    fn queue(&self, id: &str, res: &Resource) -> Result<QueueDef, TemplateError> {
        let r = self.r;
        let at = At::new(id);
        let p = &res.properties;
        let name = r.physical_name(id, &at)?;
        let fifo = r.opt_bool(p, "FifoQueue", &at)?.unwrap_or(false);
        let content_based_deduplication = r
            .opt_bool(p, "ContentBasedDeduplication", &at)?
            .unwrap_or(false);
        if content_based_deduplication && !fifo {
            return Err(at
                .key("ContentBasedDeduplication")
                .err("only FIFO queues support content-based deduplication"));
        }
        let redrive = match r.opt(p, "RedrivePolicy", &at)? {
            None => None,
            Some(policy) => Some(self.redrive(policy, &at.key("RedrivePolicy"))?),
        };
        let redrive_allow_policy = match r.opt(p, "RedriveAllowPolicy", &at)? {
            None => None,
            Some(policy) => Some(redrive_allow_policy(policy, &at.key("RedriveAllowPolicy"))?),
        };
        Ok(QueueDef {
            logical_id: id.to_owned(),
            url: r.queue_url(&name),
            arn: r.queue_arn(&name),
            name,
            fifo,
            content_based_deduplication,
            visibility_timeout_s: r
                .opt_u32(p, "VisibilityTimeout", &at, 0..=43_200)?
                .unwrap_or(30),
            delay_s: r.opt_u32(p, "DelaySeconds", &at, 0..=900)?.unwrap_or(0),
            retention_s: r
                .opt_u32(p, "MessageRetentionPeriod", &at, 60..=1_209_600)?
                .unwrap_or(345_600),
            max_message_size: r
                .opt_u32(p, "MaximumMessageSize", &at, 1024..=1_048_576)?
                .unwrap_or(1_048_576),
            receive_wait_s: r
                .opt_u32(p, "ReceiveMessageWaitTimeSeconds", &at, 0..=20)?
                .unwrap_or(0),
            redrive,
            redrive_allow_policy,
        })
    }

    fn redrive(&self, policy: Json, at: &At) -> Result<Redrive, TemplateError> {
        // RedrivePolicy is a JSON property: a mapping, or a string holding JSON.
        let policy = match policy {
            Json::String(text) => serde_json::from_str::<Json>(&text)
                .map_err(|e| at.err(format!("invalid JSON: {e}")))?,
            other => other,
        };
        let Json::Object(policy) = policy else {
            return Err(at.err(format!("expected a mapping, got {policy}")));
        };
        let arn_at = at.key("deadLetterTargetArn");
        let arn = policy
            .get("deadLetterTargetArn")
            .ok_or_else(|| arn_at.err("is required but missing"))?;
        let arn = json_string(arn, &arn_at)?;
        let count_at = at.key("maxReceiveCount");
        let count = policy
            .get("maxReceiveCount")
            .ok_or_else(|| count_at.err("is required but missing"))?;
        let max_receive_count = json_u32(count, &count_at, 1..=1000)?;
        let dlq = self
            .queue_by_arn
            .get(&arn)
            .ok_or_else(|| arn_at.err(format!("{arn} is not a queue of this template")))?;
        Ok(Redrive {
            dlq_name: self.r.physical_name(dlq, &arn_at)?,
            dlq_logical_id: dlq.clone(),
            max_receive_count,
        })
    }

    // ---------------------------------------------------------- functions

    fn function(&self, id: &str, res: &Resource) -> Result<FunctionDef, TemplateError> {
        let r = self.r;
        let at = At::new(id);
        let p = &res.properties;
        if r.opt_string(p, "PackageType", &at)?.as_deref() == Some("Image") {
            return Err(at
                .key("PackageType")
                .err("container image functions are not modelled by the emulator"));
        }
        let name = r.physical_name(id, &at)?;
        let (binary, code_uri) = self.binary(id, res)?;
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

    /// The binary and code directory of a function.
    fn binary(
        &self,
        id: &str,
        res: &Resource,
    ) -> Result<(String, Option<std::path::PathBuf>), TemplateError> {
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
        let binary = from_metadata
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
        Ok((binary, code_uri))
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

    // ------------------------------------------------------ event sources

    fn sam_events(
        &self,
        id: &str,
        res: &Resource,
        queues: &BTreeMap<String, QueueDef>,
        sources: &mut Vec<SqsEventSource>,
        schedules: &mut Vec<ScheduleDef>,
    ) -> Result<(), TemplateError> {
        let Some(events) = res.properties.get("Events") else {
            return Ok(());
        };
        let events_at = At::new(id).key("Events");
        for (event, decl) in entries(events, &events_at)? {
            let ev_at = events_at.key(event);
            entries(decl, &ev_at)?;
            let ty = match decl.get("Type") {
                Some(Expr::Str(t)) => t.as_str(),
                Some(other) => {
                    return Err(ev_at
                        .key("Type")
                        .err(format!("expected a string, got {other}")));
                }
                None => return Err(ev_at.key("Type").err("is required but missing")),
            };
            let props_at = ev_at.key("Properties");
            let empty = Expr::Map(Vec::new());
            let props = match decl.get("Properties") {
                None | Some(Expr::Null) => &empty,
                Some(p) => {
                    entries(p, &props_at)?;
                    p
                }
            };
            let logical_id = format!("{id}{event}");
            match ty {
                "SQS" => {
                    let queue_arn = self.r.req_string(props, "Queue", &props_at)?;
                    let queue = self.queue_id_by_arn(&queue_arn, &props_at.key("Queue"))?;
                    sources
                        .push(self.sqs_settings(logical_id, id, &queue, queues, props, &props_at)?);
                }
                "Schedule" | "ScheduleV2" => {
                    schedules.push(self.sam_schedule(ty, logical_id, id, event, props, &props_at)?);
                }
                other => {
                    tracing::warn!(function = %id, event, r#type = other, "event type not modelled by the emulator, ignored");
                }
            }
        }
        Ok(())
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

    fn event_source_mapping(
        &self,
        id: &str,
        res: &Resource,
        queues: &BTreeMap<String, QueueDef>,
    ) -> Result<Option<SqsEventSource>, TemplateError> {
        let at = At::new(id);
        let p = &res.properties;
        let source_at = at.key("EventSourceArn");
        let Some(source) = p.get("EventSourceArn") else {
            tracing::debug!(resource = %id, "event source mapping without EventSourceArn, ignored");
            return Ok(None);
        };
        if let Some(kind) = self.referenced_kind(source)
            && kind != QUEUE
        {
            tracing::warn!(resource = %id, source = %kind, "event source not modelled by the emulator, ignored");
            return Ok(None);
        }
        let arn = self.r.req_string(p, "EventSourceArn", &at)?;
        if !arn.starts_with("arn:aws:sqs:") {
            tracing::warn!(resource = %id, source = %arn, "event source not modelled by the emulator, ignored");
            return Ok(None);
        }
        let queue = self.queue_id_by_arn(&arn, &source_at)?;
        let function = self.function_named(p, &at)?;
        Ok(Some(self.sqs_settings(
            id.to_owned(),
            &function,
            &queue,
            queues,
            p,
            &at,
        )?))
    }

    fn sqs_settings(
        &self,
        id: String,
        function: &str,
        queue: &str,
        queues: &BTreeMap<String, QueueDef>,
        p: &Expr,
        at: &At,
    ) -> Result<SqsEventSource, TemplateError> {
        let r = self.r;
        let fifo = queues.get(queue).is_some_and(|q| q.fifo);
        let max_batch = if fifo { 10 } else { 10_000 };
        let batch_size = r.opt_u32(p, "BatchSize", at, 1..=max_batch)?.unwrap_or(10);
        let window = r
            .opt_u32(p, "MaximumBatchingWindowInSeconds", at, 0..=300)?
            .unwrap_or(0);
        if batch_size > 10 && window == 0 {
            return Err(at
                .key("BatchSize")
                .err("a batch size above 10 needs MaximumBatchingWindowInSeconds of at least 1"));
        }
        let mut report_batch_item_failures = false;
        if let Some(types) = r.opt(p, "FunctionResponseTypes", at)? {
            let types_at = at.key("FunctionResponseTypes");
            let Json::Array(types) = types else {
                return Err(types_at.err(format!("expected a list, got {types}")));
            };
            for (i, t) in types.iter().enumerate() {
                match json_string(t, &types_at.index(i))?.as_str() {
                    "ReportBatchItemFailures" => report_batch_item_failures = true,
                    other => {
                        return Err(types_at.index(i).err(format!(
                            "unknown response type {}, expected ReportBatchItemFailures",
                            Json::String(other.to_owned())
                        )));
                    }
                }
            }
        }
        let maximum_concurrency = match p.get("ScalingConfig") {
            None => None,
            Some(sc) => {
                let sc_at = at.key("ScalingConfig");
                entries(sc, &sc_at)?;
                r.opt_u32(sc, "MaximumConcurrency", &sc_at, 2..=1000)?
            }
        };
        let mut filter_patterns = Vec::new();
        if let Some(fc) = p.get("FilterCriteria") {
            let fc_at = at.key("FilterCriteria");
            entries(fc, &fc_at)?;
            if let Some(filters) = r.opt(fc, "Filters", &fc_at)? {
                let filters_at = fc_at.key("Filters");
                let Json::Array(filters) = filters else {
                    return Err(filters_at.err(format!("expected a list, got {filters}")));
                };
                for (i, f) in filters.iter().enumerate() {
                    let pattern = f.get("Pattern").ok_or_else(|| {
                        filters_at
                            .index(i)
                            .key("Pattern")
                            .err("is required but missing")
                    })?;
                    // A pattern may be written as JSON text or as a YAML mapping.
                    filter_patterns.push(match pattern {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                }
            }
        }
        Ok(SqsEventSource {
            id,
            function: function.to_owned(),
            queue: queue.to_owned(),
            batch_size,
            maximum_batching_window_s: window,
            report_batch_item_failures,
            maximum_concurrency,
            enabled: r.opt_bool(p, "Enabled", at)?.unwrap_or(true),
            filter_patterns,
        })
    }

    // ---------------------------------------------------------- schedules

    fn sam_schedule(
        &self,
        ty: &str,
        id: String,
        function: &str,
        event: &str,
        p: &Expr,
        at: &At,
    ) -> Result<ScheduleDef, TemplateError> {
        let r = self.r;
        let v2 = ty == "ScheduleV2";
        let expression = if v2 {
            r.req_string(p, "ScheduleExpression", at)?
        } else {
            r.req_string(p, "Schedule", at)?
        };
        let enabled = match r.opt_string(p, "State", at)? {
            Some(state) => parse_state(&state, &at.key("State"))?,
            None => r.opt_bool(p, "Enabled", at)?.unwrap_or(true),
        };
        let omit_name = r.opt_bool(p, "OmitName", at)?.unwrap_or(false);
        let name = match r.opt_string(p, "Name", at)? {
            Some(name) => name,
            // SAM names a ScheduleV2 after its logical id; CloudFormation names a rule.
            None if v2 && !omit_name => id.clone(),
            None => derive(&self.opts.stack_name, &id, 64),
        };
        let dead_letter_queue = match p.get("DeadLetterConfig") {
            None => None,
            Some(dlc) => Some(match sam_dlq_id(function, event, dlc) {
                Some(queue) => queue,
                None => self.dead_letter_arn(dlc, &at.key("DeadLetterConfig"))?,
            }),
        };
        Ok(ScheduleDef {
            name,
            target: ScheduleTarget::Function(function.to_owned()),
            expression,
            timezone: if v2 {
                self.timezone(p, at)?
            } else {
                "UTC".to_owned()
            },
            kind: if v2 {
                ScheduleKind::ScheduleV2
            } else {
                ScheduleKind::LegacyRule
            },
            input: r.opt_string(p, "Input", at)?,
            retry_policy: self.retry_policy(p, at)?,
            dead_letter_queue,
            flexible_window_minutes: if v2 {
                self.flexible_window(p, at)?
            } else {
                None
            },
            enabled,
            start_date: if v2 {
                self.date(p, "StartDate", at)?
            } else {
                None
            },
            end_date: if v2 {
                self.date(p, "EndDate", at)?
            } else {
                None
            },
            id,
        })
    }

    fn scheduler_schedule(&self, id: &str, res: &Resource) -> Result<ScheduleDef, TemplateError> {
        let r = self.r;
        let at = At::new(id);
        let p = &res.properties;
        let target_at = at.key("Target");
        let target = p
            .get("Target")
            .ok_or_else(|| target_at.err("is required but missing"))?;
        entries(target, &target_at)?;
        let arn = target
            .get("Arn")
            .ok_or_else(|| target_at.key("Arn").err("is required but missing"))?;
        let target_def = self.scheduler_target(target, arn, &target_at)?;
        let enabled = match r.opt_string(p, "State", &at)? {
            Some(state) => parse_state(&state, &at.key("State"))?,
            None => true,
        };
        Ok(ScheduleDef {
            id: id.to_owned(),
            name: r.physical_name(id, &at)?,
            target: target_def,
            expression: r.req_string(p, "ScheduleExpression", &at)?,
            timezone: self.timezone(p, &at)?,
            kind: ScheduleKind::ScheduleV2,
            input: r.opt_string(target, "Input", &target_at)?,
            retry_policy: self.retry_policy(target, &target_at)?,
            dead_letter_queue: match target.get("DeadLetterConfig") {
                None => None,
                Some(dlc) => Some(self.dead_letter_arn(dlc, &target_at.key("DeadLetterConfig"))?),
            },
            flexible_window_minutes: self.flexible_window(p, &at)?,
            enabled,
            start_date: self.date(p, "StartDate", &at)?,
            end_date: self.date(p, "EndDate", &at)?,
        })
    }

    /// The function or queue a Scheduler schedule's `Target.Arn` designates.
    ///
    /// A target that is neither fails the load rather than being skipped: the template module
    /// refuses a modelled resource that depends on one the emulator does not run (and names
    /// both ends), and a schedule that silently never fires locally is worse than an error one
    /// can act on (remove the schedule, or point it at a function or queue for local runs).
    fn scheduler_target(
        &self,
        target: &Expr,
        arn: &Expr,
        target_at: &At,
    ) -> Result<ScheduleTarget, TemplateError> {
        let arn_at = target_at.key("Arn");
        let only = "the emulator delivers schedules to Lambda functions and SQS queues only";
        if let Some((resource, kind)) = self.referenced(arn)
            && !is_function(kind)
            && kind != QUEUE
        {
            return Err(arn_at.err(format!(
                "targets resource {resource} of type {kind}; {only}"
            )));
        }
        let resolved = match self.r.resolve(arn, &arn_at)? {
            Some(v) => json_string(&v, &arn_at)?,
            None => return Err(arn_at.err("is required but missing")),
        };
        let group_at = target_at.key("SqsParameters");
        let message_group_id = match target.get("SqsParameters") {
            None => None,
            Some(sp) => {
                entries(sp, &group_at)?;
                self.r.opt_string(sp, "MessageGroupId", &group_at)?
            }
        };
        if let Some(function) = self.function_by_arn.get(&resolved) {
            if message_group_id.is_some() {
                return Err(group_at.err(format!(
                    "applies to an SQS queue target, but {resolved} is a function"
                )));
            }
            return Ok(ScheduleTarget::Function(function.clone()));
        }
        if let Some(queue) = self.queue_by_arn.get(&resolved) {
            // 1-128 characters: https://docs.aws.amazon.com/scheduler/latest/APIReference/API_SqsParameters.html
            if let Some(group) = &message_group_id
                && !(1..=128).contains(&group.chars().count())
            {
                return Err(group_at.key("MessageGroupId").err(format!(
                    "must be 1 to 128 characters long, got {}",
                    group.chars().count()
                )));
            }
            return Ok(ScheduleTarget::Queue {
                queue: queue.clone(),
                message_group_id,
            });
        }
        let what = if resolved.starts_with("arn:aws:lambda:") {
            "is not a function of this template".to_owned()
        } else if resolved.starts_with("arn:aws:sqs:") {
            "is not a queue of this template".to_owned()
        } else {
            format!("is neither a function nor a queue of this template; {only}")
        };
        Err(arn_at.err(format!("{resolved} {what}")))
    }

    fn events_rule(&self, id: &str, res: &Resource) -> Result<Vec<ScheduleDef>, TemplateError> {
        let r = self.r;
        let at = At::new(id);
        let p = &res.properties;
        let Some(expression) = r.opt_string(p, "ScheduleExpression", &at)? else {
            tracing::debug!(resource = %id, "rule without ScheduleExpression, ignored");
            return Ok(Vec::new());
        };
        let enabled = match r.opt_string(p, "State", &at)? {
            Some(state) => parse_state(&state, &at.key("State"))?,
            None => true,
        };
        let targets_at = at.key("Targets");
        let targets: &[Expr] = match p.get("Targets") {
            None => &[],
            Some(Expr::List(items)) => items,
            Some(other) => return Err(targets_at.err(format!("expected a list, got {other}"))),
        };
        let mut found = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let t_at = targets_at.index(i);
            entries(target, &t_at)?;
            let arn = target
                .get("Arn")
                .ok_or_else(|| t_at.key("Arn").err("is required but missing"))?;
            let Some(function) = self.target_function(arn, &t_at.key("Arn"))? else {
                tracing::debug!(resource = %id, target = i, "rule target is not a function, ignored");
                continue;
            };
            if target.get("InputPath").is_some() || target.get("InputTransformer").is_some() {
                tracing::warn!(resource = %id, target = i, "InputPath and InputTransformer not modelled, the scheduled event is sent as is");
            }
            let target_id = r
                .opt_string(target, "Id", &t_at)?
                .unwrap_or_else(|| i.to_string());
            found.push((target_id, function, target, t_at));
        }
        let single = found.len() == 1;
        let name = r.physical_name(id, &at)?;
        let mut out = Vec::with_capacity(found.len());
        for (target_id, function, target, t_at) in found {
            out.push(ScheduleDef {
                id: if single {
                    id.to_owned()
                } else {
                    format!("{id}.{target_id}")
                },
                name: name.clone(),
                target: ScheduleTarget::Function(function),
                expression: expression.clone(),
                timezone: "UTC".to_owned(),
                kind: ScheduleKind::LegacyRule,
                input: r.opt_string(target, "Input", &t_at)?,
                retry_policy: self.retry_policy(target, &t_at)?,
                dead_letter_queue: match target.get("DeadLetterConfig") {
                    None => None,
                    Some(dlc) => Some(self.dead_letter_arn(dlc, &t_at.key("DeadLetterConfig"))?),
                },
                flexible_window_minutes: None,
                enabled,
                start_date: None,
                end_date: None,
            });
        }
        Ok(out)
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

    /// The function a target ARN designates; `None` for targets that are not functions
    /// (state machines, queues, ...), which the emulator does not invoke.
    fn target_function(&self, e: &Expr, at: &At) -> Result<Option<String>, TemplateError> {
        if let Some(kind) = self.referenced_kind(e)
            && !is_function(kind)
        {
            return Ok(None);
        }
        let arn = match self.r.resolve(e, at)? {
            Some(v) => json_string(&v, at)?,
            None => return Err(at.err("is required but missing")),
        };
        if let Some(id) = self.function_by_arn.get(&arn) {
            return Ok(Some(id.clone()));
        }
        if arn.starts_with("arn:aws:lambda:") {
            return Err(at.err(format!("{arn} is not a function of this template")));
        }
        Ok(None)
    }

    fn dead_letter_arn(&self, dlc: &Expr, at: &At) -> Result<String, TemplateError> {
        entries(dlc, at)?;
        let arn = self.r.req_string(dlc, "Arn", at)?;
        self.queue_id_by_arn(&arn, &at.key("Arn"))
    }

    fn retry_policy(&self, p: &Expr, at: &At) -> Result<RetryPolicy, TemplateError> {
        let Some(rp) = p.get("RetryPolicy") else {
            return Ok(RetryPolicy::default());
        };
        let rp_at = at.key("RetryPolicy");
        entries(rp, &rp_at)?;
        let default = RetryPolicy::default();
        Ok(RetryPolicy {
            max_event_age_s: self
                .r
                .opt_u32(rp, "MaximumEventAgeInSeconds", &rp_at, 60..=86_400)?
                .unwrap_or(default.max_event_age_s),
            max_retry_attempts: self
                .r
                .opt_u32(rp, "MaximumRetryAttempts", &rp_at, 0..=185)?
                .unwrap_or(default.max_retry_attempts),
        })
    }

    fn flexible_window(&self, p: &Expr, at: &At) -> Result<Option<u32>, TemplateError> {
        let Some(ftw) = p.get("FlexibleTimeWindow") else {
            return Ok(None);
        };
        let ftw_at = at.key("FlexibleTimeWindow");
        entries(ftw, &ftw_at)?;
        let mode = self.r.req_string(ftw, "Mode", &ftw_at)?;
        let minutes = self
            .r
            .opt_u32(ftw, "MaximumWindowInMinutes", &ftw_at, 1..=1440)?;
        match mode.as_str() {
            "OFF" => Ok(None),
            "FLEXIBLE" => minutes.map(Some).ok_or_else(|| {
                ftw_at
                    .key("MaximumWindowInMinutes")
                    .err("is required when Mode is FLEXIBLE")
            }),
            other => Err(ftw_at.key("Mode").err(format!(
                "expected OFF or FLEXIBLE, got {}",
                Json::String(other.to_owned())
            ))),
        }
    }

    fn timezone(&self, p: &Expr, at: &At) -> Result<String, TemplateError> {
        let key = "ScheduleExpressionTimezone";
        match self.r.opt_string(p, key, at)? {
            None => Ok("UTC".to_owned()),
            Some(tz) => match tz.parse::<chrono_tz::Tz>() {
                Ok(_) => Ok(tz),
                Err(_) => Err(at
                    .key(key)
                    .err(format!("unknown time zone {}", Json::String(tz.clone())))),
            },
        }
    }

    fn date(&self, p: &Expr, key: &str, at: &At) -> Result<Option<DateTime<Utc>>, TemplateError> {
        self.r
            .opt_string(p, key, at)?
            .map(|s| {
                DateTime::parse_from_rfc3339(&s)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| {
                        at.key(key).err(format!(
                            "expected an ISO 8601 date-time such as 2030-01-01T00:00:00Z, got {}",
                            Json::String(s.clone())
                        ))
                    })
            })
            .transpose()
    }
}

fn parse_state(state: &str, at: &At) -> Result<bool, TemplateError> {
    match state {
        "ENABLED" | "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS" => Ok(true),
        "DISABLED" => Ok(false),
        other => Err(at.err(format!(
            "expected ENABLED or DISABLED, got {}",
            Json::String(other.to_owned())
        ))),
    }
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

/// FIFO queues need FIFO dead-letter queues and standard queues standard ones, as SQS
/// enforces.
fn check_redrive_kinds(queues: &BTreeMap<String, QueueDef>) -> Result<(), TemplateError> {
    for q in queues.values() {
        let Some(r) = &q.redrive else { continue };
        if let Some(dlq) = queues.get(&r.dlq_logical_id)
            && dlq.fifo != q.fifo
        {
            let kind = |fifo: bool| if fifo { "a FIFO" } else { "a standard" };
            return Err(TemplateError::property(
                &q.logical_id,
                "RedrivePolicy.deadLetterTargetArn",
                format!(
                    "{} queue needs {} dead-letter queue, {} is not",
                    kind(q.fifo),
                    kind(q.fifo),
                    dlq.logical_id
                ),
            ));
        }
    }
    Ok(())
}

/// Lambda refuses an SQS event source whose queue's visibility timeout is shorter than the
/// function's timeout (a message would come back while its invocation still runs), with this
/// message: <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html>.
/// Reads a RedriveAllowPolicy property (a mapping, or a string holding JSON, as CloudFormation
/// takes both) with the rules SQS applies to the attribute.
fn redrive_allow_policy(policy: Json, at: &At) -> Result<RedriveAllowPolicy, TemplateError> {
    let text = match policy {
        Json::String(text) => text,
        other => other.to_string(),
    };
    RedriveAllowPolicy::parse(&text).map_err(|e| at.err(e.to_string()))
}

/// A queue's RedrivePolicy must name a dead-letter queue whose RedriveAllowPolicy admits it, as
/// SQS checks when the source queue is created: refused at load, naming both queues, rather
/// than when the emulator creates them.
fn check_redrive_allowed(queues: &BTreeMap<String, QueueDef>) -> Result<(), TemplateError> {
    for queue in queues.values() {
        let Some(redrive) = &queue.redrive else {
            continue;
        };
        let Some(dlq) = queues.get(&redrive.dlq_logical_id) else {
            continue;
        };
        let Some(allow) = &dlq.redrive_allow_policy else {
            continue;
        };
        if !allow.allows(&queue.arn) {
            let why = match allow {
                RedriveAllowPolicy::DenyAll => "denyAll",
                _ => "byQueue without this queue",
            };
            return Err(TemplateError::property(
                &queue.logical_id,
                "RedrivePolicy",
                format!(
                    "dead-letter queue {} ({}) does not allow {} ({}) as a source: its RedriveAllowPolicy is {why}",
                    dlq.logical_id, dlq.name, queue.logical_id, queue.name
                ),
            ));
        }
    }
    Ok(())
}

fn check_visibility_covers_timeouts(
    sources: &[SqsEventSource],
    queues: &BTreeMap<String, QueueDef>,
    functions: &BTreeMap<String, FunctionDef>,
) -> Result<(), TemplateError> {
    for source in sources {
        let (Some(queue), Some(function)) =
            (queues.get(&source.queue), functions.get(&source.function))
        else {
            continue;
        };
        if queue.visibility_timeout_s < function.timeout_s {
            return Err(TemplateError::Resource {
                resource: source.id.clone(),
                message: format!(
                    "Invalid request provided: Queue visibility timeout: {} seconds is less than Function timeout: {} seconds",
                    queue.visibility_timeout_s, function.timeout_s
                ),
            });
        }
    }
    Ok(())
}
