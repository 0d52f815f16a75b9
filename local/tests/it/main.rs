//! Integration tests of the emulator, compiled into one binary.

mod async_harness;
mod browser;
mod cli;
mod client_env;
mod dashboard;
mod divergence;
mod event_invoke_template;
mod faults;
mod foreign_project;
mod fuzz;
mod invoke_async;
mod lambda_api;
mod layering;
mod mapping;
mod metrics;
mod run_time_schedules;
mod runtime;
mod schedule;
mod schedule_runner;
mod scheduler_api;
mod sqs;
mod sqs_api;
mod sqs_fifo;
mod template;
mod template_forms;
mod trace;
