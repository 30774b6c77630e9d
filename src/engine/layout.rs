//! An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`) as a source or
//! destination of `flotilla copy`.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::digest::{Digest, Verifier};
use super::manifest;

/// Annotation naming a tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Errors of an OCI layout.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LayoutError {
    /// File system error.
    #[error("{path}: {reason}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        reason: String,
    },
    /// `index.json` malformed.
    #[error("{path} is not a valid OCI index: {reason}")]
    Index {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Tag absent.
    #[error("tag {tag:?} not found in OCI layout {path}")]
    NotFound {
        /// Layout.
        path: PathBuf,
        /// Tag.
        tag: String,
    },
    /// Written content does not hash to the announced digest.
    #[error("blob written to {path} has digest {actual}, expected {expected}")]
    Digest {
        /// Layout.
        path: PathBuf,
        /// Expected.
        expected: Digest,
        /// Actual.
        actual: Digest,
    },
}

/// An OCI image layout on disk.
#[derive(Debug)]
pub struct Layout {
    root: PathBuf,
    index_lock: tokio::sync::Mutex<()>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError + '_ {
    move |e| LayoutError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Layout {
    /// Opens a layout; `create` makes the directory and its skeleton when missing.
    pub async fn open(root: &Path, create: bool) -> Result<Self, LayoutError> {
        let marker = root.join("oci-layout");
        if create {
            let blobs = root.join("blobs").join("sha256");
            tokio::fs::create_dir_all(&blobs)
                .await
                .map_err(io(&blobs))?;
            if tokio::fs::metadata(&marker).await.is_err() {
                tokio::fs::write(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)
                    .await
                    .map_err(io(&marker))?;
            }
            let index = root.join("index.json");
            if tokio::fs::metadata(&index).await.is_err() {
                tokio::fs::write(
                    &index,
                    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                )
                .await
                .map_err(io(&index))?;
            }
        } else {
            tokio::fs::metadata(&marker).await.map_err(io(&marker))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            index_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(d.hex())
    }

    async fn read_index(&self) -> Result<serde_json::Value, LayoutError> {
        let p = self.root.join("index.json");
        let bytes = tokio::fs::read(&p).await.map_err(io(&p))?;
        serde_json::from_slice(&bytes).map_err(|e| LayoutError::Index {
            path: p,
            reason: e.to_string(),
        })
    }

    /// Resolves a tag (or digest) to the manifest digest and media type.
    pub async fn resolve(&self, reference: &str) -> Result<Option<(Digest, String)>, LayoutError> {
        let index = self.read_index().await?;
        let entries = index
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default();
        for e in entries {
            let digest = e.get("digest").and_then(|d| d.as_str()).unwrap_or_default();
            let name = e
                .get("annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(|n| n.as_str());
            if name == Some(reference) || digest == reference {
                let mt = e
                    .get("mediaType")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default()
                    .to_string();
                let d =
                    digest
                        .parse()
                        .map_err(|e: super::digest::DigestError| LayoutError::Index {
                            path: self.root.join("index.json"),
                            reason: e.to_string(),
                        })?;
                return Ok(Some((d, mt)));
            }
        }
        if let Ok(d) = reference.parse::<Digest>()
            && self.has_blob(&d).await
        {
            return Ok(Some((d, String::new())));
        }
        Ok(None)
    }

    /// Reads a manifest by digest.
    pub async fn get_manifest(&self, d: &Digest) -> Result<(Bytes, String), LayoutError> {
        let p = self.blob_path(d);
        let bytes = tokio::fs::read(&p).await.map_err(io(&p))?;
        let mt = manifest::media_type_of("", &bytes);
        Ok((Bytes::from(bytes), mt))
    }

    /// Whether a blob (or manifest) is present.
    pub async fn has_blob(&self, d: &Digest) -> bool {
        tokio::fs::metadata(self.blob_path(d)).await.is_ok()
    }

    /// Streams a blob in 256 KiB chunks.
    pub async fn open_blob(
        &self,
        d: &Digest,
    ) -> Result<BoxStream<'static, Result<Bytes, LayoutError>>, LayoutError> {
        let p = self.blob_path(d);
        let file = tokio::fs::File::open(&p).await.map_err(io(&p))?;
        Ok(
            futures::stream::try_unfold((file, p), |(mut f, p)| async move {
                let mut buf = vec![0u8; 256 * 1024];
                let n = f.read(&mut buf).await.map_err(io(&p))?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                Ok(Some((Bytes::from(buf), (f, p))))
            })
            .boxed(),
        )
    }

    /// Writes a blob from chunks, verifying its digest before it becomes visible.
    pub async fn write_blob<S>(&self, d: &Digest, mut chunks: S) -> Result<u64, LayoutError>
    where
        S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        let final_path = self.blob_path(d);
        let tmp = self.root.join("blobs").join("sha256").join(format!(
            ".tmp-{}-{}",
            d.hex(),
            rand::random::<u32>()
        ));
        let mut f = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
        let mut v = Verifier::default();
        let result = async {
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(io(&tmp))?;
                v.update(&chunk);
                f.write_all(&chunk).await.map_err(io(&tmp))?;
            }
            f.flush().await.map_err(io(&tmp))?;
            Ok::<(), LayoutError>(())
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let n = v.len();
        let actual = v.finish();
        if &actual != d {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(LayoutError::Digest {
                path: self.root.clone(),
                expected: d.clone(),
                actual,
            });
        }
        tokio::fs::rename(&tmp, &final_path)
            .await
            .map_err(io(&final_path))?;
        Ok(n)
    }

    /// Stores a manifest, and tags it in `index.json` when `tag` is given.
    pub async fn put_manifest(
        &self,
        tag: Option<&str>,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<(), LayoutError> {
        let d = Digest::of(bytes);
        let p = self.blob_path(&d);
        tokio::fs::write(&p, bytes).await.map_err(io(&p))?;
        let Some(tag) = tag else { return Ok(()) };
        let _guard = self.index_lock.lock().await;
        let mut index = self.read_index().await?;
        let entry = serde_json::json!({
            "mediaType": media_type,
            "digest": d.as_str(),
            "size": bytes.len(),
            "annotations": {REF_NAME: tag},
        });
        let p = self.root.join("index.json");
        let Some(list) = index.get_mut("manifests").and_then(|m| m.as_array_mut()) else {
            return Err(LayoutError::Index {
                path: p,
                reason: "no manifests array".into(),
            });
        };
        list.retain(|e| {
            e.get("annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(|n| n.as_str())
                != Some(tag)
        });
        list.push(entry);
        let text = serde_json::to_vec_pretty(&index).map_err(|e| LayoutError::Index {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        tokio::fs::write(&p, text).await.map_err(io(&p))
    }
}
