//! The phases of one run: set up the clients, discover (while every endpoint is pinged),
//! copy (subjects, then their referrers), delete, and the final counts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use futures::StreamExt;

use super::{Held, Planned, Role, Run, Status, SyncError, ready};
use crate::engine::DestinationConfig;
use crate::engine::client::RegistryClient;
use crate::engine::config::{OnUnreachable, SyncConfig};
use crate::engine::copy::Copier;
use crate::engine::digest::Digest;
use crate::engine::feed_tree::FeedTree;
use crate::engine::filter::{GlobFilter, TagFilter};
use crate::engine::gate::Gate;
use crate::engine::limit::Limiter;
use crate::engine::plan::Item;
use crate::engine::referrers::ReferrerFilter;
use crate::engine::report::{Conflict, DestinationReport, Failure, PlannedChange, Report};
use crate::engine::scope::{SyncScope, by_repository};
use crate::engine::store::Store;

fn source_role(cfg: &SyncConfig) -> Role {
    Role::Source {
        url: cfg.source.url.clone(),
    }
}

fn dest_role(d: &DestinationConfig) -> Role {
    Role::Destination {
        name: d.name.clone(),
        url: d.endpoint.url.clone(),
    }
}

fn endpoint(role: Role) -> impl FnOnce(crate::engine::client::ClientError) -> SyncError {
    move |source| SyncError::Endpoint {
        role,
        source: Box::new(source),
    }
}

/// The run's clients, filters and relay tree, and its repository filter.
pub(super) fn setup(cfg: &SyncConfig) -> Result<(Run<'_>, GlobFilter), SyncError> {
    let tree = FeedTree::new(&cfg.destinations)?;
    let repos = GlobFilter::new(&cfg.repositories_include, &cfg.repositories_exclude)?;
    let tags = TagFilter::new(
        &cfg.tags.include,
        &cfg.tags.exclude,
        cfg.tags.regex.as_deref(),
        cfg.tags.semver.as_deref(),
    )?;
    let gate = Gate {
        verify: cfg.verify.clone(),
        filter: ReferrerFilter::new(&cfg.referrer_rules)?,
        filtering: !cfg.referrer_rules.is_empty(),
        copy_referrers: cfg.referrers,
    };
    let source_client =
        Arc::new(RegistryClient::new(&cfg.source, cfg.retry).map_err(endpoint(source_role(cfg)))?);
    let mut dests = Vec::new();
    for d in &cfg.destinations {
        let c =
            Arc::new(RegistryClient::new(&d.endpoint, cfg.retry).map_err(endpoint(dest_role(d)))?);
        dests.push((Store::Registry(c.clone()), c));
    }
    let dests_ready = dests.iter().map(|(_, c)| ready(c)).collect();
    let run = Run {
        cfg,
        skip: vec![false; cfg.destinations.len()],
        source: Store::Registry(source_client.clone()),
        source_client,
        copier: Copier::new(
            dests.len(),
            Limiter::new(cfg.bandwidth_limit),
            cfg.retry,
            cfg.platforms.clone(),
            3,
        )
        // The operator's runs (Skip): a destination that stops answering mid-run fails at
        // once instead of holding back, through retries, the siblings waiting on it.
        .failing_fast(cfg.unreachable == OnUnreachable::Skip),
        dests,
        dests_ready,
        tree,
        tags,
        referrers_api: AtomicU8::new(0),
        referrers_probe: tokio::sync::Mutex::new(()),
        gate,
    };
    Ok((run, repos))
}

/// A report naming every destination, with nothing counted yet.
pub(super) fn empty_report(cfg: &SyncConfig) -> Report {
    Report {
        destinations: cfg
            .destinations
            .iter()
            .map(|d| DestinationReport {
                name: d.name.clone(),
                ..Default::default()
            })
            .collect(),
        dry_run: cfg.dry_run,
        ..Default::default()
    }
}

/// Interleaves repositories, so that artifacts copied at once rarely wait on the same
/// (repository-shared) blobs.
fn interleave(mut items: Vec<(Item, Held)>) -> Vec<(Item, Held)> {
    items.sort_by_key(|(i, _)| i.display());
    let mut rank: HashMap<String, usize> = HashMap::new();
    let mut keyed: Vec<(usize, (Item, Held))> = items
        .into_iter()
        .map(|i| {
            let r = rank.entry(i.0.repo.clone()).or_default();
            *r += 1;
            (*r, i)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.0.repo.cmp(&b.1.0.repo)));
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// The destinations below those in `down` (each once, and none of `down`), nearest first,
/// each with the destination feeding it.
fn not_fed(tree: &FeedTree, down: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &d in down {
        for fed in tree.descendants(d) {
            if !down.contains(&fed)
                && !out.iter().any(|(f, _)| *f == fed)
                && let Some(parent) = tree.parent(fed)
            {
                out.push((fed, parent));
            }
        }
    }
    out
}

/// Every tag the source has, by repository whose listing completed.
pub(super) type SourceTags = Vec<(String, HashSet<String>)>;

impl Run<'_> {
    /// Discovers what the scope covers while every endpoint is pinged: each must answer (and
    /// accept the credentials) before anything is written; discovery only reads. An
    /// unreachable destination stops the run, or with [`OnUnreachable::Skip`] is left out
    /// (with every destination left out, the run copies nothing and says why).
    pub(super) async fn discover_phase(
        &mut self,
        repos: &GlobFilter,
        concurrency: usize,
        report: &mut Report,
    ) -> Result<(Vec<(Item, Held)>, SourceTags), SyncError> {
        let cfg = self.cfg;
        let (src_ping, dest_pings, discovered) = futures::join!(
            self.source_client.ping(),
            futures::future::join_all(self.dests_ready.iter().cloned()),
            self.discover_scope(repos, concurrency),
        );
        src_ping.map_err(endpoint(source_role(cfg)))?;
        let mut down = Vec::new();
        for (i, (d, r)) in cfg.destinations.iter().zip(dest_pings).enumerate() {
            if let Err(e) = r {
                if cfg.unreachable == OnUnreachable::Stop {
                    return Err(endpoint(dest_role(d))(e));
                }
                down.push((i, endpoint(dest_role(d))(e)));
            }
        }
        self.skip_unreachable(&down, report);
        let discovered = discovered.map_err(endpoint(source_role(cfg)))?;
        let mut items = Vec::new();
        let mut source_tags = Vec::new();
        for (repo, r) in discovered {
            match r {
                Ok((its, all, unverified)) => {
                    items.extend(its);
                    source_tags.push((repo, all));
                    report.record_unverified(unverified);
                }
                Err(e) => report.failures.push(Failure {
                    artifact: repo,
                    destination: String::new(),
                    error: format!("listing the source failed: {e}"),
                }),
            }
        }
        Ok((interleave(items), source_tags))
    }

    /// Leaves the destinations in `down` out of the run with every destination below them,
    /// naming each in the report (a failure of the destination, not of every artifact).
    fn skip_unreachable(&mut self, down: &[(usize, SyncError)], report: &mut Report) {
        for (i, e) in down {
            self.skip[*i] = true;
            report.record_unreachable(&self.cfg.destinations[*i].name, None, e.to_string());
        }
        let down: Vec<usize> = down.iter().map(|(i, _)| *i).collect();
        for (fed, parent) in not_fed(&self.tree, &down) {
            self.skip[fed] = true;
            let parent = self.cfg.destinations[parent].name.clone();
            let why = format!("not fed: {parent} is unreachable");
            report.record_unreachable(&self.cfg.destinations[fed].name, Some(parent), why);
        }
    }

    /// Copies the planned artifacts, `concurrency` at once: subjects first, then their
    /// referrers, those of one subject one after the other (a registry keeps one referrers
    /// list per subject; olareg 0.1.2 loses one of two updates made at once), different
    /// subjects' at once.
    pub(super) async fn copy_phase(
        &self,
        planned: Vec<Planned>,
        progress: &crate::engine::progress::Progress,
        concurrency: usize,
    ) -> Vec<(Item, Vec<Status>)> {
        progress.count_bytes(self.copier.source_read.clone());
        progress.count_bytes(self.copier.relay_read.clone());
        progress.set_total(planned.len() as u64);
        progress.phase(crate::engine::progress::Phase::Copying);
        let (subjects, referrers): (Vec<_>, Vec<_>) =
            planned.into_iter().partition(|(i, _)| i.subject.is_none());
        let mut outcomes: Vec<(Item, Vec<Status>)> = futures::stream::iter(subjects)
            .map(|(item, actions)| self.copy_one(item, actions, progress))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut by_subject: HashMap<Digest, Vec<Planned>> = HashMap::new();
        for (item, actions) in referrers {
            let subject = item.subject.clone().unwrap_or_else(|| item.digest.clone());
            by_subject.entry(subject).or_default().push((item, actions));
        }
        let groups: Vec<Vec<(Item, Vec<Status>)>> = futures::stream::iter(by_subject.into_values())
            .map(|group| async move {
                let mut done = Vec::with_capacity(group.len());
                for (item, actions) in group {
                    done.push(self.copy_one(item, actions, progress).await);
                }
                done
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        outcomes.extend(groups.into_iter().flatten());
        outcomes
    }

    /// Deletion sync. Full scope: only in repositories whose source listing completed
    /// (`source_tags` holds no other), only what every listing planned, and nothing when that
    /// is more than the limit. Named scope: only the deletions notifications named, by digest.
    pub(super) async fn delete_phase(
        &self,
        repos: &GlobFilter,
        source_tags: &SourceTags,
        report: &mut Report,
    ) {
        let mut doomed = Vec::new();
        match &self.cfg.scope {
            SyncScope::All => {
                for (repo, all) in source_tags {
                    doomed.extend(self.plan_deletions(repo, all, report).await);
                }
            }
            SyncScope::Only(named) => {
                let deleted = by_repository(named).deleted;
                for (repo, gone) in deleted.iter().filter(|(r, _)| repos.matches(r)) {
                    doomed.extend(self.plan_named_deletions(repo, gone, report).await);
                }
            }
        }
        self.delete(doomed, report).await;
    }

    /// The byte counts and the wall time.
    pub(super) fn finish(&self, report: &mut Report, started: Instant) {
        for (i, d) in report.destinations.iter_mut().enumerate() {
            d.bytes_written = self.copier.written[i].load(Ordering::Relaxed);
        }
        report.bytes_read_from_source = self.copier.source_read.load(Ordering::Relaxed);
        report.bytes_read_from_relays = self.copier.relay_read.load(Ordering::Relaxed);
        report.foreign_layers_skipped = self.copier.foreign_skipped.load(Ordering::Relaxed);
        report.duration_seconds = started.elapsed().as_secs_f64();
    }
}

/// Counts one artifact's outcome at every destination into `report` (in a dry run, a copy
/// made is a copy planned).
pub(super) fn tally(report: &mut Report, dry_run: bool, item: &Item, statuses: &[Status]) {
    let mut any_failed = false;
    let mut any_copied = false;
    for (i, st) in statuses.iter().enumerate() {
        let dr = &mut report.destinations[i];
        match st {
            Status::Holds { copied: true } => {
                any_copied = true;
                dr.copied += 1;
                if dry_run {
                    report.planned.push(PlannedChange {
                        artifact: item.display(),
                        destination: dr.name.clone(),
                        change: "copy",
                    });
                }
            }
            Status::Holds { copied: false } => dr.skipped += 1,
            Status::Failed(e) => {
                any_failed = true;
                dr.failed += 1;
                report.failures.push(Failure {
                    artifact: item.display(),
                    destination: dr.name.clone(),
                    error: e.clone(),
                });
            }
            Status::LeftOut => {}
            Status::Conflict(found) => {
                dr.conflicts += 1;
                report.conflicts += 1;
                report.conflict_details.push(Conflict {
                    artifact: item.display(),
                    destination: dr.name.clone(),
                    source_digest: item.digest.to_string(),
                    destination_digest: found.to_string(),
                });
            }
        }
    }
    if any_failed {
        report.failed += 1;
    } else if any_copied {
        report.copied += 1;
    } else {
        report.skipped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_unreachable_destination_feeds_is_left_out_once_with_its_feeder() {
        // hq-backup; east -> c1 -> village; west -> c2.
        let (tree, problems) = FeedTree::from_links([
            ("east", None),
            ("c1", Some("east")),
            ("village", Some("c1")),
            ("west", None),
            ("c2", Some("west")),
            ("backup", None),
        ]);
        assert!(problems.is_empty());
        assert_eq!(not_fed(&tree, &[0]), [(1, 0), (2, 1)]);
        assert_eq!(not_fed(&tree, &[5]), []);
        // c1 down on its own and through east: village once, c1 not twice.
        assert_eq!(not_fed(&tree, &[1, 0]), [(2, 1)]);
        assert_eq!(not_fed(&tree, &[3, 0]), [(4, 3), (1, 0), (2, 1)]);
    }
}
