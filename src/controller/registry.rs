//! The Registry controller. This version validates what the schema cannot (referenced
//! Secrets and their keys) and reports it; building the fleet comes with the Registry issue.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use super::{
    Context, Error, RESYNC_PERIOD, RETRY_AFTER_ERROR, Scope, readiness, references, status,
};
use crate::api::registry::{Registry, RegistrySpec, RegistryStatus};
use crate::conditions::{self, Desired, READY};
use crate::metrics::{FailureLabels, KindLabels};

const KIND: &str = "Registry";

/// The controller, watching Registries and the Secrets they refer to.
pub fn controller(client: &Client, scope: &Scope, secrets: Api<Secret>) -> Controller<Registry> {
    let controller = Controller::new(scope.api::<Registry>(client), watcher::Config::default());
    let store = controller.store();
    controller.watches(
        secrets,
        watcher::Config::default(),
        move |secret: Secret| {
            let (name, ns) = (secret.name_any(), secret.namespace());
            store
                .state()
                .into_iter()
                .filter(|r| {
                    r.namespace() == ns
                        && references::registry_secrets(&r.spec)
                            .iter()
                            .any(|s| s.name == name)
                })
                .map(|r| ObjectRef::from_obj(&*r))
                .collect::<Vec<_>>()
        },
    )
}

/// Labels selecting the pods of a Registry.
pub fn selector(name: &str) -> String {
    format!("app.kubernetes.io/name=registry,app.kubernetes.io/instance={name}")
}

/// The storage backend in short form, e.g. `s3://bucket/prefix`.
pub fn storage_summary(spec: &RegistrySpec) -> String {
    if let Some(s3) = &spec.storage.s3 {
        format!(
            "s3://{}{}",
            s3.bucket,
            s3.root_directory.as_deref().unwrap_or("")
        )
    } else if spec.storage.filesystem.is_some() {
        "filesystem".into()
    } else {
        "emptyDir".into()
    }
}

/// In-cluster URL of a Registry's Service.
pub fn service_url(spec: &RegistrySpec, name: &str, namespace: &str) -> String {
    let scheme = if spec.tls.is_some() { "https" } else { "http" };
    let port = spec.service.as_ref().map_or(5000, |s| s.port);
    format!("{scheme}://{name}.{namespace}.svc:{port}")
}

/// Reconciles one Registry.
#[tracing::instrument(skip_all, fields(registry = %obj.name_any(), namespace = obj.namespace().unwrap_or_default()))]
pub async fn reconcile(obj: Arc<Registry>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let labels = KindLabels { kind: KIND.into() };
    ctx.metrics.reconciliations.get_or_create(&labels).inc();
    let result = reconcile_inner(&obj, &ctx).await;
    ctx.metrics
        .duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn reconcile_inner(obj: &Registry, ctx: &Context) -> Result<Action, Error> {
    let name = obj.name_any();
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(format!("Registry {name}"), "namespace"))?;
    let problems =
        super::secret_problems(&ctx.client, &ns, &references::registry_secrets(&obj.spec)).await?;
    let (ok, reason, message) = readiness(
        &problems,
        "the Registry spec is valid and its Secrets exist",
    );

    let old = obj.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone();
    let generation = obj.metadata.generation;
    conditions::upsert(
        &mut conditions,
        &Desired {
            type_: READY,
            status: ok,
            reason,
            message: &message,
        },
        generation,
        Timestamp::now(),
    );
    let status = RegistryStatus {
        observed_generation: generation,
        selector: Some(selector(&name)),
        url: Some(service_url(&obj.spec, &name, &ns)),
        external_url: obj.spec.external_url.clone(),
        storage: Some(storage_summary(&obj.spec)),
        conditions,
        ..old.clone()
    };
    if status != old {
        let api: Api<Registry> = Api::namespaced(ctx.client.clone(), &ns);
        status::apply(&api, obj, &status).await?;
    }
    let was_ok = conditions::find(&old.conditions, READY).map(|c| c.status == "True");
    if was_ok != Some(ok)
        || (!ok && conditions::find(&old.conditions, READY).map(|c| &c.message) != Some(&message))
    {
        status::event(ctx, obj, !ok, reason, "Validate", message).await;
    }
    Ok(Action::requeue(RESYNC_PERIOD))
}

/// Retries failed reconciliations after a pause, counting them.
pub fn error_policy(obj: Arc<Registry>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(registry = %obj.name_any(), error = %err, "reconcile failed");
    ctx.metrics
        .failures
        .get_or_create(&FailureLabels {
            kind: KIND.into(),
            reason: err.metric_reason().into(),
        })
        .inc();
    Action::requeue(RETRY_AFTER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> RegistrySpec {
        serde_json::from_value(v).expect("valid spec")
    }

    #[test]
    fn summaries() {
        let s3 = spec(
            serde_json::json!({"storage": {"s3": {"bucket": "imgs", "rootDirectory": "/east"}}, "tls": {"secretName": "t"}}),
        );
        assert_eq!(storage_summary(&s3), "s3://imgs/east");
        assert_eq!(service_url(&s3, "hq", "fleet"), "https://hq.fleet.svc:5000");
        let dev = spec(serde_json::json!({"storage": {"emptyDir": {}}, "service": {"port": 80}}));
        assert_eq!(storage_summary(&dev), "emptyDir");
        assert_eq!(service_url(&dev, "dev", "ns"), "http://dev.ns.svc:80");
        assert_eq!(
            selector("hq"),
            "app.kubernetes.io/name=registry,app.kubernetes.io/instance=hq"
        );
    }
}
