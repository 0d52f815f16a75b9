//! End-to-end suites for nightshift; see `it/`.
