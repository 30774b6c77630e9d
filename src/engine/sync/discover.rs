//! Discovery of one run: list the source's repositories, resolve the tags in scope at the
//! source while looking them up at every destination, find their referrers (tag scheme and
//! OCI 1.1 API), and pass them through the supply-chain gate ([`crate::engine::gate`]).

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use futures::StreamExt;

use super::{Discovered, Held, PLAN_CONCURRENCY, Run};
use crate::engine::client::ClientError;
use crate::engine::digest::Digest;
use crate::engine::filter::{self, GlobFilter};
use crate::engine::gate::Found;
use crate::engine::names;
use crate::engine::plan::{self, Item};

impl Run<'_> {
    /// Lists the source's repositories and discovers those in scope, `concurrency` at once.
    /// `Err` when the catalog cannot be read. When every include pattern is a plain name, the
    /// catalog is not read: those repositories are the candidates (registries without a
    /// catalog API, such as olareg, GHCR or Docker Hub, can then be a source).
    /// Discovers what the run's scope covers: every repository in scope, or the named
    /// artifacts only.
    pub(super) async fn discover_scope(
        &self,
        repos: &GlobFilter,
        concurrency: usize,
    ) -> Result<Vec<(String, Result<Discovered, ClientError>)>, ClientError> {
        match &self.cfg.scope {
            crate::engine::scope::SyncScope::All => self.discover_all(repos, concurrency).await,
            crate::engine::scope::SyncScope::Only(named) => {
                Ok(self.discover_named(repos, named, concurrency).await)
            }
        }
    }

    async fn discover_all(
        &self,
        repos: &GlobFilter,
        concurrency: usize,
    ) -> Result<Vec<(String, Result<Discovered, ClientError>)>, ClientError> {
        let catalog = match filter::plain_names(&self.cfg.repositories_include) {
            Some(names) => names,
            None => self.source_client.catalog().await?,
        };
        let in_scope: Vec<String> = catalog.into_iter().filter(|r| repos.matches(r)).collect();
        Ok(futures::stream::iter(in_scope)
            .map(|repo| async move {
                // A name outside the grammar never becomes a URL: the client's first request
                // (the tag listing) refuses it as `ClientError::InvalidName`.
                let r = self.discover(&repo).await;
                (repo, r)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await)
    }

    /// Items of one repository with what the destinations hold, and every tag the source has
    /// there.
    pub(super) async fn discover(&self, repo: &str) -> Result<Discovered, ClientError> {
        let listed = self.source_client.tags(repo).await?;
        let (all, invalid): (Vec<String>, Vec<String>) =
            listed.into_iter().partition(|t| names::is_tag(t));
        if let Some(bad) = invalid.first() {
            // Never a URL, never a deletion decision: the repository is refused whole, so
            // that a broken listing cannot pass for a shorter one.
            return Err(ClientError::InvalidName {
                registry: self.source_client.name().to_string(),
                source: names::NameError::Reference(format!(
                    "{bad} (one of {} invalid tags of {repo})",
                    invalid.len()
                )),
            });
        }
        let selected: HashSet<String> = all
            .iter()
            .filter(|t| self.tags.matches(t))
            .cloned()
            .collect();
        let (items, unverified) = self
            .discover_selected(repo, Some(&all), selected, Vec::new())
            .await?;
        Ok((items, all.into_iter().collect(), unverified))
    }

    /// The `selected` tags of `repo` and the subjects `by_digest` (each copied by digest) with
    /// their referrers, through the gate. `all`: every tag of the repository, where referrer
    /// tags are looked for; `None`: no listing, the referrer tags of each subject are looked
    /// up by name.
    pub(super) async fn discover_selected(
        &self,
        repo: &str,
        all: Option<&[String]>,
        selected: HashSet<String>,
        by_digest: Vec<Digest>,
    ) -> Result<(Vec<(Item, Held)>, Vec<crate::engine::gate::Unverified>), ClientError> {
        // With a gate, a tag of the referrer form is never an artifact of its own: it travels
        // with its subject (or not at all), never as an unsigned artifact.
        let gated = self.gate.active();
        let subject_tags: HashSet<String> = selected
            .iter()
            .filter(|t| !gated || !filter::is_referrer_tag(t))
            .cloned()
            .collect();
        let mut items = self.resolve(repo, subject_tags.iter().cloned()).await?;
        items.extend(self.resolve_digests(repo, by_digest).await);
        let found = if self.cfg.referrers || self.gate.verify.is_some() {
            let candidates: Vec<String> = match all {
                Some(all) => all.to_vec(),
                None => {
                    let named: Vec<String> = items
                        .iter()
                        .flat_map(|(i, _)| filter::referrer_tags_of(i.digest.hex()))
                        .filter(|t| !subject_tags.contains(t))
                        .collect();
                    self.present_at_source(repo, named).await?
                }
            };
            self.find_referrers(repo, &candidates, &subject_tags, &items)
                .await?
        } else {
            Vec::new()
        };
        if !gated {
            let mut items = items;
            items.extend(found.into_iter().map(|f| (f.item, f.held)));
            return Ok((items, Vec::new()));
        }
        self.gate
            .apply(&self.source_client, repo, items, found, |item, held| {
                held.iter()
                    .all(|h| matches!(h, Ok(Some(d)) if d == &item.digest))
            })
            .await
    }

    /// Those of `tags` the source has in `repo` (one HEAD each, no listing).
    async fn present_at_source(
        &self,
        repo: &str,
        tags: Vec<String>,
    ) -> Result<Vec<String>, ClientError> {
        let heads: Vec<(String, Result<bool, ClientError>)> = futures::stream::iter(tags)
            .map(|tag| async move {
                let r = self.source_client.head_manifest(repo, &tag).await;
                (tag, r.map(|h| h.is_some()))
            })
            .buffer_unordered(PLAN_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::new();
        for (tag, present) in heads {
            if present? {
                out.push(tag);
            }
        }
        Ok(out)
    }

    /// Subjects named by digest, each with what the destinations hold under it; those no
    /// destination holds are left out (their referrer arrived first; the subject's own push
    /// brings it along).
    async fn resolve_digests(&self, repo: &str, digests: Vec<Digest>) -> Vec<(Item, Held)> {
        let mut out = Vec::new();
        for digest in digests {
            let held = self.held(repo, digest.as_str()).await;
            if held
                .iter()
                .any(|h| matches!(h, Ok(Some(d)) if *d == digest))
            {
                let item = Item {
                    repo: repo.to_string(),
                    tag: None,
                    digest,
                    subject: None,
                };
                out.push((item, held));
            }
        }
        out
    }

    /// The referrers of `items` (the subjects): their `sha256-<hex>[.sig|.att|.sbom]` tags
    /// among `all` not `selected` already, and what the OCI 1.1 referrers API lists.
    async fn find_referrers(
        &self,
        repo: &str,
        all: &[String],
        selected: &HashSet<String>,
        items: &[(Item, Held)],
    ) -> Result<Vec<Found<Held>>, ClientError> {
        let subjects: Vec<Digest> = items.iter().map(|i| i.0.digest.clone()).collect();
        let extra = plan::referrer_tags(all, &subjects, selected);
        let mut found: Vec<Found<Held>> = Vec::new();
        for (mut item, held) in self.resolve(repo, extra).await? {
            let tag = item.tag.as_deref().unwrap_or_default();
            item.subject = subjects
                .iter()
                .find(|d| filter::is_referrer_tag_of(tag, d.hex()))
                .cloned();
            if item.subject.is_some() {
                found.push(Found { item, held });
            }
        }
        let known: HashSet<Digest> = items
            .iter()
            .map(|i| i.0.digest.clone())
            .chain(found.iter().map(|f| f.item.digest.clone()))
            .collect();
        let by_api = self.referrers_of(repo, subjects, known).await?;
        let held = futures::future::join_all(
            by_api
                .iter()
                .map(|(_, d)| self.held(repo, d.as_str()))
                .collect::<Vec<_>>(),
        )
        .await;
        found.extend(
            by_api
                .into_iter()
                .zip(held)
                .map(|((subject, digest), held)| {
                    let item = Item {
                        repo: repo.to_string(),
                        tag: None,
                        digest,
                        subject: Some(subject),
                    };
                    Found { item, held }
                }),
        );
        Ok(found)
    }

    /// Referrers of `subjects` by the OCI 1.1 API, those not `known` yet, each with its subject
    /// (none when the source has no such API).
    async fn referrers_of(
        &self,
        repo: &str,
        subjects: Vec<Digest>,
        mut known: HashSet<Digest>,
    ) -> Result<Vec<(Digest, Digest)>, ClientError> {
        let mut out = Vec::new();
        for d in subjects {
            let _probing = match self.referrers_api.load(Ordering::Relaxed) {
                0 => Some(self.referrers_probe.lock().await),
                _ => None,
            };
            if self.referrers_api.load(Ordering::Relaxed) == 2 {
                break;
            }
            match self.source_client.referrers(repo, &d).await? {
                Some(list) => {
                    self.referrers_api.store(1, Ordering::Relaxed);
                    out.extend(
                        list.into_iter()
                            .filter(|r| known.insert(r.clone()))
                            .map(|r| (d.clone(), r)),
                    );
                }
                None => {
                    self.referrers_api.store(2, Ordering::Relaxed);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Resolves `tags` at the source and looks each up at every destination at the same time.
    async fn resolve(
        &self,
        repo: &str,
        tags: impl IntoIterator<Item = String>,
    ) -> Result<Vec<(Item, Held)>, ClientError> {
        let heads: Vec<Result<Option<(Item, Held)>, ClientError>> = futures::stream::iter(tags)
            .map(|tag| async move {
                let (source, held) = futures::join!(
                    self.source_client.head_manifest(repo, &tag),
                    self.held(repo, &tag)
                );
                Ok(source?.map(|h| {
                    let item = Item {
                        repo: repo.to_string(),
                        tag: Some(tag),
                        digest: h.digest,
                        subject: None,
                    };
                    (item, held)
                }))
            })
            .buffer_unordered(PLAN_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::new();
        for h in heads {
            if let Some(i) = h? {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// What every destination holds under `reference` of source repository `repo` (one HEAD
    /// each, once the destination answered its ping).
    async fn held(&self, repo: &str, reference: &str) -> Held {
        let dest_repo = self.cfg.rewrite.apply(repo);
        let lookups = self
            .dests
            .iter()
            .zip(&self.dests_ready)
            .map(|((_, c), ready)| {
                let dest_repo = &dest_repo;
                async move {
                    ready.clone().await.map_err(|e| e.to_string())?;
                    c.head_manifest(dest_repo, reference)
                        .await
                        .map(|h| h.map(|h| h.digest))
                        .map_err(|e| e.to_string())
                }
            });
        futures::future::join_all(lookups).await
    }
}
