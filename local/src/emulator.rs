//! The emulator assembled from a template: queues, the runtime with the real function
//! binaries (or another invoker), one poller per SQS event source and the schedules, all on one
//! clock, and the endpoint's listener (served by `crate::server`, where `Emulator::start` is).
//! [`Emulator`] is both what `nightshift up` runs and the library API the tests and the control
//! endpoint use (`send`, `fire`, `advance`, `status`, `dlq`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::clock::{ClockSpec, SharedClock};
use crate::history::History;
use crate::invoke_async::{Accepted, AsyncInvoker};
use crate::invoker::{
    Decorator, InvokeRequest, InvokeResponse, Invoker, Layers, RemoteInvoker, Slot,
};
use crate::mapping::{self, MappingConfig, MappingHandle, MappingStats};
use crate::runtime::{FunctionConfig, ProcessInvoker, Runtime, RuntimeOptions};
use crate::schedule::runner::{RunnerConfig, ScheduleRunner};
use crate::scheduler_api::SchedulerApi;
use crate::shutdown::{Shutdown, Signal};
use crate::sqs::engine::{JournalConfig, SqsConfig, SqsEngine};
use crate::sqs::model::OutgoingMessage;
use crate::template::{FunctionDef, LoadOptions, QueueDef, Template};

/// Why the emulator could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The template could not be loaded or modelled.
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// The SQS engine refused something.
    #[error("sqs: {0}")]
    Sqs(#[from] crate::sqs::error::SqsError),
    /// Building the functions failed.
    #[error("build failed: {0}")]
    Build(String),
    /// The project cannot be run as it is: no function the emulator can run, a `CodeUri`
    /// that does not exist, a binary cargo does not know. The message names the function,
    /// where the template declares it, and what to do.
    #[error("{0}")]
    Project(String),
    /// Binding or serving failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A name given by the user matches nothing.
    #[error("{kind} {name:?} not found; known: {known}")]
    NotFound {
        /// `queue`, `schedule`, `function`.
        kind: &'static str,
        /// What was asked for.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
    /// An invocation could not reach its function.
    #[error(transparent)]
    Invoke(#[from] crate::invoker::InvokeError),
    /// The operation needs another clock (advance needs `--clock manual`).
    #[error("{0}")]
    Clock(String),
    /// A function could not be added to the runtime.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    /// An SQS event source of the template cannot be mapped.
    #[error(transparent)]
    Mapping(#[from] crate::mapping::MappingError),
    /// The Scheduler API's kept schedules could not be loaded.
    #[error(transparent)]
    SchedulerApi(#[from] crate::scheduler_api::SchedulerApiError),
    /// A schedule could not be set up, started or fired.
    #[error(transparent)]
    Schedule(#[from] crate::schedule::runner::RunnerError),
    /// The accelerated clock would end a mapped queue's visibility timeout before its
    /// function's timeout.
    #[error(transparent)]
    TooFast(#[from] TooFast),
    /// The replay sandbox could not serve its SQS endpoint.
    #[error("cannot serve sqs: {0}")]
    ServeSqs(#[source] crate::sqs::error::SqsError),
    /// `fire` reached the schedule's target, which could not be invoked.
    #[error("cannot invoke the schedule's target: {0}")]
    FireTarget(#[source] crate::invoker::InvokeError),
    /// A function's prebuilt artifact (`CodeUri` naming a `bootstrap` or a `.zip`) cannot be
    /// run.
    #[error("function {function}: {source}")]
    Artifact {
        /// The function's logical id.
        function: String,
        /// What is wrong with the artifact.
        #[source]
        source: crate::artifact::ArtifactError,
    },
}

/// An accelerated clock under which a mapped queue's visibility timeout, which the clock
/// shortens, ends before its function's timeout, which stays real: the messages would be
/// handed out again while their invocation still runs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "--clock x{factor} makes the {visibility_s} s visibility timeout of queue {queue} last \
     {real:.1} s of real time, less than the {timeout_s} s timeout of {function}, which stays \
     real: its messages would be handed out again while their invocation still runs; use at \
     most x{most}"
)]
pub struct TooFast {
    /// The clock's factor.
    pub factor: f64,
    /// The queue's visibility timeout, in clock seconds.
    pub visibility_s: u32,
    /// The queue.
    pub queue: String,
    /// The visibility timeout in real seconds.
    pub real: f64,
    /// The function's timeout, in real seconds.
    pub timeout_s: u32,
    /// The function.
    pub function: String,
    /// The largest factor that keeps the visibility timeout above the function's timeout.
    pub most: f64,
}

/// How the functions are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokerChoice {
    /// The built binaries under the emulator's Lambda runtime (default).
    Process {
        /// Build with `--release`.
        release: bool,
        /// Run `cargo build` first.
        build: bool,
    },
    /// A Lambda Invoke API, e.g. `cargo lambda watch` on `http://127.0.0.1:9000`.
    Remote(String),
}

/// Everything `nightshift up` needs.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// The workspace root: where `cargo build` runs.
    pub project_root: PathBuf,
    /// The functions' working directory, where their relative paths (`.nightshift/outbox`)
    /// land; the project root when `None`.
    pub work_dir: Option<PathBuf>,
    /// The SAM template.
    pub template: PathBuf,
    /// The `sam local --env-vars` file, if any.
    pub env_file: Option<PathBuf>,
    /// Address of the SQS and control endpoint (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Where the queue journal lives; `None` keeps queues in memory only.
    pub state_dir: Option<PathBuf>,
    /// Which clock.
    pub clock: ClockSpec,
    /// Where the clock starts (for accelerated and manual clocks).
    pub clock_start: DateTime<Utc>,
    /// How functions are invoked.
    pub invoker: InvokerChoice,
    /// The stack name used in resource names.
    pub stack_name: String,
    /// Template parameter values (`--parameter-overrides`), which win over `Default`s.
    pub parameter_overrides: BTreeMap<String, String>,
    /// The region in ARNs and `AWS_REGION`.
    pub region: String,
    /// Extra environment variables of the process-runtime functions, by function name, `*`
    /// for every function; they override the template's. Fault injection
    /// (`NIGHTSHIFT_FAULTS`, see [`crate::faults`]) goes through here.
    pub extra_env: BTreeMap<String, BTreeMap<String, String>>,
    /// How the functions' log lines are written: for people on a terminal, JSON lines to a
    /// file or a pipe ([`crate::logs::LogFormat::detect`]), or through `tracing`.
    pub log_format: crate::logs::LogFormat,
}

/// Templates `sam` finds in a project's directory, in the order it looks ("it looks for a
/// template.[yaml|yml] file in your current working directory by default",
/// <https://github.com/awsdocs/aws-sam-developer-guide/blob/master/doc_source/serverless-sam-cli-using-validate.md>),
/// then the place this workspace keeps its own.
pub const TEMPLATE_CANDIDATES: [&str; 3] = ["template.yaml", "template.yml", "infra/template.yaml"];

/// Environment files (`sam local --env-vars` format) read when none is named: this
/// workspace's, then the name `sam`'s documentation uses.
pub const ENV_FILE_CANDIDATES: [&str; 2] = ["infra/env.local.json", "env.json"];

/// The first of `candidates` under `root` that is a file.
pub fn first_existing(root: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(|c| root.join(c))
        .find(|p| p.is_file())
}

impl EmulatorOptions {
    /// Defaults for a project at `root`: the first of [`TEMPLATE_CANDIDATES`] there (else
    /// `infra/template.yaml`, whose absence the start reports), the first of
    /// [`ENV_FILE_CANDIDATES`] if any, `127.0.0.1:9324`, state in `.nightshift/`, the real
    /// clock, process invoker with build, function logs for a terminal on one, else JSON.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        EmulatorOptions {
            template: first_existing(&root, &TEMPLATE_CANDIDATES)
                .unwrap_or_else(|| root.join("infra/template.yaml")),
            env_file: first_existing(&root, &ENV_FILE_CANDIDATES),
            addr: SocketAddr::from(([127, 0, 0, 1], 9324)),
            state_dir: Some(root.join(".nightshift")),
            clock: ClockSpec::Real,
            clock_start: Utc::now(),
            invoker: InvokerChoice::Process {
                release: false,
                build: true,
            },
            stack_name: "nightshift".into(),
            parameter_overrides: BTreeMap::new(),
            region: "us-east-1".into(),
            work_dir: None,
            extra_env: BTreeMap::new(),
            log_format: crate::logs::LogFormat::detect(),
            project_root: root,
        }
    }
}

pub use crate::status::{
    DlqMessage, FunctionStatus, MappingStatus, QueueStatus, ScheduleDetail, ScheduleStatus, Status,
};

/// A running emulator.
pub struct Emulator {
    template: Template,
    engine: SqsEngine,
    clock: SharedClock,
    clock_spec: ClockSpec,
    invoker: Arc<dyn Invoker>,
    queues: AsyncInvoker,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    runtime: Option<Runtime>,
    mappings: std::sync::Mutex<Vec<MappingHandle>>,
    schedules: ScheduleRunner,
    scheduler_api: Arc<SchedulerApi>,
    schedules_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    addr: SocketAddr,
    stop: Shutdown,
    server: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    history: History,
    series: crate::series::Series,
    /// The per-run token the dashboard's requests carry (see [`crate::dashboard`]).
    token: String,
}

/// Under an accelerated clock, visibility timeouts pass `factor` times faster while function
/// timeouts stay in real time (the functions run for real). A mapped queue whose visibility
/// timeout would then end before its function's timeout would hand the same messages to a
/// second invocation while the first still runs: such a factor is refused. Otherwise the note
/// names the shortest visibility timeout in real time, to print at start-up.
pub fn accelerated_visibility(
    template: &crate::template::Template,
    factor: f64,
) -> Result<Option<String>, TooFast> {
    let mut shortest: Option<(f64, &str)> = None;
    for source in &template.event_sources {
        let (Some(queue), Some(function)) = (
            template.queue(&source.queue),
            template.functions.get(&source.function),
        ) else {
            continue;
        };
        let real = f64::from(queue.visibility_timeout_s) / factor;
        if real < f64::from(function.timeout_s) {
            let most = f64::from(queue.visibility_timeout_s) / f64::from(function.timeout_s.max(1));
            return Err(TooFast {
                factor,
                visibility_s: queue.visibility_timeout_s,
                queue: queue.name.clone(),
                real,
                timeout_s: function.timeout_s,
                function: function.name.clone(),
                most: most.floor(),
            });
        }
        if shortest.is_none_or(|(s, _)| real < s) {
            shortest = Some((real, &queue.name));
        }
    }
    Ok(shortest.map(|(real, name)| {
        format!(
            "accelerated clock x{factor}: visibility timeouts pass {factor} times faster (the \
             shortest, {name}'s, lasts {real:.1} s of real time) while function timeouts stay real"
        )
    }))
}

/// Builds the function binaries with cargo, with cargo's own progress display.
pub async fn build_functions(
    root: &Path,
    binaries: &[String],
    release: bool,
) -> Result<(), EmulatorError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata = cargo_metadata(&cargo, root).await?;
    cargo_build(&cargo, root, &metadata, binaries, release).await
}

/// `cargo build` of `binaries` in the workspace at `root`, whose `cargo metadata` is
/// `metadata`.
async fn cargo_build(
    cargo: &str,
    root: &Path,
    metadata: &serde_json::Value,
    binaries: &[String],
    release: bool,
) -> Result<(), EmulatorError> {
    let mut cmd = tokio::process::Command::new(cargo);
    // `--workspace`: a workspace's default members may leave functions out (this one's are
    // the deploy crates only); a single crate is a workspace of one.
    cmd.args(["build", "--workspace"]).current_dir(root);
    // Fault injection is a test feature of nightshift's functions: the emulator's builds
    // carry it (`up --faults`, `check`), deploy builds do not. Another project's functions
    // have no such feature and are built as they are.
    if has_package(metadata, "nightshift") {
        cmd.args(["--features", "nightshift/faults"]);
    }
    if release {
        cmd.arg("--release");
    }
    for binary in binaries {
        cmd.args(["--bin", binary]);
    }
    info!(
        functions = binaries.join(", "),
        release, "building functions"
    );
    let status = cmd
        .status()
        .await
        .map_err(|e| EmulatorError::Build(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(EmulatorError::Build(format!(
            "cargo build exited with {status}"
        )));
    }
    Ok(())
}

/// `file:line` of `logical_id`'s entry in the template at `path` (its first line at that key,
/// YAML `  Id:` or JSON `"Id":`), for messages that point at it; the file alone when the entry
/// is not found.
pub fn template_line(path: &Path, logical_id: &str) -> String {
    let line = std::fs::read_to_string(path).ok().and_then(|text| {
        text.lines().position(|l| {
            let t = l.trim_start();
            let key = t
                .strip_prefix(logical_id)
                .or_else(|| {
                    t.strip_prefix('"')
                        .and_then(|r| r.strip_prefix(logical_id))
                        .and_then(|r| r.strip_prefix('"'))
                })
                .map(str::trim_start);
            t.len() < l.len() && key.is_some_and(|rest| rest.starts_with(':'))
        })
    });
    match line {
        Some(i) => format!("{}:{}", path.display(), i + 1),
        None => path.display().to_string(),
    }
}

/// Refuses, before cargo builds, a function of `crates` cargo cannot build: its `CodeUri` does
/// not exist, or no package of the workspace has its binary. The message names the function,
/// its line in the template and what to do, where cargo's own error would name neither.
/// Returns the workspace's `cargo metadata`, which the build reads too.
async fn check_buildable(
    options: &EmulatorOptions,
    crates: &[(&String, &FunctionDef)],
    cargo: &str,
) -> Result<serde_json::Value, EmulatorError> {
    for (id, f) in crates {
        if let Some(dir) = f.code_uri.as_deref().filter(|d| !d.exists()) {
            return Err(EmulatorError::Project(format!(
                "function {id} ({}): its CodeUri {} does not exist; point it at the function's \
                 crate (the directory of its Cargo.toml) or at a built artifact (a bootstrap \
                 or a .zip)",
                template_line(&options.template, id),
                dir.display()
            )));
        }
    }
    let metadata = cargo_metadata(cargo, &options.project_root).await?;
    let binaries: Vec<&str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str())
        .collect();
    for (id, f) in crates {
        if !binaries.contains(&f.binary.as_str()) {
            return Err(EmulatorError::Project(format!(
                "function {id} ({}): no package of the cargo workspace at {} has a binary named \
                 {}; set Metadata.BuildProperties.Binary to one it has ({}), or CodeUri to the \
                 function's crate",
                template_line(&options.template, id),
                options.project_root.display(),
                f.binary,
                if binaries.is_empty() {
                    "none".to_owned()
                } else {
                    binaries.join(", ")
                }
            )));
        }
    }
    Ok(metadata)
}

/// `cargo metadata --no-deps` of the workspace at `root` (its members and their targets, as
/// cargo reads them).
async fn cargo_metadata(cargo: &str, root: &Path) -> Result<serde_json::Value, EmulatorError> {
    let out = tokio::process::Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root)
        .output()
        .await
        .map_err(|e| EmulatorError::Build(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        return Err(EmulatorError::Build(format!(
            "cargo metadata in {} exited with {}: {}",
            root.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| EmulatorError::Build(format!("cargo metadata answered no JSON: {e}")))
}

/// Whether `cargo metadata` lists a package named `name`.
fn has_package(metadata: &serde_json::Value, name: &str) -> bool {
    metadata["packages"]
        .as_array()
        .is_some_and(|packages| packages.iter().any(|p| p["name"] == name))
}

/// Where cargo puts the binaries of `root`.
pub fn target_dir(root: &Path, release: bool) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"));
    base.join(if release { "release" } else { "debug" })
}

/// Creates the template's queues in `engine` (DLQs first), with their attributes; a queue
/// already there (kept in the state dir) is set to what the template says. The emulator and
/// the replay sandbox both build their queues here, so they cannot drift apart.
pub(crate) fn create_queues(
    engine: &SqsEngine,
    template: &Template,
) -> Result<(), crate::sqs::SqsError> {
    for queue in template.queues_in_creation_order() {
        let mut attrs = queue_attributes(queue, template);
        if engine.get_queue_url(&queue.name).is_ok() {
            // A queue kept in the state dir follows the template, also where the template
            // dropped something: an empty RedrivePolicy removes the journaled one, as
            // SetQueueAttributes does in SQS.
            attrs.entry("RedrivePolicy".into()).or_default();
            attrs.entry("RedriveAllowPolicy".into()).or_default();
            // FifoQueue is set at creation only (SQS refuses it in SetQueueAttributes); a
            // kept queue has it from then, and the `.fifo` name keeps the two in step.
            attrs.remove("FifoQueue");
            engine.set_queue_attributes(&queue.name, &attrs)?;
        } else {
            engine.create_queue(&queue.name, &attrs, &BTreeMap::new())?;
        }
    }
    Ok(())
}

/// The SQS attributes of a modelled queue.
fn queue_attributes(queue: &QueueDef, template: &Template) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::from([
        (
            "VisibilityTimeout".to_string(),
            queue.visibility_timeout_s.to_string(),
        ),
        ("DelaySeconds".to_string(), queue.delay_s.to_string()),
        (
            "MessageRetentionPeriod".to_string(),
            queue.retention_s.to_string(),
        ),
        (
            "MaximumMessageSize".to_string(),
            queue.max_message_size.to_string(),
        ),
        (
            "ReceiveMessageWaitTimeSeconds".to_string(),
            queue.receive_wait_s.to_string(),
        ),
    ]);
    if queue.fifo {
        attrs.insert("FifoQueue".into(), "true".into());
        attrs.insert(
            "ContentBasedDeduplication".into(),
            queue.content_based_deduplication.to_string(),
        );
        for (name, value) in [
            ("DeduplicationScope", &queue.deduplication_scope),
            ("FifoThroughputLimit", &queue.fifo_throughput_limit),
        ] {
            if let Some(value) = value {
                attrs.insert(name.into(), value.clone());
            }
        }
    }
    if let Some(redrive) = &queue.redrive
        && let Some(dlq) = template.queue(&redrive.dlq_logical_id)
    {
        let policy = serde_json::json!({
            "deadLetterTargetArn": dlq.arn,
            "maxReceiveCount": redrive.max_receive_count,
        });
        attrs.insert("RedrivePolicy".into(), policy.to_string());
    }
    if let Some(allow) = &queue.redrive_allow_policy {
        attrs.insert("RedriveAllowPolicy".into(), allow.to_json());
    }
    attrs
}

/// The Invoke API at `url` (`cargo lambda watch`), reached by binary name: it knows the
/// functions by their crate's binary, the template by their function name.
fn remote_by_binary(url: &str, template: &Template) -> Arc<dyn Invoker> {
    Arc::new(RenamingInvoker {
        inner: RemoteInvoker::new(url),
        names: template
            .functions
            .values()
            .map(|f| (f.name.clone(), f.binary.clone()))
            .collect(),
    })
}

/// The invoker every event goes through: `invoker` (in-process functions) or what
/// `options.invoker` names (the process runtime, returned too, or a remote Invoke API), inside
/// `layers`. The emulator and the replay sandbox reach their functions through it.
pub(crate) async fn functions_invoker(
    options: &EmulatorOptions,
    template: &Template,
    endpoint: &str,
    mappings: &[MappingConfig],
    invoker: Option<Arc<dyn Invoker>>,
    layers: Layers,
    history: Option<&History>,
) -> Result<(Arc<dyn Invoker>, Option<Runtime>), EmulatorError> {
    let mut runtime = None;
    let invoker: Arc<dyn Invoker> = match (invoker, &options.invoker) {
        (Some(invoker), _) => invoker,
        (None, InvokerChoice::Remote(url)) => remote_by_binary(url, template),
        (None, InvokerChoice::Process { release, build }) => {
            let rt = process_runtime(
                options,
                template,
                endpoint,
                (*release, *build),
                mappings,
                history,
            )
            .await?;
            runtime = Some(rt.clone());
            Arc::new(ProcessInvoker::new(rt))
        }
    };
    Ok((layers.wrap(invoker), runtime))
}

/// The template's functions under the emulator's Lambda runtime: built first when `build`
/// (`(release, build)` as `InvokerChoice::Process` says), configured from the template (timeout,
/// memory, reserved concurrency or room for `mappings`, environment, log format and level) and
/// `options.extra_env`. The emulator and the replay sandbox both run their functions so.
async fn process_runtime(
    options: &EmulatorOptions,
    template: &Template,
    endpoint: &str,
    (release, build): (bool, bool),
    mappings: &[MappingConfig],
    history: Option<&History>,
) -> Result<Runtime, EmulatorError> {
    // A function with a prebuilt artifact at its CodeUri runs it as it is: only crates are
    // built.
    let crates: Vec<(&String, &FunctionDef)> = template
        .functions
        .iter()
        .filter(|(_, f)| f.prebuilt.is_none())
        .collect();
    if build && !crates.is_empty() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let metadata = check_buildable(options, &crates, &cargo).await?;
        let binaries: Vec<String> = crates.iter().map(|(_, f)| f.binary.clone()).collect();
        cargo_build(&cargo, &options.project_root, &metadata, &binaries, release)
            .await
            .map_err(|e| match e {
                EmulatorError::Build(message) => EmulatorError::Build(format!(
                    "{message}, building {}: cargo's errors are above",
                    crates
                        .iter()
                        .map(|(id, f)| format!("{id} (binary {})", f.binary))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                other => other,
            })?;
    }
    let dir = target_dir(&options.project_root, release);
    let work_dir = options
        .work_dir
        .clone()
        .unwrap_or_else(|| options.project_root.clone());
    // A missing working directory would otherwise surface much later, as every process spawn
    // failing with "No such file or directory" and batches waiting out their visibility.
    std::fs::create_dir_all(&work_dir).map_err(|e| {
        EmulatorError::Project(format!(
            "cannot use {} as the functions' working directory (--work-dir): {e}",
            work_dir.display()
        ))
    })?;
    let rt = Runtime::new(RuntimeOptions {
        region: options.region.clone(),
        // The endpoint serves SQS and the EventBridge Scheduler API (a function's run-time
        // schedules); the SDKs read a service's endpoint from AWS_ENDPOINT_URL_<SERVICE>.
        env: BTreeMap::from([
            ("AWS_ENDPOINT_URL_SQS".to_string(), endpoint.to_string()),
            (
                "AWS_ENDPOINT_URL_SCHEDULER".to_string(),
                endpoint.to_string(),
            ),
        ]),
        working_dir: Some(work_dir),
        log_sink: match history {
            Some(history) => history.tee(crate::logs::terminal_sink(options.log_format)),
            None => crate::logs::terminal_sink(options.log_format),
        },
        ..RuntimeOptions::default()
    });
    // Zips are extracted under the state dir, else under a directory of this process's own.
    let extract_root = options
        .state_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("nightshift-{}", std::process::id())))
        .join("artifacts");
    for f in template.functions.values() {
        let binary = match &f.prebuilt {
            Some(artifact) => {
                crate::artifact::bootstrap(artifact, &extract_root.join(&f.logical_id)).map_err(
                    |source| EmulatorError::Artifact {
                        function: f.logical_id.clone(),
                        source,
                    },
                )?
            }
            None => dir.join(&f.binary),
        };
        if !binary.exists() {
            return Err(EmulatorError::Build(format!(
                "function {} needs {}, which does not exist (build it or drop --no-build)",
                f.name,
                binary.display()
            )));
        }
        let mut env = f.env.clone();
        // EmulatorOptions::extra_env: `*` first, so a function's own entry wins.
        env.extend(
            ["*", f.name.as_str()]
                .iter()
                .filter_map(|k| options.extra_env.get(*k))
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if let Some(format) = &f.log_format {
            env.insert("AWS_LAMBDA_LOG_FORMAT".into(), format.clone());
        }
        if let Some(level) = &f.log_level {
            env.insert("AWS_LAMBDA_LOG_LEVEL".into(), level.clone());
        }
        let mut config = FunctionConfig::new(f.name.clone(), binary)
            .with_timeout(Duration::from_secs(f.timeout_s.into()))
            .with_memory_mb(f.memory_mb)
            .with_concurrency(f.reserved_concurrency.unwrap_or_else(|| {
                mapping::instances_needed(mappings, &f.name)
                    .max(crate::runtime::DEFAULT_CONCURRENCY)
            }));
        config.env = env;
        rt.add_function(config)?;
    }
    Ok(rt)
}

/// Counts invocations in flight, so the emulator knows when it is idle.
struct CountingInvoker {
    inner: Arc<dyn Invoker>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl Decorator for CountingInvoker {
    fn inner(&self) -> &Arc<dyn Invoker> {
        &self.inner
    }

    fn invoke_through(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> futures::future::BoxFuture<'_, Result<InvokeResponse, crate::invoker::InvokeError>> {
        use std::sync::atomic::Ordering;
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let result = self.inner.invoke_in(slot, req).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            result
        })
    }
}

/// Routes Invoke API calls by binary name: `cargo lambda watch` knows the functions by their
/// crate's binary, the template by their function name.
struct RenamingInvoker {
    inner: RemoteInvoker,
    names: BTreeMap<String, String>,
}

impl Invoker for RenamingInvoker {
    fn invoke(
        &self,
        mut req: InvokeRequest,
    ) -> futures::future::BoxFuture<'_, Result<InvokeResponse, crate::invoker::InvokeError>> {
        if let Some(binary) = self.names.get(&req.function) {
            req.function = binary.clone();
        }
        self.inner.invoke(req)
    }
}

/// Wraps the emulator's invoker (to record or inject faults) before anything uses it.
pub use crate::invoker::Wrap;

/// An emulator built and its listener bound, not served yet.
pub(crate) struct Assembled {
    /// The emulator.
    pub(crate) emulator: Arc<Emulator>,
    /// The endpoint's listener.
    pub(crate) listener: TcpListener,
    /// Turns true when the emulator stops.
    pub(crate) stopped: Signal,
}

impl Emulator {
    /// Builds everything `options` describes (queues, functions, mappings, schedules, on one
    /// clock) and binds the endpoint's listener, without serving it yet:
    /// [`crate::server`] serves it (`Emulator::start`).
    pub(crate) async fn assemble(
        options: EmulatorOptions,
        invoker: Option<Arc<dyn Invoker>>,
        wrap: Option<Wrap>,
    ) -> Result<Assembled, EmulatorError> {
        let listener =
            TcpListener::bind(options.addr)
                .await
                .map_err(|source| EmulatorError::Listen {
                    addr: options.addr,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Listen {
                addr: options.addr,
                source,
            })?;
        let endpoint = format!("http://{addr}");
        let template = Template::load(
            &options.template,
            &LoadOptions {
                env_file: options.env_file.clone(),
                port: addr.port(),
                region: options.region.clone(),
                stack_name: options.stack_name.clone(),
                parameter_overrides: options.parameter_overrides.clone(),
            },
        )?;
        if template.functions.is_empty() && !template.skipped_functions.is_empty() {
            let skipped: Vec<String> = template
                .skipped_functions
                .iter()
                .map(|s| {
                    format!(
                        "{} ({}): {}",
                        s.logical_id,
                        template_line(&options.template, &s.logical_id),
                        s.reason
                    )
                })
                .collect();
            return Err(EmulatorError::Project(format!(
                "no function of {} can be run by the emulator: {}; it runs Rust (and other \
                 native) functions on provided.al2023 or provided.al2",
                options.template.display(),
                skipped.join("; ")
            )));
        }
        if let ClockSpec::Accelerated { factor } = options.clock {
            let note = accelerated_visibility(&template, factor)?;
            if let Some(note) = note {
                warn!("{note}");
            }
        }
        let clock = options.clock.build(options.clock_start);
        let engine = SqsEngine::new(
            SqsConfig {
                region: options.region.clone(),
                endpoint_url: endpoint.clone(),
                journal: options
                    .state_dir
                    .as_ref()
                    .map(|d| JournalConfig::new(d.join("sqs"))),
                ..SqsConfig::default()
            },
            clock.clone(),
        )?;
        create_queues(&engine, &template)?;

        let mapping_configs = MappingConfig::all_from_template(&template, &options.region)?;
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = in_flight.clone();
        let history = History::new(clock.clone());
        let series = crate::series::Series::new(history.clone());
        let recorded = history.clone();
        // The history sits outside the injected faults, so it shows what a caller saw.
        let layers = Layers::new()
            .layer_if(wrap)
            .layer(move |inner| -> Arc<dyn Invoker> {
                Arc::new(CountingInvoker {
                    inner,
                    in_flight: counted,
                })
            })
            .layer(move |inner| recorded.decorate(inner));
        let (invoker, runtime) = functions_invoker(
            &options,
            &template,
            &endpoint,
            &mapping_configs,
            invoker,
            layers,
            Some(&history),
        )
        .await?;
        let stop = Shutdown::new();
        let mut mappings = Vec::new();
        for config in mapping_configs {
            if !config.enabled {
                continue;
            }
            mappings.push(mapping::spawn(
                config,
                engine.clone(),
                invoker.clone(),
                stop.signal(),
            ));
        }
        let queues = AsyncInvoker::from_template(
            &template,
            invoker.clone(),
            Some(engine.clone()),
            clock.clone(),
        );
        let runner_config = RunnerConfig {
            region: options.region.clone(),
            state_dir: options.state_dir.clone(),
            ..RunnerConfig::default()
        };
        let schedules = ScheduleRunner::new(
            &template,
            queues.clone(),
            Some(engine.clone()),
            clock.clone(),
            runner_config.clone(),
        )?;
        // Before the runner starts, so the kept schedules start with the template's.
        let scheduler_api = SchedulerApi::open(
            &template,
            schedules.clone(),
            clock.clone(),
            options.state_dir.as_deref(),
            &runner_config,
        )?;
        let schedules_task = schedules.start(stop.signal())?;

        crate::divergence::announce(&template, &options.clock, runtime.is_some());
        info!(endpoint = %endpoint, queues = template.queues.len(), functions = template.functions.len(),
              mappings = mappings.len(), schedules = template.schedules.len(), clock = %options.clock, "emulator up");
        let stopped = stop.signal();
        series.spawn(engine.clone(), stop.signal());
        let emulator = Arc::new(Emulator {
            template,
            engine: engine.clone(),
            clock,
            clock_spec: options.clock,
            invoker,
            queues,
            in_flight,
            runtime,
            mappings: std::sync::Mutex::new(mappings),
            schedules,
            scheduler_api,
            schedules_task: std::sync::Mutex::new(Some(schedules_task)),
            addr,
            stop,
            server: std::sync::Mutex::new(None),
            series,
            history,
            // Only the dashboard's page is given it (see `dashboard::guard`).
            token: uuid::Uuid::new_v4().simple().to_string(),
        });
        Ok(Assembled {
            emulator,
            listener,
            stopped,
        })
    }

    /// Keeps the task that serves the endpoint, so shutdown can wait for it.
    pub(crate) fn set_server(&self, server: tokio::task::JoinHandle<()>) {
        *self.server.lock().unwrap() = Some(server);
    }

    /// The bound address of the SQS and control endpoint.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The SQS endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The loaded template.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The queue engine.
    pub fn engine(&self) -> &SqsEngine {
        &self.engine
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The invoker every event goes through.
    pub fn invoker(&self) -> &Arc<dyn Invoker> {
        &self.invoker
    }

    /// The functions' asynchronous event queues (`Event` invocations, schedules).
    pub fn async_invoker(&self) -> &AsyncInvoker {
        &self.queues
    }

    /// Finds a queue by logical id (`JobsQueue`), name (`nightshift-jobs`) or short name (`jobs`).
    pub fn resolve_queue(&self, name: &str) -> Result<String, EmulatorError> {
        let t = &self.template;
        let found = t
            .queue(name)
            .or_else(|| t.queue_by_name(name))
            .or_else(|| {
                t.queues
                    .values()
                    .find(|q| q.name.ends_with(&format!("-{name}")))
            })
            .map(|q| q.name.clone());
        match found {
            Some(n) => Ok(n),
            None if self.engine.get_queue_url(name).is_ok() => Ok(name.to_string()),
            None => Err(EmulatorError::NotFound {
                kind: "queue",
                name: name.to_string(),
                known: self.engine.queue_names(None).join(", "),
            }),
        }
    }

    /// Sends `body` to a queue; returns the message id.
    pub fn send(&self, queue: &str, body: impl Into<String>) -> Result<String, EmulatorError> {
        self.send_message(queue, OutgoingMessage::new(body))
    }

    /// Sends `message` (with its FIFO group and deduplication ids, if any) to a queue found
    /// as [`Emulator::resolve_queue`] finds it; returns the message id.
    pub fn send_message(
        &self,
        queue: &str,
        message: OutgoingMessage,
    ) -> Result<String, EmulatorError> {
        let name = self.resolve_queue(queue)?;
        Ok(self.engine.send_message(&name, message)?.message_id)
    }

    /// Finds a function by logical id (`DailyReportFunction`), name
    /// (`nightshift-DailyReportFunction`), ARN, or a name's suffix after `-`; returns its name.
    pub fn resolve_function(&self, function: &str) -> Result<String, EmulatorError> {
        let t = &self.template;
        let suffix = format!("-{function}");
        t.function(function)
            .or_else(|| {
                t.functions
                    .values()
                    .find(|f| f.name == function || f.arn == function)
            })
            .or_else(|| t.functions.values().find(|f| f.name.ends_with(&suffix)))
            .map(|f| f.name.clone())
            .ok_or_else(|| EmulatorError::NotFound {
                kind: "function",
                name: function.to_owned(),
                known: t
                    .functions
                    .values()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Invokes a function synchronously (`RequestResponse`) and returns what it answered.
    pub async fn invoke(
        &self,
        function: &str,
        payload: impl Into<bytes::Bytes>,
    ) -> Result<InvokeResponse, EmulatorError> {
        let name = self.resolve_function(function)?;
        Ok(self
            .invoker
            .invoke(InvokeRequest::new(name, payload))
            .await?)
    }

    /// Invokes as [`Emulator::invoke`] does and also returns the end of the invocation's log
    /// (at most 4 KB, as `X-Amz-Log-Type: Tail` returns it) when the functions run under the
    /// emulator's runtime; `None` when another invoker runs them and their log is elsewhere.
    pub async fn invoke_with_log(
        &self,
        function: &str,
        payload: impl Into<bytes::Bytes>,
    ) -> Result<(InvokeResponse, Option<String>), EmulatorError> {
        self.invoke_request(InvokeRequest::new(function, payload), true)
            .await
    }

    /// Invokes `request` synchronously, its function named as [`Emulator::resolve_function`]
    /// takes it, with the caller's choices (e.g. its trace header) kept; with `tail_log`, also
    /// returns the end of its log as [`Emulator::invoke_with_log`] does.
    pub async fn invoke_request(
        &self,
        mut request: InvokeRequest,
        tail_log: bool,
    ) -> Result<(InvokeResponse, Option<String>), EmulatorError> {
        request.function = self.resolve_function(&request.function)?;
        let capture = self
            .runtime
            .as_ref()
            .filter(|_| tail_log)
            .map(|rt| rt.capture_log(&request.request_id));
        let response = self.invoker.invoke(request).await?;
        let log = match capture {
            Some(capture) => Some(capture.finish().await),
            None => None,
        };
        Ok((response, log))
    }

    /// Invokes a function asynchronously (`Event`): the event is queued at once and run,
    /// retried and recorded as Lambda does (see [`crate::invoke_async`]).
    pub fn invoke_async(
        &self,
        function: &str,
        payload: impl Into<bytes::Bytes>,
    ) -> Result<Accepted, EmulatorError> {
        let name = self.resolve_function(function)?;
        Ok(self.queues.invoke_async(&name, payload)?)
    }

    /// [`Self::invoke_async`] continuing a caller's trace (`trace_header`, the function's
    /// `X-Amzn-Trace-Id`), as the Invoke API's `Event` call with a traced caller does.
    pub fn invoke_async_traced(
        &self,
        function: &str,
        payload: impl Into<bytes::Bytes>,
        trace_header: String,
    ) -> Result<Accepted, EmulatorError> {
        let name = self.resolve_function(function)?;
        Ok(self
            .queues
            .invoke_async_traced(&name, payload, trace_header)?)
    }

    /// The schedule runner (for `wait_idle` and finer control in tests).
    pub fn schedules(&self) -> &ScheduleRunner {
        &self.schedules
    }

    /// The EventBridge Scheduler API served on the endpoint.
    pub fn scheduler_api(&self) -> &Arc<SchedulerApi> {
        &self.scheduler_api
    }

    /// Fires a schedule now (scheduled time = the clock's now) and returns the first attempt of
    /// the asynchronous invocation it makes; Lambda's retries of a failed attempt follow on the
    /// clock, and the schedule's retries of a failed invoke too.
    pub async fn fire(&self, schedule: &str) -> Result<InvokeResponse, EmulatorError> {
        let known = || {
            self.schedules
                .stats()
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let name = self
            .schedules
            .stats()
            .into_iter()
            .find(|s| s.name == schedule || s.id == schedule)
            .map(|s| s.name)
            .ok_or_else(|| EmulatorError::NotFound {
                kind: "schedule",
                name: schedule.to_string(),
                known: known(),
            })?;
        let outcome = self.schedules.fire(&name).await?;
        outcome.result.map_err(EmulatorError::FireTarget)
    }

    /// What keeps the emulator from being idle: invocations running, asynchronous events due,
    /// mappings holding or settling a batch, visible messages on polled queues. Empty when idle.
    pub fn busy(&self) -> Vec<String> {
        let mut busy = Vec::new();
        let running = self.in_flight.load(std::sync::atomic::Ordering::SeqCst);
        if running > 0 {
            busy.push(format!("{running} invocations running"));
        }
        if !self.queues.is_idle() {
            busy.push(format!(
                "{} async events pending, some due",
                self.queues.pending()
            ));
        }
        for m in self.mappings.lock().unwrap().iter() {
            let stats = m.stats();
            let queue = &m.config().queue;
            if stats.in_flight > 0 {
                busy.push(format!("{queue}: {} batches in flight", stats.in_flight));
            }
            if stats.buffered > 0 {
                busy.push(format!(
                    "{queue}: {} messages gathering a batch",
                    stats.buffered
                ));
            }
            // Messages of a FIFO group waiting behind one in flight are not work the mapping
            // could start now: they wait for that message (its retry, its delete).
            if let Ok(q) = self.engine.queue_stats(queue)
                && q.receivable > 0
            {
                busy.push(format!("{queue}: {} visible", q.receivable));
            }
        }
        busy
    }

    fn max_batching_window(&self) -> chrono::TimeDelta {
        let longest = self
            .mappings
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.config().window)
            .max()
            .unwrap_or_default();
        chrono::TimeDelta::from_std(longest).unwrap_or_default()
    }

    fn gathering(&self) -> bool {
        self.mappings
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.stats().buffered > 0)
    }

    /// Waits until the emulator is idle ([`Emulator::busy`] is empty and the schedules have
    /// delivered everything due). On the manual clock, a mapping waiting out its batching
    /// window moves the clock to the window's end (what Lambda would wait), and nothing else
    /// moves it: messages waiting for a visibility timeout stay where they are until you
    /// `advance`. Bounded by `timeout` of real time.
    pub async fn run_until_idle(&self, timeout: Duration) -> Result<(), EmulatorError> {
        let started = std::time::Instant::now();
        let mut quiet = 0;
        loop {
            // A short bounded wait lets the schedule runner finish what is due.
            let _ =
                tokio::time::timeout(Duration::from_millis(50), self.schedules.wait_idle()).await;
            let busy = self.busy();
            if busy.is_empty() {
                quiet += 1;
                // Several quiet looks in a row: a poller may sit between receive and invoke.
                if quiet >= 3 {
                    return Ok(());
                }
                tokio::task::yield_now().await;
                continue;
            }
            quiet = 0;
            // Jump only when the pollers hold everything there is: a message still visible
            // would join the batch being gathered, as it would on Lambda.
            let only_gathering = self.in_flight.load(std::sync::atomic::Ordering::SeqCst) == 0
                && self.gathering()
                && !busy.iter().any(|b| b.ends_with(" visible"));
            // Only a batching window's end may be jumped to: until the poller has registered
            // its wait, the earliest waiter may be something far later (tomorrow's schedule).
            let window = self.max_batching_window();
            if only_gathering
                && let Some(manual) = self.clock.as_manual()
                && let Some(next) = manual.next_wakeup()
                && next <= self.clock.now() + window
            {
                let _ = manual.set(next.max(self.clock.now()));
            }
            if started.elapsed() > timeout {
                return Err(EmulatorError::Clock(format!(
                    "not idle after {timeout:?}: {}",
                    busy.join("; ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Moves the manual clock forward by `by`, one due instant at a time, running until idle
    /// after each, so every schedule occurrence, visibility timeout and delay in between
    /// happens at its own time, in order; fails on other clocks.
    pub async fn advance(&self, by: Duration) -> Result<DateTime<Utc>, EmulatorError> {
        let Some(manual) = self.clock.as_manual() else {
            return Err(EmulatorError::Clock(format!(
                "advance needs --clock manual; this emulator runs the {} clock",
                self.clock_spec
            )));
        };
        let delta = chrono::TimeDelta::from_std(by)
            .map_err(|_| EmulatorError::Clock("duration too large".into()))?;
        let target = self.clock.now() + delta;
        let idle = Duration::from_secs(120);
        self.run_until_idle(idle).await?;
        while let Some(next) = manual.next_wakeup().filter(|n| *n <= target) {
            manual
                .set(next.max(self.clock.now()))
                .map_err(|e| EmulatorError::Clock(e.to_string()))?;
            self.run_until_idle(idle).await?;
        }
        manual
            // Waiting out a batching window may already have carried the clock past the target.
            .set(target.max(self.clock.now()))
            .map_err(|e| EmulatorError::Clock(e.to_string()))?;
        self.run_until_idle(idle).await?;
        Ok(self.clock.now())
    }

    /// The messages of a dead-letter queue (at most `limit`).
    pub fn dlq_list(&self, queue: &str, limit: usize) -> Result<Vec<DlqMessage>, EmulatorError> {
        let name = self.resolve_queue(queue)?;
        Ok(self
            .engine
            .peek_messages(&name, limit)?
            .into_iter()
            .map(DlqMessage::from)
            .collect())
    }

    /// Moves a DLQ's messages back to their source queues (StartMessageMoveTask).
    pub fn redrive(&self, dlq: &str) -> Result<String, EmulatorError> {
        let name = self.resolve_queue(dlq)?;
        let arn = self.engine.queue_arn(&name)?;
        // Messages the functions dead-lettered themselves were sent, not redriven by SQS, so
        // they carry no source queue; when the DLQ serves exactly one queue, that is where
        // they go back to.
        let sources = self.engine.list_dead_letter_source_queues(&name)?;
        let destination = match sources.as_slice() {
            [only] => Some(self.engine.queue_arn(only)?),
            _ => None,
        };
        Ok(self
            .engine
            .start_message_move_task(&arn, destination.as_deref(), None)?)
    }

    /// Moves the chosen messages of a dead-letter queue back to its source queue (the
    /// dashboard's redrive of selected messages, `dlq redrive --message-id`); returns how many
    /// moved. The DLQ must serve exactly one source queue, so where they go is not a guess.
    pub fn redrive_messages(
        &self,
        dlq: &str,
        message_ids: &[String],
    ) -> Result<u64, EmulatorError> {
        let name = self.resolve_queue(dlq)?;
        let sources = self.engine.list_dead_letter_source_queues(&name)?;
        let [source] = sources.as_slice() else {
            return Err(EmulatorError::NotFound {
                kind: "single source queue of dead-letter queue",
                name,
                known: sources.join(", "),
            });
        };
        Ok(self.engine.move_selected(&name, source, message_ids)?)
    }

    /// PurgeQueue on a queue (at most once a minute per queue, as SQS allows).
    pub fn purge(&self, queue: &str) -> Result<String, EmulatorError> {
        let name = self.resolve_queue(queue)?;
        self.engine.purge_queue(&name)?;
        Ok(name)
    }

    /// A queue's messages in send order (visible, in flight and delayed), without receiving
    /// them; with `search`, only those whose id, body or attribute values contain it.
    pub fn queue_messages(
        &self,
        queue: &str,
        search: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DlqMessage>, EmulatorError> {
        let name = self.resolve_queue(queue)?;
        let needle = search.map(str::trim).filter(|s| !s.is_empty());
        let all = self
            .engine
            .peek_messages(&name, if needle.is_some() { usize::MAX } else { limit })?;
        Ok(all
            .into_iter()
            .map(DlqMessage::from)
            .filter(|m| {
                needle.is_none_or(|q| {
                    m.message_id.contains(q)
                        || m.body.contains(q)
                        || m.attributes.values().any(|v| v.contains(q))
                })
            })
            .take(limit)
            .collect())
    }

    /// Enables or disables a schedule: the template's through the runner, those created
    /// through the Scheduler API by an UpdateSchedule of their `State` (journaled).
    pub fn set_schedule_enabled(&self, schedule: &str, enabled: bool) -> Result<(), EmulatorError> {
        let status = self.schedule_status(schedule)?;
        if status.api {
            self.scheduler_api
                .set_state(&status.name, &status.group, enabled)
                .map_err(|e| EmulatorError::Project(format!("schedule {}: {e}", status.name)))?;
        } else {
            self.schedules
                .set_enabled(&status.group, &status.name, enabled)?;
        }
        Ok(())
    }

    fn schedule_status(&self, schedule: &str) -> Result<ScheduleStatus, EmulatorError> {
        let all = self.schedule_statuses();
        let found = all
            .iter()
            .find(|s| s.name == schedule || format!("{}/{}", s.group, s.name) == schedule)
            .cloned();
        found.ok_or_else(|| EmulatorError::NotFound {
            kind: "schedule",
            name: schedule.to_owned(),
            known: all
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// A schedule with its next five fires and the runs the history keeps.
    pub fn schedule_detail(&self, schedule: &str) -> Result<ScheduleDetail, EmulatorError> {
        let status = self.schedule_status(schedule)?;
        let next_fires = match status.next_fire.filter(|_| status.enabled) {
            Some(first) => std::iter::once(first)
                .chain(
                    crate::schedule::next_fire_times(
                        &status.expression,
                        &status.timezone,
                        first,
                        4,
                    )
                    .unwrap_or_default(),
                )
                .collect(),
            None => Vec::new(),
        };
        let runs = self.history.list(&crate::history::InvocationQuery {
            trigger: Some(format!("schedule:{}", status.name)),
            ..Default::default()
        });
        Ok(ScheduleDetail {
            status,
            next_fires,
            runs,
        })
    }

    /// The invocation history (recent invocations, their events, answers and logs).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The per-second samples the dashboard's overview charts.
    pub fn series(&self) -> &crate::series::Series {
        &self.series
    }

    /// The per-run token a browser's state-changing request must carry
    /// (`x-nightshift-token`); the dashboard's page holds it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Turns true when the emulator stops (long-lived responses end with it).
    pub fn stopped(&self) -> Signal {
        self.stop.signal()
    }

    /// Everything `nightshift status` shows.
    pub fn status(&self) -> Status {
        let queues = self
            .engine
            .stats()
            .into_iter()
            .map(|q| QueueStatus {
                oldest_age_s: q
                    .oldest_sent_at
                    .map(|t| (self.clock.now() - t).num_seconds().max(0)),
                max_receive_count: q.dead_letter_queue.as_ref().map(|(_, n)| *n),
                dead_letter_queue: q.dead_letter_queue.map(|(n, _)| n),
                dead_letter_sources: q.dead_letter_sources,
                name: q.name,
                url: q.url,
                visible: q.visible,
                in_flight: q.in_flight,
                delayed: q.delayed,
            })
            .collect();
        let functions = self
            .runtime
            .as_ref()
            .map(|rt| {
                let percentiles = self.history.percentiles();
                rt.stats()
                    .into_iter()
                    .map(|f| FunctionStatus {
                        p50_ms: percentiles.get(&f.name).and_then(|p| p.p50_ms),
                        p95_ms: percentiles.get(&f.name).and_then(|p| p.p95_ms),
                        name: f.name,
                        instances: f.instances,
                        busy: f.busy,
                        invocations: f.invocations,
                        errors: f.errors,
                        timeouts: f.timeouts,
                        crashes: f.crashes,
                        cold_starts: f.cold_starts,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mappings = self
            .mappings
            .lock()
            .unwrap()
            .iter()
            .map(|m| MappingStatus {
                function: m.config().function.clone(),
                queue: m.config().queue.clone(),
                stats: serde_json::to_value::<MappingStats>(m.stats()).unwrap_or_default(),
            })
            .collect();
        Status {
            now: self.clock.now(),
            clock: self.clock_spec.to_string(),
            endpoint: self.endpoint(),
            queues,
            functions,
            mappings,
            schedules: self.schedule_statuses(),
            async_invocations: self.queues.stats(),
            metrics: self.history.metrics().totals(),
        }
    }

    /// Every schedule's status line, as `status` lists them.
    fn schedule_statuses(&self) -> Vec<ScheduleStatus> {
        self.schedules
            .stats()
            .into_iter()
            .map(|s| ScheduleStatus {
                name: s.name,
                group: s.group,
                api: s.dynamic,
                function: s.target,
                expression: s.expression,
                timezone: s.timezone,
                enabled: s.enabled,
                next_fire: s.next_fire,
                last_fire: s.last_fire,
                fires: s.fires,
                failures: s.failures,
                dead_lettered: s.dead_lettered,
            })
            .collect()
    }

    /// Stops pollers and schedules, lets in-flight invocations finish, stops the functions
    /// (SIGTERM, then SIGKILL after `grace`) and the endpoint, and flushes the journal.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.trigger();
        let mappings = std::mem::take(&mut *self.mappings.lock().unwrap());
        for m in mappings {
            if let Err(e) = m.join().await {
                warn!(error = %e, "mapping stopped with an error");
            }
        }
        let schedules = self.schedules_task.lock().unwrap().take();
        if let Some(task) = schedules {
            let _ = task.await;
        }
        self.queues.stop().await;
        if let Some(rt) = &self.runtime {
            let report = rt.shutdown(grace).await;
            info!(
                terminated = report.terminated,
                killed = report.killed,
                "functions stopped"
            );
        }
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            let _ = server.await;
        }
        if let Err(e) = self.engine.shutdown() {
            warn!(error = %e, "journal flush failed");
        }
        if let Err(e) = self.scheduler_api.sync() {
            warn!(error = %e, "scheduler journal flush failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the cargo workspace at `root` has a package named `name`, as the build reads it.
    async fn workspace_has_package(
        cargo: &str,
        root: &Path,
        name: &str,
    ) -> Result<bool, EmulatorError> {
        Ok(has_package(&cargo_metadata(cargo, root).await?, name))
    }

    #[tokio::test]
    async fn the_nightshift_package_is_found_in_its_workspace_only() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        assert!(
            workspace_has_package(&cargo, &workspace, "nightshift")
                .await
                .unwrap()
        );
        // A single crate of another project: built without nightshift's feature.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"my-fn\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
        assert!(
            !workspace_has_package(&cargo, dir.path(), "nightshift")
                .await
                .unwrap()
        );
        // Not a cargo project: an error that says where.
        let empty = tempfile::tempdir().unwrap();
        let err = workspace_has_package(&cargo, empty.path(), "nightshift")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("cargo metadata in"), "{err}");
    }
}
