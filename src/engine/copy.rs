//! Copy of one manifest tree (index → manifests → blobs) from a feeder to several targets:
//! children first, blobs verified while streaming, the manifest (and tag) last.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::backoff::{self, RetryConfig};
pub use super::copy_error::CopyError;
use super::digest::Digest;
use super::fanout;
use super::limit::Limiter;
use super::locks::TargetLocks;
use super::manifest::{self, Descriptor, Parsed, PlatformSelection};
use super::store::{Prepared, Store, StoreError};

/// Where an artifact is read from.
#[derive(Clone, Copy, Debug)]
pub struct Feeder<'a> {
    /// Store.
    pub store: &'a Store,
    /// Repository.
    pub repo: &'a str,
    /// Whether reads count as "bytes read from the source".
    pub is_source: bool,
}

/// Where an artifact is written.
#[derive(Clone, Debug)]
pub struct Target {
    /// Destination index.
    pub id: usize,
    /// Store.
    pub store: Store,
    /// Repository.
    pub repo: String,
}

/// Per-target outcome.
pub type Outcomes = Vec<(usize, Result<(), CopyError>)>;

fn all_fail(targets: &[Target], e: &CopyError) -> Outcomes {
    targets.iter().map(|t| (t.id, Err(e.clone()))).collect()
}

/// Shared state of all copies of one run: limits, blob locks, what each destination holds,
/// counters.
#[derive(Debug)]
pub struct Copier {
    limiter: Limiter,
    retry: RetryConfig,
    platforms: Vec<String>,
    blob_parallelism: usize,
    /// One upload of a blob at a time to a destination (per destination: the regions of a
    /// tree feed their cities the same blob at once).
    locks: TargetLocks<Digest>,
    /// One copy at a time of a manifest into a repository (several tags of one index are
    /// copied at once): Distribution verifies an index's children by reading their link
    /// files, which a concurrent push of the same child rewrites, and then refuses the index
    /// (`DIGEST_INVALID`, `MANIFEST_BLOB_UNKNOWN`).
    manifest_locks: TargetLocks<(String, Digest)>,
    known: Mutex<HashMap<(usize, Digest), HashSet<String>>>,
    /// Indexes reduced to the wanted platforms by `select_platforms`, by their new digest:
    /// bytes and media type.
    selected: Mutex<HashMap<Digest, (bytes::Bytes, String)>>,
    /// Destinations found unreachable in this run, with the error: later copies to them fail
    /// at once, so that a destination that went down holds back neither its siblings (a
    /// fan-out waits for each of its targets) nor the rest of the run with retries.
    unreachable: Mutex<HashMap<usize, CopyError>>,
    /// Whether a connection error makes a destination unreachable for the rest of the run
    /// (the operator, which retries failed syncs) or is retried like other errors.
    fail_fast: bool,
    /// Bytes read from the source (shared with a [`super::progress::Progress`]).
    pub source_read: Arc<AtomicU64>,
    /// Bytes read from destinations feeding others.
    pub relay_read: Arc<AtomicU64>,
    /// Bytes written per destination id.
    pub written: Vec<AtomicU64>,
    /// Foreign / non-distributable layers left out.
    pub foreign_skipped: AtomicU64,
}

impl Copier {
    /// A copier for `destinations` targets.
    pub fn new(
        destinations: usize,
        limiter: Limiter,
        retry: RetryConfig,
        platforms: Vec<String>,
        blob_parallelism: usize,
    ) -> Self {
        Self {
            limiter,
            retry,
            platforms,
            blob_parallelism: blob_parallelism.max(1),
            locks: TargetLocks::default(),
            manifest_locks: TargetLocks::default(),
            known: Mutex::new(HashMap::new()),
            selected: Mutex::new(HashMap::new()),
            unreachable: Mutex::new(HashMap::new()),
            fail_fast: false,
            source_read: Arc::new(AtomicU64::new(0)),
            relay_read: Arc::new(AtomicU64::new(0)),
            written: (0..destinations).map(|_| AtomicU64::new(0)).collect(),
            foreign_skipped: AtomicU64::new(0),
        }
    }

    fn add_written(&self, id: usize, n: u64) {
        if let Some(w) = self.written.get(id) {
            w.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// This copier with connection errors at a destination making it unreachable for the
    /// rest of the run (see [`Copier::unreachable`]).
    pub fn failing_fast(self, fail_fast: bool) -> Self {
        Self { fail_fast, ..self }
    }

    /// Records `e` for target `id` when it says the destination cannot be reached.
    fn note_failure(&self, id: usize, e: &CopyError) {
        if self.fail_fast
            && e.is_unreachable()
            && let Ok(mut u) = self.unreachable.lock()
        {
            u.entry(id).or_insert_with(|| e.clone());
        }
    }

    /// The error that made target `id` unreachable earlier in this run, if any.
    fn unreachable(&self, id: usize) -> Option<CopyError> {
        self.unreachable
            .lock()
            .ok()
            .and_then(|u| u.get(&id).cloned())
    }

    fn remember(&self, id: usize, d: &Digest, repo: &str) {
        if let Ok(mut k) = self.known.lock() {
            k.entry((id, d.clone()))
                .or_default()
                .insert(repo.to_string());
        }
    }

    /// (known in this repo, another repo of the same destination holding it)
    fn known(&self, id: usize, d: &Digest, repo: &str) -> (bool, Option<String>) {
        let Ok(k) = self.known.lock() else {
            return (false, None);
        };
        match k.get(&(id, d.clone())) {
            Some(repos) if repos.contains(repo) => (true, None),
            Some(repos) => (false, repos.iter().next().cloned()),
            None => (false, None),
        }
    }

    async fn backoff(&self, attempt: u32, err: &CopyError) {
        let wait = self
            .retry
            .delay(attempt, backoff::jitter(), err.retry_after());
        tokio::time::sleep(wait).await;
    }

    /// Applies the platform filter to the artifact `digest` of the source: `Ok(Some(d))` is
    /// the digest the destinations must hold (`digest` itself, or that of a new index with
    /// only the wanted platforms, remembered for [`Self::copy_manifest`]); `Ok(None)`: no
    /// platform of the index is wanted.
    pub async fn select_platforms(
        &self,
        feeder: Feeder<'_>,
        digest: &Digest,
    ) -> Result<Option<Digest>, CopyError> {
        if self.platforms.is_empty() {
            return Ok(Some(digest.clone()));
        }
        let (bytes, media_type) = self.fetch_manifest(&feeder, digest).await?;
        let manifest_err = |source| CopyError::Manifest {
            digest: digest.clone(),
            source,
        };
        match manifest::select_platforms(&media_type, &bytes, &self.platforms)
            .map_err(manifest_err)?
        {
            PlatformSelection::Nothing => Ok(None),
            PlatformSelection::Whole => Ok(Some(digest.clone())),
            PlatformSelection::Filtered(new) => {
                // Kept for the copy (only these: the source has no manifest by this digest).
                let d = Digest::of(&new);
                if let Ok(mut s) = self.selected.lock() {
                    s.insert(d.clone(), (bytes::Bytes::from(new), media_type));
                }
                Ok(Some(d))
            }
        }
    }

    async fn fetch_manifest(
        &self,
        feeder: &Feeder<'_>,
        digest: &Digest,
    ) -> Result<(bytes::Bytes, String), CopyError> {
        if feeder.is_source
            && let Some(m) = self
                .selected
                .lock()
                .ok()
                .and_then(|s| s.get(digest).cloned())
        {
            return Ok(m);
        }
        let (bytes, ct) = feeder
            .store
            .get_manifest(feeder.repo, digest)
            .await
            .map_err(|source| CopyError::Read {
                what: format!("manifest {}@{digest}", feeder.repo),
                source,
            })?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(CopyError::ManifestDigest {
                from: feeder.store.name(),
                expected: digest.clone(),
                actual,
            });
        }
        if feeder.is_source {
            self.source_read
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        Ok((bytes.clone(), manifest::media_type_of(&ct, &bytes)))
    }

    /// Copies manifest `digest` (and everything it references) from `feeder` to `targets`,
    /// tagging it `tag` (or storing it by digest). Each target gets its own outcome.
    pub fn copy_manifest<'a>(
        &'a self,
        feeder: Feeder<'a>,
        digest: &'a Digest,
        targets: &'a [Target],
        tag: Option<&'a str>,
    ) -> BoxFuture<'a, Outcomes> {
        async move {
            // Parents lock before their children (a DAG), the destinations of one level in
            // ascending order: no cycle, no deadlock.
            let repo = targets.first().map(|t| t.repo.clone()).unwrap_or_default();
            let _copying = self
                .manifest_locks
                .lock(&(repo, digest.clone()), targets.iter().map(|t| t.id))
                .await;
            let (bytes, media_type) = match self.fetch_manifest(&feeder, digest).await {
                Ok(m) => m,
                Err(e) => return all_fail(targets, &e),
            };
            let parsed = match manifest::parse(&media_type, &bytes) {
                Ok(p) => p,
                Err(source) => {
                    return all_fail(
                        targets,
                        &CopyError::Manifest {
                            digest: digest.clone(),
                            source,
                        },
                    );
                }
            };
            let mut failed: HashMap<usize, CopyError> = HashMap::new();
            let mut external_layers = false;
            match parsed {
                // Every child of what is pushed is copied (a registry refuses an index whose
                // children are missing): platforms were selected by `select_platforms`.
                Parsed::Index { manifests } => {
                    for child in &manifests {
                        let mut need = Vec::new();
                        let live: Vec<&Target> = targets
                            .iter()
                            .filter(|t| !failed.contains_key(&t.id))
                            .collect();
                        for t in live {
                            match t.store.has_manifest(&t.repo, &child.digest).await {
                                Ok(true) => {}
                                Ok(false) => need.push(t.clone()),
                                Err(source) => {
                                    failed.insert(
                                        t.id,
                                        CopyError::Write {
                                            destination: t.store.name(),
                                            what: format!("HEAD of manifest {}", child.digest),
                                            source,
                                        },
                                    );
                                }
                            }
                        }
                        if need.is_empty() {
                            continue;
                        }
                        for (id, r) in self.copy_manifest(feeder, &child.digest, &need, None).await
                        {
                            if let Err(e) = r {
                                failed.entry(id).or_insert(e);
                            }
                        }
                    }
                }
                Parsed::Image { config, layers } => {
                    let mut seen = HashSet::new();
                    let mut blobs = Vec::new();
                    for d in config.into_iter().chain(layers) {
                        if d.foreign || (d.has_urls && !feeder_holds(&feeder, &d.digest).await) {
                            self.foreign_skipped.fetch_add(1, Ordering::Relaxed);
                            external_layers = true;
                            continue;
                        }
                        if seen.insert(d.digest.clone()) {
                            blobs.push(d);
                        }
                    }
                    let results: Vec<Outcomes> = futures::stream::iter(blobs)
                        .map(|b| async move { self.ensure_blob(feeder, &b, targets).await })
                        .buffer_unordered(self.blob_parallelism)
                        .collect()
                        .await;
                    for (id, r) in results.into_iter().flatten() {
                        if let Err(e) = r {
                            failed.entry(id).or_insert(e);
                        }
                    }
                }
            }
            let mut out = Vec::with_capacity(targets.len());
            for t in targets {
                if let Some(e) = failed.remove(&t.id).or_else(|| self.unreachable(t.id)) {
                    out.push((t.id, Err(e)));
                    continue;
                }
                let r = t
                    .store
                    .put_manifest(&t.repo, tag, &media_type, &bytes)
                    .await
                    .map_err(|source| CopyError::Write {
                        destination: t.store.name(),
                        what: format!(
                            "push of manifest {}:{}{}",
                            t.repo,
                            tag.map(str::to_string)
                                .unwrap_or_else(|| digest.to_string()),
                            if external_layers {
                                " (it has foreign/non-distributable layers: Distribution accepts their urls only when validation.manifests.urls.allow matches them)"
                            } else {
                                ""
                            }
                        ),
                        source,
                    });
                match &r {
                    Ok(()) => self.add_written(t.id, bytes.len() as u64),
                    Err(e) => self.note_failure(t.id, e),
                }
                out.push((t.id, r));
            }
            out
        }
        .boxed()
    }

    /// Makes blob `desc` present in every target repository (checked at all of them at once):
    /// known, existing, mounted from another repository of the same destination, or streamed
    /// once from the feeder to all that still lack it.
    async fn ensure_blob(
        &self,
        feeder: Feeder<'_>,
        desc: &Descriptor,
        targets: &[Target],
    ) -> Outcomes {
        let digest = &desc.digest;
        let _guards = self.locks.lock(digest, targets.iter().map(|t| t.id)).await;
        let mut out: Outcomes = Vec::new();
        let mut pending: Vec<(Target, Option<url::Url>)> = Vec::new();
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
        let checks = unknown
            .into_iter()
            .map(|(t, elsewhere)| async move { (t, prepare(t, digest, elsewhere).await) });
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
        let counter = if feeder.is_source {
            &self.source_read
        } else {
            &self.relay_read
        };
        let mut attempt = 0u32;
        while !pending.is_empty() {
            attempt += 1;
            let by_id: HashMap<usize, Target> =
                pending.iter().map(|(t, _)| (t.id, t.clone())).collect();
            let fan: Vec<fanout::Target> = pending
                .drain(..)
                .map(|(t, session)| fanout::Target {
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
                fan,
                feeder.is_source.then_some(&self.limiter),
                counter,
            )
            .await;
            tracing::debug!(%digest, size = desc.size, targets = by_id.len(), elapsed_ms = t0.elapsed().as_millis() as u64, "blob streamed");
            let mut retry_err = None;
            match results {
                Ok(results) => {
                    for (id, r) in results {
                        match r {
                            Ok(n) => {
                                self.add_written(id, n);
                                if let Some(t) = by_id.get(&id) {
                                    self.remember(id, digest, &t.repo);
                                }
                                out.push((id, Ok(())));
                            }
                            // A destination that went away is not waited for: the run
                            // reports it, the policy's next sync repairs it.
                            Err(e)
                                if e.is_retryable()
                                    && !last
                                    && !(self.fail_fast && e.is_unreachable()) =>
                            {
                                if let Some(t) = by_id.get(&id) {
                                    pending.push((t.clone(), None));
                                }
                                retry_err = Some(e);
                            }
                            Err(e) => {
                                self.note_failure(id, &e);
                                out.push((id, Err(e)));
                            }
                        }
                    }
                }
                Err(e) if e.is_retryable() && !last => {
                    pending.extend(by_id.into_values().map(|t| (t, None)));
                    retry_err = Some(e);
                }
                Err(e) => out.extend(by_id.into_keys().map(|id| (id, Err(e.clone())))),
            }
            if let Some(e) = retry_err {
                tracing::debug!(%digest, error = %e, attempt, "retrying blob");
                self.backoff(attempt, &e).await;
            }
        }
        out
    }
}

/// Whether the feeder holds blob `digest` (an ordinary layer with `urls` may live only at
/// them). When the check itself fails, `true`: the copy is tried and reports the failure.
async fn feeder_holds(feeder: &Feeder<'_>, digest: &Digest) -> bool {
    feeder
        .store
        .has_blob(feeder.repo, digest)
        .await
        .unwrap_or(true)
}

/// How blob `digest` reaches target `t`. Mounted straight from `elsewhere`, a repository of
/// the same registry known to hold it (a registry also answers a mount of a blob the
/// repository holds already: no HEAD first); otherwise, or when the registry refused the
/// mount, present (a refused mount's upload session is then left to the registry's upload
/// purging) or to upload.
async fn prepare(
    t: &Target,
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
