//! Push work kept in the policy's status (`status.pendingPushes`), so that an operator that
//! starts after a crash copies what the registries were told was received. Pure.
//!
//! What is written: the batch a run is about to cover (at the run's start, in the status write
//! that marks it `Syncing`), and what is still waiting when it ends. What is read back is as
//! untrusted as any status: each item is checked against the Distribution grammar, and one
//! that fails is dropped and makes the next run a full sync, which covers it.

use crate::api::replication_policy::{PendingPush, PendingPushes, PushAction};
use crate::engine::digest::Digest;
use crate::engine::names;
use crate::engine::scope::Named;

use super::pending::Batch;

/// Items kept in the status at most; more make the next run after a restart a full sync.
pub const MAX_PERSISTED: usize = 100;

/// What the status keeps of `batch` (`None`: nothing waits).
pub fn persisted(batch: Option<&Batch>) -> Option<PendingPushes> {
    let batch = batch?;
    let items: Vec<PendingPush> = batch
        .items
        .iter()
        .take(MAX_PERSISTED)
        .map(|(n, _)| item(n))
        .collect();
    Some(PendingPushes {
        overflowed: batch.overflowed || batch.items.len() > MAX_PERSISTED,
        items,
    })
}

fn item(n: &Named) -> PendingPush {
    match n {
        Named::Pushed { repository, tag } => PendingPush {
            action: PushAction::Pushed,
            repository: repository.clone(),
            tag: Some(tag.clone()),
            digest: None,
        },
        Named::Deleted {
            repository,
            digest,
            tag,
        } => PendingPush {
            action: PushAction::Deleted,
            repository: repository.clone(),
            tag: tag.clone(),
            digest: Some(digest.to_string()),
        },
    }
}

/// The work a status lists, and whether the next run must be a full sync (the list overflowed
/// or held an item that is not a valid name).
pub fn restored(p: &PendingPushes) -> (Vec<Named>, bool) {
    let named: Vec<Named> = p.items.iter().filter_map(named).collect();
    let full = p.overflowed || named.len() != p.items.len();
    (named, full)
}

fn named(p: &PendingPush) -> Option<Named> {
    names::check_repository(&p.repository).ok()?;
    let tag = match &p.tag {
        Some(t) if !names::is_tag(t) => return None,
        t => t.clone(),
    };
    match p.action {
        PushAction::Pushed => Some(Named::Pushed {
            repository: p.repository.clone(),
            tag: tag?,
        }),
        PushAction::Deleted => Some(Named::Deleted {
            repository: p.repository.clone(),
            digest: p.digest.as_deref()?.parse::<Digest>().ok()?,
            tag,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::pending::PendingQueue;
    use std::time::Instant;

    fn pushed(tag: &str) -> Named {
        Named::Pushed {
            repository: "apps/web".into(),
            tag: tag.into(),
        }
    }

    fn deleted() -> Named {
        Named::Deleted {
            repository: "apps/web".into(),
            digest: format!("sha256:{}", "ab".repeat(32))
                .parse()
                .expect("digest"),
            tag: Some("old".into()),
        }
    }

    fn batch_of(items: &[Named]) -> Batch {
        let mut q = PendingQueue::default();
        for n in items {
            q.push(n.clone(), Instant::now());
        }
        q.peek().expect("a batch")
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let work = [pushed("v1"), pushed("v2"), deleted()];
        let p = persisted(Some(&batch_of(&work))).expect("persisted");
        assert!(!p.overflowed);
        let json = serde_json::to_value(&p).expect("json");
        let back: PendingPushes = serde_json::from_value(json).expect("back");
        let (named, full) = restored(&back);
        assert!(!full);
        let mut want = work.to_vec();
        want.sort();
        assert_eq!(named, want);
        assert_eq!(persisted(None), None);
    }

    #[test]
    fn more_than_the_status_holds_makes_the_next_run_a_full_sync() {
        let work: Vec<Named> = (0..=MAX_PERSISTED)
            .map(|i| pushed(&format!("v{i}")))
            .collect();
        let p = persisted(Some(&batch_of(&work))).expect("persisted");
        assert_eq!(p.items.len(), MAX_PERSISTED);
        assert!(p.overflowed);
        let (named, full) = restored(&p);
        assert_eq!(named.len(), MAX_PERSISTED);
        assert!(full);
    }

    #[test]
    fn an_item_that_is_not_a_valid_name_is_dropped_for_a_full_sync() {
        let bad = [
            ("../../etc", Some("v1"), None, PushAction::Pushed),
            ("apps/web", Some("bad tag"), None, PushAction::Pushed),
            ("apps/web", None, None, PushAction::Pushed),
            ("apps/web", None, Some("md5:abc"), PushAction::Deleted),
            ("apps/web", None, None, PushAction::Deleted),
        ];
        for (repository, tag, digest, action) in bad {
            let p = PendingPushes {
                items: vec![
                    PendingPush {
                        action,
                        repository: repository.into(),
                        tag: tag.map(Into::into),
                        digest: digest.map(Into::into),
                    },
                    item(&pushed("v9")),
                ],
                overflowed: false,
            };
            let (named, full) = restored(&p);
            assert_eq!(named, vec![pushed("v9")], "{repository} {tag:?} {digest:?}");
            assert!(full, "{repository} {tag:?} {digest:?}");
        }
    }
}
