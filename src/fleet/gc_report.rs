//! What a garbage-collect Job's log says (Distribution prints one line per blob and manifest
//! eligible for deletion, and a summary line), and the figures of a run computed from the
//! listings of the storage before and after.

use std::collections::BTreeMap;

use crate::api::gc::{GcMeasurement, StorageUsage};
use crate::engine::digest::Digest;

/// The eligible blobs and manifests of a `registry garbage-collect` output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcLog {
    /// Digests of the blobs eligible for deletion.
    pub blobs: Vec<String>,
    /// Number of manifests eligible for deletion (from the summary line).
    pub manifests: Option<i64>,
    /// Number of blobs the summary line announced; when it differs from `blobs.len()` the log
    /// was cut.
    pub announced_blobs: Option<usize>,
}

impl GcLog {
    /// Whether every announced blob line was read.
    pub fn complete(&self) -> bool {
        self.announced_blobs == Some(self.blobs.len())
    }
}

const BLOB_LINE: &str = "blob eligible for deletion: ";
/// `%d blobs marked, %d blobs and %d manifests eligible for deletion`.
const SUMMARY_TAIL: &str = " manifests eligible for deletion";

/// Reads the log (lines that are not Distribution's are ignored).
pub fn parse_log(log: &str) -> GcLog {
    let mut out = GcLog::default();
    for line in log.lines().map(str::trim) {
        if let Some(digest) = line.strip_prefix(BLOB_LINE) {
            if digest.parse::<Digest>().is_ok() {
                out.blobs.push(digest.to_string());
            }
        } else if let Some(head) = line.strip_suffix(SUMMARY_TAIL) {
            // "N blobs marked, M blobs and K"
            let numbers: Vec<i64> = head
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            if let [_, blobs, manifests] = numbers[..] {
                out.announced_blobs = usize::try_from(blobs).ok();
                out.manifests = Some(manifests);
            }
        }
    }
    out.blobs.sort();
    out.blobs.dedup();
    out
}

/// Count and bytes of a listing.
pub fn usage(sizes: &BTreeMap<String, u64>) -> StorageUsage {
    StorageUsage {
        blobs: i64::try_from(sizes.len()).unwrap_or(i64::MAX),
        bytes: i64::try_from(sizes.values().sum::<u64>()).unwrap_or(i64::MAX),
    }
}

/// What the blobs of `log` occupy in `sizes` (the listing before the Job).
pub fn would_free(log: &GcLog, sizes: &BTreeMap<String, u64>) -> StorageUsage {
    let listed: Vec<u64> = log
        .blobs
        .iter()
        .filter_map(|d| sizes.get(d).copied())
        .collect();
    StorageUsage {
        blobs: i64::try_from(listed.len()).unwrap_or(i64::MAX),
        bytes: i64::try_from(listed.iter().sum::<u64>()).unwrap_or(i64::MAX),
    }
}

/// Adds a reason a figure is missing to the measurement's note.
pub fn add_note(m: &mut GcMeasurement, note: &str) {
    m.note = Some(match m.note.take() {
        Some(old) => format!("{old}; {note}"),
        None => note.to_string(),
    });
}

/// The measurement of a finished run: `freed` from `before` and `after` (not for a dry run).
pub fn finish(mut m: GcMeasurement, dry_run: bool) -> GcMeasurement {
    if !dry_run && let (Some(b), Some(a)) = (m.before, m.after) {
        m.freed = Some(StorageUsage {
            blobs: b.blobs - a.blobs,
            bytes: b.bytes - a.bytes,
        });
    }
    m
}

/// One line for the Event of a finished run, e.g. `freed 4 blobs (22.9 MB)`.
pub fn summary(m: &GcMeasurement) -> Option<String> {
    let mb = |b: i64| b as f64 / 1e6;
    match (m.freed, m.would_free) {
        (Some(f), _) => Some(format!("freed {} blobs ({:.1} MB)", f.blobs, mb(f.bytes))),
        (None, Some(w)) => Some(format!(
            "would free {} blobs ({:.1} MB)",
            w.blobs,
            mb(w.bytes)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn reads_distributions_output() {
        let log = format!(
            "app: marking manifest {a}\napp: marking blob {b}\n\n2 blobs marked, 2 blobs and 1 manifests eligible for deletion\nblob eligible for deletion: {c}\nblob eligible for deletion: {e}\ntime=\"...\" level=info msg=\"Deleting blob: /docker/registry/v2/blobs/sha256/cc/cc/data\"\nblob eligible for deletion: not-a-digest\n",
            a = d('a'),
            b = d('b'),
            c = d('c'),
            e = d('e')
        );
        let parsed = parse_log(&log);
        assert_eq!(parsed.blobs, vec![d('c'), d('e')]);
        assert_eq!(parsed.manifests, Some(1));
        assert!(parsed.complete());
        let sizes = BTreeMap::from([(d('b'), 5), (d('c'), 7), (d('e'), 11)]);
        assert_eq!(
            would_free(&parsed, &sizes),
            StorageUsage {
                blobs: 2,
                bytes: 18
            }
        );
        assert_eq!(
            usage(&sizes),
            StorageUsage {
                blobs: 3,
                bytes: 23
            }
        );
    }

    #[test]
    fn a_cut_log_is_not_complete() {
        let log = format!(
            "0 blobs marked, 3 blobs and 0 manifests eligible for deletion\nblob eligible for deletion: {}\n",
            d('c')
        );
        let parsed = parse_log(&log);
        assert!(!parsed.complete());
        assert!(!parse_log("").complete());
    }

    #[test]
    fn freed_is_before_minus_after_and_not_for_a_dry_run() {
        let m = GcMeasurement {
            before: Some(StorageUsage {
                blobs: 10,
                bytes: 1000,
            }),
            after: Some(StorageUsage {
                blobs: 6,
                bytes: 400,
            }),
            ..GcMeasurement::default()
        };
        let done = finish(m.clone(), false);
        assert_eq!(
            done.freed,
            Some(StorageUsage {
                blobs: 4,
                bytes: 600
            })
        );
        assert_eq!(summary(&done).as_deref(), Some("freed 4 blobs (0.0 MB)"));
        assert_eq!(finish(m, true).freed, None);
        let mut noted = GcMeasurement::default();
        add_note(&mut noted, "one");
        add_note(&mut noted, "two");
        assert_eq!(noted.note.as_deref(), Some("one; two"));
    }
}
