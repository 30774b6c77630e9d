//! The controller manager: one controller per kind, sharing a client, an event recorder and
//! the metrics. Each reconciler is a pipeline: dereference (I/O) → validate (pure) → apply →
//! status.

pub mod references;
pub mod registry;
pub mod replication;
mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client};

use crate::metrics::Metrics;

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
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// URL of the event receiver as registry pods reach it.
    pub receiver_url: Option<String>,
}

/// Runs both controllers until SIGTERM or SIGINT; `ready` turns true once their caches synced.
pub async fn run(
    client: Client,
    scope: Scope,
    settings: Settings,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) {
    let reporter = Reporter {
        controller: "flotilla".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics,
        receiver_url: settings.receiver_url,
    });
    let secrets: Api<Secret> = scope.api(&client);

    let registries = registry::controller(&client, &scope, secrets.clone());
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

    let registries = registries.shutdown_on_signal().run(
        registry::reconcile,
        registry::error_policy,
        ctx.clone(),
    );
    let policies =
        policies
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
    tracing::info!("controllers stopped");
}

/// Problems with the Secrets a resource in `namespace` refers to.
pub async fn secret_problems(
    client: &Client,
    namespace: &str,
    required: &[references::SecretRequirement],
) -> Result<Vec<crate::replication::validate::Problem>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut problems = Vec::new();
    for req in required {
        let found = api.get_opt(&req.name).await?;
        problems.extend(references::check_secret(req, namespace, found.as_ref()));
    }
    Ok(problems)
}

/// The `Ready` condition and Event for a validation outcome: valid, or the first problem
/// (every problem is listed in the message).
pub fn readiness(
    problems: &[crate::replication::validate::Problem],
    ok_message: &str,
) -> (bool, &'static str, String) {
    match problems.first() {
        None => (true, "Valid", ok_message.to_string()),
        Some(first) => {
            let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
            (false, first.reason, all.join("; "))
        }
    }
}
