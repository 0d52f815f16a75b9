//! Evaluation of intrinsic functions against the emulator's local world.
//!
//! `!Ref` and `!GetAtt` of the resources the emulator models resolve to local values (queue
//! URLs on the emulator's port, ARNs in its region and the `000000000000` account); parameters
//! and pseudo parameters resolve to their values. Resolution is lazy and per property, so only
//! what the emulator reads has to resolve.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;

use serde_json::Value as Json;

use super::ACCOUNT_ID;
use super::error::TemplateError;
use super::expr::Expr;
use super::params::ParamValue;

pub(crate) const QUEUE: &str = "AWS::SQS::Queue";
pub(crate) const SAM_FUNCTION: &str = "AWS::Serverless::Function";
pub(crate) const LAMBDA_FUNCTION: &str = "AWS::Lambda::Function";
pub(crate) const SCHEDULE: &str = "AWS::Scheduler::Schedule";
pub(crate) const RULE: &str = "AWS::Events::Rule";
pub(crate) const EVENT_SOURCE_MAPPING: &str = "AWS::Lambda::EventSourceMapping";
pub(crate) const EVENT_INVOKE_CONFIG: &str = "AWS::Lambda::EventInvokeConfig";
pub(crate) const SCHEDULE_GROUP: &str = "AWS::Scheduler::ScheduleGroup";
/// Not run by the emulator, but a function's environment may name one (the role Scheduler
/// assumes for a function's run-time schedules), so its `Ref` and `Arn` resolve.
pub(crate) const ROLE: &str = "AWS::IAM::Role";

/// Whether a resource of this type is a Lambda function.
pub(crate) fn is_function(kind: &str) -> bool {
    kind == SAM_FUNCTION || kind == LAMBDA_FUNCTION
}

/// One entry of `Resources`, with `Globals` already applied.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub(crate) kind: String,
    /// Always an [`Expr::Map`] (empty when the template has no `Properties`).
    pub(crate) properties: Expr,
    /// [`Expr::Null`] when absent.
    pub(crate) metadata: Expr,
    pub(crate) condition: Option<String>,
}

/// Where in the template a value sits, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct At {
    pub(crate) resource: String,
    pub(crate) path: String,
}

impl At {
    /// The root of a resource's `Properties`.
    pub(crate) fn new(resource: &str) -> Self {
        Self {
            resource: resource.to_owned(),
            path: String::new(),
        }
    }

    /// The location of `key` below this one.
    pub(crate) fn key(&self, key: &str) -> Self {
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        };
        Self {
            resource: self.resource.clone(),
            path,
        }
    }

    /// The location of item `i` of the list at this location.
    pub(crate) fn index(&self, i: usize) -> Self {
        Self {
            resource: self.resource.clone(),
            path: format!("{}[{i}]", self.path),
        }
    }

    /// An error at this location.
    pub(crate) fn err(&self, message: impl Into<String>) -> TemplateError {
        if self.path.is_empty() {
            TemplateError::resource(&self.resource, message)
        } else {
            TemplateError::property(&self.resource, &self.path, message)
        }
    }
}

fn compact(v: &Json) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Reads an integer within `range` from a resolved value; numeric strings count, as in
/// CloudFormation.
pub(crate) fn json_u32(
    v: &Json,
    at: &At,
    range: RangeInclusive<u32>,
) -> Result<u32, TemplateError> {
    let n: Option<i64> = match v {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let n = n.ok_or_else(|| at.err(format!("expected an integer, got {}", compact(v))))?;
    if n < i64::from(*range.start()) || n > i64::from(*range.end()) {
        return Err(at.err(format!(
            "must be between {} and {}, got {n}",
            range.start(),
            range.end()
        )));
    }
    Ok(n as u32)
}

/// Reads a string from a resolved value; numbers and booleans are stringified, as
/// CloudFormation does for string properties.
pub(crate) fn json_string(v: &Json, at: &At) -> Result<String, TemplateError> {
    match v {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        other => Err(at.err(format!("expected a string, got {}", compact(other)))),
    }
}

/// Reads a boolean from a resolved value; `"true"`/`"false"` count.
pub(crate) fn json_bool(v: &Json, at: &At) -> Result<bool, TemplateError> {
    match v {
        Json::Bool(b) => Ok(*b),
        Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(at.err(format!("expected a boolean, got {}", compact(other)))),
    }
}

/// Structural access: the entries of a mapping node, or an error naming what was found.
pub(crate) fn entries<'e>(e: &'e Expr, at: &At) -> Result<&'e [(String, Expr)], TemplateError> {
    match e {
        Expr::Map(entries) => Ok(entries),
        Expr::Unsupported(f) => Err(at.err(format!("{f} is not supported by the emulator"))),
        other => Err(at.err(format!("expected a mapping, got {other}"))),
    }
}

enum Slot {
    InProgress,
    Done(String),
}

/// Resolves intrinsics of one template for one emulator instance.
pub(crate) struct Resolver<'t> {
    resources: &'t BTreeMap<String, Resource>,
    params: BTreeMap<String, ParamValue>,
    stack: String,
    region: String,
    port: u16,
    names: RefCell<HashMap<String, Slot>>,
    /// The template's `Mappings`, for `!FindInMap` ([`Expr::Null`] when it has none).
    mappings: Expr,
}

impl<'t> Resolver<'t> {
    pub(crate) fn new(
        resources: &'t BTreeMap<String, Resource>,
        params: BTreeMap<String, ParamValue>,
        stack: &str,
        region: &str,
        port: u16,
    ) -> Self {
        Self {
            resources,
            params,
            stack: stack.to_owned(),
            region: region.to_owned(),
            port,
            names: RefCell::new(HashMap::new()),
            mappings: Expr::Null,
        }
    }

    /// Resolves `!FindInMap` in the template's `Mappings`.
    pub(crate) fn with_mappings(mut self, mappings: Option<&Expr>) -> Self {
        self.mappings = mappings.cloned().unwrap_or(Expr::Null);
        self
    }

    /// `!FindInMap [map, top, second]`: the value at `Mappings.map.top.second`.
    fn find_in_map(&self, keys: [&Expr; 3], at: &At) -> Result<Option<Json>, TemplateError> {
        let [map, top, second] = [
            self.resolve_string(keys[0], at)?,
            self.resolve_string(keys[1], at)?,
            self.resolve_string(keys[2], at)?,
        ];
        let call = format!("!FindInMap [{map}, {top}, {second}]");
        let value = self
            .mappings
            .get(&map)
            .ok_or_else(|| at.err(format!("{call}: no mapping {map:?} in Mappings")))?
            .get(&top)
            .ok_or_else(|| at.err(format!("{call}: mapping {map} has no key {top:?}")))?
            .get(&second)
            .ok_or_else(|| at.err(format!("{call}: {map}.{top} has no key {second:?}")))?;
        self.resolve(value, at)
    }

    pub(crate) fn resources(&self) -> &'t BTreeMap<String, Resource> {
        self.resources
    }

    /// Local URL of a queue with this name.
    pub(crate) fn queue_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT_ID}/{name}", self.port)
    }

    /// Local ARN of a queue with this name.
    pub(crate) fn queue_arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{ACCOUNT_ID}:{name}", self.region)
    }

    /// Local ARN of a function with this name.
    pub(crate) fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{ACCOUNT_ID}:function:{name}",
            self.region
        )
    }

    // ------------------------------------------------------------ getters

    /// Resolves `key` of the mapping `props` (located at `at`); `None` when absent or
    /// `AWS::NoValue`.
    pub(crate) fn opt(
        &self,
        props: &Expr,
        key: &str,
        at: &At,
    ) -> Result<Option<Json>, TemplateError> {
        match props.get(key) {
            None => Ok(None),
            Some(e) => self.resolve(e, &at.key(key)),
        }
    }

    /// An optional string property.
    pub(crate) fn opt_string(
        &self,
        props: &Expr,
        key: &str,
        at: &At,
    ) -> Result<Option<String>, TemplateError> {
        self.opt(props, key, at)?
            .map(|v| json_string(&v, &at.key(key)))
            .transpose()
    }

    /// A required string property.
    pub(crate) fn req_string(
        &self,
        props: &Expr,
        key: &str,
        at: &At,
    ) -> Result<String, TemplateError> {
        self.opt_string(props, key, at)?
            .ok_or_else(|| at.key(key).err("is required but missing"))
    }

    /// An optional integer property within `range`.
    pub(crate) fn opt_u32(
        &self,
        props: &Expr,
        key: &str,
        at: &At,
        range: RangeInclusive<u32>,
    ) -> Result<Option<u32>, TemplateError> {
        self.opt(props, key, at)?
            .map(|v| json_u32(&v, &at.key(key), range))
            .transpose()
    }

    /// An optional boolean property.
    pub(crate) fn opt_bool(
        &self,
        props: &Expr,
        key: &str,
        at: &At,
    ) -> Result<Option<bool>, TemplateError> {
        self.opt(props, key, at)?
            .map(|v| json_bool(&v, &at.key(key)))
            .transpose()
    }

    // --------------------------------------------------------- evaluation

    /// Evaluates an expression; `None` stands for `AWS::NoValue` (the property is removed).
    pub(crate) fn resolve(&self, e: &Expr, at: &At) -> Result<Option<Json>, TemplateError> {
        Ok(Some(match e {
            Expr::Null => Json::Null,
            Expr::Bool(b) => Json::Bool(*b),
            Expr::Number(n) => Json::Number(n.clone()),
            Expr::Str(s) => Json::String(s.clone()),
            Expr::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(v) = self.resolve(item, &at.index(i))? {
                        out.push(v);
                    }
                }
                Json::Array(out)
            }
            Expr::Map(entries) => {
                let mut out = serde_json::Map::new();
                for (k, v) in entries {
                    if let Some(v) = self.resolve(v, &at.key(k))? {
                        out.insert(k.clone(), v);
                    }
                }
                Json::Object(out)
            }
            Expr::Ref(name) => return self.reference(name, at),
            Expr::GetAtt {
                resource,
                attribute,
            } => Json::String(self.get_att(resource, attribute, at)?),
            Expr::Sub { template, vars } => Json::String(self.sub(template, vars, at)?),
            Expr::Join { delimiter, items } => Json::String(self.join(delimiter, items, at)?),
            Expr::FindInMap { map, top, second } => {
                return self.find_in_map([map, top, second], at);
            }
            Expr::Unsupported(f) => {
                return Err(at.err(format!("{f} is not supported by the emulator")));
            }
            Expr::Malformed { function, reason } => {
                return Err(at.err(format!("{function}: {reason}")));
            }
        }))
    }

    /// Evaluates an expression that must give a string (Sub variables, Join items).
    fn resolve_string(&self, e: &Expr, at: &At) -> Result<String, TemplateError> {
        match self.resolve(e, at)? {
            Some(v) => json_string(&v, at),
            None => Ok(String::new()),
        }
    }

    fn pseudo(&self, name: &str) -> Option<Json> {
        Some(match name {
            "AWS::Region" => Json::String(self.region.clone()),
            "AWS::AccountId" => Json::String(ACCOUNT_ID.to_owned()),
            "AWS::StackName" => Json::String(self.stack.clone()),
            "AWS::Partition" => Json::String("aws".to_owned()),
            "AWS::URLSuffix" => Json::String("amazonaws.com".to_owned()),
            "AWS::StackId" => Json::String(format!(
                "arn:aws:cloudformation:{}:{ACCOUNT_ID}:stack/{}/00000000-0000-0000-0000-000000000000",
                self.region, self.stack
            )),
            "AWS::NotificationARNs" => Json::Array(Vec::new()),
            _ => return None,
        })
    }

    fn unmodelled(&self, id: &str, kind: &str, at: &At) -> TemplateError {
        TemplateError::Unmodelled {
            resource: id.to_owned(),
            kind: kind.to_owned(),
            needed_by: at.resource.clone(),
            property: if at.path.is_empty() {
                "(none)".to_owned()
            } else {
                at.path.clone()
            },
        }
    }

    /// `!Ref name`; `None` for `AWS::NoValue`.
    pub(crate) fn reference(&self, name: &str, at: &At) -> Result<Option<Json>, TemplateError> {
        if name == "AWS::NoValue" {
            return Ok(None);
        }
        if let Some(v) = self.pseudo(name) {
            return Ok(Some(v));
        }
        if name.starts_with("AWS::") {
            return Err(at.err(format!("!Ref {name}: unknown pseudo parameter")));
        }
        if let Some(p) = self.params.get(name) {
            return match p {
                ParamValue::Value(v) => Ok(Some(v.clone())),
                ParamValue::Missing(reason) => Err(at.err(reason.clone())),
            };
        }
        let Some(res) = self.resources.get(name) else {
            return Err(at.err(format!(
                "!Ref {name} refers to an unknown resource or parameter"
            )));
        };
        let kind = res.kind.as_str();
        let value = match kind {
            QUEUE => self.queue_url(&self.physical_name(name, at)?),
            k if is_function(k)
                || k == SCHEDULE
                || k == RULE
                || k == SCHEDULE_GROUP
                || k == ROLE =>
            {
                self.physical_name(name, at)?
            }
            _ => return Err(self.unmodelled(name, kind, at)),
        };
        Ok(Some(Json::String(value)))
    }

    /// `!GetAtt resource.attribute`.
    pub(crate) fn get_att(
        &self,
        id: &str,
        attribute: &str,
        at: &At,
    ) -> Result<String, TemplateError> {
        let Some(res) = self.resources.get(id) else {
            return Err(at.err(format!(
                "!GetAtt {id}.{attribute} refers to an unknown resource"
            )));
        };
        let kind = res.kind.as_str();
        let known: &[&str] = match kind {
            QUEUE => &["Arn", "QueueName", "QueueUrl"],
            k if is_function(k)
                || k == SCHEDULE
                || k == RULE
                || k == SCHEDULE_GROUP
                || k == ROLE =>
            {
                &["Arn"]
            }
            _ => return Err(self.unmodelled(id, kind, at)),
        };
        if !known.contains(&attribute) {
            return Err(at.err(format!(
                "!GetAtt {id}.{attribute}: {kind} has no attribute {attribute} (known: {})",
                known.join(", ")
            )));
        }
        let name = self.physical_name(id, at)?;
        Ok(match (kind, attribute) {
            (QUEUE, "Arn") => self.queue_arn(&name),
            (QUEUE, "QueueName") => name,
            (QUEUE, "QueueUrl") => self.queue_url(&name),
            (SCHEDULE, _) => format!(
                "arn:aws:scheduler:{}:{ACCOUNT_ID}:schedule/default/{name}",
                self.region
            ),
            (RULE, _) => format!("arn:aws:events:{}:{ACCOUNT_ID}:rule/{name}", self.region),
            (SCHEDULE_GROUP, _) => format!(
                "arn:aws:scheduler:{}:{ACCOUNT_ID}:schedule-group/{name}",
                self.region
            ),
            (ROLE, _) => format!("arn:aws:iam::{ACCOUNT_ID}:role/{name}"),
            _ => self.function_arn(&name),
        })
    }

    fn sub(
        &self,
        template: &str,
        vars: &[(String, Expr)],
        at: &At,
    ) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(literal) = after.strip_prefix('!') {
                // `${!Name}` is the escape for a literal `${Name}`.
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = after.find('}').ok_or_else(|| {
                at.err(format!(
                    "!Sub {}: unterminated ${{",
                    Json::String(template.to_owned())
                ))
            })?;
            let name = after[..end].trim();
            let value = if let Some((_, e)) = vars.iter().find(|(k, _)| k == name) {
                self.resolve_string(e, &at.key(name))?
            } else if let Some((res, attr)) = name.split_once('.') {
                self.get_att(res, attr, at)?
            } else {
                match self.reference(name, at)? {
                    Some(v) => json_string(&v, at).map_err(|_| {
                        at.err(format!("!Sub: ${{{name}}} does not resolve to a string"))
                    })?,
                    None => String::new(),
                }
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn join(&self, delimiter: &str, items: &Expr, at: &At) -> Result<String, TemplateError> {
        let list = match self.resolve(items, at)? {
            Some(Json::Array(list)) => list,
            Some(other) => {
                return Err(at.err(format!(
                    "!Join: expected a list of values, got {}",
                    compact(&other)
                )));
            }
            None => Vec::new(),
        };
        let parts = list
            .iter()
            .map(|v| json_string(v, at))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(parts.join(delimiter))
    }

    // ------------------------------------------------------ physical names

    /// The physical name of a queue, function, schedule or rule: its name property if set,
    /// else `{stack}-{logical id}` as CloudFormation derives it (minus the random suffix, so
    /// local names are stable across restarts).
    pub(crate) fn physical_name(&self, id: &str, at: &At) -> Result<String, TemplateError> {
        match self.names.borrow().get(id) {
            Some(Slot::Done(name)) => return Ok(name.clone()),
            Some(Slot::InProgress) => {
                return Err(at.err(format!("circular reference through resource {id}")));
            }
            None => {}
        }
        self.names
            .borrow_mut()
            .insert(id.to_owned(), Slot::InProgress);
        let result = self.compute_name(id);
        match &result {
            Ok(name) => {
                self.names
                    .borrow_mut()
                    .insert(id.to_owned(), Slot::Done(name.clone()));
            }
            Err(_) => {
                self.names.borrow_mut().remove(id);
            }
        }
        result
    }

    fn compute_name(&self, id: &str) -> Result<String, TemplateError> {
        let res = &self.resources[id];
        let at = At::new(id);
        let props = &res.properties;
        match res.kind.as_str() {
            QUEUE => {
                let fifo = self.opt_bool(props, "FifoQueue", &at)?.unwrap_or(false);
                let name = match self.opt_string(props, "QueueName", &at)? {
                    Some(name) => name,
                    None if fifo => format!("{}.fifo", derive(&self.stack, id, 75)),
                    None => derive(&self.stack, id, 80),
                };
                validate_queue_name(&name, fifo, &at.key("QueueName"))?;
                Ok(name)
            }
            k if is_function(k) => {
                let name = self.opt_string(props, "FunctionName", &at)?;
                Ok(name.unwrap_or_else(|| derive(&self.stack, id, 64)))
            }
            ROLE => {
                let name = self.opt_string(props, "RoleName", &at)?;
                Ok(name.unwrap_or_else(|| derive(&self.stack, id, 64)))
            }
            _ => {
                let name = self.opt_string(props, "Name", &at)?;
                Ok(name.unwrap_or_else(|| derive(&self.stack, id, 64)))
            }
        }
    }
}

/// `{stack}-{logical id}`, cut to `max` characters.
pub(crate) fn derive(stack: &str, id: &str, max: usize) -> String {
    format!("{stack}-{id}").chars().take(max).collect()
}

fn validate_queue_name(name: &str, fifo: bool, at: &At) -> Result<(), TemplateError> {
    let base = name.strip_suffix(".fifo");
    if fifo && base.is_none() {
        return Err(at.err(format!(
            "the name of a FIFO queue must end with .fifo, got {}",
            Json::String(name.to_owned())
        )));
    }
    if !fifo && base.is_some() {
        return Err(at.err(format!(
            "{} ends with .fifo but FifoQueue is not true",
            Json::String(name.to_owned())
        )));
    }
    let base = base.unwrap_or(name);
    let valid = !base.is_empty()
        && name.len() <= 80
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(at.err(format!(
            "invalid queue name {}: 1 to 80 characters of A-Z, a-z, 0-9, - and _",
            Json::String(name.to_owned())
        )));
    }
    Ok(())
}
