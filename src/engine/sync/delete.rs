//! Deletion sync: the destination tags in scope that the source no longer has, planned from
//! complete listings only and made only when they are not more than `maxDeletions`.

use std::collections::HashSet;
use std::sync::Arc;

use super::Run;
use crate::engine::client::{ClientError, RegistryClient};
use crate::engine::digest::Digest;
use crate::engine::manifest;
use crate::engine::plan;
use crate::engine::report::{Failure, PlannedChange, Report};

impl Run<'_> {
    /// The tags in scope that each destination holds in `repo` and the source does not, from
    /// complete listings of both (a destination's 404 means it holds none). A destination
    /// whose listing failed gets no deletion, and the failure is reported.
    pub(super) async fn plan_deletions(
        &self,
        repo: &str,
        source_tags: &HashSet<String>,
        report: &mut Report,
    ) -> Vec<Deletion> {
        let dest_repo = self.cfg.rewrite.apply(repo);
        let mut out = Vec::new();
        for (i, (_, c)) in self.dests.iter().enumerate() {
            if self.skip[i] {
                continue;
            }
            match c.tags_if_present(&dest_repo).await {
                Ok(dest_tags) => {
                    let dest_tags = Arc::new(dest_tags);
                    for tag in plan::deletions(&dest_tags, source_tags, |t| self.tags.matches(t)) {
                        out.push(Deletion {
                            destination: i,
                            repo: dest_repo.clone(),
                            what: Doomed::Tag {
                                tag,
                                all_tags: dest_tags.clone(),
                            },
                        });
                    }
                }
                Err(e) => report.failures.push(Failure {
                    artifact: dest_repo.clone(),
                    destination: self.cfg.destinations[i].name.clone(),
                    error: format!("listing tags for deletion failed, nothing deleted: {e}"),
                }),
            }
        }
        out
    }

    /// Makes the planned deletions, or none when they are more than `max_deletions`.
    pub(super) async fn delete(&self, doomed: Vec<Deletion>, report: &mut Report) {
        if doomed.len() > self.cfg.max_deletions {
            report.deletions_withheld = doomed.len() as u64;
            report.failures.push(Failure {
                artifact: "deletion".into(),
                destination: String::new(),
                error: format!(
                    "would delete {} tags, more than spec.maxDeletions ({}), so none is deleted; check the source (flotilla sync --dry-run lists them), then raise spec.maxDeletions if they are meant to go",
                    doomed.len(),
                    self.cfg.max_deletions
                ),
            });
            if !self.cfg.dry_run {
                return;
            }
        }
        for d in doomed {
            let name = self.cfg.destinations[d.destination].name.clone();
            let artifact = d.display();
            let result = if self.cfg.dry_run {
                report.planned.push(PlannedChange {
                    artifact: artifact.clone(),
                    destination: name.clone(),
                    change: "delete",
                });
                Ok(())
            } else {
                let c = &self.dests[d.destination].1;
                match &d.what {
                    Doomed::Tag { tag, all_tags } => delete_tag(c, &d.repo, tag, all_tags).await,
                    Doomed::Digest { digest, tag } => {
                        delete_digest(c, &d.repo, digest, tag.as_deref()).await
                    }
                }
            };
            match result {
                Ok(()) => {
                    report.deleted += 1;
                    report.destinations[d.destination].deleted += 1;
                }
                Err(error) => report.failures.push(Failure {
                    artifact,
                    destination: name,
                    error,
                }),
            }
        }
    }
}

/// One deletion at one destination.
pub(super) struct Deletion {
    destination: usize,
    repo: String,
    what: Doomed,
}

/// What a deletion removes.
enum Doomed {
    /// A tag the source no longer has (full sync).
    Tag {
        tag: String,
        /// Every tag of the repository there (shared by the repository's deletions).
        all_tags: Arc<Vec<String>>,
    },
    /// A manifest a notification said was deleted at the source (`tag`: the tag named).
    Digest { digest: Digest, tag: Option<String> },
}

impl Deletion {
    /// The deletion of `digest` (and `tag`, when named) from `repo` at destination `i`.
    pub(super) fn by_digest(i: usize, repo: &str, digest: &Digest, tag: Option<String>) -> Self {
        Self {
            destination: i,
            repo: repo.to_string(),
            what: Doomed::Digest {
                digest: digest.clone(),
                tag,
            },
        }
    }

    /// `repo:tag` or `repo@digest`.
    fn display(&self) -> String {
        match &self.what {
            Doomed::Tag { tag, .. } => format!("{}:{tag}", self.repo),
            Doomed::Digest { digest, .. } => format!("{}@{digest}", self.repo),
        }
    }
}

/// Deletes a manifest the source deleted: by its tag when one was named and the registry
/// deletes tags, else by digest (the source no longer has the digest under any tag).
async fn delete_digest(
    c: &RegistryClient,
    repo: &str,
    digest: &Digest,
    tag: Option<&str>,
) -> Result<(), String> {
    let err = |e: ClientError| format!("deletion failed: {e}");
    if let Some(t) = tag
        && c.delete_manifest(repo, t).await.map_err(err)?
    {
        return Ok(());
    }
    if c.delete_manifest(repo, digest.as_str())
        .await
        .map_err(err)?
    {
        Ok(())
    } else {
        Err("not deleted: the registry refuses deletes (enable storage.delete on it)".into())
    }
}

/// Deletes a tag; where the registry only deletes by digest (Distribution 2.8), deletes the
/// digest only when no other tag of the repository points at it.
async fn delete_tag(
    c: &RegistryClient,
    repo: &str,
    tag: &str,
    all_tags: &[String],
) -> Result<(), String> {
    let err = |e: ClientError| format!("deletion failed: {e}");
    if c.delete_manifest(repo, tag).await.map_err(err)? {
        return Ok(());
    }
    let Some(head) = c.head_manifest(repo, tag).await.map_err(err)? else {
        return Ok(());
    };
    for other in all_tags.iter().filter(|t| t.as_str() != tag) {
        let Some(h) = c.head_manifest(repo, other).await.map_err(err)? else {
            continue;
        };
        if h.digest == head.digest {
            return Err(format!(
                "not deleted: this registry deletes by digest only and tag {other:?} shares digest {}",
                head.digest
            ));
        }
        if manifest::is_index(&h.media_type) {
            let (bytes, mt) = c.get_manifest(repo, h.digest.as_str()).await.map_err(err)?;
            let children = match manifest::parse(&mt, &bytes) {
                Ok(manifest::Parsed::Index { manifests }) => manifests,
                _ => Vec::new(),
            };
            if children.iter().any(|m| m.digest == head.digest) {
                return Err(format!(
                    "not deleted: this registry deletes by digest only and the index that tag {other:?} points at holds {}",
                    head.digest
                ));
            }
        }
    }
    if c.delete_manifest(repo, head.digest.as_str())
        .await
        .map_err(err)?
    {
        Ok(())
    } else {
        Err("not deleted: the registry refuses deletes (enable storage.delete on it)".into())
    }
}
