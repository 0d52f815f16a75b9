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
        std::process::exit(1);
    }
}
