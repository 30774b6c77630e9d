//! The ReplicationPolicy controller. This version validates what the schema cannot (cycles
//! among `from` links, cron and filter syntax, referenced Secrets and Registries) and reports
//! it; replication itself comes with the ReplicationPolicy issue.

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
use crate::api::registry::Registry;
use crate::api::replication_policy::{
    Endpoint, ReplicationPolicy, ReplicationPolicySpec, ReplicationPolicyStatus,
};
use crate::conditions::{self, Desired, READY};
use crate::metrics::{FailureLabels, KindLabels};
use crate::replication::validate::{self, Problem};

const KIND: &str = "ReplicationPolicy";

/// The controller, watching policies, the Secrets and the Registries they refer to.
pub fn controller(
    client: &Client,
    scope: &Scope,
    secrets: Api<Secret>,
) -> Controller<ReplicationPolicy> {
    let controller = Controller::new(
        scope.api::<ReplicationPolicy>(client),
        watcher::Config::default(),
    );
    let by_secret = controller.store();
    let by_registry = controller.store();
    controller
        .watches(
            secrets,
            watcher::Config::default(),
            move |secret: Secret| {
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

/// Reconciles one ReplicationPolicy.
#[tracing::instrument(skip_all, fields(policy = %obj.name_any(), namespace = obj.namespace().unwrap_or_default()))]
pub async fn reconcile(obj: Arc<ReplicationPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
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

async fn registry_problems(
    client: &Client,
    spec: &ReplicationPolicySpec,
    namespace: &str,
) -> Result<Vec<Problem>, Error> {
    let mut problems = Vec::new();
    for req in references::policy_registries(spec, namespace) {
        let api: Api<Registry> = Api::namespaced(client.clone(), &req.namespace);
        if api.get_opt(&req.name).await?.is_none() {
            problems.push(Problem {
                reason: "RegistryNotFound",
                field: req.field,
                message: format!(
                    "Registry {:?} not found in namespace {:?}; create it, fix the name, or use url for a registry outside this cluster",
                    req.name, req.namespace
                ),
            });
        }
    }
    Ok(problems)
}

async fn reconcile_inner(obj: &ReplicationPolicy, ctx: &Context) -> Result<Action, Error> {
    let name = obj.name_any();
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(format!("ReplicationPolicy {name}"), "namespace"))?;
    let mut problems = validate::validate(&obj.spec);
    problems.extend(
        super::secret_problems(&ctx.client, &ns, &references::policy_secrets(&obj.spec)).await?,
    );
    problems.extend(registry_problems(&ctx.client, &obj.spec, &ns).await?);
    let (ok, reason, message) = readiness(
        &problems,
        "the policy is valid and everything it refers to exists",
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
    let in_sync = old.destinations.iter().filter(|d| d.in_sync).count();
    let status = ReplicationPolicyStatus {
        observed_generation: generation,
        source: Some(endpoint_summary(&obj.spec.source, &ns)),
        destinations_in_sync: Some(format!("{in_sync}/{}", obj.spec.destinations.len())),
        conditions,
        ..old.clone()
    };
    if status != old {
        let api: Api<ReplicationPolicy> = Api::namespaced(ctx.client.clone(), &ns);
        status::apply(&api, obj, &status).await?;
    }
    let old_ready = conditions::find(&old.conditions, READY);
    if old_ready.map(|c| c.status == "True") != Some(ok)
        || (!ok && old_ready.map(|c| &c.message) != Some(&message))
    {
        status::event(ctx, obj, !ok, reason, "Validate", message).await;
    }
    Ok(Action::requeue(RESYNC_PERIOD))
}

/// Retries failed reconciliations after a pause, counting them.
pub fn error_policy(obj: Arc<ReplicationPolicy>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(policy = %obj.name_any(), error = %err, "reconcile failed");
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
