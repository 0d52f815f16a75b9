//! tests for sqs
