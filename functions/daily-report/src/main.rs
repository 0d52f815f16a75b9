//! daily-report binary: wires the real adapters and starts the Lambda runtime.

use std::sync::Arc;

use daily_report::{Deps, handler};
use lambda_runtime::{Error, service_fn};
use nightshift::adapters::sqs::SqsQueue;
use nightshift::config::Env;

#[tokio::main]
async fn main() -> Result<(), Error> {
    nightshift::telemetry::init();
    let queue = Arc::new(SqsQueue::from_env().await);
    let deps = Arc::new(
        Deps::from_env(&Env::process(), queue)
            .inspect_err(|e| tracing::error!(error = %e, "configuration error"))?,
    );
    lambda_runtime::run(service_fn(move |event| handler(deps.clone(), event))).await
}
