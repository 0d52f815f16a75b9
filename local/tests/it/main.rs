//! Integration tests of the emulator, compiled into one binary.

mod runtime;
mod schedule;
mod sqs;
mod template;
