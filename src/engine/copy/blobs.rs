//! One blob of a copy at every target: known, present, mounted, or streamed once from the
//! feeder to all that lack it, with retries of the uploads worth retrying.

use std::collections::HashMap;

use super::{Copier, CopyError, Feeder, Outcomes, TargetRepo};
use crate::engine::digest::Digest;
use crate::engine::fanout;
use crate::engine::manifest::Descriptor;
use crate::engine::store::{Prepared, Store, StoreError};

impl Copier {
    /// Makes blob `desc` present in every target repository (checked at all of them at once):
    /// known, existing, mounted from another repository of the same destination, or streamed
    /// once from the feeder to all that still lack it.
    pub(super) async fn ensure_blob(
        &self,
        feeder: Feeder<'_>,
        desc: &Descriptor,
        targets: &[TargetRepo],
    ) -> Outcomes {
        let digest = &desc.digest;
        let _guards = self.locks.lock(digest, targets.iter().map(|t| t.id)).await;
        let (mut out, unknown) = self.triage(digest, targets);
        let pending = self.check_blob(digest, unknown, &mut out).await;
        self.stream_blob(feeder, desc, pending, &mut out).await;
        out
    }

    /// Sorts the targets of blob `digest` without a request: known to hold it (done),
    /// unreachable earlier in the run (failed at once), or to check, with another repository
    /// of the same destination known to hold it (to mount from), if any.
    pub(super) fn triage<'t>(
        &self,
        digest: &Digest,
        targets: &'t [TargetRepo],
    ) -> (Outcomes, Vec<(&'t TargetRepo, Option<String>)>) {
        let mut out = Vec::new();
        let mut unknown = Vec::new();
        for t in targets {
            if let Some(e) = self.unreachable(t.id) {
                out.push((t.id, Err(e)));
                continue;
            }
            match self.known(t.id, digest, &t.repo) {
                (true, _) => out.push((t.id, Ok(()))),
                (false, elsewhere) => unknown.push((t, elsewhere)),
            }
        }
        (out, unknown)
    }

    /// Checks (and mounts where it can) blob `digest` at the `unknown` targets at once: those
    /// holding it now are done, the others are returned with their upload session, if open.
    async fn check_blob(
        &self,
        digest: &Digest,
        unknown: Vec<(&TargetRepo, Option<String>)>,
        out: &mut Outcomes,
    ) -> Vec<(TargetRepo, Option<url::Url>)> {
        let checks = unknown
            .into_iter()
            .map(|(t, elsewhere)| async move { (t, prepare(t, digest, elsewhere).await) });
        let mut pending = Vec::new();
        for (t, prepared) in futures::future::join_all(checks).await {
            match prepared {
                Ok(Prepared::Present) => {
                    self.remember(t.id, digest, &t.repo);
                    out.push((t.id, Ok(())));
                }
                Ok(Prepared::Upload(session)) => pending.push((t.clone(), session)),
                Err(source) => {
                    let e = CopyError::Write {
                        destination: t.store.name(),
                        what: format!("check of blob {digest}"),
                        source,
                    };
                    self.note_failure(t.id, &e);
                    out.push((t.id, Err(e)));
                }
            }
        }
        pending
    }

    /// Streams blob `desc` from the feeder to the `pending` targets, retrying those whose
    /// upload failed in a way worth retrying, until none is left or the attempts are used up.
    async fn stream_blob(
        &self,
        feeder: Feeder<'_>,
        desc: &Descriptor,
        mut pending: Vec<(TargetRepo, Option<url::Url>)>,
        out: &mut Outcomes,
    ) {
        let digest = &desc.digest;
        let counter = if feeder.is_source {
            &self.source_read
        } else {
            &self.relay_read
        };
        let mut attempt = 0u32;
        while !pending.is_empty() {
            attempt += 1;
            let by_id: HashMap<usize, TargetRepo> =
                pending.iter().map(|(t, _)| (t.id, t.clone())).collect();
            let uploads: Vec<fanout::Upload> = pending
                .drain(..)
                .map(|(t, session)| fanout::Upload {
                    id: t.id,
                    store: t.store,
                    repo: t.repo,
                    session,
                })
                .collect();
            let last = attempt >= self.retry.max_attempts.max(1);
            let t0 = std::time::Instant::now();
            let results = fanout::fan_out(
                feeder.store,
                feeder.repo,
                digest,
                desc.size,
                uploads,
                feeder.is_source.then_some(&self.limiter),
                counter,
            )
            .await;
            tracing::debug!(%digest, size = desc.size, targets = by_id.len(), elapsed_ms = t0.elapsed().as_millis() as u64, "blob streamed");
            let retry = self.settle_all(digest, results, &by_id, last, &mut pending, out);
            if let Some(e) = retry {
                tracing::debug!(%digest, error = %e, attempt, "retrying blob");
                self.backoff(attempt, &e).await;
            }
        }
    }

    /// Books the outcomes of one fan-out: written, to retry (back into `pending`), or failed.
    /// Returns an error to retry after, when anything is to be retried.
    fn settle_all(
        &self,
        digest: &Digest,
        results: Result<fanout::UploadResults, CopyError>,
        by_id: &HashMap<usize, TargetRepo>,
        last: bool,
        pending: &mut Vec<(TargetRepo, Option<url::Url>)>,
        out: &mut Outcomes,
    ) -> Option<CopyError> {
        let results = match results {
            Ok(r) => r,
            Err(e) if e.is_retryable() && !last => {
                pending.extend(by_id.values().map(|t| (t.clone(), None)));
                return Some(e);
            }
            Err(e) => {
                out.extend(by_id.keys().map(|id| (*id, Err(e.clone()))));
                return None;
            }
        };
        let mut retry_err = None;
        for (id, r) in results {
            match settle(r, last, self.fail_fast) {
                Settled::Written(n) => {
                    self.add_written(id, n);
                    if let Some(t) = by_id.get(&id) {
                        self.remember(id, digest, &t.repo);
                    }
                    out.push((id, Ok(())));
                }
                Settled::Retry(e) => {
                    if let Some(t) = by_id.get(&id) {
                        pending.push((t.clone(), None));
                    }
                    retry_err = Some(e);
                }
                Settled::Failed(e) => {
                    self.note_failure(id, &e);
                    out.push((id, Err(e)));
                }
            }
        }
        retry_err
    }
}

/// What becomes of one upload's outcome.
#[derive(Debug)]
pub(super) enum Settled {
    /// Written, this many bytes.
    Written(u64),
    /// Worth another attempt.
    Retry(CopyError),
    /// Final.
    Failed(CopyError),
}

/// The retry decision for one upload, pure: a retryable failure is retried unless the
/// attempts are used up, or the destination went away while failing fast (a destination
/// that went away is not waited for: the run reports it, the policy's next sync repairs it).
pub(super) fn settle(r: Result<u64, CopyError>, last: bool, fail_fast: bool) -> Settled {
    match r {
        Ok(n) => Settled::Written(n),
        Err(e) if e.is_retryable() && !last && !(fail_fast && e.is_unreachable()) => {
            Settled::Retry(e)
        }
        Err(e) => Settled::Failed(e),
    }
}

/// How blob `digest` reaches target `t`. Mounted straight from `elsewhere`, a repository of
/// the same registry known to hold it (a registry also answers a mount of a blob the
/// repository holds already: no HEAD first); otherwise, or when the registry refused the
/// mount, present (a refused mount's upload session is then left to the registry's upload
/// purging) or to upload.
async fn prepare(
    t: &TargetRepo,
    digest: &Digest,
    elsewhere: Option<String>,
) -> Result<Prepared, StoreError> {
    let mut session = None;
    if let (Store::Registry(_), Some(from)) = (&t.store, &elsewhere)
        && from != &t.repo
    {
        match t.store.prepare(&t.repo, digest, Some(from)).await? {
            Prepared::Present => return Ok(Prepared::Present),
            Prepared::Upload(s) => session = Some(s),
        }
    }
    if t.store.has_blob(&t.repo, digest).await? {
        return Ok(Prepared::Present);
    }
    match session {
        Some(s) => Ok(Prepared::Upload(s)),
        None => t.store.prepare(&t.repo, digest, elsewhere.as_deref()).await,
    }
}
