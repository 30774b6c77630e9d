//! One read of a blob streamed to every destination that needs it, verified on the way.
//!
//! The source is read at the pace of the slowest live destination through small bounded
//! channels, so memory stays bounded whatever the blob size. A destination whose upload fails
//! is dropped and the others go on. Uploads commit only after the whole stream hashed to the
//! expected digest; on a mismatch every upload is aborted and nothing is committed.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

use super::copy_error::CopyError;
use super::digest::{Digest, Verifier};
use super::limit::Limiter;
use super::store::{Store, StoreError};

/// Chunks buffered per destination.
const CHANNEL_CHUNKS: usize = 4;
/// Source reads are coalesced into chunks of about this size before being handed to the
/// uploads: fewer, larger writes to every destination. Memory stays bounded by
/// `destinations x (CHANNEL_CHUNKS + 1) x CHUNK`.
const CHUNK: usize = 256 * 1024;

/// One upload of a fan-out: a destination repository and its session, if open.
#[derive(Debug)]
pub struct Upload {
    /// Caller's identifier.
    pub id: usize,
    /// Where to write.
    pub store: Store,
    /// Repository.
    pub repo: String,
    /// Upload session already opened (by a failed mount), if any.
    pub session: Option<Url>,
}

/// Per-upload outcome: bytes written or why not.
pub type UploadResults = Vec<(usize, Result<u64, CopyError>)>;

/// Source reads gathered into chunks of at least [`CHUNK`] bytes (a read that large already
/// passes as it is, uncopied).
#[derive(Debug, Default)]
struct Coalescer {
    pending: BytesMut,
}

impl Coalescer {
    /// The chunk to hand on once `read` arrived, when one is full.
    fn push(&mut self, read: Bytes) -> Option<Bytes> {
        if self.pending.is_empty() && read.len() >= CHUNK {
            return Some(read);
        }
        self.pending.extend_from_slice(&read);
        (self.pending.len() >= CHUNK).then(|| self.pending.split().freeze())
    }

    /// What is left when the source ended.
    fn finish(&mut self) -> Option<Bytes> {
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }
}

type Sender = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// The uploads of one fan-out, one task each, fed through bounded channels; an upload whose
/// channel closed (it failed) is fed no more.
struct Uploads {
    senders: Vec<Option<Sender>>,
    tasks: Vec<(usize, JoinHandle<Result<u64, CopyError>>)>,
}

impl Uploads {
    fn start(uploads: Vec<Upload>, digest: &Digest) -> Self {
        let mut senders = Vec::with_capacity(uploads.len());
        let mut tasks = Vec::with_capacity(uploads.len());
        for u in uploads {
            let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
            senders.push(Some(tx));
            let d = digest.clone();
            let task = tokio::spawn(async move {
                let destination = u.store.name();
                u.store
                    .upload(&u.repo, &d, u.session, rx)
                    .await
                    .map_err(|source| CopyError::Upload {
                        destination,
                        source,
                    })
            });
            tasks.push((u.id, task));
        }
        Self { senders, tasks }
    }

    /// Hands `chunk` to every live upload.
    async fn feed(&mut self, chunk: &Bytes) {
        for slot in self.senders.iter_mut() {
            if let Some(tx) = slot
                && tx.send(Ok(chunk.clone())).await.is_err()
            {
                *slot = None;
            }
        }
    }

    /// Whether every upload failed already.
    fn all_failed(&self) -> bool {
        self.senders.iter().all(Option::is_none)
    }

    /// Stops every upload before it commits.
    fn abort(&self) {
        for (_, t) in &self.tasks {
            t.abort();
        }
    }

    /// Ends the streams cleanly (the uploads commit) and collects each outcome.
    async fn finish(mut self) -> UploadResults {
        self.senders.clear();
        let mut out = Vec::with_capacity(self.tasks.len());
        for (id, task) in self.tasks {
            let r = match task.await {
                Ok(r) => r,
                Err(e) => Err(CopyError::Internal(format!("upload task failed: {e}"))),
            };
            out.push((id, r));
        }
        out
    }
}

/// Streams blob `digest` of `size` bytes from `src` to `uploads`. `read` counts the bytes
/// read from `src`; `limiter`, when given, paces them. An `Err` is a failure of the source
/// side that applies to every upload, none of which committed.
pub async fn fan_out(
    src: &Store,
    src_repo: &str,
    digest: &Digest,
    size: u64,
    uploads: Vec<Upload>,
    limiter: Option<&Limiter>,
    read: &AtomicU64,
) -> Result<UploadResults, CopyError> {
    let mut uploads = Uploads::start(uploads, digest);
    let source = Source {
        store: src,
        repo: src_repo,
        digest,
        size,
    };
    match source.stream_into(&mut uploads, limiter, read).await {
        Ok(()) => Ok(uploads.finish().await),
        Err(e) => {
            uploads.abort();
            Err(e)
        }
    }
}

/// The blob a fan-out reads.
struct Source<'a> {
    store: &'a Store,
    repo: &'a str,
    digest: &'a Digest,
    size: u64,
}

impl Source<'_> {
    fn read_error(&self, source: StoreError) -> CopyError {
        CopyError::Read {
            what: format!("blob {}", self.digest),
            source,
        }
    }

    /// Reads the blob into every live upload, cut as soon as it runs past `size`, and
    /// checked against the digest at the end (unless every upload failed before).
    async fn stream_into(
        &self,
        uploads: &mut Uploads,
        limiter: Option<&Limiter>,
        read: &AtomicU64,
    ) -> Result<(), CopyError> {
        let mut stream = self
            .store
            .open_blob(self.repo, self.digest)
            .await
            .map_err(|e| self.read_error(e))?;
        let mut verifier = Verifier::default();
        let mut chunks = Coalescer::default();
        let mut ended = false;
        while !ended {
            let chunk = match stream.next().await {
                Some(Ok(c)) => match chunks.push(c) {
                    Some(chunk) => chunk,
                    None => continue,
                },
                Some(Err(source)) => return Err(self.read_error(source)),
                None => {
                    ended = true;
                    match chunks.finish() {
                        Some(rest) => rest,
                        None => break,
                    }
                }
            };
            if verifier.len() + chunk.len() as u64 > self.size {
                // More than the descriptor declared: cut now, not at the end of an endless stream.
                return Err(CopyError::Oversized {
                    from: self.store.name(),
                    digest: self.digest.clone(),
                    size: self.size,
                });
            }
            if let Some(l) = limiter {
                l.take(chunk.len() as u64).await;
            }
            verifier.update(&chunk);
            read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            uploads.feed(&chunk).await;
            if uploads.all_failed() {
                return Ok(());
            }
        }
        self.mismatch(verifier).map_or(Ok(()), Err)
    }

    /// The error when what streamed is not the blob the descriptor named.
    fn mismatch(&self, verifier: Verifier) -> Option<CopyError> {
        let len = verifier.len();
        let actual = verifier.finish();
        (&actual != self.digest || len != self.size).then(|| CopyError::DigestMismatch {
            from: self.store.name(),
            expected: self.digest.clone(),
            actual,
            expected_size: self.size,
            actual_size: len,
        })
    }
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;
