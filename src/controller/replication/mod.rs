//! The ReplicationPolicy controller. Each reconcile is one pipeline:
//! [`dereference`] (every read, once) → [`decide`] (pure: invalid, waiting, idle or a sync and
//! its scope) → run the engine → [`after`] (pure: status, Events, next look) → [`apply`] (one
//! status apply, the Events). At most one reconcile runs per policy at a time, so one sync per
//! policy; a semaphore bounds the syncs of all policies together. Push work waits in
//! `Context::pending` and is committed only once a run that covered it finished.
//!
//! [`decide`]: crate::replication::decide
//! [`after`]: crate::replication::after

mod apply;
mod dereference;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::{Context, Error, RESYNC_PERIOD, RETRY_AFTER_ERROR, Scope, references};
use crate::api::registry::Registry;
use crate::api::replication_policy::{Endpoint, ReplicationPolicy, ReplicationPolicyStatus};
use crate::engine::{SyncConfig, SyncScope};
use crate::replication::after::{self, After, Ran};
use crate::replication::decide::{Decision, Facts, decide};
use crate::replication::freshness;
use crate::replication::pending::Batch;
use crate::replication::pending_status;
use crate::replication::report_status::{self, Outcome};
use crate::replication::routing;
use crate::replication::trigger::Trigger;

const KIND: &str = "ReplicationPolicy";

/// The controller, watching policies, the Secrets and the Registries they refer to.
pub fn controller(
    client: &Client,
    scope: &Scope,
    secrets: Api<super::SecretMeta>,
) -> Controller<ReplicationPolicy> {
    let (reader, writer) = reflector::store();
    let policies = watcher(
        scope.api::<ReplicationPolicy>(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(super::trim_for_cache)
    .reflect(writer)
    .applied_objects();
    let controller = Controller::for_stream(policies, reader);
    let by_secret = controller.store();
    let by_registry = controller.store();
    controller
        .watches(
            secrets,
            watcher::Config::default(),
            move |secret: super::SecretMeta| {
                let (name, ns) = (secret.name_any(), secret.namespace());
                by_secret
                    .state()
                    .into_iter()
                    .filter(|p| {
                        p.namespace() == ns
                            && references::policy_secrets(&p.spec)
                                .iter()
                                .any(|s| s.name == name)
                    })
                    .map(|p| ObjectRef::from_obj(&*p))
                    .collect::<Vec<_>>()
            },
        )
        .watches(
            scope.api::<Registry>(client),
            watcher::Config::default(),
            move |reg: Registry| {
                let (name, ns) = (reg.name_any(), reg.namespace().unwrap_or_default());
                by_registry
                    .state()
                    .into_iter()
                    .filter(|p| {
                        let own_ns = p.namespace().unwrap_or_default();
                        references::policy_registries(&p.spec, &own_ns)
                            .iter()
                            .any(|r| r.name == name && r.namespace == ns)
                    })
                    .map(|p| ObjectRef::from_obj(&*p))
                    .collect::<Vec<_>>()
            },
        )
}

/// An endpoint in short form: `registry/NAMESPACE/NAME` or its URL.
pub fn endpoint_summary(e: &Endpoint, namespace: &str) -> String {
    match (&e.registry_ref, &e.url) {
        (Some(r), _) => format!(
            "registry/{}/{}",
            r.namespace.as_deref().unwrap_or(namespace),
            r.name
        ),
        (None, Some(url)) => url.clone(),
        (None, None) => "<none>".into(),
    }
}

/// Key of a policy in `Context::pending`.
pub fn policy_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Reconciles one ReplicationPolicy.
#[tracing::instrument(skip_all, fields(policy = %obj.name_any(), namespace = obj.namespace().unwrap_or_default()))]
pub async fn reconcile(obj: Arc<ReplicationPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics
        .reconcile(KIND, reconcile_inner(&obj, &ctx))
        .await
}

async fn reconcile_inner(obj: &ReplicationPolicy, ctx: &Context) -> Result<Action, Error> {
    let name = obj.name_any();
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(format!("ReplicationPolicy {name}"), "namespace"))?;
    let key = policy_key(&ns, &name);
    ctx.index()
        .set(&key, routing::source_key(&obj.spec.source, &ns));
    let api: Api<ReplicationPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = obj.metadata.generation;
    let uid = obj.uid().unwrap_or_default();
    let mut old = obj.status.clone().unwrap_or_default();
    if let Some(w) = ctx.last_written(&key, &uid)
        && freshness::freshen(&mut old, &w)
    {
        tracing::debug!("the cached status predates the last run's write; deciding on that write");
    }

    // Dereference: a failed read ends here, the push work left in place.
    let read = dereference::read(&ctx.client, &obj.spec, &ns).await?;
    if ctx.restore_pending(&key, old.pending_pushes.as_ref()) {
        tracing::info!(
            "took the push work an earlier operator left unfinished (status.pendingPushes)"
        );
    }
    let batch = ctx.peek_pending(&key);
    let now = Timestamp::now();
    let decision = decide(&Facts {
        spec: &obj.spec,
        namespace: &ns,
        status: &old,
        generation,
        annotations: obj.annotations(),
        found: read.found,
        referenced: &read.referenced,
        resolved: &read.resolved,
        registry_urls: &ctx.registry_urls,
        pending: batch.as_ref(),
        now,
        resync: RESYNC_PERIOD,
    });
    let source = endpoint_summary(&obj.spec.source, &ns);
    let mut st = after::base(&old, source, generation, obj.spec.destinations.len());
    // What waits stays listed until a finished run covers it (a run writes its own).
    st.pending_pushes = pending_status::persisted(batch.as_ref());
    let ran = matches!(decision, Decision::Sync { .. });
    let after = match decision {
        Decision::Invalid { issues } => {
            if let Some(b) = batch {
                ctx.requeue_pending(&key, b);
            }
            after::invalid(st, &issues, generation, now, RESYNC_PERIOD)
        }
        Decision::Wait { destinations } => {
            tracing::info!(
                ?destinations,
                "destination in a garbage-collection window; waiting"
            );
            let poll = crate::fleet::gc::WINDOW_POLL;
            after::waiting(st, &destinations, generation, now, poll)
        }
        Decision::Idle { requeue } => {
            after::valid(&mut st, generation, now);
            After {
                status: st,
                notes: Vec::new(),
                requeue,
            }
        }
        Decision::Sync {
            config,
            scope,
            trigger,
            requeue,
        } => {
            after::valid(&mut st, generation, now);
            let config = SyncConfig { scope, ..*config };
            let job = Job {
                obj,
                api: &api,
                old: &old,
                key: &key,
                trigger,
                requeue,
            };
            run(ctx, job, config, st, batch).await?
        }
    };
    apply::apply(ctx, &api, obj, &old, &after).await?;
    if let Some(w) = freshness::written(&after.status).filter(|_| ran) {
        ctx.remember_written(&key, &uid, w);
    }
    Ok(Action::requeue(after.requeue))
}

/// A sync about to run, and what its end needs.
struct Job<'a> {
    obj: &'a ReplicationPolicy,
    api: &'a Api<ReplicationPolicy>,
    old: &'a ReplicationPolicyStatus,
    key: &'a str,
    trigger: Trigger,
    requeue: Duration,
}

/// Runs the engine once a sync slot is free, marking the policy Syncing meanwhile; commits
/// the push work it covered when it finished, requeues it when it could not run or could
/// not reach a destination.
async fn run(
    ctx: &Context,
    job: Job<'_>,
    config: SyncConfig,
    mut st: ReplicationPolicyStatus,
    batch: Option<Batch>,
) -> Result<After, Error> {
    let generation = job.obj.metadata.generation;
    let _slot = ctx
        .sync_slots
        .acquire()
        .await
        .map_err(|_| Error::Build("sync slots closed".into()))?;
    let start = Timestamp::now();
    report_status::started(&mut st, &job.trigger, generation, start);
    st.pending_pushes = pending_status::persisted(batch.as_ref());
    apply::publish_status(job.api, job.obj, job.old, &st).await?;
    tracing::info!(
        trigger = job.trigger.name(),
        scoped = matches!(config.scope, SyncScope::Only(_)),
        "sync started"
    );
    let began = Instant::now();
    let result = crate::engine::sync::run(&config).await;
    let elapsed = began.elapsed().as_secs_f64();
    let covered = batch.as_ref().map(|b| b.items.clone()).unwrap_or_default();
    let push_lag = batch.as_ref().map(|b| b.oldest().elapsed());
    // Covered: the run finished and reached every destination (artifacts that failed there
    // are the retry's, a full sync).
    if let Some(b) = batch {
        match &result {
            Ok(report) if report.unreachable.is_empty() => ctx.commit_pending(job.key, &b),
            _ => ctx.requeue_pending(job.key, b),
        }
    }
    let error_text = result.as_ref().err().map(ToString::to_string);
    let outcome = match (&result, &error_text) {
        (Ok(report), _) => Outcome::Ran(report),
        (Err(_), text) => Outcome::Failed(text.as_deref().unwrap_or_default()),
    };
    let mut after = after::ran(
        st,
        &Ran {
            spec: &job.obj.spec,
            trigger: &job.trigger,
            outcome,
            generation,
            start,
            now: Timestamp::now(),
            push_lag,
            elapsed,
            requeue: job.requeue,
            more_pending: ctx.has_pending(job.key),
            retry: RETRY_AFTER_ERROR,
        },
    );
    after.status.pending_pushes = pending_status::persisted(ctx.peek_pending(job.key).as_ref());
    apply::record_metrics(
        ctx,
        job.key,
        &job.trigger,
        &after.status,
        result.as_ref().ok(),
        elapsed,
        &covered,
    );
    Ok(after)
}

/// Retries failed reconciliations after a pause, counting them.
pub fn error_policy(obj: Arc<ReplicationPolicy>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(policy = %obj.name_any(), error = %err, "reconcile failed");
    ctx.metrics.reconcile_failed(KIND, err.metric_reason());
    Action::requeue(RETRY_AFTER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::replication_policy::RegistryReference;

    #[test]
    fn endpoint_summaries() {
        let by_ref = Endpoint {
            registry_ref: Some(RegistryReference {
                name: "hq".into(),
                namespace: None,
            }),
            ..Default::default()
        };
        assert_eq!(endpoint_summary(&by_ref, "fleet"), "registry/fleet/hq");
        let by_url = Endpoint {
            url: Some("https://east.example.com".into()),
            ..Default::default()
        };
        assert_eq!(
            endpoint_summary(&by_url, "fleet"),
            "https://east.example.com"
        );
    }
}
