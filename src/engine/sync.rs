//! One sync run: discover (list, filter, resolve at the source and look up at every
//! destination at once), plan per destination, copy level by level (hierarchical destinations
//! fed by their parent), delete when enabled, summarise.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};

use super::client::{ClientError, RegistryClient};
use super::config::{ConfigError, SyncConfig, feed_levels};
use super::copy::{Copier, CopyError, Feeder, Target};
use super::digest::Digest;
use super::filter::{FilterError, GlobFilter, TagFilter};
use super::gate::{Gate, Unverified};
use super::limit::Limiter;
use super::plan::{self, Action, Item};
use super::referrers::ReferrerFilter;
use super::report::{Conflict, DestinationReport, Failure, PlannedChange, Report};
use super::store::Store;

mod delete;
mod discover;

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
        /// `source` or `destination <name>`.
        role: String,
        /// Cause.
        source: ClientError,
    },
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
    Holds { copied: bool },
    Failed(String),
    Conflict(Digest),
}

struct Run<'a> {
    cfg: &'a SyncConfig,
    source: Store,
    source_client: Arc<RegistryClient>,
    dests: Vec<(Store, Arc<RegistryClient>)>,
    /// Ping of each destination: its lookups wait for it.
    dests_ready: Vec<Ready>,
    levels: Vec<Vec<usize>>,
    parents: Vec<Option<usize>>,
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
    let (levels, parents) = feed_levels(&cfg.destinations)?;
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
    let endpoint = |role: String| move |source| SyncError::Endpoint { role, source };
    let source_client = Arc::new(
        RegistryClient::new(&cfg.source, cfg.retry)
            .map_err(endpoint(format!("source {}", cfg.source.url)))?,
    );
    let mut dests = Vec::new();
    for d in &cfg.destinations {
        let c = Arc::new(
            RegistryClient::new(&d.endpoint, cfg.retry).map_err(endpoint(format!(
                "destination {} ({})",
                d.name, d.endpoint.url
            )))?,
        );
        dests.push((Store::Registry(c.clone()), c));
    }
    let dests_ready = dests.iter().map(|(_, c)| ready(c)).collect();
    let concurrency = cfg.concurrency.max(1);
    let run = Run {
        cfg,
        source: Store::Registry(source_client.clone()),
        source_client,
        copier: Copier::new(
            dests.len(),
            Limiter::new(cfg.bandwidth_limit),
            cfg.retry,
            cfg.platforms.clone(),
            3,
        )
        .failing_fast(cfg.leave_out_unreachable),
        dests,
        dests_ready,
        levels,
        parents,
        tags,
        referrers_api: AtomicU8::new(0),
        referrers_probe: tokio::sync::Mutex::new(()),
        gate,
    };
    let mut report = Report {
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
    };

    // Discover, while every endpoint is pinged: each must answer (and accept the credentials)
    // before anything is written; discovery only reads.
    let (src_ping, dest_pings, discovered) = futures::join!(
        run.source_client.ping(),
        futures::future::join_all(run.dests_ready.iter().cloned()),
        run.discover_all(&repos, concurrency.max(DISCOVER_CONCURRENCY)),
    );
    src_ping.map_err(endpoint(format!("source {}", cfg.source.url)))?;
    for (d, r) in cfg.destinations.iter().zip(dest_pings) {
        match r {
            // Its lookups failed with the ping's error: nothing is copied there (nor to what
            // it feeds), and the report names it.
            Err(e) if cfg.leave_out_unreachable => {
                tracing::warn!(dest = %d.name, error = %e, "destination unreachable, left out of this run")
            }
            r => r.map_err(endpoint(format!(
                "destination {} ({})",
                d.name, d.endpoint.url
            )))?,
        }
    }
    let discovered = discovered.map_err(endpoint(format!("source {}", cfg.source.url)))?;
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
    // Interleave repositories, so that artifacts copied at once rarely wait on the same
    // (repository-shared) blobs.
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
    let items: Vec<(Item, Held)> = keyed.into_iter().map(|(_, i)| i).collect();
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

    // Copy.
    progress.count_bytes(run.copier.source_read.clone());
    progress.count_bytes(run.copier.relay_read.clone());
    progress.set_total(planned.len() as u64);
    progress.phase(super::progress::Phase::Copying);
    // Subjects first, then their referrers: those of one subject one after the other (a
    // registry keeps one referrers list per subject; olareg 0.1.2 loses one of two updates
    // made at once), different subjects' at once.
    let (subjects, referrers): (Vec<_>, Vec<_>) =
        planned.into_iter().partition(|(i, _)| i.subject.is_none());
    let mut outcomes: Vec<(Item, Vec<Status>)> = futures::stream::iter(subjects)
        .map(|(item, actions)| run.copy_one(item, actions, progress))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut by_subject: HashMap<Digest, Vec<Planned>> = HashMap::new();
    for (item, actions) in referrers {
        let subject = item.subject.clone().unwrap_or_else(|| item.digest.clone());
        by_subject.entry(subject).or_default().push((item, actions));
    }
    let groups: Vec<Vec<(Item, Vec<Status>)>> = futures::stream::iter(by_subject.into_values())
        .map(|group| {
            let run = &run;
            async move {
                let mut done = Vec::with_capacity(group.len());
                for (item, actions) in group {
                    done.push(run.copy_one(item, actions, progress).await);
                }
                done
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    outcomes.extend(groups.into_iter().flatten());
    for (item, statuses) in outcomes {
        tally(&mut report, cfg.dry_run, &item, &statuses);
    }

    // Delete: only in repositories whose source listing completed (`source_tags` holds no
    // other), only what every listing planned, and nothing when that is more than the limit.
    if cfg.deletion {
        progress.phase(super::progress::Phase::Deleting);
        let mut doomed = Vec::new();
        for (repo, all) in &source_tags {
            doomed.extend(run.plan_deletions(repo, all, &mut report).await);
        }
        run.delete(doomed, &mut report).await;
    }

    for (i, d) in report.destinations.iter_mut().enumerate() {
        d.bytes_written = run.copier.written[i].load(Ordering::Relaxed);
    }
    report.bytes_read_from_source = run.copier.source_read.load(Ordering::Relaxed);
    report.bytes_read_from_relays = run.copier.relay_read.load(Ordering::Relaxed);
    report.foreign_layers_skipped = run.copier.foreign_skipped.load(Ordering::Relaxed);
    report.duration_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Counts one artifact's outcome at every destination into `report` (in a dry run, a copy
/// made is a copy planned).
fn tally(report: &mut Report, dry_run: bool, item: &Item, statuses: &[Status]) {
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
        for level in &self.levels {
            let mut groups: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
            for &i in level {
                let parent = self.parents[i];
                let parent_holds = match parent {
                    None => true,
                    Some(p) => matches!(status[p], Some(Status::Holds { .. })),
                };
                status[i] = match &actions[i] {
                    Err(e) => Some(Status::Failed(e.clone())),
                    Ok(Action::Skip) => Some(Status::Holds { copied: false }),
                    Ok(Action::Conflict { found }) => Some(Status::Conflict(found.clone())),
                    Ok(Action::Copy) if !parent_holds => {
                        let p = parent.unwrap_or_default();
                        Some(Status::Failed(
                            CopyError::ParentFailed {
                                parent: self.cfg.destinations[p].name.clone(),
                                reason: match &status[p] {
                                    Some(Status::Conflict(_)) => "conflict".into(),
                                    _ => "its copy failed".into(),
                                },
                            }
                            .to_string(),
                        ))
                    }
                    // A dry run counts the copy as made, so what the destination feeds is
                    // planned as a copy from it too.
                    Ok(Action::Copy) if self.cfg.dry_run => Some(Status::Holds { copied: true }),
                    Ok(Action::Copy) => {
                        groups.entry(parent).or_default().push(i);
                        None
                    }
                };
            }
            let results = futures::future::join_all(groups.into_iter().map(|(feeder, members)| {
                let dest_repo = &dest_repo;
                async move {
                    let (store, repo, is_source) = match feeder {
                        None => (&self.source, item.repo.as_str(), true),
                        Some(p) => (&self.dests[p].0, dest_repo.as_str(), false),
                    };
                    let targets: Vec<Target> = members
                        .iter()
                        .map(|&i| Target {
                            id: i,
                            store: self.dests[i].0.clone(),
                            repo: dest_repo.clone(),
                        })
                        .collect();
                    self.copier
                        .copy_manifest(
                            Feeder {
                                store,
                                repo,
                                is_source,
                            },
                            &item.digest,
                            &targets,
                            item.tag.as_deref(),
                        )
                        .await
                }
            }))
            .await;
            for (i, r) in results.into_iter().flatten() {
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
}
