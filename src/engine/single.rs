//! Copy of one artifact between two stores (registries or OCI layouts): `flotilla copy`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::backoff::RetryConfig;
use super::copy::{Copier, Feeder, Outcomes, TargetRepo};
use super::digest::Digest;
use super::limit::Limiter;
use super::progress::{Phase, Progress};
use super::report::{DestinationReport, Failure, Report};
use super::store::{Store, StoreError};

/// One side of a copy.
#[derive(Clone, Debug)]
pub struct Side {
    /// Store.
    pub store: Store,
    /// Repository (ignored by layouts).
    pub repo: String,
    /// Tag or digest.
    pub reference: String,
}

/// Errors before anything is written.
#[derive(Debug, thiserror::Error)]
pub enum SingleError {
    /// Source lookup failed.
    #[error("source {name}: {source}")]
    Source {
        /// Source.
        name: String,
        /// Cause.
        source: StoreError,
    },
    /// The source reference does not exist.
    #[error("{reference} not found in {name}{repo}: check the tag or digest")]
    NotFound {
        /// Store.
        name: String,
        /// Repository, with a leading `/` when relevant.
        repo: String,
        /// The reference.
        reference: String,
    },
    /// Destination lookup failed.
    #[error("destination {name}: {source}")]
    Destination {
        /// Destination.
        name: String,
        /// Cause.
        source: StoreError,
    },
}

/// Copies `src` to `dst` (`dst.reference` a tag, or the digest to store it untagged).
pub async fn copy(src: &Side, dst: &Side, retry: RetryConfig) -> Result<Report, SingleError> {
    copy_with_progress(src, dst, retry, &[], &Progress::default()).await
}

/// [`copy`] of the wanted `platforms` only (empty: all; as a policy's `platforms`: an index
/// with other children too becomes a new index of the wanted ones, one with none of them is
/// not copied), keeping `progress` up to date (for a live display).
pub async fn copy_with_progress(
    src: &Side,
    dst: &Side,
    retry: RetryConfig,
    platforms: &[String],
    progress: &Progress,
) -> Result<Report, SingleError> {
    progress.phase(Phase::Planning);
    let started = Instant::now();
    let digest = resolve_source(src).await?;
    let mut report = Report {
        destinations: vec![DestinationReport {
            name: dst.store.name(),
            ..Default::default()
        }],
        ..Default::default()
    };
    progress.set_total(1);
    let copier = Copier::new(1, Limiter::new(None), retry, platforms.to_vec(), 3);
    let feeder = Feeder {
        store: &src.store,
        repo: &src.repo,
        is_source: true,
    };
    let selected = report.record_platform_selection(
        &format!("{}@{digest}", src.reference),
        &digest,
        copier.select_platforms(feeder, &digest).await,
        platforms,
    );
    if let Some(digest) = selected {
        let tag = destination_tag(dst);
        if held(dst, tag, &digest).await? {
            report.skipped = 1;
            report.destinations[0].skipped = 1;
        } else {
            progress.count_bytes(copier.source_read.clone());
            progress.phase(Phase::Copying);
            let targets = [TargetRepo {
                id: 0,
                store: dst.store.clone(),
                repo: dst.repo.clone(),
            }];
            let out = copier.copy_manifest(feeder, &digest, &targets, tag).await;
            let artifact = format!("{}@{digest}", src.reference);
            record(&mut report, &copier, out, &artifact, &dst.store.name());
        }
    }
    progress.artifact_done(report.copied > 0, report.failed > 0);
    progress.phase(Phase::Done);
    report.duration_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The digest the source's reference names.
async fn resolve_source(src: &Side) -> Result<Digest, SingleError> {
    let name = src.store.name();
    src.store
        .resolve(&src.repo, &src.reference)
        .await
        .map_err(|source| SingleError::Source {
            name: name.clone(),
            source,
        })?
        .ok_or_else(|| SingleError::NotFound {
            name,
            repo: match src.store {
                Store::Registry(_) => format!("/{}", src.repo),
                Store::Layout(_) => String::new(),
            },
            reference: src.reference.clone(),
        })
}

/// The tag to give the copy: the destination's reference, unless it is a digest (then the
/// copy is stored by digest, untagged).
fn destination_tag(dst: &Side) -> Option<&str> {
    if dst.reference.starts_with("sha256:") {
        None
    } else {
        Some(dst.reference.as_str())
    }
}

/// Whether the destination holds `digest` already: under the tag, or (untagged) by digest.
async fn held(dst: &Side, tag: Option<&str>, digest: &Digest) -> Result<bool, SingleError> {
    let lookup = tag.map_or_else(|| digest.to_string(), str::to_string);
    let current = dst
        .store
        .resolve(&dst.repo, &lookup)
        .await
        .map_err(|source| SingleError::Destination {
            name: dst.store.name(),
            source,
        })?;
    Ok(current.as_ref() == Some(digest))
}

/// Counts the copy's outcome and bytes into `report`.
fn record(report: &mut Report, copier: &Copier, out: Outcomes, artifact: &str, destination: &str) {
    for (_, r) in out {
        match r {
            Ok(()) => {
                report.copied = 1;
                report.destinations[0].copied = 1;
            }
            Err(e) => {
                report.failed = 1;
                report.destinations[0].failed = 1;
                report.failures.push(Failure {
                    artifact: artifact.to_string(),
                    destination: destination.to_string(),
                    error: e.to_string(),
                });
            }
        }
    }
    report.bytes_read_from_source = copier.source_read.load(Ordering::Relaxed);
    report.destinations[0].bytes_written = copier.written[0].load(Ordering::Relaxed);
    report.foreign_layers_skipped = copier.foreign_skipped.load(Ordering::Relaxed);
}
