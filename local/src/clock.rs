//! clock: under construction.
