//! Tracing setup for the functions: `lambda_runtime`'s subscriber, which writes JSON lines when
//! `AWS_LAMBDA_LOG_FORMAT=JSON` and takes its level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.

/// Installs the global subscriber; call once at the top of `main`.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}
