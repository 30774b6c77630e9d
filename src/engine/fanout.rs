//! One read of a blob streamed to every destination that needs it, verified on the way.
//!
//! The source is read at the pace of the slowest live destination through small bounded
//! channels, so memory stays bounded whatever the blob size. A destination whose upload fails
//! is dropped and the others go on. Uploads commit only after the whole stream hashed to the
//! expected digest; on a mismatch every upload is aborted and nothing is committed.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use tokio::sync::mpsc;
use url::Url;

use super::copy_error::CopyError;
use super::digest::{Digest, Verifier};
use super::limit::Limiter;
use super::store::Store;

/// Chunks buffered per destination.
const CHANNEL_CHUNKS: usize = 4;
/// Source reads are coalesced into chunks of about this size before being handed to the
/// uploads: fewer, larger writes to every destination. Memory stays bounded by
/// `destinations x (CHANNEL_CHUNKS + 1) x CHUNK`.
const CHUNK: usize = 256 * 1024;

/// One destination of a fan-out.
#[derive(Debug)]
pub struct Target {
    /// Caller's identifier.
    pub id: usize,
    /// Where to write.
    pub store: Store,
    /// Repository.
    pub repo: String,
    /// Upload session already opened (by a failed mount), if any.
    pub session: Option<Url>,
}

/// Per-target outcome: bytes written or why not.
pub type TargetResults = Vec<(usize, Result<u64, CopyError>)>;

/// Streams blob `digest` of `size` bytes from `src` to `targets`. `read` counts the bytes
/// read from `src`; `limiter`, when given, paces them. An `Err` is a failure of the source
/// side that applies to every target.
pub async fn fan_out(
    src: &Store,
    src_repo: &str,
    digest: &Digest,
    size: u64,
    targets: Vec<Target>,
    limiter: Option<&Limiter>,
    read: &AtomicU64,
) -> Result<TargetResults, CopyError> {
    let mut senders = Vec::with_capacity(targets.len());
    let mut tasks = Vec::with_capacity(targets.len());
    for t in targets {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        senders.push(Some(tx));
        let d = digest.clone();
        let name = t.store.name();
        let task = tokio::spawn(async move {
            t.store
                .upload(&t.repo, &d, t.session, rx)
                .await
                .map_err(|source| CopyError::Upload {
                    destination: name,
                    source,
                })
        });
        tasks.push((t.id, task));
    }
    let abort = |tasks: &Vec<(usize, tokio::task::JoinHandle<Result<u64, CopyError>>)>| {
        for (_, t) in tasks {
            t.abort();
        }
    };

    let mut stream = match src.open_blob(src_repo, digest).await {
        Ok(s) => s,
        Err(source) => {
            abort(&tasks);
            return Err(CopyError::Read {
                what: format!("blob {digest}"),
                source,
            });
        }
    };
    let mut verifier = Verifier::default();
    let mut pending = bytes::BytesMut::new();
    let mut done = false;
    while !done {
        let chunk = match stream.next().await {
            Some(Ok(c)) => {
                if pending.is_empty() && c.len() >= CHUNK {
                    c
                } else {
                    pending.extend_from_slice(&c);
                    if pending.len() < CHUNK {
                        continue;
                    }
                    pending.split().freeze()
                }
            }
            Some(Err(source)) => {
                abort(&tasks);
                return Err(CopyError::Read {
                    what: format!("blob {digest}"),
                    source,
                });
            }
            None => {
                done = true;
                if pending.is_empty() {
                    break;
                }
                pending.split().freeze()
            }
        };
        if verifier.len() + chunk.len() as u64 > size {
            // More than the descriptor declared: cut now, not at the end of an endless stream.
            abort(&tasks);
            return Err(CopyError::Oversized {
                from: src.name(),
                digest: digest.clone(),
                size,
            });
        }
        if let Some(l) = limiter {
            l.take(chunk.len() as u64).await;
        }
        verifier.update(&chunk);
        read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        for slot in senders.iter_mut() {
            if let Some(tx) = slot
                && tx.send(Ok(chunk.clone())).await.is_err()
            {
                *slot = None;
            }
        }
        if senders.iter().all(Option::is_none) {
            break;
        }
    }
    let all_dead = senders.iter().all(Option::is_none);
    if !all_dead {
        let len = verifier.len();
        let actual = verifier.finish();
        if &actual != digest || len != size {
            abort(&tasks);
            return Err(CopyError::DigestMismatch {
                from: src.name(),
                expected: digest.clone(),
                actual,
                expected_size: size,
                actual_size: len,
            });
        }
    }
    drop(senders);
    let mut out = Vec::with_capacity(tasks.len());
    for (id, task) in tasks {
        let r = match task.await {
            Ok(r) => r,
            Err(e) => Err(CopyError::Internal(format!("upload task failed: {e}"))),
        };
        out.push((id, r));
    }
    Ok(out)
}
