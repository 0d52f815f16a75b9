//! template: under construction.
