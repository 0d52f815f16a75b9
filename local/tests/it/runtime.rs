//! tests for runtime
