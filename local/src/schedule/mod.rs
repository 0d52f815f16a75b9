//! schedule: under construction.
