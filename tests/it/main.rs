//! Cross-crate suites: the three functions fed real AWS event JSON from `tests/fixtures/`,
//! with in-memory ports and a manual clock. Compiled into one test binary.

mod bad_input;
mod batch;
mod check;
mod cloud;
mod daily_report;
mod email_sender;
mod emulator;
mod fuzz_contracts;
mod infra;
mod inventory;
mod mail_feedback;
mod metrics;
mod outage;
mod pipeline;
mod queue_processor;
mod replay;
mod scheduler_port;
mod support;
mod tls;
