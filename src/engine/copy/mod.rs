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
use super::limit::Limiter;
use super::locks::TargetLocks;
use super::manifest::{self, Descriptor, Parsed, PlatformSelection};
use super::store::Store;

mod blobs;

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

/// A destination repository an artifact is written to.
#[derive(Clone, Debug)]
pub struct TargetRepo {
    /// Destination index.
    pub id: usize,
    /// Store.
    pub store: Store,
    /// Repository.
    pub repo: String,
}

/// Per-target outcome.
pub type Outcomes = Vec<(usize, Result<(), CopyError>)>;

fn all_fail(targets: &[TargetRepo], e: &CopyError) -> Outcomes {
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
        targets: &'a [TargetRepo],
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
            let (bytes, media_type, parsed) = match self.read_parsed(&feeder, digest).await {
                Ok(m) => m,
                Err(e) => return all_fail(targets, &e),
            };
            let mut failed = Failures::default();
            let mut external_layers = false;
            match parsed {
                // Every child of what is pushed is copied (a registry refuses an index whose
                // children are missing): platforms were selected by `select_platforms`.
                Parsed::Index { manifests } => {
                    self.copy_children(feeder, &manifests, targets, &mut failed)
                        .await
                }
                Parsed::Image { config, layers } => {
                    let (blobs, external) = self.image_blobs(&feeder, config, layers).await;
                    external_layers = external;
                    self.copy_blobs(feeder, blobs, targets, &mut failed).await;
                }
            }
            let manifest = Manifest {
                digest,
                tag,
                media_type: &media_type,
                bytes: &bytes,
                external_layers,
            };
            self.put_manifest(&manifest, targets, failed).await
        }
        .boxed()
    }

    /// Manifest `digest` from the feeder, with its media type, parsed.
    async fn read_parsed(
        &self,
        feeder: &Feeder<'_>,
        digest: &Digest,
    ) -> Result<(bytes::Bytes, String, Parsed), CopyError> {
        let (bytes, media_type) = self.fetch_manifest(feeder, digest).await?;
        let parsed =
            manifest::parse(&media_type, &bytes).map_err(|source| CopyError::Manifest {
                digest: digest.clone(),
                source,
            })?;
        Ok((bytes, media_type, parsed))
    }

    /// Copies each child of an index to the targets (not failed yet) that lack it.
    async fn copy_children(
        &self,
        feeder: Feeder<'_>,
        children: &[Descriptor],
        targets: &[TargetRepo],
        failed: &mut Failures,
    ) {
        for child in children {
            let need = lacking(&child.digest, targets, failed).await;
            if !need.is_empty() {
                failed.absorb(self.copy_manifest(feeder, &child.digest, &need, None).await);
            }
        }
    }

    /// The blobs of an image to copy, each once: foreign layers, and layers with `urls` the
    /// feeder does not hold, are left out (counted; `true` when there were any).
    async fn image_blobs(
        &self,
        feeder: &Feeder<'_>,
        config: Option<Descriptor>,
        layers: Vec<Descriptor>,
    ) -> (Vec<Descriptor>, bool) {
        let mut seen = HashSet::new();
        let mut blobs = Vec::new();
        let mut external = false;
        for d in config.into_iter().chain(layers) {
            if d.foreign || (d.has_urls && !feeder_holds(feeder, &d.digest).await) {
                self.foreign_skipped.fetch_add(1, Ordering::Relaxed);
                external = true;
                continue;
            }
            if seen.insert(d.digest.clone()) {
                blobs.push(d);
            }
        }
        (blobs, external)
    }

    /// Makes every blob present at every target, `blob_parallelism` blobs at once.
    async fn copy_blobs(
        &self,
        feeder: Feeder<'_>,
        blobs: Vec<Descriptor>,
        targets: &[TargetRepo],
        failed: &mut Failures,
    ) {
        let results: Vec<Outcomes> = futures::stream::iter(blobs)
            .map(|b| async move { self.ensure_blob(feeder, &b, targets).await })
            .buffer_unordered(self.blob_parallelism)
            .collect()
            .await;
        for r in results {
            failed.absorb(r);
        }
    }

    /// Pushes the manifest to every target whose children all arrived (and that is not
    /// unreachable); the others get the failure that held it back.
    async fn put_manifest(
        &self,
        m: &Manifest<'_>,
        targets: &[TargetRepo],
        mut failed: Failures,
    ) -> Outcomes {
        let mut out = Vec::with_capacity(targets.len());
        for t in targets {
            if let Some(e) = failed.take(t.id).or_else(|| self.unreachable(t.id)) {
                out.push((t.id, Err(e)));
                continue;
            }
            let r = t
                .store
                .put_manifest(&t.repo, m.tag, m.media_type, m.bytes)
                .await
                .map_err(|source| CopyError::Write {
                    destination: t.store.name(),
                    what: m.push_what(&t.repo),
                    source,
                });
            match &r {
                Ok(()) => self.add_written(t.id, m.bytes.len() as u64),
                Err(e) => self.note_failure(t.id, e),
            }
            out.push((t.id, r));
        }
        out
    }
}

/// The first failure of each target of one manifest copy: its children or blobs.
#[derive(Debug, Default)]
struct Failures(HashMap<usize, CopyError>);

impl Failures {
    /// Keeps each target's first failure among `outcomes`.
    fn absorb(&mut self, outcomes: Outcomes) {
        for (id, r) in outcomes {
            if let Err(e) = r {
                self.0.entry(id).or_insert(e);
            }
        }
    }

    fn has(&self, id: usize) -> bool {
        self.0.contains_key(&id)
    }

    fn record(&mut self, id: usize, e: CopyError) {
        self.0.insert(id, e);
    }

    fn take(&mut self, id: usize) -> Option<CopyError> {
        self.0.remove(&id)
    }
}

/// A manifest to push, as read from the feeder.
struct Manifest<'a> {
    digest: &'a Digest,
    tag: Option<&'a str>,
    media_type: &'a str,
    bytes: &'a bytes::Bytes,
    /// It has foreign or non-distributable layers (left out of the copy).
    external_layers: bool,
}

impl Manifest<'_> {
    /// What the push to `repo` is called in an error.
    fn push_what(&self, repo: &str) -> String {
        let reference = self
            .tag
            .map(str::to_string)
            .unwrap_or_else(|| self.digest.to_string());
        let hint = if self.external_layers {
            " (it has foreign/non-distributable layers: Distribution accepts their urls only when validation.manifests.urls.allow matches them)"
        } else {
            ""
        };
        format!("push of manifest {repo}:{reference}{hint}")
    }
}

/// The targets, not failed yet, that lack manifest `child` (by a HEAD at each); a target
/// whose check fails is failed.
async fn lacking(child: &Digest, targets: &[TargetRepo], failed: &mut Failures) -> Vec<TargetRepo> {
    let mut need = Vec::new();
    let live: Vec<&TargetRepo> = targets.iter().filter(|t| !failed.has(t.id)).collect();
    for t in live {
        match t.store.has_manifest(&t.repo, child).await {
            Ok(true) => {}
            Ok(false) => need.push(t.clone()),
            Err(source) => failed.record(
                t.id,
                CopyError::Write {
                    destination: t.store.name(),
                    what: format!("HEAD of manifest {child}"),
                    source,
                },
            ),
        }
    }
    need
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

#[cfg(test)]
mod tests;
