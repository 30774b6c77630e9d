//! One sync run: discover (list, filter, resolve at the source and look up at every
//! destination at once), plan per destination, copy level by level (hierarchical destinations
//! fed by their parent), delete when enabled, summarise.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::Instant;

use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};

use super::client::{ClientError, RegistryClient};
use super::config::{ConfigError, SyncConfig};
use super::copy::{Copier, CopyError, Feeder, Outcomes, TargetRepo};
use super::digest::Digest;
use super::feed_tree::FeedTree;
use super::filter::{FilterError, TagFilter};
use super::gate::{Gate, Unverified};
use super::plan::{self, Action, Item};
use super::report::Report;
use super::store::Store;

mod delete;
mod discover;
mod named;
mod phases;

/// Errors that stop a sync before it changes anything.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Invalid filter.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The run did not finish within its deadline (`activeDeadlineSeconds`).
    #[error(
        "the sync did not finish within its deadline of {0} s and was stopped (raise spec.activeDeadlineSeconds if the policy needs longer)"
    )]
    Deadline(u64),
    /// An endpoint is unusable (bad URL, unreachable, credentials rejected).
    #[error("{role}: {source}")]
    Endpoint {
        /// Which endpoint.
        role: Role,
        /// Cause.
        source: Box<ClientError>,
    },
}

/// An endpoint of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The source, by URL.
    Source {
        /// Its URL.
        url: String,
    },
    /// A destination, by name and URL.
    Destination {
        /// Its name in the policy.
        name: String,
        /// Its URL.
        url: String,
    },
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Source { url } => write!(f, "source {url}"),
            Role::Destination { name, url } => write!(f, "destination {name} ({url})"),
        }
    }
}

/// Repositories listed at once.
const DISCOVER_CONCURRENCY: usize = 8;

/// Tags of one repository resolved at once (each: one HEAD at the source and one at every
/// destination; the clients bound the requests in flight per registry).
const PLAN_CONCURRENCY: usize = 32;

/// What each destination holds under an item's reference (looked up while the source is
/// resolved, so planning needs no further request).
type Held = Vec<Result<Option<Digest>, String>>;

/// Items of a repository with what the destinations hold, every tag the source has there,
/// and the artifacts the gate held back.
type Discovered = (Vec<(Item, Held)>, HashSet<String>, Vec<Unverified>);

/// The digest destinations get after the platform filter (`None`: nothing of it is wanted).
type Selected = Result<Option<Digest>, CopyError>;

/// An artifact with what to do at each destination.
type Planned = (Item, Vec<Result<Action, String>>);

/// A ping of one endpoint, awaited by every request that needs the endpoint usable first.
type Ready = Shared<BoxFuture<'static, Result<(), ClientError>>>;

/// What happened at one destination for one artifact.
#[derive(Clone, Debug)]
enum Status {
    Holds {
        copied: bool,
    },
    Failed(String),
    Conflict(Digest),
    /// Left out: the destination (or the one feeding it) is unreachable.
    LeftOut,
}

struct Run<'a> {
    cfg: &'a SyncConfig,
    /// Destinations left out of this run (unreachable, or fed by one that is).
    skip: Vec<bool>,
    source: Store,
    source_client: Arc<RegistryClient>,
    dests: Vec<(Store, Arc<RegistryClient>)>,
    /// Ping of each destination: its lookups wait for it.
    dests_ready: Vec<Ready>,
    /// Who feeds whom: copies go level by level, each destination fed by its parent.
    tree: FeedTree,
    tags: TagFilter,
    copier: Copier,
    /// 0 unknown, 1 supported, 2 unsupported.
    referrers_api: AtomicU8,
    /// Held by the one repository asking while `referrers_api` is unknown (the others wait
    /// for its answer instead of each probing).
    referrers_probe: tokio::sync::Mutex<()>,
    /// Signatures required, referrer rules.
    gate: Gate,
}

/// Runs one sync. `Err` only for problems found before anything is written; failures of
/// individual artifacts are in the report.
pub async fn run(cfg: &SyncConfig) -> Result<Report, SyncError> {
    run_with_progress(cfg, &super::progress::Progress::default()).await
}

/// [`run`], keeping `progress` up to date (for a live display). A run that takes longer than
/// `cfg.deadline` is stopped (whatever it was waiting for) and reported as
/// [`SyncError::Deadline`]: no registry can hold a sync slot for ever.
pub async fn run_with_progress(
    cfg: &SyncConfig,
    progress: &super::progress::Progress,
) -> Result<Report, SyncError> {
    tokio::time::timeout(cfg.deadline, run_inner(cfg, progress))
        .await
        .unwrap_or(Err(SyncError::Deadline(cfg.deadline.as_secs())))
}

async fn run_inner(
    cfg: &SyncConfig,
    progress: &super::progress::Progress,
) -> Result<Report, SyncError> {
    let started = Instant::now();
    let (mut run, repos) = phases::setup(cfg)?;
    let mut report = phases::empty_report(cfg);
    let concurrency = cfg.concurrency.max(1);
    let (items, source_tags) = run
        .discover_phase(&repos, concurrency.max(DISCOVER_CONCURRENCY), &mut report)
        .await?;
    tracing::debug!(
        artifacts = items.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "discovered"
    );
    let items = run.select_platforms(items, &mut report).await;
    // Plan: what to do at each destination (no request: what they hold is known).
    let planned: Vec<Planned> = items
        .into_iter()
        .map(|(item, held)| {
            let actions = run.actions(&item, &held);
            (item, actions)
        })
        .collect();
    for (item, statuses) in run.copy_phase(planned, progress, concurrency).await {
        phases::tally(&mut report, cfg.dry_run, &item, &statuses);
    }
    if cfg.deletion {
        progress.phase(super::progress::Phase::Deleting);
        run.delete_phase(&repos, &source_tags, &mut report).await;
    }
    run.finish(&mut report, started);
    Ok(report)
}

/// Pings `c` once, shared by everyone who awaits the returned future.
fn ready(c: &Arc<RegistryClient>) -> Ready {
    let c = c.clone();
    async move { c.ping().await }.boxed().shared()
}

impl Run<'_> {
    /// Applies `platforms`: an index with unwanted children becomes a new index of the wanted
    /// ones (the item's digest is then the new one, what destinations hold after a copy, so a
    /// re-sync is a no-op); an index with no wanted child is left out.
    async fn select_platforms(
        &self,
        items: Vec<(Item, Held)>,
        report: &mut Report,
    ) -> Vec<(Item, Held)> {
        if self.cfg.platforms.is_empty() {
            return items;
        }
        let selected: Vec<((Item, Held), Selected)> = futures::stream::iter(items)
            .map(|(item, held)| async move {
                let feeder = Feeder {
                    store: &self.source,
                    repo: &item.repo,
                    is_source: true,
                };
                let r = self.copier.select_platforms(feeder, &item.digest).await;
                ((item, held), r)
            })
            .buffered(PLAN_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::with_capacity(selected.len());
        for ((mut item, held), r) in selected {
            if let Some(d) = report.record_platform_selection(
                &item.display(),
                &item.digest,
                r,
                &self.cfg.platforms,
            ) {
                item.digest = d;
                out.push((item, held));
            }
        }
        out
    }

    /// Copies one artifact where it is needed, counts it on `progress` and logs the outcome
    /// at each destination.
    async fn copy_one(
        &self,
        item: Item,
        actions: Vec<Result<Action, String>>,
        progress: &super::progress::Progress,
    ) -> (Item, Vec<Status>) {
        let st = self.sync_item(&item, &actions).await;
        progress.artifact_done(
            st.iter()
                .any(|s| matches!(s, Status::Holds { copied: true })),
            st.iter().any(|s| matches!(s, Status::Failed(_))),
        );
        for (i, s) in st.iter().enumerate() {
            let dest = &self.cfg.destinations[i].name;
            match s {
                Status::Holds { copied: true } => {
                    tracing::info!(artifact = %item.display(), %dest, "copied")
                }
                Status::Holds { copied: false } => {
                    tracing::debug!(artifact = %item.display(), %dest, "in sync")
                }
                Status::Failed(error) => {
                    tracing::warn!(artifact = %item.display(), %dest, %error, "failed")
                }
                Status::Conflict(found) => {
                    tracing::warn!(artifact = %item.display(), %dest, %found, "conflict")
                }
                Status::LeftOut => {}
            }
        }
        (item, st)
    }

    /// What to do at each destination for one artifact, given what they hold.
    fn actions(&self, item: &Item, held: &Held) -> Vec<Result<Action, String>> {
        held.iter()
            .map(|h| {
                h.as_ref()
                    .map(|d| plan::action(&item.digest, d.as_ref(), self.cfg.overwrite))
                    .map_err(Clone::clone)
            })
            .collect()
    }

    /// Copies one artifact to the destinations that need it, parents before children.
    async fn sync_item(&self, item: &Item, actions: &[Result<Action, String>]) -> Vec<Status> {
        let dest_repo = self.cfg.rewrite.apply(&item.repo);
        let mut status: Vec<Option<Status>> = vec![None; self.dests.len()];
        for level in self.tree.levels() {
            let mut groups: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
            for &i in level {
                let parent = self.tree.parent(i);
                let feeder =
                    parent.map(|p| (self.cfg.destinations[p].name.as_str(), status[p].as_ref()));
                match step(&actions[i], self.skip[i], feeder, self.cfg.dry_run) {
                    Step::Done(s) => status[i] = Some(s),
                    Step::Copy => groups.entry(parent).or_default().push(i),
                }
            }
            for (i, r) in self.copy_groups(item, &dest_repo, groups).await {
                status[i] = Some(match r {
                    Ok(()) => Status::Holds { copied: true },
                    Err(e) => Status::Failed(e.to_string()),
                });
            }
        }
        status
            .into_iter()
            .map(|s| s.unwrap_or_else(|| Status::Failed("not planned".into())))
            .collect()
    }

    /// Copies `item` to each group of destinations from its feeder (`None`: the source), the
    /// groups at once.
    async fn copy_groups(
        &self,
        item: &Item,
        dest_repo: &str,
        groups: HashMap<Option<usize>, Vec<usize>>,
    ) -> Outcomes {
        let copies = groups.into_iter().map(|(feeder, members)| async move {
            let (store, repo, is_source) = match feeder {
                None => (&self.source, item.repo.as_str(), true),
                Some(p) => (&self.dests[p].0, dest_repo, false),
            };
            let targets: Vec<TargetRepo> = members
                .iter()
                .map(|&i| TargetRepo {
                    id: i,
                    store: self.dests[i].0.clone(),
                    repo: dest_repo.to_string(),
                })
                .collect();
            let feeder = Feeder {
                store,
                repo,
                is_source,
            };
            self.copier
                .copy_manifest(feeder, &item.digest, &targets, item.tag.as_deref())
                .await
        });
        futures::future::join_all(copies)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// What one destination of a level gets for one artifact.
#[derive(Clone, Debug)]
enum Step {
    /// Settled without a copy.
    Done(Status),
    /// To be copied, from its feeder.
    Copy,
}

/// The relay decision for one destination, pure: its planned action, whether it is left out
/// of the run, and its feeder (`None`: the source) with what the feeder ended with. A
/// destination whose feeder does not hold the artifact is not copied; in a dry run a copy
/// counts as made, so what the destination feeds is planned as a copy from it too.
fn step(
    action: &Result<Action, String>,
    left_out: bool,
    feeder: Option<(&str, Option<&Status>)>,
    dry_run: bool,
) -> Step {
    let feeder_holds = feeder.is_none_or(|(_, s)| matches!(s, Some(Status::Holds { .. })));
    let status = match action {
        _ if left_out => Status::LeftOut,
        Err(e) => Status::Failed(e.clone()),
        Ok(Action::Skip) => Status::Holds { copied: false },
        Ok(Action::Conflict { found }) => Status::Conflict(found.clone()),
        Ok(Action::Copy) if !feeder_holds => {
            let (parent, st) = feeder.unwrap_or_default();
            Status::Failed(
                CopyError::ParentFailed {
                    parent: parent.to_string(),
                    reason: match st {
                        Some(Status::Conflict(_)) => "conflict".into(),
                        _ => "its copy failed".into(),
                    },
                }
                .to_string(),
            )
        }
        Ok(Action::Copy) if dry_run => Status::Holds { copied: true },
        Ok(Action::Copy) => return Step::Copy,
    };
    Step::Done(status)
}

#[cfg(test)]
#[path = "sync/step_tests.rs"]
mod tests;
