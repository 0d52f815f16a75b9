//! tests for schedule
