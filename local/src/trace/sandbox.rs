//! Where a replay runs: [`Sandbox`], the template's queues on an SQS endpoint of their own, a
//! Scheduler API that keeps the functions' run-time schedules without running them, and the
//! functions, reached like `nightshift up` reaches them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::TraceError;
use crate::clock::{ClockSpec, SharedClock};
use crate::emulator::{EmulatorError, EmulatorOptions};
use crate::invoker::{Invoker, Layers};
use crate::runtime::Runtime;
use crate::sqs::{SqsConfig, SqsEngine, SqsServer};
use crate::template::{LoadOptions, Template};

/// Where a replay runs: the template's queues on an SQS endpoint of their own (no pollers, no
/// schedules: what the functions send lands there and triggers nothing), a Scheduler API on
/// an endpoint of its own whose schedules are kept but never fire (what they sent is in the
/// trace already), and the functions, reached like `nightshift up` reaches them.
pub struct Sandbox {
    template: Template,
    engine: SqsEngine,
    clock: SharedClock,
    server: Option<SqsServer>,
    scheduler_endpoint: String,
    scheduler_server: tokio::task::JoinHandle<()>,
    runtime: Option<Runtime>,
    invoker: Arc<dyn Invoker>,
}

impl Sandbox {
    /// Starts the endpoint on `options.addr` and the functions `options.invoker` names (or
    /// `invoker`, for in-process functions), running in `options.work_dir`. Queues live in
    /// memory (`state_dir` is ignored) on a manual clock at `options.clock_start`.
    pub async fn start(
        options: &EmulatorOptions,
        invoker: Option<Arc<dyn Invoker>>,
    ) -> Result<Sandbox, TraceError> {
        let clock = ClockSpec::Manual.build(options.clock_start);
        let engine = SqsEngine::new(
            SqsConfig {
                region: options.region.clone(),
                ..SqsConfig::default()
            },
            clock.clone(),
        )
        .map_err(EmulatorError::from)?;
        let server = crate::sqs::serve(engine.clone(), options.addr)
            .await
            .map_err(EmulatorError::ServeSqs)?;
        let endpoint = server.endpoint_url();
        let template = Template::load(
            &options.template,
            &LoadOptions {
                env_file: options.env_file.clone(),
                port: server.local_addr().port(),
                region: options.region.clone(),
                stack_name: options.stack_name.clone(),
                parameter_overrides: options.parameter_overrides.clone(),
            },
        )
        .map_err(EmulatorError::from)?;
        crate::emulator::create_queues(&engine, &template).map_err(EmulatorError::from)?;
        // The functions' run-time schedules (queue-processor's follow-ups) go to a Scheduler
        // API of the sandbox's own: without one they would fail where the recording
        // succeeded. Its runner is never started, so nothing fires during a replay.
        let listener =
            tokio::net::TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let scheduler_endpoint = format!("http://{}", listener.local_addr()?);
        let mut options = options.clone();
        options.extra_env.entry("*".to_owned()).or_default().insert(
            "AWS_ENDPOINT_URL_SCHEDULER".to_owned(),
            scheduler_endpoint.clone(),
        );
        let (invoker, runtime) = crate::emulator::functions_invoker(
            &options,
            &template,
            &endpoint,
            &[],
            invoker,
            Layers::new(),
            None,
        )
        .await?;
        let queues = crate::invoke_async::AsyncInvoker::from_template(
            &template,
            invoker.clone(),
            Some(engine.clone()),
            clock.clone(),
        );
        let config = crate::schedule::runner::RunnerConfig {
            region: options.region.clone(),
            ..Default::default()
        };
        let runner = crate::schedule::runner::ScheduleRunner::new(
            &template,
            queues,
            Some(engine.clone()),
            clock.clone(),
            config.clone(),
        )
        .map_err(EmulatorError::from)?;
        let api = crate::scheduler_api::SchedulerApi::open(
            &template,
            runner,
            clock.clone(),
            None,
            &config,
        )
        .map_err(EmulatorError::from)?;
        let router = crate::scheduler_api::routes::router(api);
        let scheduler_server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(error = %err, "replay sandbox scheduler endpoint failed");
            }
        });
        info!(%endpoint, functions = template.functions.len(), "replay sandbox up");
        Ok(Sandbox {
            template,
            engine,
            clock,
            server: Some(server),
            scheduler_endpoint,
            scheduler_server,
            runtime,
            invoker,
        })
    }

    /// The SQS endpoint the functions use (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        self.engine.endpoint_url()
    }

    /// The Scheduler API the functions' run-time schedules go to (`AWS_ENDPOINT_URL_SCHEDULER`
    /// of the process functions); its schedules never fire.
    pub fn scheduler_endpoint(&self) -> &str {
        &self.scheduler_endpoint
    }

    /// The queues the functions send to.
    pub fn engine(&self) -> &SqsEngine {
        &self.engine
    }

    /// The manual clock of the queues; pass it as [`ReplayOptions::clock`](super::ReplayOptions::clock).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The loaded template.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The invoker to replay through.
    pub fn invoker(&self) -> Arc<dyn Invoker> {
        self.invoker.clone()
    }

    /// Stops the functions (SIGTERM, then SIGKILL after `grace`) and the endpoint.
    pub async fn shutdown(mut self, grace: Duration) {
        if let Some(rt) = &self.runtime {
            rt.shutdown(grace).await;
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.scheduler_server.abort();
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("endpoint", &self.endpoint())
            .field("functions", &self.template.functions.len())
            .finish()
    }
}
