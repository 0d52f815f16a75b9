//! tests for template
