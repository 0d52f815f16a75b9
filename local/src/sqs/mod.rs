//! sqs: under construction.
