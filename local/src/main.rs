//! `nightshift`: the emulator's command line. See [`nightshift_local::cli`].

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("NIGHTSHIFT_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    let cli = nightshift_local::cli::Cli::parse();
    if let Err(err) = nightshift_local::cli::run(cli).await {
        eprintln!("error: {err:#}");
        std::process::exit(exit_code(&err));
    }
}

/// 2 when the project cannot be run as it is (its template, a function's code or its build:
/// the user must change something), 1 for every other failure.
fn exit_code(err: &anyhow::Error) -> i32 {
    use nightshift_local::emulator::EmulatorError;
    let project = err.chain().any(|e| {
        e.downcast_ref::<EmulatorError>().is_some_and(|e| {
            matches!(
                e,
                EmulatorError::Project(_) | EmulatorError::Template(_) | EmulatorError::Build(_)
            )
        }) || e.is::<nightshift_local::template::TemplateError>()
    });
    if project { 2 } else { 1 }
}
