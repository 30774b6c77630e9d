//! A run over the artifacts notifications named ([`SyncScope::Only`]): each fetched by
//! reference, never by listing the catalog or a repository's tags, within the policy's
//! filters; deletions by digest, each checked against the source first.
//!
//! [`SyncScope::Only`]: crate::engine::scope::SyncScope::Only

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;

use super::delete::Deletion;
use super::{Discovered, Held, Run};
use crate::engine::client::ClientError;
use crate::engine::digest::Digest;
use crate::engine::filter::{self, GlobFilter};
use crate::engine::gate::Unverified;
use crate::engine::names;
use crate::engine::plan::Item;
use crate::engine::report::{Failure, Report};
use crate::engine::scope::{Named, by_repository};

/// Pauses before a named tag the source does not serve yet is looked up again (about 1.9 s
/// in all). Distribution sends a push's notification as soon as the manifest is stored and
/// links the tag right after, so a run the notification started can ask before the tag
/// exists; without a second look that push would be lost.
const LATE_TAG_DELAYS: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1000),
];

/// The tags of `selected` that neither a discovered item nor a held-back artifact accounts
/// for. With a gate, a tag of the referrer form is never an artifact of its own (it travels
/// with its subject), so it is never missing.
fn not_found(
    repo: &str,
    selected: &HashSet<String>,
    gated: bool,
    items: &[(Item, Held)],
    unverified: &[Unverified],
) -> HashSet<String> {
    selected
        .iter()
        .filter(|t| !gated || !filter::is_referrer_tag(t))
        .filter(|t| {
            !items
                .iter()
                .any(|(i, _)| i.tag.as_deref() == Some(t.as_str()))
        })
        .filter(|t| {
            let artifact = format!("{repo}:{t}");
            !unverified.iter().any(|u| u.artifact == artifact)
        })
        .cloned()
        .collect()
}

impl Run<'_> {
    /// Discovers the pushed tags of `named` in the repositories `repos` selects, `concurrency`
    /// repositories at once.
    pub(super) async fn discover_named(
        &self,
        repos: &GlobFilter,
        named: &[Named],
        concurrency: usize,
    ) -> Vec<(String, Result<Discovered, ClientError>)> {
        let pushed: Vec<(String, Vec<String>)> = by_repository(named)
            .pushed
            .into_iter()
            .filter(|(r, _)| repos.matches(r))
            .collect();
        futures::stream::iter(pushed)
            .map(|(repo, tags)| async move {
                let r = self.discover_pushed(&repo, &tags).await;
                (repo, r)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await
    }

    /// The pushed `tags` of `repo` the tag rules select, and for a pushed referrer tag
    /// (`sha256-<hex>.sig`, ...) its subject, by digest, with its referrers.
    async fn discover_pushed(
        &self,
        repo: &str,
        tags: &[String],
    ) -> Result<Discovered, ClientError> {
        // The receiver validated the names; checked again, as nothing unchecked becomes a URL.
        let valid = tags.iter().filter(|t| names::is_tag(t));
        let selected: HashSet<String> = valid
            .clone()
            .filter(|t| self.tags.matches(t))
            .cloned()
            .collect();
        let wants_referrers = self.cfg.referrers || self.gate.verify.is_some();
        let by_digest: Vec<Digest> = valid
            .filter(|t| wants_referrers && (self.gate.active() || !selected.contains(*t)))
            .filter_map(|t| filter::referrer_subject(t))
            .collect();
        let (mut items, mut unverified) = self
            .discover_selected(repo, None, selected.clone(), by_digest)
            .await?;
        let gated = self.gate.active();
        for delay in LATE_TAG_DELAYS {
            let missing = not_found(repo, &selected, gated, &items, &unverified);
            if missing.is_empty() {
                break;
            }
            tracing::debug!(%repo, ?missing, "named tags not at the source yet; looking again");
            tokio::time::sleep(delay).await;
            let (late, held_back) = self
                .discover_selected(repo, None, missing, Vec::new())
                .await?;
            items.extend(late);
            unverified.extend(held_back);
        }
        let missing = not_found(repo, &selected, gated, &items, &unverified);
        if !missing.is_empty() {
            tracing::info!(%repo, ?missing, "named tags the source does not serve (deleted since their push?): not copied");
        }
        Ok((items, HashSet::new(), unverified))
    }

    /// The deletions `gone` (digest, and the tag deleted when named) of source repository
    /// `repo` asks of each destination: none while the source still serves the digest (or the
    /// tag), none for a tag outside the tag rules, and by digest alone only when the tag rules
    /// select every tag (a digest says nothing of the tags pointing at it).
    pub(super) async fn plan_named_deletions(
        &self,
        repo: &str,
        gone: &[(Digest, Option<String>)],
        report: &mut Report,
    ) -> Vec<Deletion> {
        let dest_repo = self.cfg.rewrite.apply(repo);
        let mut out = Vec::new();
        for (digest, tag) in gone {
            let in_scope = match tag {
                Some(t) => names::is_tag(t) && self.tags.matches(t),
                None => self.tags.selects_all(),
            };
            if !in_scope {
                tracing::debug!(%repo, %digest, "deletion outside the tag rules: left to the full sync");
                continue;
            }
            let artifact = format!("{repo}@{digest}");
            match self.source_lacks(repo, digest, tag.as_deref()).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    report.failures.push(Failure {
                        artifact,
                        destination: String::new(),
                        error: format!(
                            "looking the deletion up at the source failed, nothing deleted: {e}"
                        ),
                    });
                    continue;
                }
            }
            for (i, (_, c)) in self.dests.iter().enumerate() {
                if self.skip[i] {
                    continue;
                }
                match c.head_manifest(&dest_repo, digest.as_str()).await {
                    Ok(Some(_)) => {
                        out.push(Deletion::by_digest(i, &dest_repo, digest, tag.clone()))
                    }
                    Ok(None) => {}
                    Err(e) => report.failures.push(Failure {
                        artifact: format!("{dest_repo}@{digest}"),
                        destination: self.cfg.destinations[i].name.clone(),
                        error: format!("looking the deletion up failed, nothing deleted: {e}"),
                    }),
                }
            }
        }
        out
    }

    /// Whether the source serves neither `digest` nor `tag` in `repo` any more.
    async fn source_lacks(
        &self,
        repo: &str,
        digest: &Digest,
        tag: Option<&str>,
    ) -> Result<bool, ClientError> {
        if self
            .source_client
            .head_manifest(repo, digest.as_str())
            .await?
            .is_some()
        {
            return Ok(false);
        }
        match tag {
            Some(t) => Ok(self.source_client.head_manifest(repo, t).await?.is_none()),
            None => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .expect("digest")
    }

    fn item(tag: &str) -> (Item, Held) {
        let item = Item {
            repo: "apps/web".into(),
            tag: Some(tag.into()),
            digest: digest('a'),
            subject: None,
        };
        (item, Vec::new())
    }

    fn tags(t: &[&str]) -> HashSet<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_named_tag_is_missing_until_an_item_or_a_held_back_artifact_accounts_for_it() {
        let sig = format!("sha256-{}.sig", "b".repeat(64));
        let selected = tags(&["v1", "v2", "v3", &sig]);
        let items = [item("v1")];
        let held_back = [Unverified {
            artifact: "apps/web:v2".into(),
            digest: digest('c'),
            refusal: crate::engine::verify::Refusal::Unsigned,
        }];
        assert_eq!(
            not_found("apps/web", &selected, true, &items, &held_back),
            tags(&["v3"]),
            "with a gate the signature tag travels with its subject"
        );
        assert_eq!(
            not_found("apps/web", &selected, false, &items, &held_back),
            tags(&["v3", &sig])
        );
        assert_eq!(
            not_found("apps/other", &selected, false, &items, &held_back),
            tags(&["v2", "v3", &sig]),
            "a held-back artifact of another repository does not count"
        );
        assert!(not_found("apps/web", &tags(&["v1"]), false, &items, &[]).is_empty());
    }
}
