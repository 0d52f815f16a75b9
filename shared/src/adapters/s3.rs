//! Blobs on Amazon S3 (`s3://bucket/prefix`) through `object_store`, the same API as the local
//! [`super::blobs::FsBlobs`], so the report code is the same locally and in the cloud.
//!
//! Credentials, region and endpoint come from the standard `AWS_*` variables (Lambda sets the
//! credentials and region; `AWS_ENDPOINT_URL_S3` points it elsewhere, e.g. at moto). Retries
//! are bounded to fit in an invocation: 3 retries within 20 s, 10 s per request.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutOptions,
    PutPayload, RetryConfig,
};

use crate::ports::{BlobError, Blobs};

/// Report files in an S3 bucket, under a key prefix.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
}

/// Checks a bucket name against S3's rules for new buckets: 3 to 63 characters of lowercase
/// letters, digits, `.` and `-`, starting and ending with a letter or digit.
pub fn validate_bucket_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok = (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
        && bytes
            .first()
            .zip(bytes.last())
            .is_some_and(|(f, l)| f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid bucket name {name:?}: 3 to 63 characters of a-z, 0-9, . and -, \
             starting and ending with a letter or digit"
        ))
    }
}

impl S3Blobs {
    /// `bucket` and `prefix` with credentials, region and endpoint from the environment.
    pub fn from_env(bucket: &str, prefix: &str) -> Result<Self, BlobError> {
        Self::with_builder(AmazonS3Builder::from_env(), bucket, prefix)
    }

    /// `bucket` and `prefix` on a prepared builder (tests set the endpoint and credentials).
    pub fn with_builder(
        builder: AmazonS3Builder,
        bucket: &str,
        prefix: &str,
    ) -> Result<Self, BlobError> {
        validate_bucket_name(bucket).map_err(BlobError::Permanent)?;
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            ObjectPath::parse(prefix)
                .map_err(|e| BlobError::Permanent(format!("invalid key prefix {prefix:?}: {e}")))?;
        }
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
        };
        // The reqwest client object_store builds takes the process's TLS provider.
        crate::adapters::aws::install_tls_provider();
        // Set key by key: `with_client_options` would replace what the builder already holds
        // (`AWS_ALLOW_HTTP`, a proxy, ...).
        let store = builder
            .with_bucket_name(bucket)
            .with_retry(retry)
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "2s",
            )
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "10s")
            .build()
            .map_err(|e| BlobError::Permanent(format!("cannot configure s3: {e}")))?;
        Ok(S3Blobs {
            store: Arc::new(store),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix, without slashes at either end (empty for none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object key of a blob key.
    pub fn object_key(&self, key: &str) -> Result<String, BlobError> {
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        let path = ObjectPath::parse(&full)
            .map_err(|e| BlobError::Permanent(format!("invalid blob key {key:?}: {e}")))?;
        Ok(path.to_string())
    }
}

/// Sorts an `object_store` error: what a retry repeats identically is permanent.
fn classify(what: &str, key: &str, err: object_store::Error) -> BlobError {
    let text = format!("s3 {what} {key}: {err}");
    match err {
        object_store::Error::NotFound { .. }
        | object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::InvalidPath { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. }
        | object_store::Error::AlreadyExists { .. }
        | object_store::Error::Precondition { .. }
        | object_store::Error::UnknownConfigurationKey { .. } => BlobError::Permanent(text),
        _ => BlobError::Transient(text),
    }
}

#[async_trait]
impl Blobs for S3Blobs {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<String, BlobError> {
        let object_key = self.object_key(key)?;
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type.to_string().into());
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.store
            .put_opts(
                &ObjectPath::from(object_key.as_str()),
                PutPayload::from(bytes),
                options,
            )
            .await
            .map_err(|e| classify("put", &object_key, e))?;
        Ok(format!("s3://{}/{object_key}", self.bucket))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        let object_key = self.object_key(key)?;
        match self.store.get(&ObjectPath::from(object_key.as_str())).await {
            Ok(result) => result
                .bytes()
                .await
                .map(Some)
                .map_err(|e| classify("read", &object_key, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(classify("get", &object_key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(prefix: &str) -> S3Blobs {
        let builder = AmazonS3Builder::new()
            .with_region("eu-central-1")
            .with_access_key_id("AKIDTEST")
            .with_secret_access_key("secret");
        S3Blobs::with_builder(builder, "nightshift-reports", prefix).unwrap()
    }

    #[test]
    fn keys_live_under_the_prefix() {
        assert_eq!(
            blobs("/reports/")
                .object_key("reports/2026-11-21.csv")
                .unwrap(),
            "reports/reports/2026-11-21.csv"
        );
        assert_eq!(
            blobs("").object_key("reports/2026-11-21.csv").unwrap(),
            "reports/2026-11-21.csv"
        );
        assert_eq!(blobs("a/b").prefix(), "a/b");
        assert!(matches!(
            blobs("").object_key("../escape"),
            Err(BlobError::Permanent(_))
        ));
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert!(validate_bucket_name("nightshift-prod-reports-123456789012").is_ok());
        for bad in [
            "ab",
            "Upper",
            "under_score",
            "-start",
            "end-",
            &"x".repeat(64),
        ] {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
        let err = S3Blobs::with_builder(AmazonS3Builder::new(), "Bad", "").unwrap_err();
        assert!(
            err.to_string().contains("invalid bucket name \"Bad\""),
            "{err}"
        );
    }

    #[test]
    fn errors_a_retry_repeats_are_permanent() {
        let permanent = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403".into(),
        };
        assert!(matches!(
            classify("put", "k", permanent),
            BlobError::Permanent(m) if m.starts_with("s3 put k:")
        ));
        let transient = object_store::Error::Generic {
            store: "S3",
            source: "connection reset".into(),
        };
        assert!(matches!(
            classify("put", "k", transient),
            BlobError::Transient(_)
        ));
    }
}
