//! sqs: the emulator's SQS, in memory with a durable journal, served over the AWS JSON 1.0
//! protocol so `aws-sdk-sqs`, the AWS CLI and boto3 work against it unchanged.
//!
//! Files by role:
//! - [`engine`]: the registry of queues and every operation (also the in-process API);
//! - [`queue`]: one queue's state machine (visibility, delay, retention, receive counts);
//! - [`fifo`]: what FIFO queues add (message groups, deduplication, sequence numbers);
//! - [`attributes`]: queue attributes, their ranges and defaults;
//! - [`validate`]: message, attribute and batch checks;
//! - [`journal`]: durability (append-only journal, replay, compaction);
//! - [`protocol`]: the JSON 1.0 request and response shapes and the operation dispatch;
//! - [`server`]: the HTTP endpoint;
//! - [`md5`]: the digests of bodies and attributes;
//! - [`model`]: the values of the in-process API;
//! - [`permissions`]: the `Policy` that AddPermission and RemovePermission maintain;
//! - [`error`]: errors with their AWS codes.
//!
//! Standard and FIFO queues.

pub mod attributes;
pub mod engine;
pub mod error;
pub mod fifo;
pub mod journal;
pub mod md5;
pub mod model;
pub mod permissions;
pub mod protocol;
mod queue;
pub mod server;
pub mod validate;

pub use engine::{QueueSubscription, SqsConfig, SqsEngine, queue_name_of};
pub use error::SqsError;
pub use journal::{FsyncPolicy, JournalConfig};
pub use model::{
    BatchFailure, BatchOutcome, MessageAttributeValue, MessageSnapshot, MessageState, MoveTask,
    MoveTaskStatus, OutgoingMessage, QueueStats, ReceiveOptions, ReceivedMessage, SendReceipt,
};
pub use server::{SqsServer, serve};
