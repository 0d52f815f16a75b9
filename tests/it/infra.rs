//! The deployment template (`infra/template.yaml`) held to the code and to its own promises:
//!
//! - drift: every variable a function's `Deps::from_env` reads is set by the template, and
//!   every variable the template sets is read; each SQS source's visibility timeout is at
//!   least 6x its consumer's timeout; `env.local.json` overrides every cloud-only value;
//! - least privilege: one role per function, no wildcard action, every SQS, DynamoDB, S3, SES,
//!   Lambda and Logs grant scoped to this stack's resources, and exactly the grants each
//!   function's code and event source use;
//! - the rest of the deploy: table, bucket, queues, schedule, alarms, outputs, parameters and
//!   the two `samconfig.toml` stages.
//!
//! The checks are functions returning the problems they find, so the mutation tests below can
//! show each one failing on a broken copy of the template.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nightshift::adapters::dynamodb::{
    IDEMPOTENCY_PREFIX, OUTCOME_PREFIX, PARTITION_KEY, SEQUENCE_PREFIX, SORT_KEY,
    SUPPRESSION_PREFIX, TTL_ATTRIBUTE,
};
use nightshift::adapters::memory::MemoryQueue;
use nightshift::config::{ConfigError, Env};
use nightshift::retry::RetryPlan;
use serde_yaml::Value;

/// Variables the template may set that no `Deps::from_env` reads, and who reads them instead.
const READ_OUTSIDE_DEPS: &[(&str, &str)] = &[("RUST_LOG", "nightshift::telemetry::init")];

/// Variables the code may read that a deployment must not set, and why.
const NEVER_DEPLOYED: &[(&str, &str)] = &[(
    nightshift::faults::FAULTS_VAR,
    "fault injection, set only by the emulator's reliability checker",
)];

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra")
}

fn template() -> Value {
    let text = std::fs::read_to_string(infra().join("template.yaml")).expect("template");
    serde_yaml::from_str(&text).expect("template is yaml")
}

fn env_local() -> serde_json::Value {
    let text = std::fs::read_to_string(infra().join("env.local.json")).expect("env.local.json");
    serde_json::from_str(&text).expect("env.local.json is json")
}

// ------------------------------------------------------------------------ yaml helpers

/// An intrinsic function call, short (`!Ref x`) or long (`{Ref: x}`) form: (name, argument).
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_string(),
            &t.value,
        )),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k.starts_with("Fn::"))
                .then(|| (k.trim_start_matches("Fn::").to_string(), arg))
        }
        _ => None,
    }
}

fn resources(t: &Value) -> &serde_yaml::Mapping {
    t["Resources"].as_mapping().expect("Resources")
}

fn resource_type(t: &Value, id: &str) -> Option<String> {
    t["Resources"][id]["Type"].as_str().map(str::to_string)
}

fn ids_of_type(t: &Value, ty: &str) -> Vec<String> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(ty))
        .filter_map(|(id, _)| id.as_str().map(str::to_string))
        .collect()
}

/// The logical id a `!Ref X` or `!GetAtt X.Attr` names.
fn referenced_id(v: &Value) -> Option<String> {
    match intrinsic(v)? {
        (f, Value::String(s)) if f == "Ref" => Some(s.clone()),
        (f, Value::String(s)) if f == "GetAtt" => s.split('.').next().map(str::to_string),
        (f, Value::Sequence(parts)) if f == "GetAtt" => parts.first()?.as_str().map(str::to_string),
        _ => None,
    }
}

/// The `${...}` names of a `!Sub` string.
fn sub_names(s: &str) -> Vec<String> {
    s.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
        .filter(|name| !name.starts_with('!'))
        .collect()
}

/// A scalar as text (numbers and booleans too).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(items) => items.iter().collect(),
        Value::Null => vec![],
        other => vec![other],
    }
}

// --------------------------------------------------------------------------- functions

/// What the template says about one function.
#[derive(Debug)]
struct Function {
    id: String,
    /// Variable name → its value expression (Globals merged in).
    env: BTreeMap<String, Value>,
    timeout_s: u64,
    role: Option<String>,
    sqs_sources: Vec<String>,
}

fn functions(t: &Value) -> Vec<Function> {
    let globals = &t["Globals"]["Function"];
    ids_of_type(t, "AWS::Serverless::Function")
        .into_iter()
        .map(|id| {
            let p = &t["Resources"][id.as_str()]["Properties"];
            let mut env = BTreeMap::new();
            for vars in [
                &globals["Environment"]["Variables"],
                &p["Environment"]["Variables"],
            ] {
                if let Some(m) = vars.as_mapping() {
                    for (k, v) in m {
                        env.insert(k.as_str().expect("variable name").to_string(), v.clone());
                    }
                }
            }
            let timeout_s = p["Timeout"]
                .as_u64()
                .or_else(|| globals["Timeout"].as_u64())
                .unwrap_or(3);
            let sqs_sources = p["Events"]
                .as_mapping()
                .map(|events| {
                    events
                        .values()
                        .filter(|e| e["Type"].as_str() == Some("SQS"))
                        .filter_map(|e| referenced_id(&e["Properties"]["Queue"]))
                        .collect()
                })
                .unwrap_or_default();
            Function {
                role: referenced_id(&p["Role"]),
                id,
                env,
                timeout_s,
                sqs_sources,
            }
        })
        .collect()
}

/// Runs the crate's `Deps::from_env` for a template function and records the variables it
/// reads. Only variables the template sets have values (the local ones, so nothing reaches
/// for the cloud); anything else reads as unset.
fn variables_read(
    function: &Function,
    parameters: &Value,
    dir: &Path,
) -> (BTreeSet<String>, Option<ConfigError>) {
    let local = env_local();
    let d = dir.display();
    let mut values = BTreeMap::new();
    for name in function.env.keys() {
        let value = match name.as_str() {
            "STORE_URL" => format!("sqlite://{d}/state.db"),
            "MAIL_URL" => format!("file://{d}/outbox"),
            "BLOBS_URL" => format!("file://{d}/reports"),
            n if n.ends_with("_URL") || n.ends_with("_URLS") => {
                format!("http://127.0.0.1:9324/000000000000/{n}")
            }
            // References to the stack's schedule group, role and queue, as the emulator
            // resolves them.
            "SCHEDULER_GROUP" => "nightshift-jobs".to_string(),
            "SCHEDULER_ROLE_ARN" => {
                "arn:aws:iam::000000000000:role/nightshift-JobsSchedulerRole".to_string()
            }
            "JOBS_QUEUE_ARN" => "arn:aws:sqs:us-east-1:000000000000:nightshift-jobs".to_string(),
            // `${AWS::StackName}-mail`, as the emulator resolves it.
            "MAIL_CONFIGURATION_SET" => "nightshift-mail".to_string(),
            n => local[&function.id][n]
                .as_str()
                .map(str::to_string)
                .or_else(|| scalar(&function.env[n]))
                .or_else(|| {
                    let parameter = referenced_id(&function.env[n])?;
                    scalar(&parameters[parameter.as_str()]["Default"])
                })
                .unwrap_or_else(|| panic!("{}: no sample value for {n}", function.id)),
        };
        values.insert(name.clone(), value);
    }
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let recorder = seen.clone();
    let env = Env::from_fn(move |name| {
        recorder.lock().unwrap().insert(name.to_string());
        values.get(name).cloned()
    });
    let queue = Arc::new(MemoryQueue::default());
    let error = match function.id.as_str() {
        "QueueProcessorFunction" => queue_processor::Deps::from_env(&env, queue).err(),
        "EmailSenderFunction" => email_sender::Deps::from_env(&env, queue).err(),
        "DailyReportFunction" => daily_report::Deps::from_env(&env, queue).err(),
        other => panic!("{other}: a function the drift check does not know; add its crate here"),
    };
    let seen = seen.lock().unwrap().clone();
    (seen, error)
}

/// Environment drift between the template and the functions' code.
fn env_drift(t: &Value) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for f in functions(t) {
        let (read, error) = variables_read(&f, &t["Parameters"], &dir.path().join(&f.id));
        if let Some(e) = error {
            problems.push(format!(
                "{}: Deps::from_env fails on the template's environment: {e}",
                f.id
            ));
        }
        for name in &read {
            if NEVER_DEPLOYED.iter().any(|(n, _)| n == name) {
                if f.env.contains_key(name) {
                    problems.push(format!(
                        "{}: the template sets {name}, which is test-only",
                        f.id
                    ));
                }
                continue;
            }
            if !f.env.contains_key(name) {
                problems.push(format!(
                    "{}: the code reads {name}, the template does not set it",
                    f.id
                ));
            }
        }
        for name in f.env.keys() {
            let outside = READ_OUTSIDE_DEPS.iter().any(|(n, _)| n == name);
            if !read.contains(name) && !outside {
                problems.push(format!(
                    "{}: the template sets {name}, the code never reads it",
                    f.id
                ));
            }
        }
    }
    problems
}

/// SQS sources whose visibility timeout is under 6x their consumer's timeout.
fn visibility_drift(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for f in functions(t) {
        for queue in &f.sqs_sources {
            let visibility = t["Resources"][queue.as_str()]["Properties"]["VisibilityTimeout"]
                .as_u64()
                .unwrap_or(30);
            if visibility < 6 * f.timeout_s {
                problems.push(format!(
                    "{queue}: VisibilityTimeout {visibility} s is under 6x the {} s timeout of {}",
                    f.timeout_s, f.id
                ));
            }
        }
    }
    problems
}

#[test]
fn infra_drift_functions_read_exactly_what_the_template_sets() {
    let problems = env_drift(&template());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn infra_drift_visibility_timeouts_cover_six_consumer_timeouts() {
    let t = template();
    let problems = visibility_drift(&t);
    assert!(problems.is_empty(), "{problems:#?}");
    // Every consumer's queues are covered, so the check above checked something.
    let sources: Vec<String> = functions(&t)
        .into_iter()
        .flat_map(|f| f.sqs_sources)
        .collect();
    assert_eq!(sources.len(), 4, "{sources:?}");
}

#[test]
fn infra_drift_env_local_overrides_every_cloud_only_value() {
    let t = template();
    let local = env_local();
    for f in functions(&t) {
        for (name, value) in &f.env {
            let text = match intrinsic(value) {
                Some((func, Value::String(s))) if func == "Sub" => s.clone(),
                _ => scalar(value).unwrap_or_default(),
            };
            let cloud_only =
                text.starts_with("dynamodb://") || text.starts_with("s3://") || text == "ses";
            if cloud_only {
                let local_value = local[&f.id][name].as_str().unwrap_or_else(|| {
                    panic!("{}: env.local.json does not override {name} ({text})", f.id)
                });
                assert!(
                    local_value.starts_with("sqlite://") || local_value.starts_with("file://"),
                    "{}: {name} overridden with {local_value}",
                    f.id
                );
            }
        }
    }
}

#[test]
fn infra_drift_check_fails_on_a_broken_template() {
    // A variable the code needs, removed from the template.
    let mut t = template();
    t["Resources"]["EmailSenderFunction"]["Properties"]["Environment"]["Variables"]
        .as_mapping_mut()
        .unwrap()
        .remove("MAIL_FROM");
    let problems = env_drift(&t);
    assert!(
        problems
            .iter()
            .any(|p| p
                == "EmailSenderFunction: the code reads MAIL_FROM, the template does not set it"),
        "{problems:#?}"
    );
    // A variable nobody reads, added.
    let mut t = template();
    t["Resources"]["DailyReportFunction"]["Properties"]["Environment"]["Variables"]["REPORT_FORMAT"] =
        Value::String("pdf".into());
    assert_eq!(
        env_drift(&t),
        ["DailyReportFunction: the template sets REPORT_FORMAT, the code never reads it"]
    );
    // A consumer timeout raised past a sixth of its queue's visibility timeout.
    let mut t = template();
    t["Resources"]["QueueProcessorFunction"]["Properties"]["Timeout"] = Value::from(46);
    assert_eq!(
        visibility_drift(&t),
        [
            "JobsQueue: VisibilityTimeout 270 s is under 6x the 46 s timeout of QueueProcessorFunction",
            "InventoryQueue: VisibilityTimeout 270 s is under 6x the 46 s timeout of QueueProcessorFunction"
        ]
    );
}

// ---------------------------------------------------------------------- send rate, logs

/// Problems with the bound on the SES rate across email-sender's instances: each instance
/// paces to `MAIL_MAX_PER_SECOND / MAIL_INSTANCES` (`email_sender::instance_rate`), so
/// `MAIL_MAX_PER_SECOND` must be the quota parameter and `MAIL_INSTANCES` the most instances
/// Lambda runs, the reserved concurrency.
fn send_rate_problems(t: &Value) -> Vec<String> {
    let p = &t["Resources"]["EmailSenderFunction"]["Properties"];
    let vars = &p["Environment"]["Variables"];
    let mut problems = Vec::new();
    if referenced_id(&vars[email_sender::MAIL_MAX_PER_SECOND]).as_deref() != Some("SesMaxSendRate")
    {
        problems.push("MAIL_MAX_PER_SECOND is not !Ref SesMaxSendRate".to_string());
    }
    let reserved = p["ReservedConcurrentExecutions"].as_u64();
    let instances = scalar(&vars[email_sender::MAIL_INSTANCES]).and_then(|v| v.parse::<u64>().ok());
    match (reserved, instances) {
        (None, _) => problems.push(
            "EmailSenderFunction has no ReservedConcurrentExecutions: nothing bounds its instances"
                .to_string(),
        ),
        (Some(r), Some(i)) if r == i => {}
        (Some(r), i) => problems.push(format!(
            "MAIL_INSTANCES {i:?} is not the reserved concurrency {r}"
        )),
    }
    problems
}

/// A `!FindInMap [map, !Ref parameter, key]` node as (map, parameter, key).
fn find_in_map(v: &Value) -> Option<(String, String, String)> {
    let (f, Value::Sequence(args)) = intrinsic(v)? else {
        return None;
    };
    match (f.as_str(), args.as_slice()) {
        ("FindInMap", [map, parameter, key]) => Some((
            map.as_str()?.to_string(),
            referenced_id(parameter)?,
            key.as_str()?.to_string(),
        )),
        _ => None,
    }
}

/// Problems with the functions' log levels: Lambda filters JSON logs by
/// `ApplicationLogLevel` (INFO when unset), so each function must take it, and
/// `SystemLogLevel`, from the `LogLevel` parameter through the `LogLevels` mapping, which
/// must name a Lambda level for every value the parameter allows.
fn log_level_problems(t: &Value) -> Vec<String> {
    const APPLICATION: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    const SYSTEM: &[&str] = &["DEBUG", "INFO", "WARN"];
    let mut problems = Vec::new();
    for f in functions(t) {
        let lc = &t["Resources"][f.id.as_str()]["Properties"]["LoggingConfig"];
        if lc["LogFormat"].as_str() != Some("JSON") {
            problems.push(format!("{}: LogFormat is not JSON", f.id));
        }
        for (property, key) in [
            ("ApplicationLogLevel", "Application"),
            ("SystemLogLevel", "System"),
        ] {
            let expected = (
                "LogLevels".to_string(),
                "LogLevel".to_string(),
                key.to_string(),
            );
            if find_in_map(&lc[property]) != Some(expected) {
                problems.push(format!(
                    "{}: {property} is not !FindInMap [LogLevels, !Ref LogLevel, {key}]",
                    f.id
                ));
            }
        }
    }
    for level in as_list(&t["Parameters"]["LogLevel"]["AllowedValues"]) {
        let level = scalar(level).unwrap_or_default();
        let row = &t["Mappings"]["LogLevels"][level.as_str()];
        let application = row["Application"].as_str().unwrap_or_default();
        if application != level.to_uppercase() || !APPLICATION.contains(&application) {
            problems.push(format!(
                "LogLevels.{level}.Application is {application:?}, not Lambda's {:?}",
                level.to_uppercase()
            ));
        }
        let system = row["System"].as_str().unwrap_or_default();
        if !SYSTEM.contains(&system) {
            problems.push(format!(
                "LogLevels.{level}.System is {system:?}, not one of {SYSTEM:?}"
            ));
        }
    }
    problems
}

#[test]
fn infra_email_sender_instances_share_the_ses_quota() {
    let t = template();
    let problems = send_rate_problems(&t);
    assert!(problems.is_empty(), "{problems:#?}");
    // For each stage as samconfig.toml deploys it: the instances' rates add up to at most
    // the SES quota the stage is given.
    let reserved =
        t["Resources"]["EmailSenderFunction"]["Properties"]["ReservedConcurrentExecutions"]
            .as_u64()
            .unwrap();
    let instances = scalar(
        &t["Resources"]["EmailSenderFunction"]["Properties"]["Environment"]["Variables"]
            [email_sender::MAIL_INSTANCES],
    )
    .unwrap();
    let samconfig = std::fs::read_to_string(infra().join("samconfig.toml")).unwrap();
    let quotas: Vec<f64> = samconfig
        .match_indices("SesMaxSendRate=\\\"")
        .map(|(at, m)| {
            let rest = &samconfig[at + m.len()..];
            rest[..rest.find('\\').unwrap()].parse().unwrap()
        })
        .collect();
    assert_eq!(quotas.len(), 2, "both stages set SesMaxSendRate");
    for quota in quotas {
        let env = Env::from_map([
            (email_sender::MAIL_MAX_PER_SECOND, quota.to_string()),
            (email_sender::MAIL_INSTANCES, instances.clone()),
        ]);
        let per_instance = email_sender::instance_rate(&env).unwrap();
        assert!(
            reserved as f64 * per_instance <= quota,
            "{reserved} x {per_instance}/s is over the quota {quota}/s"
        );
    }
}

#[test]
fn infra_lambda_lets_every_log_level_through() {
    let problems = log_level_problems(&template());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn infra_send_rate_and_log_level_checks_fail_on_a_broken_template() {
    let mut t = template();
    t["Resources"]["EmailSenderFunction"]["Properties"]["ReservedConcurrentExecutions"] =
        Value::from(3);
    assert_eq!(
        send_rate_problems(&t),
        ["MAIL_INSTANCES Some(2) is not the reserved concurrency 3"]
    );
    t["Resources"]["EmailSenderFunction"]["Properties"]
        .as_mapping_mut()
        .unwrap()
        .remove("ReservedConcurrentExecutions");
    assert_eq!(
        send_rate_problems(&t),
        ["EmailSenderFunction has no ReservedConcurrentExecutions: nothing bounds its instances"]
    );
    let mut t = template();
    t["Resources"]["DailyReportFunction"]["Properties"]["LoggingConfig"]
        .as_mapping_mut()
        .unwrap()
        .remove("ApplicationLogLevel");
    t["Mappings"]["LogLevels"]["debug"]["Application"] = Value::String("debug".into());
    assert_eq!(
        log_level_problems(&t),
        [
            "DailyReportFunction: ApplicationLogLevel is not !FindInMap [LogLevels, !Ref LogLevel, Application]",
            "LogLevels.debug.Application is \"debug\", not Lambda's \"DEBUG\"",
        ]
    );
}

// ---------------------------------------------------------------------------------- IAM

/// One allowed (action, resource) pair, with the resource named by its logical id where it
/// is one of the template's (`EmailsQueue`, `ReportsBucket/reports/*`) and the condition
/// appended (`[idem#*]`, `[from SenderAddress]`).
fn grants(t: &Value, role: &str) -> Result<BTreeSet<String>, Vec<String>> {
    let mut out = BTreeSet::new();
    let mut problems = Vec::new();
    let policies = &t["Resources"][role]["Properties"]["Policies"];
    for policy in as_list(policies) {
        for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
            if statement["Effect"].as_str() != Some("Allow") {
                continue;
            }
            let sid = statement["Sid"].as_str().unwrap_or("?");
            let actions: Vec<String> = as_list(&statement["Action"])
                .into_iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            for action in &actions {
                if action.contains('*') {
                    problems.push(format!("{role}/{sid}: wildcard action {action}"));
                }
            }
            let condition = condition_label(&statement["Condition"]);
            // X-Ray's write actions take no resource-level permission: `*` is their only
            // resource, and only theirs
            // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html).
            if statement["Resource"].as_str() == Some("*")
                && !actions.is_empty()
                && actions.iter().all(|a| XRAY_WRITE.contains(&a.as_str()))
                && condition.is_empty()
            {
                out.extend(actions.iter().map(|a| format!("{a} on *")));
                continue;
            }
            for resource in as_list(&statement["Resource"]) {
                match scoped_resource(t, resource) {
                    Ok((ty, label)) => {
                        for action in &actions {
                            let service = action.split(':').next().unwrap_or_default();
                            if !service_owns(service, &ty) {
                                problems.push(format!("{role}/{sid}: {action} on {label}, a {ty}"));
                            }
                            out.insert(format!("{action} on {label}{condition}"));
                        }
                    }
                    Err(why) => problems.push(format!("{role}/{sid}: {why}")),
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// What active tracing needs of a function's role: upload its segments and the telemetry of
/// the upload (<https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html>: the write
/// part of AWSXRayDaemonWriteAccess).
const XRAY_WRITE: [&str; 2] = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

/// Which resource types a service's actions may be granted on.
fn service_owns(service: &str, ty: &str) -> bool {
    matches!(
        (service, ty),
        ("sqs", "AWS::SQS::Queue")
            | ("dynamodb", "AWS::DynamoDB::Table")
            | ("s3", "AWS::S3::Bucket")
            | ("logs", "AWS::Logs::LogGroup")
            | ("lambda", "AWS::Serverless::Function")
            | ("ses", "ses-identity")
            | ("ses", "AWS::SES::ConfigurationSet")
            | ("scheduler", "AWS::Scheduler::ScheduleGroup")
            | ("iam", "AWS::IAM::Role")
    )
}

/// A resource of this stack: `(type, label)`; `Err` for `*` or anything outside the stack.
fn scoped_resource(t: &Value, resource: &Value) -> Result<(String, String), String> {
    if let Some(id) = referenced_id(resource) {
        let ty = resource_type(t, &id).ok_or_else(|| format!("{id} is not a resource"))?;
        return Ok((ty, id));
    }
    match intrinsic(resource) {
        Some((f, Value::String(s))) if f == "Sub" => {
            let names = sub_names(s);
            if let Some(first) = names.first()
                && let Some(id) = first.strip_suffix(".Arn")
                && s.starts_with("${")
                && let Some(ty) = resource_type(t, id)
            {
                let rest = &s[first.len() + 3..];
                return Ok((ty, format!("{id}{rest}")));
            }
            let identities = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/";
            if let Some(identity) = s.strip_prefix(identities) {
                return Ok(("ses-identity".into(), format!("ses identity/{identity}")));
            }
            // One of this stack's SES configuration sets: `configuration-set/${Set}`.
            let sets =
                "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:configuration-set/${";
            if let Some(set) = s.strip_prefix(sets).and_then(|r| r.strip_suffix('}'))
                && let Some(ty) = resource_type(t, set)
                && ty == "AWS::SES::ConfigurationSet"
            {
                return Ok((ty, set.to_string()));
            }
            // The schedules of one of this stack's schedule groups: `schedule/${Group}/...`.
            let schedules =
                "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${";
            if let Some((group, rest)) = s.strip_prefix(schedules).and_then(|r| r.split_once('}'))
                && let Some(ty) = resource_type(t, group)
                && ty == "AWS::Scheduler::ScheduleGroup"
            {
                return Ok((ty, format!("{group}{rest}")));
            }
            Err(format!(
                "!Sub {s:?} is not scoped to a resource of this stack"
            ))
        }
        _ => Err(format!("resource {resource:?} is not scoped to this stack")),
    }
}

fn condition_label(condition: &Value) -> String {
    let Some(conditions) = condition.as_mapping() else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (op, keys) in conditions {
        for (key, value) in keys.as_mapping().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            let values: Vec<String> = as_list(value)
                .into_iter()
                .map(|v| referenced_id(v).or_else(|| scalar(v)).unwrap_or_default())
                .collect();
            parts.push(format!(
                "{} {key} {}",
                op.as_str().unwrap_or_default(),
                values.join(",")
            ));
        }
    }
    format!(" [{}]", parts.join("; "))
}

fn leading(prefix: &str) -> String {
    format!(" [ForAllValues:StringLike dynamodb:LeadingKeys {prefix}*]")
}

#[test]
fn infra_iam_every_function_has_its_own_least_privilege_role() {
    let t = template();
    let idem = leading(IDEMPOTENCY_PREFIX);
    let outcome = leading(OUTCOME_PREFIX);
    let sequences = leading(SEQUENCE_PREFIX);
    let suppressions = leading(SUPPRESSION_PREFIX);
    let consume = |queue: &str| -> Vec<String> {
        [
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ]
        .iter()
        .map(|a| format!("{a} on {queue}"))
        .collect()
    };
    let idempotency = [
        format!("dynamodb:DeleteItem on StateTable{idem}"),
        format!("dynamodb:GetItem on StateTable{idem}"),
        format!("dynamodb:PutItem on StateTable{idem}"),
        format!("dynamodb:UpdateItem on StateTable{idem}"),
    ];
    let logs = |group: &str| {
        [
            format!("logs:CreateLogStream on {group}"),
            format!("logs:PutLogEvents on {group}"),
        ]
    };
    let traces = XRAY_WRITE.map(|a| format!("{a} on *"));
    let mut expected: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    expected.insert(
        "QueueProcessorFunction",
        consume("JobsQueue")
            .into_iter()
            .chain(traces.clone())
            .chain(consume("InventoryQueue"))
            .chain(logs("QueueProcessorLogGroup"))
            .chain(idempotency.clone())
            .chain([
                "sqs:SendMessage on EmailsQueue".to_string(),
                "sqs:SendMessage on JobsDLQ".to_string(),
                "sqs:SendMessage on InventoryDLQ".to_string(),
                format!("dynamodb:PutItem on StateTable{outcome}"),
                format!("dynamodb:GetItem on StateTable{sequences}"),
                format!("dynamodb:UpdateItem on StateTable{sequences}"),
                // The Scheduler port: create, replace and cancel its own group's schedules,
                // passing them their role (nightshift::adapters::scheduler).
                "scheduler:CreateSchedule on JobsScheduleGroup/*".to_string(),
                "scheduler:UpdateSchedule on JobsScheduleGroup/*".to_string(),
                "scheduler:DeleteSchedule on JobsScheduleGroup/*".to_string(),
                "iam:PassRole on JobsSchedulerRole [StringEquals iam:PassedToService scheduler.amazonaws.com]"
                    .to_string(),
            ])
            .collect(),
    );
    expected.insert(
        "EmailSenderFunction",
        consume("EmailsQueue")
            .into_iter()
            .chain(traces.clone())
            .chain(consume("MailFeedbackQueue"))
            .chain(logs("EmailSenderLogGroup"))
            .chain(idempotency.clone())
            .chain([
                "sqs:SendMessage on EmailsDLQ".to_string(),
                "sqs:SendMessage on MailFeedbackDLQ".to_string(),
                // The suppression list: read before each send, written from feedback.
                format!("dynamodb:GetItem on StateTable{suppressions}"),
                format!("dynamodb:PutItem on StateTable{suppressions}"),
                "ses:SendEmail on ses identity/* [StringEquals ses:FromAddress SenderAddress]"
                    .to_string(),
                "ses:SendRawEmail on ses identity/* [StringEquals ses:FromAddress SenderAddress]"
                    .to_string(),
                // A send naming a configuration set is authorized on the set too: only the
                // stack's own.
                "ses:SendEmail on MailConfigurationSet [StringEquals ses:FromAddress SenderAddress]"
                    .to_string(),
                "ses:SendRawEmail on MailConfigurationSet [StringEquals ses:FromAddress SenderAddress]"
                    .to_string(),
            ])
            .collect(),
    );
    expected.insert(
        "DailyReportFunction",
        logs("DailyReportLogGroup")
            .into_iter()
            .chain(traces)
            .chain(idempotency)
            .chain([
                "sqs:SendMessage on EmailsQueue".to_string(),
                "sqs:SendMessage on ReportFailuresQueue".to_string(),
                "sqs:GetQueueAttributes on JobsDLQ".to_string(),
                "sqs:GetQueueAttributes on InventoryDLQ".to_string(),
                "sqs:GetQueueAttributes on EmailsDLQ".to_string(),
                format!("dynamodb:Query on StateTable{outcome}"),
                "s3:PutObject on ReportsBucket/reports/*".to_string(),
            ])
            .collect(),
    );

    let mut roles = BTreeSet::new();
    for f in functions(&t) {
        let props = &t["Resources"][f.id.as_str()]["Properties"];
        // SAM's `Policies` would add managed policies granting on every resource.
        assert!(props["Policies"].is_null(), "{}: uses SAM Policies", f.id);
        let role = f
            .role
            .clone()
            .unwrap_or_else(|| panic!("{}: no Role", f.id));
        assert_eq!(resource_type(&t, &role).as_deref(), Some("AWS::IAM::Role"));
        assert!(
            roles.insert(role.clone()),
            "{role} is shared by two functions"
        );
        let got = grants(&t, &role).unwrap_or_else(|p| panic!("{p:#?}"));
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            expected[f.id.as_str()].iter().collect::<Vec<_>>(),
            "{}",
            f.id
        );
        // Derived from the rest of the template: the event source can be consumed, and every
        // queue URL the function is given can be sent to (or is its source).
        for queue in &f.sqs_sources {
            for line in consume(queue) {
                assert!(got.contains(&line), "{}: missing {line}", f.id);
            }
        }
        for (name, value) in &f.env {
            // A list of queues a function only watches: each may have its depth read.
            if name.ends_with("_URLS") {
                let args = match intrinsic(value) {
                    Some((func, Value::Sequence(args))) if func == "Join" && args.len() == 2 => {
                        args
                    }
                    _ => panic!("{}: {name} is not a !Join of queue references", f.id),
                };
                let queues: Vec<String> = as_list(&args[1])
                    .into_iter()
                    .filter_map(referenced_id)
                    .collect();
                assert!(!queues.is_empty(), "{}: {name} names no queue", f.id);
                for queue in queues {
                    assert!(
                        got.contains(&format!("sqs:GetQueueAttributes on {queue}")),
                        "{}: {name} names {queue}, whose depth it may not read",
                        f.id
                    );
                }
            }
            if name.ends_with("_QUEUE_URL") || name.ends_with("_DLQ_URL") {
                let queue = referenced_id(value).expect("queue url is a !Ref");
                assert!(
                    f.sqs_sources.contains(&queue)
                        || got.contains(&format!("sqs:SendMessage on {queue}")),
                    "{}: {name} names {queue}, which it may not send to",
                    f.id
                );
            }
        }
    }
    assert_eq!(roles.len(), 3);
}

#[test]
fn infra_iam_no_role_allows_a_wildcard_or_an_unscoped_resource() {
    let t = template();
    for role in ids_of_type(&t, "AWS::IAM::Role") {
        grants(&t, &role).unwrap_or_else(|p| panic!("{p:#?}"));
    }
    // The scheduler's role: invoke the report function, write its DLQ; assumed only by the
    // scheduler of this account.
    assert_eq!(
        grants(&t, "ReportScheduleRole").unwrap(),
        BTreeSet::from([
            "lambda:InvokeFunction on DailyReportFunction".to_string(),
            "sqs:SendMessage on ReportScheduleDLQ".to_string(),
        ])
    );
    // The run-time schedules' role: put a job on the jobs queue, nothing else.
    assert_eq!(
        grants(&t, "JobsSchedulerRole").unwrap(),
        BTreeSet::from(["sqs:SendMessage on JobsQueue".to_string()])
    );
    for role in ["ReportScheduleRole", "JobsSchedulerRole"] {
        let trust = &t["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0];
        assert_eq!(
            trust["Principal"]["Service"], "scheduler.amazonaws.com",
            "{role}"
        );
        assert!(
            !trust["Condition"]["StringEquals"]["aws:SourceAccount"].is_null(),
            "{role}"
        );
    }
    assert!(ids_of_type(&t, "AWS::IAM::Policy").is_empty());
    assert!(ids_of_type(&t, "AWS::IAM::ManagedPolicy").is_empty());
}

/// Problems with queue-processor's run-time schedules: the variables the Scheduler port
/// reads (`nightshift::config::Env::scheduler_target`) must name the group its grants cover,
/// a role it may pass, whose policy may send to the queue the schedules target.
fn scheduler_problems(t: &Value) -> Vec<String> {
    let f = functions(t)
        .into_iter()
        .find(|f| f.id == "QueueProcessorFunction")
        .expect("queue-processor");
    let var = |name: &str| f.env.get(name).and_then(referenced_id);
    let mut problems = Vec::new();
    let (Some(group), Some(role), Some(queue), Some(own_role)) = (
        var(nightshift::config::SCHEDULER_GROUP),
        var(nightshift::config::SCHEDULER_ROLE_ARN),
        var(nightshift::config::JOBS_QUEUE_ARN),
        f.role.clone(),
    ) else {
        return vec!["a scheduler variable or the role is not a reference".into()];
    };
    let own = grants(t, &own_role).unwrap_or_default();
    for action in ["CreateSchedule", "UpdateSchedule", "DeleteSchedule"] {
        let line = format!("scheduler:{action} on {group}/*");
        if !own.contains(&line) {
            problems.push(format!("{own_role} lacks {line}"));
        }
    }
    if !own
        .iter()
        .any(|g| g.starts_with(&format!("iam:PassRole on {role} ")))
    {
        problems.push(format!("{own_role} may not pass {role}"));
    }
    let passed = grants(t, &role).unwrap_or_default();
    if !passed.contains(&format!("sqs:SendMessage on {queue}")) {
        problems.push(format!(
            "{role} may not send to {queue}, the schedules' target"
        ));
    }
    if !f.sqs_sources.contains(&queue) {
        problems.push(format!(
            "{queue}, the schedules' target, is not the function's source"
        ));
    }
    problems
}

#[test]
fn infra_run_time_schedules_can_reach_the_jobs_queue() {
    let t = template();
    assert_eq!(scheduler_problems(&t), Vec::<String>::new());
    // Broken copies: the role may no longer send to the queue; the group is another one.
    let mut broken = t.clone();
    broken["Resources"]["JobsSchedulerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        [0]["Action"] = Value::String("sqs:GetQueueUrl".into());
    assert_eq!(
        scheduler_problems(&broken),
        ["JobsSchedulerRole may not send to JobsQueue, the schedules' target"]
    );
    let mut broken = t.clone();
    broken["Resources"]["QueueProcessorFunction"]["Properties"]["Environment"]["Variables"]["SCHEDULER_GROUP"] =
        serde_yaml::from_str("!Ref StateTable").unwrap();
    assert_eq!(
        scheduler_problems(&broken),
        [
            "QueueProcessorRole lacks scheduler:CreateSchedule on StateTable/*",
            "QueueProcessorRole lacks scheduler:UpdateSchedule on StateTable/*",
            "QueueProcessorRole lacks scheduler:DeleteSchedule on StateTable/*",
        ]
    );
}

#[test]
fn infra_iam_check_fails_on_wildcards_and_unscoped_resources() {
    let statement = |action: &str, resource: Value| {
        let mut t = template();
        let statements = t["Resources"]["EmailSenderRole"]["Properties"]["Policies"][0]
            ["PolicyDocument"]["Statement"]
            .as_sequence_mut()
            .unwrap();
        let mut s = serde_yaml::Mapping::new();
        s.insert("Sid".into(), "Extra".into());
        s.insert("Effect".into(), "Allow".into());
        s.insert("Action".into(), action.into());
        s.insert("Resource".into(), resource);
        statements.push(Value::Mapping(s));
        grants(&t, "EmailSenderRole").unwrap_err()
    };
    let get_att = |target: &str| {
        Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
            tag: serde_yaml::value::Tag::new("GetAtt"),
            value: Value::String(target.into()),
        }))
    };
    assert_eq!(
        statement("sqs:*", get_att("EmailsQueue.Arn")),
        ["EmailSenderRole/Extra: wildcard action sqs:*"]
    );
    assert_eq!(
        statement("dynamodb:Scan", "*".into()),
        ["EmailSenderRole/Extra: resource String(\"*\") is not scoped to this stack"]
    );
    assert_eq!(
        statement("s3:GetObject", get_att("StateTable.Arn")),
        ["EmailSenderRole/Extra: s3:GetObject on StateTable, a AWS::DynamoDB::Table"]
    );
    // `*` is for X-Ray's write actions alone: reading traces on it is unscoped.
    assert_eq!(
        statement("xray:GetTraceSummaries", "*".into()),
        ["EmailSenderRole/Extra: resource String(\"*\") is not scoped to this stack"]
    );
}

/// Every function traces actively (Lambda records its segments and passes the trace in
/// `Lambda-Runtime-Trace-Id`, <https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html>),
/// and its role may upload them: the grants above hold [`XRAY_WRITE`] for each.
#[test]
fn infra_every_function_traces_actively() {
    let t = template();
    assert_eq!(t["Globals"]["Function"]["Tracing"], "Active");
    for f in functions(&t) {
        let own = &t["Resources"][f.id.as_str()]["Properties"]["Tracing"];
        assert!(
            own.is_null() || *own == "Active",
            "{}: Tracing {own:?}",
            f.id
        );
        let role = f.role.clone().expect("a role");
        let got = grants(&t, &role).unwrap_or_else(|p| panic!("{p:#?}"));
        for action in XRAY_WRITE {
            assert!(
                got.contains(&format!("{action} on *")),
                "{role}: no {action}"
            );
        }
    }
}

// ------------------------------------------------------------------- the rest of the deploy

#[test]
fn infra_table_matches_the_dynamodb_adapter() {
    let t = template();
    let table = &t["Resources"]["StateTable"];
    assert_eq!(table["Type"], "AWS::DynamoDB::Table");
    assert_eq!(table["DeletionPolicy"], "Retain");
    let p = &table["Properties"];
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
    let keys: Vec<(String, String)> = as_list(&p["KeySchema"])
        .into_iter()
        .map(|k| {
            (
                scalar(&k["AttributeName"]).unwrap(),
                scalar(&k["KeyType"]).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (PARTITION_KEY.to_string(), "HASH".to_string()),
            (SORT_KEY.to_string(), "RANGE".to_string())
        ]
    );
    for attribute in as_list(&p["AttributeDefinitions"]) {
        assert_eq!(attribute["AttributeType"], "S");
    }
    assert_eq!(p["TimeToLiveSpecification"]["AttributeName"], TTL_ATTRIBUTE);
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    // STORE_URL names the table by the same expression as TableName.
    let name = match intrinsic(&p["TableName"]) {
        Some((f, Value::String(s))) if f == "Sub" => s.clone(),
        other => panic!("TableName: {other:?}"),
    };
    let store_url = &t["Globals"]["Function"]["Environment"]["Variables"]["STORE_URL"];
    assert!(
        matches!(intrinsic(store_url), Some((f, Value::String(s))) if f == "Sub" && s == &format!("dynamodb://{name}")),
        "{store_url:?}"
    );
}

#[test]
fn infra_bucket_is_private_encrypted_expiring_and_named_like_blobs_url() {
    let t = template();
    let bucket = &t["Resources"]["ReportsBucket"];
    assert_eq!(bucket["DeletionPolicy"], "Retain");
    let p = &bucket["Properties"];
    let block = &p["PublicAccessBlockConfiguration"];
    for key in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[key], true, "{key}");
    }
    assert_eq!(
        p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
            ["SSEAlgorithm"],
        "AES256"
    );
    let rules = as_list(&p["LifecycleConfiguration"]["Rules"]);
    assert!(rules.iter().any(|r| r["Status"] == "Enabled"
        && r["Prefix"] == "reports/"
        && !r["ExpirationInDays"].is_null()));
    let name = match intrinsic(&p["BucketName"]) {
        Some((f, Value::String(s))) if f == "Sub" => s.clone(),
        other => panic!("BucketName: {other:?}"),
    };
    let blobs_url = &t["Resources"]["DailyReportFunction"]["Properties"]["Environment"]["Variables"]
        ["BLOBS_URL"];
    assert!(
        matches!(intrinsic(blobs_url), Some((f, Value::String(s))) if f == "Sub" && s == &format!("s3://{name}")),
        "{blobs_url:?}"
    );
}

#[test]
fn infra_queues_are_encrypted_and_dead_letters_kept_fourteen_days() {
    let t = template();
    let queues = ids_of_type(&t, "AWS::SQS::Queue");
    assert_eq!(queues.len(), 10);
    for id in &queues {
        let p = &t["Resources"][id.as_str()]["Properties"];
        assert_eq!(p["SqsManagedSseEnabled"], true, "{id}");
        if id.ends_with("DLQ") || id == "ReportFailuresQueue" {
            assert_eq!(p["MessageRetentionPeriod"], 1_209_600, "{id}");
            assert!(p["RedrivePolicy"].is_null(), "{id}");
        } else {
            let dlq = referenced_id(&p["RedrivePolicy"]["deadLetterTargetArn"]).unwrap();
            assert_eq!(dlq, id.replace("Queue", "DLQ"));
        }
    }
}

/// The retry horizon is one setting (`RETRY_HORIZON_SECONDS` of the consumer); every mapped queue's
/// `maxReceiveCount` and `VisibilityTimeout` must be what `RetryPlan::derive` makes of it and
/// of its consumer's timeout, so that a retryable failure is retried for the horizon.
#[test]
fn infra_retry_horizon_drives_receive_counts_and_visibility() {
    let t = template();
    let mut mapped = 0;
    for f in functions(&t) {
        for queue in &f.sqs_sources {
            let horizon: u64 = f
                .env
                .get("RETRY_HORIZON_SECONDS")
                .and_then(scalar)
                .unwrap_or_else(|| panic!("{}: no RETRY_HORIZON_SECONDS", f.id))
                .parse()
                .unwrap();
            assert!(
                horizon >= 3600,
                "{}: the horizon must be at least an hour",
                f.id
            );
            mapped += 1;
            let plan = RetryPlan::derive(
                Duration::from_secs(horizon),
                Duration::from_secs(f.timeout_s),
            )
            .unwrap();
            let p = &t["Resources"][queue.as_str()]["Properties"];
            assert_eq!(
                p["RedrivePolicy"]["maxReceiveCount"], plan.max_receive_count,
                "{queue}: maxReceiveCount must be RetryPlan::derive's for {horizon} s"
            );
            assert_eq!(
                p["VisibilityTimeout"],
                plan.visibility_timeout.as_secs(),
                "{queue}: VisibilityTimeout must be RetryPlan::derive's for {horizon} s and {} s",
                f.timeout_s
            );
            // Even with every wait at its shortest, the last attempt comes after the horizon,
            // and a crash loop (no backoff set) spans it as well.
            assert!(plan.backoff.least_span(plan.max_receive_count).as_secs() >= horizon);
            assert!(
                plan.visibility_timeout.as_secs() * u64::from(plan.max_receive_count - 1)
                    >= horizon
            );
        }
    }
    assert_eq!(mapped, 4);
}

/// Completed idempotency records must outlive any dead letter, so a redrive never repeats
/// work: the TTL is `ttl_for` the mapped queues' retention, their DLQs' and the horizon.
#[test]
fn infra_idempotency_records_outlive_dead_letters() {
    let t = template();
    let ttl: u64 =
        scalar(&t["Globals"]["Function"]["Environment"]["Variables"]["IDEMPOTENCY_TTL_SECONDS"])
            .unwrap()
            .parse()
            .unwrap();
    let retention = |id: &str| {
        Duration::from_secs(
            t["Resources"][id]["Properties"]["MessageRetentionPeriod"]
                .as_u64()
                .unwrap(),
        )
    };
    let mut checked = 0;
    for f in functions(&t) {
        let horizon: u64 = f
            .env
            .get("RETRY_HORIZON_SECONDS")
            .and_then(scalar)
            .map(|h| h.parse().unwrap())
            .unwrap_or(0);
        for queue in &f.sqs_sources {
            let dlq = referenced_id(
                &t["Resources"][queue.as_str()]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"],
            )
            .unwrap();
            let needed = nightshift::idempotency::ttl_for(
                retention(queue),
                retention(&dlq),
                Duration::from_secs(horizon),
            );
            assert_eq!(Duration::from_secs(ttl), needed, "{queue} and {dlq}");
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
    assert!(nightshift::idempotency::DEFAULT_TTL >= Duration::from_secs(ttl));
}

/// Scheduler invokes Lambda asynchronously: its RetryPolicy and DeadLetterConfig only cover
/// failures to invoke, and a function error is retried by Lambda per the function's
/// EventInvokeConfig, then sent to its on-failure destination (or discarded without one).
/// https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets.html
/// https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html
#[test]
fn infra_scheduled_work_has_an_async_failure_path() {
    let t = template();
    let props = &t["Resources"]["DailyReportFunction"]["Properties"];
    let daily = &props["Events"]["Daily"];
    assert_eq!(daily["Type"], "ScheduleV2");
    let p = &daily["Properties"];
    assert_eq!(
        referenced_id(&p["ScheduleExpressionTimezone"]).as_deref(),
        Some("ReportTimeZone")
    );
    assert_eq!(p["RetryPolicy"]["MaximumRetryAttempts"], 3);
    assert_eq!(p["RetryPolicy"]["MaximumEventAgeInSeconds"], 3600);
    assert_eq!(
        referenced_id(&p["DeadLetterConfig"]["Arn"]).as_deref(),
        Some("ReportScheduleDLQ")
    );
    assert_eq!(
        referenced_id(&p["RoleArn"]).as_deref(),
        Some("ReportScheduleRole")
    );
    let invoke = &props["EventInvokeConfig"];
    assert_eq!(invoke["MaximumRetryAttempts"], 2);
    assert_eq!(invoke["MaximumEventAgeInSeconds"], 21600);
    let on_failure = &invoke["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"], "SQS");
    let destination = referenced_id(&on_failure["Destination"]).unwrap();
    assert_eq!(destination, "ReportFailuresQueue");
    assert!(
        t["Resources"][destination.as_str()]["Properties"]["FifoQueue"].is_null(),
        "Lambda destinations cannot be FIFO queues"
    );
}

/// The schedule must not fall in a spring-forward gap of the report's zone: Scheduler skips a
/// cron time that does not exist that day (and the backfill only repairs it a day later).
/// https://repost.aws/knowledge-center/eventbridge-scheduler-adjust-dst
#[test]
fn infra_daily_schedule_avoids_dst_gaps() {
    let t = template();
    let p = &t["Resources"]["DailyReportFunction"]["Properties"]["Events"]["Daily"]["Properties"];
    let expression = p["ScheduleExpression"].as_str().unwrap();
    let hour: u32 = expression
        .trim_start_matches("cron(")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .expect("a fixed hour");
    // `ReportTimeZone` is any IANA zone: the hour must exist once on every day of the year in
    // every one of them.
    let mut bad = Vec::new();
    for tz in chrono_tz::TZ_VARIANTS {
        let zone = tz.name();
        let mut day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        for _ in 0..366 {
            let at = day.and_hms_opt(hour, 0, 0).unwrap();
            if !matches!(
                chrono::TimeZone::from_local_datetime(&tz, &at),
                chrono::LocalResult::Single(_)
            ) {
                bad.push(format!("{zone} on {day}"));
            }
            day = day.succ_opt().unwrap();
        }
    }
    assert!(
        bad.is_empty(),
        "{expression} is skipped or repeated in {bad:?}"
    );
}

#[test]
fn infra_alarms_watch_every_dlq_the_backlog_and_every_function() {
    let t = template();
    let topic = ids_of_type(&t, "AWS::SNS::Topic");
    assert_eq!(topic, ["AlarmTopic", "MailFeedbackTopic"]);
    let subscription = &t["Resources"]["AlarmTopic"]["Properties"]["Subscription"][0];
    assert_eq!(subscription["Protocol"], "email");
    assert_eq!(
        referenced_id(&subscription["Endpoint"]).as_deref(),
        Some("AlarmEmail")
    );
    let mut watched = BTreeSet::new();
    for id in ids_of_type(&t, "AWS::CloudWatch::Alarm") {
        let p = &t["Resources"][id.as_str()]["Properties"];
        for actions in ["AlarmActions", "OKActions"] {
            let targets: Vec<Option<String>> = as_list(&p[actions])
                .into_iter()
                .map(referenced_id)
                .collect();
            assert_eq!(targets, [Some("AlarmTopic".to_string())], "{id} {actions}");
        }
        for metric in alarm_metrics(p) {
            // SES's reputation metrics are the account's: they have no dimension.
            let dimension = metric
                .dimensions
                .values()
                .next()
                .cloned()
                .unwrap_or_default();
            watched.insert(format!("{}/{} {dimension}", metric.namespace, metric.name));
        }
    }
    for dlq in [
        "JobsDLQ",
        "InventoryDLQ",
        "EmailsDLQ",
        "MailFeedbackDLQ",
        "ReportScheduleDLQ",
        "ReportFailuresQueue",
    ] {
        assert!(
            watched.contains(&format!("AWS/SQS/ApproximateNumberOfMessagesVisible {dlq}")),
            "{dlq}: {watched:?}"
        );
    }
    assert!(watched.contains("AWS/SQS/ApproximateAgeOfOldestMessage JobsQueue"));
    for f in functions(&t) {
        assert!(
            watched.contains(&format!("AWS/Lambda/Errors {}", f.id)),
            "{}: {watched:?}",
            f.id
        );
    }
}

/// A metric an alarm or the dashboard reads: namespace, name and dimensions, where a value
/// that refers to a resource (`!Ref X`, `!GetAtt X.Attr`, `${X}` in the dashboard) is the
/// resource's id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MetricRef {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

fn metric_ref(metric: &Value) -> MetricRef {
    let dimensions = as_list(&metric["Dimensions"])
        .into_iter()
        .map(|d| {
            let value = referenced_id(&d["Value"])
                .or_else(|| scalar(&d["Value"]))
                .expect("dimension value");
            (
                d["Name"].as_str().expect("dimension name").to_string(),
                value,
            )
        })
        .collect();
    MetricRef {
        namespace: metric["Namespace"].as_str().expect("namespace").to_string(),
        name: metric["MetricName"]
            .as_str()
            .expect("metric name")
            .to_string(),
        dimensions,
    }
}

/// The metrics an alarm reads: its one metric, or each `MetricStat` of a math alarm.
fn alarm_metrics(p: &Value) -> Vec<MetricRef> {
    if p["MetricName"].is_string() {
        return vec![metric_ref(p)];
    }
    as_list(&p["Metrics"])
        .into_iter()
        .filter(|q| !q["MetricStat"].is_null())
        .map(|q| metric_ref(&q["MetricStat"]["Metric"]))
        .collect()
}

/// The dashboard's body with each `${X}` or `${X.Attr}` of its `!Sub` replaced by `X` (the
/// names it substitutes are returned too), parsed.
fn dashboard_body(t: &Value) -> (serde_json::Value, Vec<String>) {
    let body = &t["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"];
    let (f, text) = intrinsic(body).expect("DashboardBody is a !Sub");
    assert_eq!(f, "Sub");
    let text = text.as_str().expect("a !Sub of one string");
    let names = sub_names(text);
    let mut plain = text.to_string();
    for name in &names {
        let id = name.split('.').next().unwrap();
        plain = plain.replace(&format!("${{{name}}}"), id);
    }
    let body = serde_json::from_str(&plain).expect("the dashboard body is JSON");
    (body, names)
}

/// The metrics the dashboard's graphs name: `[namespace, name, key, value, ..., {options}]`
/// entries, and the `{namespace,keys} MetricName="name"` of its `SEARCH` expressions (their
/// `key="value"` terms as dimensions).
fn dashboard_metrics(body: &serde_json::Value) -> Vec<MetricRef> {
    let mut found = Vec::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        for entry in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let entry = entry.as_array().expect("a metric entry is an array");
            if let Some(expression) = entry[0]["expression"].as_str() {
                let Some((_, rest)) = expression.split_once("SEARCH('{") else {
                    continue;
                };
                let (schema, terms) = rest.split_once('}').expect("a search schema");
                let mut keys = schema.split(',');
                let namespace = keys.next().unwrap().to_string();
                let mut dimensions: BTreeMap<String, String> =
                    keys.map(|k| (k.to_string(), String::new())).collect();
                let mut name = String::new();
                let terms = terms.split('\'').next().unwrap();
                for term in terms.split_whitespace() {
                    let (key, value) = term.split_once('=').expect("key=value");
                    let value = value.trim_matches('"').to_string();
                    if key == "MetricName" {
                        name = value;
                    } else {
                        dimensions.insert(key.to_string(), value);
                    }
                }
                found.push(MetricRef {
                    namespace,
                    name,
                    dimensions,
                });
                continue;
            }
            let text: Vec<&str> = entry.iter().filter_map(|v| v.as_str()).collect();
            let dimensions = text[2..]
                .chunks(2)
                .map(|kv| (kv[0].to_string(), kv[1].to_string()))
                .collect();
            found.push(MetricRef {
                namespace: text[0].to_string(),
                name: text[1].to_string(),
                dimensions,
            });
        }
    }
    found
}

/// Every metric of `namespace` the template's alarms and dashboard read (tests/it/metrics.rs
/// holds the functions to emitting each of the template's own namespace); a `SEARCH` term
/// is a dimension with an empty value when the search leaves it open.
pub(crate) fn template_metrics(namespace: &str) -> BTreeSet<MetricRef> {
    let t = template();
    let mut all: Vec<MetricRef> = ids_of_type(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .flat_map(|id| alarm_metrics(&t["Resources"][id.as_str()]["Properties"]))
        .collect();
    all.extend(dashboard_metrics(&dashboard_body(&t).0));
    all.into_iter()
        .filter(|m| m.namespace == namespace)
        .collect()
}

/// The namespace the template gives the functions' metrics.
pub(crate) fn template_metrics_namespace() -> String {
    template()["Globals"]["Function"]["Environment"]["Variables"]
        [nightshift::metrics::NAMESPACE_VAR]
        .as_str()
        .expect("the template sets the metrics namespace")
        .to_string()
}

/// The `Function` dimension each template function's metrics carry (its crate's `FUNCTION`).
const METRICS_FUNCTION: &[(&str, &str)] = &[
    ("QueueProcessorFunction", queue_processor::FUNCTION),
    ("EmailSenderFunction", email_sender::FUNCTION),
    ("DailyReportFunction", daily_report::FUNCTION),
];

/// What is wrong with the alarms beyond "a DLQ is not empty": each function's failure-rate
/// alarm, its throttles, the daily report's absence, the state table's throttling.
fn rate_alarm_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let namespace = template_metrics_namespace();
    let alarms: Vec<(String, &Value)> = ids_of_type(t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|id| {
            let p = &t["Resources"][id.as_str()]["Properties"];
            (id, p)
        })
        .collect();
    for f in functions(t) {
        let metrics_name = METRICS_FUNCTION
            .iter()
            .find(|(id, _)| *id == f.id)
            .map(|(_, name)| *name)
            .unwrap_or_else(|| panic!("{}: no metrics name known", f.id));
        let own = |m: &MetricRef| {
            (m.namespace == namespace
                && m.dimensions.get("Function").map(String::as_str) == Some(metrics_name))
                || (m.namespace == "AWS/Lambda" && m.dimensions.get("FunctionName") == Some(&f.id))
        };
        // A rate: a math alarm over two of the function's metrics whose returned expression
        // divides, at the stack's FailureRatePercent.
        let rate = alarms.iter().any(|(_, p)| {
            let metrics = alarm_metrics(p);
            let returned = as_list(&p["Metrics"])
                .into_iter()
                .filter(|q| q["ReturnData"].as_bool() == Some(true))
                .filter_map(|q| q["Expression"].as_str())
                .collect::<Vec<_>>();
            metrics.len() == 2
                && metrics.iter().all(own)
                && returned.len() == 1
                && returned[0].contains('/')
                && referenced_id(&p["Threshold"]).as_deref() == Some("FailureRatePercent")
        });
        if !rate {
            problems.push(format!("{}: no failure-rate alarm", f.id));
        }
        let throttles = alarms.iter().any(|(_, p)| {
            alarm_metrics(p)
                .iter()
                .any(|m| m.namespace == "AWS/Lambda" && m.name == "Throttles" && own(m))
        });
        if !throttles {
            problems.push(format!("{}: no throttles alarm", f.id));
        }
    }
    let table_throttles: BTreeSet<String> = alarms
        .iter()
        .flat_map(|(_, p)| alarm_metrics(p))
        .filter(|m| {
            m.namespace == "AWS/DynamoDB"
                && m.dimensions.get("TableName").map(String::as_str) == Some("StateTable")
        })
        .map(|m| m.name)
        .collect();
    for name in ["ReadThrottleEvents", "WriteThrottleEvents"] {
        if !table_throttles.contains(name) {
            problems.push(format!("StateTable: no alarm on {name}"));
        }
    }
    // No report: ReportsGenerated below 1 for longer than the longest gap between two daily
    // runs (25 hours, across a daylight-saving change), missing data breaching.
    let missing = alarms.iter().find(|(_, p)| {
        alarm_metrics(p).iter().any(|m| {
            m.namespace == namespace
                && m.name == "ReportsGenerated"
                && m.dimensions.get("Function").map(String::as_str) == Some(daily_report::FUNCTION)
        })
    });
    match missing {
        None => problems.push("no alarm on a missing daily report".into()),
        Some((id, p)) => {
            let period = p["Period"].as_u64().unwrap_or(0);
            let periods = p["EvaluationPeriods"].as_u64().unwrap_or(0);
            let window = period * periods;
            if window <= 25 * 3600 || window > 7 * 86_400 {
                problems.push(format!(
                    "{id}: watches {window} s, not more than a 25-hour gap between runs (and at most 7 days)"
                ));
            }
            if p["DatapointsToAlarm"].as_u64().unwrap_or(periods) != periods
                || p["ComparisonOperator"] != "LessThanThreshold"
                || p["Threshold"].as_f64() != Some(1.0)
                || p["TreatMissingData"] != "breaching"
            {
                problems.push(format!(
                    "{id}: must alarm when every period of the window has no report, missing data included"
                ));
            }
        }
    }
    problems
}

#[test]
fn infra_alarms_watch_failure_rates_throttles_and_the_daily_report() {
    let t = template();
    assert_eq!(rate_alarm_problems(&t), Vec::<String>::new());
    // And the check fails on a template without them.
    let mut broken = t.clone();
    let resources = broken["Resources"].as_mapping_mut().unwrap();
    for id in [
        "EmailSenderFailureRateAlarm",
        "DailyReportThrottlesAlarm",
        "StateTableThrottlesAlarm",
    ] {
        resources.remove(id);
    }
    for key in ["EvaluationPeriods", "DatapointsToAlarm"] {
        broken["Resources"]["DailyReportMissingAlarm"]["Properties"][key] = Value::from(24);
    }
    assert_eq!(
        rate_alarm_problems(&broken),
        [
            "EmailSenderFunction: no failure-rate alarm",
            "DailyReportFunction: no throttles alarm",
            "StateTable: no alarm on ReadThrottleEvents",
            "StateTable: no alarm on WriteThrottleEvents",
            "DailyReportMissingAlarm: watches 86400 s, not more than a 25-hour gap between runs (and at most 7 days)",
        ]
    );
}

#[test]
fn infra_dashboard_shows_every_alarm_and_resolves_every_name() {
    let t = template();
    let (body, names) = dashboard_body(&t);
    let resources = resources(&t);
    for name in &names {
        let id = name.split('.').next().unwrap();
        assert!(
            id.starts_with("AWS::") || resources.contains_key(id),
            "the dashboard names {name}, which is no resource"
        );
    }
    let shown: BTreeSet<String> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let alarms: BTreeSet<String> = ids_of_type(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .collect();
    assert_eq!(
        shown, alarms,
        "the dashboard's alarm widget lists every alarm"
    );
    // The graphs: jobs, emails, reports, queues, functions, the table.
    let graphed: BTreeSet<(String, String)> = dashboard_metrics(&body)
        .into_iter()
        .map(|m| (m.namespace, m.name))
        .collect();
    let namespace = template_metrics_namespace();
    for (ns, name) in [
        (namespace.as_str(), "Jobs"),
        (&namespace, "JobDuration"),
        (&namespace, "EmailsSent"),
        (&namespace, "EmailsThrottled"),
        (&namespace, "ReportsGenerated"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/DynamoDB", "WriteThrottleEvents"),
    ] {
        assert!(
            graphed.contains(&(ns.to_string(), name.to_string())),
            "the dashboard has no graph of {ns}/{name}"
        );
    }
}

#[test]
fn infra_parameters_outputs_and_stages() {
    let t = template();
    for name in [
        "Stage",
        "SenderAddress",
        "ReportRecipients",
        "ReportTimeZone",
        "AlarmEmail",
        "FailureRatePercent",
    ] {
        assert!(!t["Parameters"][name].is_null(), "parameter {name}");
    }
    assert_eq!(
        t["Parameters"]["Stage"]["AllowedValues"],
        serde_yaml::from_str::<Value>("[dev, prod]").unwrap()
    );
    let outputs: BTreeSet<String> = t["Outputs"]
        .as_mapping()
        .unwrap()
        .values()
        .filter_map(|o| referenced_id(&o["Value"]))
        .collect();
    for queue in ids_of_type(&t, "AWS::SQS::Queue") {
        assert!(outputs.contains(&queue), "no output for {queue}'s URL");
    }
    let samconfig = std::fs::read_to_string(infra().join("samconfig.toml")).unwrap();
    for (env, stage) in [("default", "dev"), ("prod", "prod")] {
        let section = format!("[{env}.deploy.parameters]");
        let at = samconfig
            .find(&section)
            .unwrap_or_else(|| panic!("{section}"));
        let body = &samconfig[at..];
        let body = &body[..body[1..].find("\n[").map_or(body.len(), |i| i + 1)];
        assert!(body.contains(&format!("Stage=\\\"{stage}\\\"")), "{body}");
        let stack = format!("[{env}.global.parameters]\nstack_name = \"nightshift-{stage}\"");
        assert!(samconfig.contains(&stack), "{stack}");
    }
}

// ------------------------------------------------------------------------ mail feedback

/// Problems with the mail feedback path: sends name the stack's configuration set, whose
/// event destination publishes bounces, complaints and deliveries to a topic SES may publish
/// to, which delivers them raw to a queue it may send to, which email-sender consumes; and the
/// SES reputation alarms sit at the rates SES reviews accounts for.
fn feedback_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let r = &t["Resources"];
    let set = &r["MailConfigurationSet"];
    let env = &r["EmailSenderFunction"]["Properties"]["Environment"]["Variables"];
    let sub = |v: &Value| match intrinsic(v) {
        Some((f, Value::String(s))) if f == "Sub" => Some(s.clone()),
        _ => None,
    };
    if set["Type"] != "AWS::SES::ConfigurationSet" {
        problems.push("no MailConfigurationSet".to_string());
    }
    // The function names the set by value (the emulator models no SES), so the two must
    // spell the same name.
    if sub(&set["Properties"]["Name"]).is_none()
        || sub(&set["Properties"]["Name"]) != sub(&env["MAIL_CONFIGURATION_SET"])
    {
        problems.push("MAIL_CONFIGURATION_SET is not MailConfigurationSet's Name".to_string());
    }
    let destination = &r["MailFeedbackEventDestination"]["Properties"];
    if referenced_id(&destination["ConfigurationSetName"]).as_deref()
        != Some("MailConfigurationSet")
    {
        problems.push("the event destination is not on MailConfigurationSet".to_string());
    }
    let ed = &destination["EventDestination"];
    let types: BTreeSet<String> = as_list(&ed["MatchingEventTypes"])
        .into_iter()
        .filter_map(scalar)
        .collect();
    for needed in ["bounce", "complaint", "delivery"] {
        if !types.contains(needed) {
            problems.push(format!("the event destination does not publish {needed}"));
        }
    }
    if ed["Enabled"].as_bool() != Some(true) {
        problems.push("the event destination is disabled".to_string());
    }
    let topic = referenced_id(&ed["SnsDestination"]["TopicARN"]);
    if topic.as_deref() != Some("MailFeedbackTopic") {
        problems.push(format!("the event destination publishes to {topic:?}"));
    }
    // SES may publish to the topic, for this configuration set only.
    let publish = &r["MailFeedbackTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    if publish["Principal"]["Service"] != "ses.amazonaws.com"
        || publish["Action"] != "sns:Publish"
        || !sub(&publish["Condition"]["ArnLike"]["AWS:SourceArn"])
            .is_some_and(|arn| arn.ends_with(":configuration-set/${MailConfigurationSet}"))
    {
        problems.push("SES may not publish to MailFeedbackTopic for the set".to_string());
    }
    let subscription = &r["MailFeedbackSubscription"]["Properties"];
    if referenced_id(&subscription["TopicArn"]).as_deref() != Some("MailFeedbackTopic")
        || subscription["Protocol"] != "sqs"
        || referenced_id(&subscription["Endpoint"]).as_deref() != Some("MailFeedbackQueue")
    {
        problems.push("MailFeedbackTopic is not subscribed by MailFeedbackQueue".to_string());
    }
    // Raw: the body is SES's event, which `nightshift::feedback::parse` reads (it unwraps an
    // envelope too, but raw is what the fixtures and the emulator carry).
    if subscription["RawMessageDelivery"].as_bool() != Some(true) {
        problems.push("the subscription does not use raw message delivery".to_string());
    }
    let allow = &r["MailFeedbackQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    if allow["Principal"]["Service"] != "sns.amazonaws.com"
        || allow["Action"] != "sqs:SendMessage"
        || referenced_id(&allow["Condition"]["ArnEquals"]["aws:SourceArn"]).as_deref()
            != Some("MailFeedbackTopic")
    {
        problems.push("MailFeedbackTopic may not send to MailFeedbackQueue".to_string());
    }
    let consumer = functions(t)
        .into_iter()
        .find(|f| f.sqs_sources.iter().any(|q| q == "MailFeedbackQueue"));
    if consumer.map(|f| f.id).as_deref() != Some("EmailSenderFunction") {
        problems.push("email-sender does not consume MailFeedbackQueue".to_string());
    }
    let redrive = &r["MailFeedbackQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"];
    if referenced_id(redrive).as_deref() != Some("MailFeedbackDLQ") {
        problems.push("MailFeedbackQueue does not redrive to MailFeedbackDLQ".to_string());
    }
    // SES reviews an account at a 5% bounce rate or a 0.1% complaint rate; its reputation
    // metrics are fractions (0.05, 0.001) in AWS/SES.
    // https://docs.aws.amazon.com/ses/latest/dg/reputationdashboard-messages.html
    // https://docs.aws.amazon.com/ses/latest/dg/reputationdashboard-cloudwatch-alarm.html
    for (metric, threshold) in [
        ("Reputation.BounceRate", 0.05),
        ("Reputation.ComplaintRate", 0.001),
    ] {
        let alarm = ids_of_type(t, "AWS::CloudWatch::Alarm")
            .into_iter()
            .find(|id| {
                let p = &r[id.as_str()]["Properties"];
                p["Namespace"] == "AWS/SES" && p["MetricName"] == metric
            });
        let Some(alarm) = alarm else {
            problems.push(format!("no alarm on AWS/SES {metric}"));
            continue;
        };
        let p = &r[alarm.as_str()]["Properties"];
        if p["Threshold"].as_f64() != Some(threshold)
            || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold"
            || !p["Dimensions"].is_null()
        {
            problems.push(format!(
                "{alarm}: not >= {threshold} on the account's {metric}"
            ));
        }
    }
    problems
}

#[test]
fn infra_mail_feedback_reaches_email_sender_and_reputation_is_alarmed() {
    let problems = feedback_problems(&template());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn infra_mail_feedback_check_fails_on_a_broken_template() {
    let mut t = template();
    t["Resources"]["MailFeedbackSubscription"]["Properties"]["RawMessageDelivery"] =
        Value::Bool(false);
    t["Resources"]["MailFeedbackEventDestination"]["Properties"]["EventDestination"]["MatchingEventTypes"] =
        serde_yaml::from_str("[delivery]").unwrap();
    t["Resources"]["MailComplaintRateAlarm"]["Properties"]["Threshold"] =
        serde_yaml::from_str("0.01").unwrap();
    t["Resources"]["EmailSenderFunction"]["Properties"]["Environment"]["Variables"]["MAIL_CONFIGURATION_SET"] =
        Value::String("other".into());
    assert_eq!(
        feedback_problems(&t),
        [
            "MAIL_CONFIGURATION_SET is not MailConfigurationSet's Name",
            "the event destination does not publish bounce",
            "the event destination does not publish complaint",
            "the subscription does not use raw message delivery",
            "MailComplaintRateAlarm: not >= 0.001 on the account's Reputation.ComplaintRate",
        ]
    );
}
