//! `nightshift`: the emulator's command line. See [`nightshift_local::cli`].

use clap::Parser;
use nightshift_local::logs::LogFormat;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    let cli = nightshift_local::cli::Cli::parse();
    init_tracing(cli.log_format());
    if let Err(err) = nightshift_local::cli::run(cli).await {
        eprintln!("error: {err:#}");
        std::process::exit(exit_code(&err));
    }
}

/// The emulator's own log, on stdout next to the functions' lines and in the same format:
/// JSON objects (`timestamp`, `level`, `message`, fields) for `--log-format json`, else one
/// compact line with the same time of day as theirs. `NIGHTSHIFT_LOG` filters it (`info`).
fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("NIGHTSHIFT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .init(),
        LogFormat::Human { color } => builder
            .compact()
            .with_ansi(color)
            .with_timer(TimeOfDay)
            .init(),
        LogFormat::Tracing => builder.init(),
    }
}

/// `12:18:43.153` (UTC), as function lines show their time.
struct TimeOfDay;

impl tracing_subscriber::fmt::time::FormatTime for TimeOfDay {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", chrono::Utc::now().format("%H:%M:%S%.3f"))
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
