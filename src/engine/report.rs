//! The summary of a run, as text or JSON.

use std::fmt::Write as _;

use super::digest::Digest;

/// Per destination figures.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationReport {
    /// Name.
    pub name: String,
    /// Artifacts copied here.
    pub copied: u64,
    /// Artifacts already here.
    pub skipped: u64,
    /// Artifacts that failed here.
    pub failed: u64,
    /// Tags left alone because they point elsewhere (overwrite: false).
    pub conflicts: u64,
    /// Tags deleted.
    pub deleted: u64,
    /// Bytes written (blobs and manifests).
    pub bytes_written: u64,
}

/// One failure.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Failure {
    /// `repo:tag`, `repo@digest` or a repository.
    pub artifact: String,
    /// Destination name (empty: the source side).
    pub destination: String,
    /// The error.
    pub error: String,
}

/// A change a dry run found to make.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PlannedChange {
    /// `repo:tag` or `repo@digest` (copies: the source's name; deletions: the destination's).
    pub artifact: String,
    /// Destination name.
    pub destination: String,
    /// `copy` or `delete`.
    pub change: &'static str,
}

/// An artifact not copied because its signatures do not verify (`spec.verify`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct HeldBack {
    /// `repo:tag` or `repo@digest`.
    pub artifact: String,
    /// Its digest at the source.
    pub digest: String,
    /// `unsigned`, `untrusted`, `digestMismatch` or `missingAttestation`.
    pub reason: &'static str,
    /// What was found, in words.
    pub message: String,
}

/// One conflict.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Conflict {
    /// `repo:tag`.
    pub artifact: String,
    /// Destination name.
    pub destination: String,
    /// Digest the source has.
    pub source_digest: String,
    /// Digest the destination tag points at.
    pub destination_digest: String,
}

/// A destination a run could not serve: it did not answer its ping (or refused the
/// credentials), or it is fed by one that did not.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unreachable {
    /// Its name.
    pub destination: String,
    /// The unreachable destination feeding it (`None`: it is itself unreachable).
    pub via: Option<String>,
    /// Why, in words.
    pub error: String,
}

/// The summary of one sync or copy.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Artifacts copied to at least one destination, failed at none.
    pub copied: u64,
    /// Artifacts every destination already held.
    pub skipped: u64,
    /// Artifacts that failed at one destination at least.
    pub failed: u64,
    /// Conflicts (overwrite: false).
    pub conflicts: u64,
    /// Tags deleted (deletion: true).
    pub deleted: u64,
    /// Tags a deletion sync planned but withheld, all of them, because they were more than
    /// `maxDeletions` (0: none withheld).
    pub deletions_withheld: u64,
    /// Bytes read from the source (blobs and manifests).
    pub bytes_read_from_source: u64,
    /// Bytes read from destinations feeding others (hierarchical).
    pub bytes_read_from_relays: u64,
    /// Foreign / non-distributable layers not copied.
    pub foreign_layers_skipped: u64,
    /// Indexes pushed as a new index of the wanted `platforms` only (a new digest: the one
    /// case where a destination manifest is not byte-identical to the source's).
    pub platform_filtered: u64,
    /// Indexes left out because none of their platforms is wanted.
    pub platform_unmatched: u64,
    /// Artifacts held back because their signatures do not verify (`spec.verify`): copied
    /// nowhere, with their referrers.
    pub unverified: u64,
    /// Every artifact held back, and why.
    pub unverified_details: Vec<HeldBack>,
    /// Wall time.
    pub duration_seconds: f64,
    /// Per destination.
    pub destinations: Vec<DestinationReport>,
    /// Every failure.
    pub failures: Vec<Failure>,
    /// Every conflict.
    pub conflict_details: Vec<Conflict>,
    /// A dry run: nothing was written; `copied` and `deleted` count what a sync would do.
    pub dry_run: bool,
    /// In a dry run, every copy and deletion a sync would make.
    pub planned: Vec<PlannedChange>,
    /// Destinations left out of the run (only with `OnUnreachable::Skip`).
    pub unreachable: Vec<Unreachable>,
}

impl Report {
    /// Records destination `name` as left out (`via`: the unreachable one feeding it): in
    /// [`Report::unreachable`], as one failure of the destination, and as a failed run.
    pub fn record_unreachable(&mut self, name: &str, via: Option<String>, error: String) {
        self.failures.push(Failure {
            artifact: "*".into(),
            destination: name.to_string(),
            error: error.clone(),
        });
        if let Some(d) = self.destinations.iter_mut().find(|d| d.name == name) {
            d.failed += 1;
        }
        self.unreachable.push(Unreachable {
            destination: name.to_string(),
            via,
            error,
        });
        self.failed = self.failed.max(1);
    }

    /// Whether nothing failed.
    pub fn success(&self) -> bool {
        self.failed == 0 && self.failures.is_empty()
    }

    /// Counts the platform filter's verdict on `artifact` (source digest `source`): the digest
    /// the destinations must hold (a new one when the index was reduced), or `None` when no
    /// platform is wanted or the selection failed (a failure of the artifact).
    pub fn record_platform_selection<E: std::fmt::Display>(
        &mut self,
        artifact: &str,
        source: &Digest,
        selected: Result<Option<Digest>, E>,
        platforms: &[String],
    ) -> Option<Digest> {
        match selected {
            Ok(Some(d)) => {
                if &d != source {
                    tracing::info!(%artifact, source_digest = %source, digest = %d, ?platforms, "index reduced to the wanted platforms (new digest)");
                    self.platform_filtered += 1;
                }
                Some(d)
            }
            Ok(None) => {
                tracing::info!(%artifact, ?platforms, "no platform of the index is wanted: not copied");
                self.platform_unmatched += 1;
                None
            }
            Err(e) => {
                self.failed += 1;
                self.failures.push(Failure {
                    artifact: artifact.to_string(),
                    destination: String::new(),
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// Counts the artifacts the gate held back.
    pub fn record_unverified(&mut self, held_back: Vec<super::gate::Unverified>) {
        for u in held_back {
            self.unverified += 1;
            self.unverified_details.push(HeldBack {
                artifact: u.artifact,
                digest: u.digest.to_string(),
                reason: u.refusal.code(),
                message: u.refusal.to_string(),
            });
        }
    }

    /// Human-readable summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if self.dry_run {
            let _ = writeln!(
                s,
                "dry run: nothing was written; \"copied\" and \"deleted\" below are what a sync would do"
            );
            for p in &self.planned {
                let _ = writeln!(
                    s,
                    "  would {} {} at {}",
                    p.change, p.artifact, p.destination
                );
            }
        }
        let _ = writeln!(
            s,
            "sync {}: {} copied, {} skipped, {} failed, {} conflicts, {} deleted; {} read from source in {:.2}s",
            if self.success() {
                "succeeded"
            } else {
                "FAILED"
            },
            self.copied,
            self.skipped,
            self.failed,
            self.conflicts,
            self.deleted,
            human(self.bytes_read_from_source),
            self.duration_seconds
        );
        for d in &self.destinations {
            let _ = writeln!(
                s,
                "  {}: {} copied, {} skipped, {} failed, {} conflicts, {} deleted, {} written",
                d.name,
                d.copied,
                d.skipped,
                d.failed,
                d.conflicts,
                d.deleted,
                human(d.bytes_written)
            );
        }
        if self.platform_filtered > 0 {
            let _ = writeln!(
                s,
                "  {} indexes reduced to the wanted platforms (new digests, not byte-identical to the source)",
                self.platform_filtered
            );
        }
        if self.platform_unmatched > 0 {
            let _ = writeln!(
                s,
                "  {} indexes not copied: none of their platforms is wanted",
                self.platform_unmatched
            );
        }
        if self.foreign_layers_skipped > 0 {
            let _ = writeln!(
                s,
                "  {} foreign/non-distributable layers not copied",
                self.foreign_layers_skipped
            );
        }
        if self.unverified > 0 {
            let _ = writeln!(
                s,
                "  {} artifacts held back: their signatures do not verify (spec.verify)",
                self.unverified
            );
        }
        for h in &self.unverified_details {
            let _ = writeln!(
                s,
                "  held back: {} ({}): {}",
                h.artifact, h.digest, h.message
            );
        }
        for c in &self.conflict_details {
            let _ = writeln!(
                s,
                "  conflict: {} at {} points at {} (source has {}); left alone because overwrite is false",
                c.artifact, c.destination, c.destination_digest, c.source_digest
            );
        }
        for f in &self.failures {
            let dest = if f.destination.is_empty() {
                String::new()
            } else {
                format!(" -> {}", f.destination)
            };
            let _ = writeln!(s, "  failed: {}{dest}: {}", f.artifact, f.error);
        }
        s
    }
}

/// `1536` → `1.5 KiB`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(10), "10 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn failure_means_not_success() {
        let mut r = Report::default();
        assert!(r.success());
        r.failed = 1;
        assert!(!r.success());
        assert!(r.to_text().contains("FAILED"));
    }
}
