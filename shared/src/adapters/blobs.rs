//! Blobs on the local filesystem (`file://dir`) through `object_store`, the same API the S3
//! adapter uses, so the code that writes reports is the same locally and in the cloud.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

use crate::ports::{BlobError, Blobs};

/// Report files under a local directory.
#[derive(Debug, Clone)]
pub struct FsBlobs {
    root: PathBuf,
    store: Arc<LocalFileSystem>,
}

impl FsBlobs {
    /// Uses `root`, creating it when missing.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, BlobError> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root)
            .map_err(|e| BlobError::Permanent(format!("cannot create {}: {e}", root.display())))?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| BlobError::Permanent(format!("cannot open {}: {e}", root.display())))?;
        Ok(FsBlobs {
            root,
            store: Arc::new(store),
        })
    }
}

fn object_path(key: &str) -> Result<ObjectPath, BlobError> {
    ObjectPath::parse(key)
        .map_err(|e| BlobError::Permanent(format!("invalid blob key {key:?}: {e}")))
}

#[async_trait]
impl Blobs for FsBlobs {
    async fn put(&self, key: &str, bytes: Bytes, _content_type: &str) -> Result<String, BlobError> {
        let path = object_path(key)?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| BlobError::Transient(format!("cannot write {key}: {e}")))?;
        Ok(self.root.join(key).display().to_string())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        let path = object_path(key)?;
        match self.store.get(&path).await {
            Ok(result) => result
                .bytes()
                .await
                .map(Some)
                .map_err(|e| BlobError::Transient(format!("cannot read {key}: {e}"))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(BlobError::Transient(format!("cannot read {key}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_then_get() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobs::new(dir.path().join("reports")).unwrap();
        let at = blobs
            .put(
                "reports/2026-11-21.csv",
                Bytes::from_static(b"a,b\n"),
                "text/csv",
            )
            .await
            .unwrap();
        assert!(at.ends_with("reports/reports/2026-11-21.csv"), "{at}");
        assert_eq!(
            blobs.get("reports/2026-11-21.csv").await.unwrap().unwrap(),
            Bytes::from_static(b"a,b\n")
        );
        assert_eq!(blobs.get("reports/missing.csv").await.unwrap(), None);
        assert!(matches!(
            blobs.put("../escape", Bytes::new(), "x").await,
            Err(BlobError::Permanent(_))
        ));
    }
}
