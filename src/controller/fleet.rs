//! The Registry controller: dereference (Secrets, the generated and access Secrets) →
//! decide (pure: validate, build with `crate::fleet`) → server-side apply (after checking
//! no child is foreign) → status (from the Deployment that really runs).
//! Nothing is applied while the spec or a referenced Secret has a problem: the fleet keeps
//! running on its last good configuration and the conditions say what to fix.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use super::children::{apply, apply_or_delete, foreign, owned_by};
use super::{
    Context, Error, RESYNC_PERIOD, RETRY_AFTER_ERROR, Scope, exposure, references, status,
};
use crate::access::jwt::KeyMaterial;
use crate::api::registry::{Registry, RegistrySpec};
use crate::engine::auth::DockerConfig;
use crate::fleet::access;
use crate::fleet::generated::{
    GeneratedSecrets, existing_value, generate_http_secret, generate_token,
};
use crate::fleet::names::{
    HTPASSWD_KEY, HTTP_SECRET_KEY, NOTIFICATION_TOKEN_KEY, Names, OPERATOR_PASSWORD_KEY,
    TOKEN_CERT_KEY, TOKEN_KEY_KEY,
};
use crate::fleet::objects::{BuildContext, Children, build};
use crate::fleet::operator_account;
use crate::fleet::ownership::{self, Claimant};
use crate::fleet::status::ObservedDeployment;
use crate::fleet::validate::{Issue, check_tls_secret, validate};

const KIND: &str = "Registry";
/// Field of the htpasswd Secret reference, as `references::registry_secrets` names it.
const HTPASSWD_FIELD: &str = "spec.auth.htpasswd.secretRef";

/// The controller, watching Registries, what they own and the Secrets they refer to.
pub fn controller(
    client: &Client,
    scope: &Scope,
    secrets: Api<super::SecretMeta>,
) -> Controller<Registry> {
    let wc = watcher::Config::default().labels("app.kubernetes.io/managed-by=flotilla");
    let controller = Controller::new(scope.api::<Registry>(client), watcher::Config::default())
        .owns(scope.api::<Deployment>(client), wc.clone())
        .owns(scope.api::<Service>(client), wc.clone())
        .owns(scope.api::<ConfigMap>(client), wc.clone())
        .owns(scope.api::<PodDisruptionBudget>(client), wc.clone())
        .owns(scope.api::<Ingress>(client), wc);
    let store = controller.store();
    // Secrets: both the generated one (owned) and the user's (referenced) trigger a reconcile.
    controller.watches(
        secrets,
        watcher::Config::default(),
        move |secret: super::SecretMeta| {
            let (name, ns) = (secret.name_any(), secret.namespace());
            store
                .state()
                .into_iter()
                .filter(|r| {
                    r.namespace() == ns
                        && (Names::new(r.name_any(), "").generated_secret() == name
                            || Names::new(r.name_any(), "").access_secret() == name
                            || references::registry_secrets(&r.spec)
                                .iter()
                                .any(|s| s.name == name))
                })
                .map(|r| ObjectRef::from_obj(&*r))
                .collect::<Vec<_>>()
        },
    )
}

/// Reconciles one Registry.
#[tracing::instrument(skip_all, fields(registry = %obj.name_any(), namespace = obj.namespace().unwrap_or_default()))]
pub async fn reconcile(obj: Arc<Registry>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics
        .reconcile(KIND, reconcile_inner(&obj, &ctx))
        .await
}

/// Reason of a missing or incomplete referenced Secret, by the field that refers to it.
fn secret_reason(field: &str, reason: &'static str) -> &'static str {
    match (field.starts_with("spec.storage.s3"), reason) {
        (true, "SecretNotFound" | "SecretKeyMissing") => "S3CredentialsMissing",
        _ => reason,
    }
}

/// Upstream credentials of a pull-through cache when they come as a dockerconfigjson Secret:
/// the entry for the upstream's host.
fn proxy_credentials(spec: &RegistrySpec, secret: Option<&Secret>) -> Option<(String, String)> {
    let proxy = spec.proxy.as_ref()?;
    let json = secret?.data.as_ref()?.get(".dockerconfigjson")?;
    let config = DockerConfig::parse(&json.0).ok()?;
    let creds = config.lookup(&crate::engine::auth::normalize_host(&proxy.remote_url))?;
    Some((creds.username.clone(), creds.password.clone()))
}

/// Dereference (I/O) → decide (pure) → apply (after the ownership checks) → report.
async fn reconcile_inner(obj: &Registry, ctx: &Context) -> Result<Action, Error> {
    let name = obj.name_any();
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(format!("Registry {name}"), "namespace"))?;
    let uid = obj
        .uid()
        .ok_or_else(|| Error::MissingMetadata(format!("Registry {name}"), "uid"))?;
    let names = Names::new(&name, &ns);
    let owner = Claimant::Registry {
        name: &name,
        uid: &uid,
    };
    let found = dereference(obj, ctx, &names).await?;
    let access_left = found
        .access_secret
        .as_ref()
        .is_some_and(|s| s.data.as_ref().is_some_and(|d| !d.is_empty()));
    let build_ctx = BuildContext {
        receiver_url: ctx.receiver_url.clone(),
        read_only_window: crate::fleet::gc::renders_read_only(
            obj.status
                .as_ref()
                .and_then(|s| s.garbage_collection.as_ref()),
        ),
        token_service_image: ctx.token_service_image.clone(),
    };
    let (mut issues, plan) = decide(obj, &build_ctx, &names, owner, found)?;
    let mut applied = None;
    if let Some((children, notification_token)) = plan {
        // Nothing is applied over an object of another owner.
        issues.extend(not_owned(ctx, &names, owner, &children).await?);
        if issues.is_empty() {
            // The receiver accepts exactly the token the fleet is configured with, if any.
            let identity = crate::replication::routing::registry_identity(&ns, &name);
            match &notification_token {
                Some(token) => ctx.tokens.insert_owned(&identity, &uid, token),
                None => ctx.tokens.remove(&identity),
            }
            apply_children(ctx, obj, &ns, &names, &children, access_left).await?;
            applied = Some(children);
        }
    }
    report(obj, ctx, &names, &issues, applied.as_ref()).await
}

/// What `decide` plans to apply (only when it found no issue): the children and the
/// notification token the receiver must accept.
type Plan = Option<(Children, Option<String>)>;

/// Decides from what was read: validation issues, or the objects to apply. Values are reused
/// only from the Registry's own generated and access Secrets, never from foreign ones.
fn decide(
    obj: &Registry,
    build_ctx: &BuildContext,
    names: &Names,
    owner: Claimant<'_>,
    mut found: Dereferenced,
) -> Result<(Vec<Issue>, Plan), Error> {
    let mut issues = std::mem::take(&mut found.issues);
    issues.extend(ownership::check(
        "Secret",
        &names.generated_secret(),
        found.generated_secret.as_ref().map(|s| &s.metadata),
        owner,
    ));
    if obj.spec.access.is_some() {
        issues.extend(ownership::check(
            "Secret",
            &names.access_secret(),
            found.access_secret.as_ref().map(|s| &s.metadata),
            owner,
        ));
    }
    if !issues.is_empty() {
        return Ok((issues, None));
    }
    let generated = generated_secrets(obj, build_ctx, names, &found)?;
    let children = build(obj, build_ctx, &generated).map_err(|e| Error::Build(e.to_string()))?;
    Ok((issues, Some((children, generated.notification_token))))
}

/// Writes the status from what really runs, an Event when Ready changes, and says when to
/// look again.
async fn report(
    obj: &Registry,
    ctx: &Context,
    names: &Names,
    issues: &[Issue],
    applied: Option<&Children>,
) -> Result<Action, Error> {
    let ns = names.namespace.as_str();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let deployment = deployments
        .get_opt(&names.workload())
        .await?
        .filter(|d| owned_by(d, obj));
    let observed = deployment.as_ref().map(ObservedDeployment::from_deployment);
    let mut new = crate::fleet::status::status(obj, observed.as_ref(), issues, Timestamp::now());
    let seen = super::gc::Seen {
        deployment: deployment.as_ref(),
        applied,
    };
    let gc_wake = super::gc::window(ctx, obj, &seen, !issues.is_empty(), &mut new).await?;
    ctx.metrics
        .record_registry(&format!("{ns}/{}", names.instance), &new);
    let old = obj.status.clone().unwrap_or_default();
    if new != old {
        let api: Api<Registry> = Api::namespaced(ctx.client.clone(), ns);
        status::apply(&api, obj, &new).await?;
    }
    let was = crate::conditions::find(&old.conditions, crate::conditions::READY)
        .map(|c| (c.status.clone(), c.reason.clone()));
    let now = crate::conditions::find(&new.conditions, crate::conditions::READY)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()));
    if let Some((s, reason, message)) = now
        && was.as_ref().map(|(os, or)| (os, or)) != Some((&s, &reason))
    {
        status::event(ctx, obj, s != "True", &reason, "Reconcile", message).await;
    }
    // A foreign object is nobody's event of ours: look again soon for it to be gone.
    let not_owned = issues
        .iter()
        .any(|i| i.reason == ownership::OBJECT_NOT_OWNED);
    let requeue = if not_owned {
        NOT_OWNED_RECHECK
    } else {
        RESYNC_PERIOD
    };
    Ok(Action::requeue(gc_wake.map_or(requeue, |w| w.min(requeue))))
}

/// What the Registry's references hold, and the problems found on the way.
struct Dereferenced {
    issues: Vec<Issue>,
    /// `<name>-generated`, as it exists (maybe foreign).
    generated_secret: Option<Secret>,
    /// `<name>-access`, as it exists (maybe foreign).
    access_secret: Option<Secret>,
    proxy_secret: Option<Secret>,
    user_htpasswd: Option<String>,
    access_groups: std::collections::BTreeMap<String, Vec<String>>,
    /// Digest of `spec.tls`'s certificate and key, as they are now.
    tls_fingerprint: Option<String>,
}

/// Validates the spec and reads every Secret it refers to, and the Registry's own.
async fn dereference(obj: &Registry, ctx: &Context, names: &Names) -> Result<Dereferenced, Error> {
    let ns = names.namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut issues: Vec<Issue> = validate(&obj.spec);
    issues.extend(exposure::gateway_api_issue(&ctx.client, &obj.spec).await?);
    issues.extend(access::validate(
        &obj.spec,
        ctx.token_service_image.as_deref(),
    ));
    let mut found_refs = Dereferenced {
        issues: Vec::new(),
        generated_secret: secrets.get_opt(&names.generated_secret()).await?,
        access_secret: secrets.get_opt(&names.access_secret()).await?,
        proxy_secret: None,
        user_htpasswd: None,
        access_groups: Default::default(),
        tls_fingerprint: None,
    };
    for req in references::registry_secrets(&obj.spec) {
        let found = secrets.get_opt(&req.name).await?;
        if let Some(p) = references::check_secret(&req, ns, found.as_ref()) {
            issues.push(Issue {
                reason: secret_reason(&p.field, p.reason),
                field: p.field,
                message: p.message,
            });
        } else if req.field == "spec.tls.secretName" {
            issues.extend(found.as_ref().and_then(check_tls_secret));
            found_refs.tls_fingerprint = found.as_ref().map(crate::fleet::tls_fingerprint);
        } else if req.field == "spec.proxy.credentialsSecretRef" {
            found_refs.proxy_secret = found;
        } else if let Some(g) = obj
            .spec
            .access
            .as_ref()
            .and_then(|a| a.groups_secret_ref.as_ref())
            .filter(|_| req.field == access::GROUPS_FIELD)
        {
            let text = existing_value(found.as_ref(), &g.key).unwrap_or_default();
            match access::groups(&text) {
                Ok(groups) => found_refs.access_groups = groups,
                Err(issue) => issues.push(issue),
            }
        } else if let Some(auth) = obj
            .spec
            .auth
            .as_ref()
            .filter(|_| req.field == HTPASSWD_FIELD)
        {
            let file = existing_value(found.as_ref(), &auth.htpasswd.secret_ref.key);
            issues.extend(
                file.as_deref()
                    .and_then(|f| operator_account::check_reserved(f, HTPASSWD_FIELD)),
            );
            found_refs.user_htpasswd = file;
        }
    }
    found_refs.issues = issues;
    Ok(found_refs)
}

/// The generated values: kept from the Registry's own generated (`reusable`) and access
/// Secrets, generated where missing, with what the references held.
fn generated_secrets(
    obj: &Registry,
    build_ctx: &BuildContext,
    names: &Names,
    found: &Dereferenced,
) -> Result<GeneratedSecrets, Error> {
    // `decide` has checked both are the Registry's own (or absent).
    let reusable = found.generated_secret.as_ref();
    let own_access = found.access_secret.as_ref();
    Ok(GeneratedSecrets {
        http_secret: existing_value(reusable, HTTP_SECRET_KEY).unwrap_or_else(generate_http_secret),
        notification_token: (obj.spec.notifications && build_ctx.receiver_url.is_some()).then(
            || existing_value(reusable, NOTIFICATION_TOKEN_KEY).unwrap_or_else(generate_token),
        ),
        proxy_credentials: proxy_credentials(&obj.spec, found.proxy_secret.as_ref()),
        operator: operator(obj, found.user_htpasswd.as_deref(), reusable, own_access)?,
        token_key: match &obj.spec.access {
            Some(_) => Some(token_key(reusable, names)?),
            None => None,
        },
        access_groups: found.access_groups.clone(),
        tls_fingerprint: found.tls_fingerprint.clone(),
    })
}

/// The operator's own account: with htpasswd auth or access rules (then with no users of
/// its own when `spec.auth` is unset). Its password and htpasswd line are kept from the
/// generated Secret, or from the access Secret that holds the file under token auth.
fn operator(
    obj: &Registry,
    user_htpasswd: Option<&str>,
    generated: Option<&Secret>,
    access_secret: Option<&Secret>,
) -> Result<Option<operator_account::OperatorAccount>, Error> {
    let file = match (&obj.spec.auth, &obj.spec.access, user_htpasswd) {
        (Some(_), _, Some(file)) => file,
        (None, Some(_), _) => "",
        _ => return Ok(None),
    };
    let existing_file = match &obj.spec.access {
        Some(_) => existing_value(access_secret, crate::access::bundle::USERS_KEY),
        None => existing_value(generated, HTPASSWD_KEY),
    };
    operator_account::account(
        file,
        existing_value(generated, OPERATOR_PASSWORD_KEY),
        existing_file.as_deref(),
    )
    .map(Some)
    .map_err(|e| Error::Build(format!("hashing the operator password: {e}")))
}

/// The token signing key of the generated Secret, or a fresh one when it has none.
fn token_key(generated: Option<&Secret>, names: &Names) -> Result<KeyMaterial, Error> {
    match (
        existing_value(generated, TOKEN_KEY_KEY),
        existing_value(generated, TOKEN_CERT_KEY),
    ) {
        (Some(key_pem), Some(cert_pem)) => Ok(KeyMaterial { key_pem, cert_pem }),
        _ => crate::access::jwt::generate(&names.token_issuer())
            .map_err(|e| Error::Build(e.to_string())),
    }
}

/// How soon a Registry blocked by a foreign object looks again (its removal sends no event:
/// the controller watches only objects labelled as Flotilla's).
const NOT_OWNED_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// The objects among `children` that exist and are not this Registry's, as issues.
async fn not_owned(
    ctx: &Context,
    names: &Names,
    owner: Claimant<'_>,
    children: &Children,
) -> Result<Vec<Issue>, Error> {
    let (client, ns) = (&ctx.client, names.namespace.as_str());
    let mut issues = Vec::new();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    issues.extend(foreign(&config_maps, "ConfigMap", &names.config_map(), owner).await?);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    issues.extend(foreign(&services, "Service", &names.workload(), owner).await?);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    issues.extend(foreign(&deployments, "Deployment", &names.workload(), owner).await?);
    if children.pod_disruption_budget.is_some() {
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
        issues.extend(foreign(&pdbs, "PodDisruptionBudget", &names.workload(), owner).await?);
    }
    issues.extend(exposure::not_owned(client, names, owner, children).await?);
    if children.claim.is_some() {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        let claimant = Claimant::FieldManager {
            name: &names.instance,
        };
        issues.extend(foreign(&claims, "PersistentVolumeClaim", &names.claim(), claimant).await?);
    }
    Ok(issues)
}

/// Applies every child (server-side, field manager `flotilla`); deletes the PDB of a fleet
/// scaled to one, the Ingress and HTTPRoute of one without `spec.ingress` / `spec.httpRoute`;
/// empties `<name>-access` (`access_left`: it holds rules or users) once `spec.access` is gone.
async fn apply_children(
    ctx: &Context,
    obj: &Registry,
    ns: &str,
    names: &Names,
    children: &Children,
    access_left: bool,
) -> Result<(), Error> {
    let client = &ctx.client;
    apply(
        &Api::<Secret>::namespaced(client.clone(), ns),
        &children.generated_secret,
    )
    .await?;
    apply(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        &children.config_map,
    )
    .await?;
    // Removing spec.access empties the Secret (no pod mounts it any more): the operator
    // holds no `delete` on Secrets, and the Registry's deletion takes it along.
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    match &children.access_secret {
        Some(s) => apply(&secrets, s).await?,
        None if access_left => apply(&secrets, &children.access_secret_emptied).await?,
        None => {}
    }
    if let Some(claim) = &children.claim {
        apply(
            &Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
            claim,
        )
        .await?;
    }
    apply(
        &Api::<Service>::namespaced(client.clone(), ns),
        &children.service,
    )
    .await?;
    apply(
        &Api::<Deployment>::namespaced(client.clone(), ns),
        &children.deployment,
    )
    .await?;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    apply_or_delete(&pdbs, children.pod_disruption_budget.as_ref(), names, obj).await?;
    exposure::apply(client, names, obj, children).await
}

/// Retries failed reconciliations after a pause, counting them.
pub fn error_policy(obj: Arc<Registry>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(registry = %obj.name_any(), error = %err, "reconcile failed");
    ctx.metrics.reconcile_failed(KIND, err.metric_reason());
    Action::requeue(RETRY_AFTER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn s3_secret_problems_get_their_own_reason() {
        assert_eq!(
            secret_reason("spec.storage.s3.credentialsSecretRef", "SecretNotFound"),
            "S3CredentialsMissing"
        );
        assert_eq!(
            secret_reason("spec.tls.secretName", "SecretNotFound"),
            "SecretNotFound"
        );
    }

    #[test]
    fn proxy_credentials_come_from_the_upstream_entry() {
        let spec: RegistrySpec = serde_json::from_value(serde_json::json!({
            "storage": {"emptyDir": {}},
            "proxy": {"remoteURL": "https://upstream.example.com:5000", "credentialsSecretRef": {"name": "up"}}
        }))
        .expect("valid spec");
        let json = br#"{"auths":{"upstream.example.com:5000":{"username":"u","password":"p"},"other.example.com":{"username":"x","password":"y"}}}"#;
        let secret = Secret {
            data: Some([(".dockerconfigjson".to_string(), ByteString(json.to_vec()))].into()),
            ..Default::default()
        };
        assert_eq!(
            proxy_credentials(&spec, Some(&secret)),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(proxy_credentials(&spec, None), None);
    }
}
