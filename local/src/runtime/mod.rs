//! runtime: under construction.
