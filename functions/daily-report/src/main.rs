//! daily-report binary: wires the real adapters and starts the Lambda runtime.

use daily_report::{Deps, handler};
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = nightshift::wiring::function_deps(Deps::from_env).await?;
    lambda_runtime::run(service_fn(move |event| handler(deps.clone(), event))).await
}
