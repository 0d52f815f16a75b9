//! SQS errors with the codes AWS returns for them.
//!
//! Each error knows its JSON-protocol `__type` (what the body carries), its query-compatible
//! code (what `x-amzn-query-error` carries and what the SDKs match on), whether the sender or
//! the service is at fault, and its HTTP status.

/// An SQS failure, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqsError {
    /// The queue named in the request does not exist.
    #[error("the specified queue does not exist")]
    QueueDoesNotExist,
    /// CreateQueue for an existing name with different attribute values.
    #[error("a queue already exists with the same name and a different value for attribute {0}")]
    QueueNameExists(String),
    /// A parameter has a value out of range or of the wrong form.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// A required parameter is absent.
    #[error("{0}")]
    MissingParameter(String),
    /// An unknown queue attribute name.
    #[error("{0}")]
    InvalidAttributeName(String),
    /// A queue attribute value out of range or malformed.
    #[error("{0}")]
    InvalidAttributeValue(String),
    /// The message body has characters outside the allowed set.
    #[error("{0}")]
    InvalidMessageContents(String),
    /// A batch with more than 10 entries.
    #[error("{0}")]
    TooManyEntriesInBatchRequest(String),
    /// A batch without entries.
    #[error("{0}")]
    EmptyBatchRequest(String),
    /// Two entries of a batch share an id.
    #[error("{0}")]
    BatchEntryIdsNotDistinct(String),
    /// A batch entry id with characters other than alphanumerics, `-` and `_`, or too long.
    #[error("{0}")]
    InvalidBatchEntryId(String),
    /// The messages of a batch are together larger than the limit.
    #[error("{0}")]
    BatchRequestTooLong(String),
    /// A receipt handle that this service never issued.
    #[error("{0}")]
    ReceiptHandleIsInvalid(String),
    /// ChangeMessageVisibility on a message that is not in flight.
    #[error("{0}")]
    MessageNotInflight(String),
    /// Only one PurgeQueue every 60 seconds.
    #[error("{0}")]
    PurgeQueueInProgress(String),
    /// A resource (queue ARN, move task) that does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// A limit would be exceeded (actions in a permission, ...).
    #[error("{0}")]
    OverLimit(String),
    /// An operation or feature this emulator does not provide.
    #[error("{0}")]
    UnsupportedOperation(String),
    /// The request body is not the JSON the operation expects.
    #[error("{0}")]
    Serialization(String),
    /// The emulator failed (journal I/O); the request may be retried.
    #[error("internal failure: {0}")]
    Internal(String),
}

/// How an [`SqsError`] is written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError {
    /// The JSON `__type`, e.g. `com.amazonaws.sqs#QueueDoesNotExist`.
    pub type_name: &'static str,
    /// The query-compatible code, e.g. `AWS.SimpleQueueService.NonExistentQueue`.
    pub query_code: &'static str,
    /// `true` when the caller is at fault (`Sender`), `false` for `Receiver`.
    pub sender_fault: bool,
    /// The HTTP status.
    pub status: u16,
}

impl SqsError {
    /// The wire representation of this error.
    pub fn wire(&self) -> WireError {
        let (type_name, query_code, sender_fault, status) = match self {
            SqsError::QueueDoesNotExist => (
                "com.amazonaws.sqs#QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
                true,
                400,
            ),
            SqsError::QueueNameExists(_) => (
                "com.amazonaws.sqs#QueueNameExists",
                "QueueAlreadyExists",
                true,
                400,
            ),
            SqsError::InvalidParameterValue(_) => (
                "com.amazon.coral.service#InvalidParameterValueException",
                "InvalidParameterValue",
                true,
                400,
            ),
            SqsError::MissingParameter(_) => (
                "com.amazon.coral.service#MissingParameterException",
                "MissingParameter",
                true,
                400,
            ),
            SqsError::InvalidAttributeName(_) => (
                "com.amazonaws.sqs#InvalidAttributeName",
                "InvalidAttributeName",
                true,
                400,
            ),
            SqsError::InvalidAttributeValue(_) => (
                "com.amazonaws.sqs#InvalidAttributeValue",
                "InvalidAttributeValue",
                true,
                400,
            ),
            SqsError::InvalidMessageContents(_) => (
                "com.amazonaws.sqs#InvalidMessageContents",
                "InvalidMessageContents",
                true,
                400,
            ),
            SqsError::TooManyEntriesInBatchRequest(_) => (
                "com.amazonaws.sqs#TooManyEntriesInBatchRequest",
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                true,
                400,
            ),
            SqsError::EmptyBatchRequest(_) => (
                "com.amazonaws.sqs#EmptyBatchRequest",
                "AWS.SimpleQueueService.EmptyBatchRequest",
                true,
                400,
            ),
            SqsError::BatchEntryIdsNotDistinct(_) => (
                "com.amazonaws.sqs#BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                true,
                400,
            ),
            SqsError::InvalidBatchEntryId(_) => (
                "com.amazonaws.sqs#InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                true,
                400,
            ),
            SqsError::BatchRequestTooLong(_) => (
                "com.amazonaws.sqs#BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
                true,
                400,
            ),
            SqsError::ReceiptHandleIsInvalid(_) => (
                "com.amazonaws.sqs#ReceiptHandleIsInvalid",
                "ReceiptHandleIsInvalid",
                true,
                400,
            ),
            SqsError::MessageNotInflight(_) => (
                "com.amazonaws.sqs#MessageNotInflight",
                "AWS.SimpleQueueService.MessageNotInflight",
                true,
                400,
            ),
            SqsError::PurgeQueueInProgress(_) => (
                "com.amazonaws.sqs#PurgeQueueInProgress",
                "AWS.SimpleQueueService.PurgeQueueInProgress",
                true,
                400,
            ),
            SqsError::ResourceNotFound(_) => (
                "com.amazonaws.sqs#ResourceNotFoundException",
                "ResourceNotFoundException",
                true,
                400,
            ),
            SqsError::OverLimit(_) => ("com.amazonaws.sqs#OverLimit", "OverLimit", true, 403),
            SqsError::UnsupportedOperation(_) => (
                "com.amazonaws.sqs#UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation",
                true,
                400,
            ),
            SqsError::Serialization(_) => (
                "com.amazon.coral.service#SerializationException",
                "SerializationException",
                true,
                400,
            ),
            SqsError::Internal(_) => (
                "com.amazon.coral.service#InternalFailure",
                "InternalFailure",
                false,
                500,
            ),
        };
        WireError {
            type_name,
            query_code,
            sender_fault,
            status,
        }
    }

    /// The message sent to clients, worded as AWS words it.
    pub fn aws_message(&self) -> String {
        match self {
            SqsError::QueueDoesNotExist => "The specified queue does not exist.".to_string(),
            SqsError::QueueNameExists(attr) => format!(
                "A queue already exists with the same name and a different value for attribute {attr}"
            ),
            SqsError::Internal(_) => "The request processing has failed because of an unknown error, exception or failure.".to_string(),
            other => other.to_string(),
        }
    }

    /// The code written in a failed batch entry (`Failed[].Code`).
    pub fn batch_entry_code(&self) -> &'static str {
        self.wire().query_code
    }

    pub(crate) fn invalid_value(name: &str, value: impl std::fmt::Display, reason: &str) -> Self {
        SqsError::InvalidParameterValue(format!(
            "Value {value} for parameter {name} is invalid. Reason: {reason}"
        ))
    }
}

impl From<std::io::Error> for SqsError {
    fn from(err: std::io::Error) -> Self {
        SqsError::Internal(err.to_string())
    }
}
