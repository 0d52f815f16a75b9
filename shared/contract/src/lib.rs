//! `nightshift-contract`: the one definition of what the nightshift functions (crate
//! `nightshift`) and the emulator (crate `nightshift-local`) must agree on, so neither keeps a
//! copy of the other's names.
//!
//! - [`record`]: the attributes a dead-lettered copy carries (`nightshift-error`, ...) and the
//!   receive count of an SQS record;
//! - [`faults`]: the fault grammar of `NIGHTSHIFT_FAULTS` (`[function:]fault[=value]`), the
//!   faults the functions inject with their default rates, and the seeded decision function.
//!
//! Light on purpose (no AWS SDK): the emulator depends on it without pulling in the
//! functions' adapters.

pub mod faults;
pub mod record;
