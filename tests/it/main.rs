//! Cross-crate suites: the three functions fed real AWS event JSON from `tests/fixtures/`,
//! with in-memory ports and a manual clock. Compiled into one test binary.

mod batch;
mod cloud;
mod daily_report;
mod email_sender;
mod emulator;
mod infra;
mod pipeline;
mod queue_processor;
mod support;
