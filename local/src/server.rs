//! server: the emulator's one HTTP endpoint. It merges the SQS JSON protocol
//! ([`crate::sqs::server`]), the control API of the CLI ([`crate::control`]), Lambda's Invoke
//! API ([`crate::lambda_api`]) and the EventBridge Scheduler API ([`crate::scheduler_api`]) on
//! one listener, and serves it until the emulator stops.
//!
//! Starting the emulator lives here, above [`crate::emulator`]: that module assembles the parts
//! and knows none of the routers, and the routers know its [`Emulator`], so no module imports
//! one that imports it back.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::emulator::{Assembled, Emulator, EmulatorError, EmulatorOptions, Wrap};
use crate::invoker::Invoker;
use crate::shutdown::Signal;

impl Emulator {
    /// Starts everything `options` describes, using `invoker` when given instead of the one
    /// `options.invoker` names (tests pass an in-process invoker here), and serves the
    /// endpoint (SQS, control, Invoke API) until [`Emulator::shutdown`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use nightshift_local::emulator::{Emulator, EmulatorOptions};
    ///
    /// // The template, env file and functions of the project in the current directory, built
    /// // and run under the emulator's Lambda runtime, on 127.0.0.1:9324.
    /// let emulator = Emulator::start(EmulatorOptions::new("."), None).await?;
    /// let answer = emulator
    ///     .invoke("DailyReportFunction", r#"{"date":"2026-01-01"}"#)
    ///     .await?;
    /// println!("{:?}", answer.outcome);
    /// emulator.shutdown(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub async fn start(
        options: EmulatorOptions,
        invoker: Option<Arc<dyn Invoker>>,
    ) -> Result<Arc<Self>, EmulatorError> {
        Emulator::start_wrapped(options, invoker, None).await
    }

    /// [`Emulator::start`], with `wrap` applied to the invoker every event goes through.
    pub async fn start_wrapped(
        options: EmulatorOptions,
        invoker: Option<Arc<dyn Invoker>>,
        wrap: Option<Wrap>,
    ) -> Result<Arc<Self>, EmulatorError> {
        let Assembled {
            emulator,
            listener,
            stopped,
        } = Emulator::assemble(options, invoker, wrap).await?;
        let server = serve(listener, emulator.clone(), stopped);
        emulator.set_server(server);
        Ok(emulator)
    }
}

/// The routes of every API the emulator serves.
fn router(emulator: &Arc<Emulator>) -> axum::Router {
    // The control endpoint and the pages that call it are guarded against other sites; the
    // AWS protocols are not (their clients are programs, and a browser cannot send their
    // X-Amz-Target header across sites without a CORS preflight the emulator never grants).
    let guarded = crate::control::router(emulator.clone())
        .merge(crate::dashboard::router(emulator.clone()))
        .layer(axum::middleware::from_fn_with_state(
            emulator.clone(),
            crate::dashboard::guard,
        ));
    crate::sqs::server::router(emulator.engine().clone())
        .merge(guarded)
        .merge(crate::lambda_api::router(emulator.clone()))
        .merge(crate::scheduler_api::routes::router(
            emulator.scheduler_api().clone(),
        ))
}

/// Serves `emulator`'s endpoint on `listener` until `stopped` is triggered.
fn serve(listener: TcpListener, emulator: Arc<Emulator>, mut stopped: Signal) -> JoinHandle<()> {
    let router = router(&emulator);
    tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            stopped.recv().await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "endpoint stopped");
        }
    })
}
