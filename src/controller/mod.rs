//! The controller manager: one controller per kind, sharing a client, an event recorder and
//! the metrics. Each reconciler is a pipeline: dereference (I/O) → validate (pure) → apply →
//! status.

mod children;
mod exposure;
pub mod fleet;
mod gc;
mod gc_measure;
pub mod references;
pub mod replication;
mod revocation;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};

use crate::api::replication_policy::{PendingPushes, ReplicationPolicy};

use crate::engine::scope::Named;
use crate::metrics::Metrics;
use crate::notifications::ManifestEvent;
use crate::replication::pending::{Batch, PendingQueue};
use crate::replication::routing::{self, SourceIndex};

/// What every reconciler gets.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes Kubernetes Events about the resources.
    pub recorder: Recorder,
    /// Metrics of the manager.
    pub metrics: Arc<Metrics>,
    /// URL of the event receiver as registry pods reach it; `None` disables notifications.
    pub receiver_url: Option<String>,
    /// Image running `flotilla token-service` beside Registries with `spec.access`.
    pub token_service_image: Option<String>,
    /// Tokens the event receiver accepts (the Registry controller registers its fleets').
    pub tokens: crate::notifications::Tokens,
    /// Push-event work per policy (`namespace/name`).
    pub pending: Mutex<HashMap<String, PendingQueue>>,
    /// Policies whose `status.pendingPushes` this process has taken into `pending` (once, on
    /// its first reconcile of the policy: after that, the queue is ahead of the status).
    pub restored: Mutex<std::collections::HashSet<String>>,
    /// What the last run of each policy (by key, with the object's uid) wrote to its status,
    /// read in place of a cached status that predates it (see
    /// [`crate::replication::freshness`]).
    pub written: Mutex<HashMap<String, (String, crate::replication::freshness::Written)>>,
    /// Policies by source, for routing events (kept by the policies' reconciles).
    pub sources: Mutex<SourceIndex>,
    /// Bounds the syncs running at once across all policies.
    pub sync_slots: tokio::sync::Semaphore,
    /// URLs that replace Registries' in-cluster URLs, by `namespace/name` (an operator running
    /// outside the cluster reaches them through a port-forward or an ingress).
    pub registry_urls: BTreeMap<String, String>,
}

impl Context {
    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingQueue>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pending push work of a policy, left in place (see [`PendingQueue`]).
    pub fn peek_pending(&self, key: &str) -> Option<Batch> {
        self.queues().get(key).and_then(PendingQueue::peek)
    }

    /// The run covering `batch` finished.
    pub fn commit_pending(&self, key: &str, batch: &Batch) {
        let mut queues = self.queues();
        if let Some(q) = queues.get_mut(key) {
            q.commit(batch);
            if q.is_empty() {
                queues.remove(key);
            }
        }
    }

    /// The run meant to cover `batch` did not.
    pub fn requeue_pending(&self, key: &str, batch: Batch) {
        if let Some(q) = self.queues().get_mut(key) {
            q.requeue(batch);
        }
    }

    /// Whether a policy has pending work.
    pub fn has_pending(&self, key: &str) -> bool {
        self.queues().get(key).is_some_and(|q| !q.is_empty())
    }

    /// Adds work for a policy.
    pub fn add_pending(&self, key: &str, work: Named) {
        self.queues()
            .entry(key.to_string())
            .or_default()
            .push(work, Instant::now());
    }

    /// On this process's first reconcile of a policy, takes the push work its status lists
    /// (written by an earlier process that did not finish it) into the queue. `true` when it
    /// did.
    pub fn restore_pending(&self, key: &str, status: Option<&PendingPushes>) -> bool {
        let first = self
            .restored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string());
        let Some(persisted) = status.filter(|_| first) else {
            return false;
        };
        let (named, full) = crate::replication::pending_status::restored(persisted);
        let now = Instant::now();
        let mut queues = self.queues();
        let q = queues.entry(key.to_string()).or_default();
        for n in named {
            q.push(n, now);
        }
        if full {
            q.overflow(now);
        }
        true
    }

    /// What the last run of policy `key` wrote to its status, if the policy is still the object
    /// `uid` (not one deleted and created again under the same name).
    pub fn last_written(
        &self,
        key: &str,
        uid: &str,
    ) -> Option<crate::replication::freshness::Written> {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written
            .get(key)
            .filter(|(u, _)| u == uid)
            .map(|(_, w)| w.clone())
    }

    /// Remembers what a run wrote to the status of policy `key`, object `uid`.
    pub fn remember_written(
        &self,
        key: &str,
        uid: &str,
        w: crate::replication::freshness::Written,
    ) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.insert(key.to_string(), (uid.to_string(), w));
    }

    /// Forgets a policy that is gone: its queue and its place in the source index.
    pub fn forget_policy(&self, key: &str) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.restored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.queues().remove(key);
        self.index().remove(key);
    }

    /// The index of policies by source.
    pub fn index(&self) -> std::sync::MutexGuard<'_, SourceIndex> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Errors of a reconciliation; all are retried with backoff.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A call to the API server failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// A resource arrived without a field the API server always sets.
    #[error("{0} lacks metadata.{1}")]
    MissingMetadata(String, &'static str),
    /// Building a patch failed.
    #[error("cannot serialise a patch: {0}")]
    Serialize(#[from] serde_json::Error),
    /// Building the owned objects failed.
    #[error("cannot build the owned objects: {0}")]
    Build(String),
}

impl Error {
    /// Short class for metrics labels.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeApi",
            Error::MissingMetadata(..) => "MissingMetadata",
            Error::Serialize(_) => "Serialize",
            Error::Build(_) => "Build",
        }
    }
}

/// Every [`Error::metric_reason`].
pub const METRIC_REASONS: [&str; 4] = ["KubeApi", "MissingMetadata", "Serialize", "Build"];

/// Delay before retrying a failed reconciliation.
pub const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);
/// Periodic re-reconciliation of a healthy resource (catches drift nobody told us about).
pub const RESYNC_PERIOD: Duration = Duration::from_secs(300);

/// Where the manager watches.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// One namespace, or every namespace when `None`.
    pub namespace: Option<String>,
}

impl Scope {
    /// An API handle of `K` in this scope.
    pub fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
}

/// Operator-wide settings from the command line.
#[derive(Debug, Default)]
pub struct Settings {
    /// URL of the event receiver as registry pods reach it.
    pub receiver_url: Option<String>,
    /// Image running `flotilla token-service` (the operator's own).
    pub token_service_image: Option<String>,
    /// Syncs running at once across all policies.
    pub max_concurrent_syncs: usize,
    /// Tokens the event receiver accepts.
    pub tokens: crate::notifications::Tokens,
    /// Events accepted by the receiver.
    pub events: Option<tokio::sync::mpsc::Receiver<ManifestEvent>>,
    /// URLs that replace Registries' in-cluster URLs, by `namespace/name`.
    pub registry_urls: BTreeMap<String, String>,
}

/// Secrets as the controllers watch them: metadata only. A controller needs to know which
/// Secret changed, never its data (read when reconciling), so the operator keeps no Secret
/// values in memory and the watch carries none.
pub type SecretMeta = PartialObjectMeta<Secret>;

/// What a controller's cache keeps of an object: everything but `managedFields` and kubectl's
/// `last-applied-configuration` (a second copy of the spec), which no reconcile reads. With
/// 10,000 policies they were most of the operator's memory.
pub fn trim_for_cache<K: kube::Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// kubectl's client-side apply record.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Runs both controllers until SIGTERM or SIGINT; `ready` turns true once their caches synced.
pub async fn run(
    client: Client,
    scope: Scope,
    mut settings: Settings,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) {
    metrics.initialize_failures(&["Registry", "ReplicationPolicy"], &METRIC_REASONS);
    let reporter = Reporter {
        controller: "flotilla".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics,
        receiver_url: settings.receiver_url.clone(),
        token_service_image: settings.token_service_image.clone(),
        tokens: settings.tokens.clone(),
        pending: Mutex::new(HashMap::new()),
        restored: Mutex::new(std::collections::HashSet::new()),
        written: Mutex::new(HashMap::new()),
        sources: Mutex::new(SourceIndex::default()),
        sync_slots: tokio::sync::Semaphore::new(settings.max_concurrent_syncs.max(1)),
        registry_urls: std::mem::take(&mut settings.registry_urls),
    });
    let secrets: Api<SecretMeta> = scope.api(&client);

    let revoker = tokio::spawn(revocation::run(
        scope.api::<PartialObjectMeta<crate::api::registry::Registry>>(&client),
        settings.tokens.clone(),
    ));
    let registries = fleet::controller(&client, &scope, secrets.clone());
    let policies = replication::controller(&client, &scope, secrets);
    let (registry_store, policy_store) = (registries.store(), policies.store());
    tokio::spawn(async move {
        // The store's readiness future wakes only its latest poller (the controller's own), so
        // poll it again now and then instead of waiting on one wake-up.
        let poll = Duration::from_millis(200);
        while tokio::time::timeout(poll, registry_store.wait_until_ready())
            .await
            .is_err()
        {}
        while tokio::time::timeout(poll, policy_store.wait_until_ready())
            .await
            .is_err()
        {}
        ready.store(true, Ordering::Relaxed);
        tracing::info!("caches synced; ready");
    });

    let (wake_tx, wake_rx) = tokio::sync::mpsc::channel::<ObjectRef<ReplicationPolicy>>(1024);
    if let Some(mut events) = settings.events.take() {
        let (store, ctx) = (policies.store(), ctx.clone());
        tokio::spawn(async move {
            // Events wait (in the channel, then at the registries, which retry) until the
            // policies are known: routed against an empty cache they would be dropped.
            let poll = Duration::from_millis(200);
            while tokio::time::timeout(poll, store.wait_until_ready())
                .await
                .is_err()
            {}
            while let Some(event) = events.recv().await {
                route(&ctx, &store, &event, &wake_tx).await;
            }
        });
    }
    let registries =
        registries
            .shutdown_on_signal()
            .run(fleet::reconcile, fleet::error_policy, ctx.clone());
    // Reconciles wait for a sync slot holding their resolved spec, Secrets and status: with
    // no bound, 10,000 new policies were 10,000 such futures (375 MiB). Twice the slots keeps
    // the next ones ready while the rest wait in the controller's queue as bare references.
    let concurrency =
        u16::try_from(settings.max_concurrent_syncs.saturating_mul(2).max(2)).unwrap_or(u16::MAX);
    let policies = policies
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .reconcile_on(tokio_stream_from(wake_rx))
        .shutdown_on_signal()
        .run(replication::reconcile, replication::error_policy, ctx);
    futures::join!(
        registries.for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(kind = "Registry", error = %e, "reconcile loop event");
            }
        }),
        policies.for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(kind = "ReplicationPolicy", error = %e, "reconcile loop event");
            }
        })
    );
    revoker.abort();
    tracing::info!("controllers stopped");
}

/// Hands one event to the policies of its source (found in the index, then checked against
/// the rule of what its token may trigger), waking each that gets work.
async fn route(
    ctx: &Context,
    store: &kube::runtime::reflector::Store<ReplicationPolicy>,
    event: &ManifestEvent,
    wake: &tokio::sync::mpsc::Sender<ObjectRef<ReplicationPolicy>>,
) {
    // Policies created or deleted since the index was last complete: index them all again
    // (the policies' reconciles keep it current otherwise).
    if ctx.index().len() != store.len() {
        let all = store.state().into_iter().map(|p| {
            let ns = p.namespace().unwrap_or_default();
            let key = routing::source_key(&p.spec.source, &ns);
            (replication::policy_key(&ns, &p.name_any()), key)
        });
        ctx.index().rebuild(all.collect::<Vec<_>>());
    }
    let candidates = ctx.index().candidates(event);
    for key in candidates {
        let Some((ns, name)) = key.split_once('/') else {
            continue;
        };
        let Some(policy) = store.get(&ObjectRef::new(name).within(ns)) else {
            ctx.forget_policy(&key);
            continue;
        };
        if !routing::from_source(&policy.spec.source, ns, event) {
            continue;
        }
        if let Some(work) = routing::work(&policy.spec, event) {
            tracing::debug!(policy = %key, ?work, "push event");
            ctx.add_pending(&key, work);
            let _ = wake.send(ObjectRef::from_obj(&*policy)).await;
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_reason_is_among_those_initialised_at_start() {
        let serde = serde_json::from_str::<i32>("x").expect_err("not a number");
        let kube = kube::Error::Api(Box::new(kube::core::Status::failure("gone", "NotFound")));
        for e in [
            Error::Kube(kube),
            Error::MissingMetadata("Registry x".into(), "namespace"),
            Error::Serialize(serde),
            Error::Build("x".into()),
        ] {
            assert!(
                METRIC_REASONS.contains(&e.metric_reason()),
                "{} is not initialised",
                e.metric_reason()
            );
        }
    }
}
