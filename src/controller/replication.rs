//! The ReplicationPolicy controller: validate → decide whether a sync is due (spec change,
//! `flotilla.dev/sync-requested`, schedule, push events) → run the copy engine → status,
//! Events and metrics. The controller runs at most one reconcile per policy at a time, so one
//! sync per policy; a semaphore bounds the syncs of all policies together. Events that arrive
//! during a run wait in `Context::pending` and trigger the next reconcile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
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
use crate::api::{SecretKeySelector, SecretReference};
use crate::conditions::{self, Desired, READY};
use crate::engine::report::{DestinationReport, Failure};
use crate::engine::sync::SyncError;
use crate::metrics::{DestinationLabels, PolicyLabels, SyncLabels};
use crate::registry::names::{Names, OPERATOR_PASSWORD_KEY, OPERATOR_USERNAME_KEY};
use crate::replication::report_status::{self, Outcome};
use crate::replication::routing::Work;
use crate::replication::tenancy;
use crate::replication::trigger::{self, Trigger};
use crate::replication::validate::{self, Issue};
use crate::sync_config::{Resolved, SecretData, to_sync_config};

const KIND: &str = "ReplicationPolicy";

/// The controller, watching policies, the Secrets and the Registries they refer to.
pub fn controller(
    client: &Client,
    scope: &Scope,
    secrets: Api<super::SecretMeta>,
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

/// Registries a policy names by `registryRef`, by `namespace/name`, with the data of their
/// generated Secret when they have htpasswd auth (the operator's own account) and the
/// certificate to trust when they serve TLS.
#[derive(Default)]
struct Referenced {
    registries: BTreeMap<String, Registry>,
    accounts: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    trust: BTreeMap<String, Vec<u8>>,
}

/// The PEM to trust for a Registry's TLS Secret: its `ca.crt` (as cert-manager writes it) or,
/// without one, the serving certificate `tls.crt` itself (self-signed).
fn trust_anchor(secret: Secret) -> Option<Vec<u8>> {
    let mut data = secret.data?;
    ["ca.crt", "tls.crt"]
        .into_iter()
        .find_map(|k| data.remove(k).map(|v| v.0).filter(|v| !v.is_empty()))
}

async fn registry_problems(
    client: &Client,
    spec: &ReplicationPolicySpec,
    namespace: &str,
) -> Result<(Vec<Issue>, Referenced), Error> {
    let mut problems = Vec::new();
    let mut found = Referenced::default();
    for req in references::policy_registries(spec, namespace) {
        let api: Api<Registry> = Api::namespaced(client.clone(), &req.namespace);
        let key = format!("{}/{}", req.namespace, req.name);
        match api.get_opt(&req.name).await? {
            Some(r) => {
                // Refused: its Secrets (Flotilla's account there) are not even read.
                let reference = tenancy::Reference {
                    field: &req.field,
                    policy_namespace: namespace,
                    registry_namespace: &req.namespace,
                    registry_name: &req.name,
                };
                if let Some(issue) = tenancy::check(&reference, r.spec.replication.as_ref()) {
                    problems.push(issue);
                    continue;
                }
                let secrets: Api<Secret> = Api::namespaced(client.clone(), &req.namespace);
                if let Some(tls) = &r.spec.tls
                    && let Some(pem) = secrets.get_opt(&tls.secret_name).await?.and_then(trust_anchor)
                {
                    found.trust.insert(key.clone(), pem);
                }
                if r.spec.auth.is_some() {
                    let generated = Names::new(&req.name, &req.namespace).generated_secret();
                    if let Some(data) = secrets.get_opt(&generated).await?.and_then(|s| s.data) {
                        let data = data.into_iter().map(|(k, v)| (k, v.0)).collect();
                        found.accounts.insert(key.clone(), data);
                    }
                }
                found.registries.insert(key, r);
            }
            None => problems.push(Issue {
                reason: "RegistryNotFound",
                field: req.field,
                message: format!(
                    "Registry {:?} not found in namespace {:?}; create it, fix the name, or use url for a registry outside this cluster",
                    req.name, req.namespace
                ),
            }),
        }
    }
    Ok((problems, found))
}

/// Key of the certificate to trust in the Secret data handed to [`to_sync_config`].
const TRUST_KEY: &str = "ca.crt";

/// Name under which the operator's account at Registry `key` (`namespace/name`) is handed to
/// [`to_sync_config`]. It contains `/`, so no real Secret can have it.
fn account_secret_name(key: &str) -> String {
    format!("registry/{key}")
}

/// Replaces `registryRef` endpoints with the URL of the Registry they name (its in-cluster URL
/// or the operator's `--registry-url` for it), the operator's own account there when it has
/// htpasswd auth, and the certificate to trust when it serves TLS. Returns the spec and that
/// access data, as Secret data under names no real Secret can have.
fn resolve_registry_refs(
    spec: &ReplicationPolicySpec,
    namespace: &str,
    referenced: &Referenced,
    url_overrides: &BTreeMap<String, String>,
) -> Result<(ReplicationPolicySpec, SecretData), Issue> {
    let mut out = spec.clone();
    let mut accounts = SecretData::new();
    let endpoints = std::iter::once(("spec.source".to_string(), &mut out.source)).chain(
        out.destinations
            .iter_mut()
            .map(|d| (format!("spec.destinations[{}]", d.name), &mut d.endpoint)),
    );
    for (field, e) in endpoints {
        let Some(r) = e.registry_ref.take() else {
            continue;
        };
        let registry_namespace = r.namespace.as_deref().unwrap_or(namespace);
        let key = format!("{registry_namespace}/{}", r.name);
        let registry = referenced.registries.get(&key);
        if let Some(reg) = registry {
            let field = format!("{field}.registryRef");
            let reference = tenancy::Reference {
                field: &field,
                policy_namespace: namespace,
                registry_namespace,
                registry_name: &r.name,
            };
            if let Some(issue) = tenancy::check(&reference, reg.spec.replication.as_ref()) {
                return Err(issue);
            }
        }
        let in_cluster = registry
            .and_then(|reg| reg.status.as_ref())
            .and_then(|s| s.url.clone());
        let not_ready = |message: String| Issue {
            reason: "RegistryNotReady",
            field: format!("{field}.registryRef"),
            message,
        };
        let Some(url) = url_overrides.get(&key).cloned().or(in_cluster) else {
            return Err(not_ready(format!(
                "Registry {key} has no URL in its status yet; wait for it to be reconciled"
            )));
        };
        let name = account_secret_name(&key);
        let mut access = BTreeMap::new();
        if registry.is_some_and(|reg| reg.spec.auth.is_some()) {
            let account = referenced.accounts.get(&key).filter(|data| {
                data.contains_key(OPERATOR_USERNAME_KEY) && data.contains_key(OPERATOR_PASSWORD_KEY)
            });
            let Some(account) = account else {
                return Err(not_ready(format!(
                    "Registry {key} has htpasswd auth and Flotilla's account there is not generated yet; wait for the Registry to be reconciled"
                )));
            };
            for k in [OPERATOR_USERNAME_KEY, OPERATOR_PASSWORD_KEY] {
                if let Some(v) = account.get(k) {
                    access.insert(k.to_string(), v.clone());
                }
            }
            e.credentials_secret_ref = Some(SecretReference { name: name.clone() });
        }
        if let Some(pem) = referenced.trust.get(&key) {
            access.insert(TRUST_KEY.to_string(), pem.clone());
            e.ca_secret_ref = Some(SecretKeySelector {
                name: name.clone(),
                key: TRUST_KEY.to_string(),
            });
        }
        if !access.is_empty() {
            accounts.insert(name, access);
        }
        e.insecure = url.starts_with("http://");
        e.url = Some(url);
    }
    Ok((out, accounts))
}

async fn read_secrets(
    client: &Client,
    namespace: &str,
    spec: &ReplicationPolicySpec,
) -> Result<Resolved, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut resolved = Resolved::default();
    for req in references::policy_secrets(spec) {
        if let Some(secret) = api.get_opt(&req.name).await? {
            let data = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            resolved.secrets.insert(req.name.clone(), data);
        }
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for name in references::policy_config_maps(spec) {
        if let Some(cm) = config_maps.get_opt(&name).await? {
            let mut data: std::collections::BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            data.extend(
                cm.binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            resolved.config_maps.insert(name, data);
        }
    }
    Ok(resolved)
}

/// The destination named by an engine error about an unusable endpoint, if it is one.
fn unreachable_destination(e: &SyncError) -> Option<String> {
    let SyncError::Endpoint { role, .. } = e else {
        return None;
    };
    let rest = role.strip_prefix("destination ")?;
    Some(
        rest.split_once(" (")
            .map_or(rest, |(name, _)| name)
            .to_string(),
    )
}

/// `name` and every destination fed through it (its `from` descendants).
fn with_descendants(dests: &[crate::engine::DestinationConfig], name: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::from([name.to_string()]);
    loop {
        let more: Vec<String> = dests
            .iter()
            .filter(|d| d.from.as_ref().is_some_and(|f| out.contains(f)) && !out.contains(&d.name))
            .map(|d| d.name.clone())
            .collect();
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

/// Runs the engine; a destination that cannot be reached is left out (with the destinations
/// it feeds) and reported failed, so that the others are still served. (`flotilla sync`
/// instead stops at once: there the user is at the keyboard.)
async fn sync_reachable(
    mut cfg: crate::engine::SyncConfig,
) -> Result<crate::engine::Report, SyncError> {
    // Unreachable destinations are reported by the engine itself, all of them in one run.
    cfg.leave_out_unreachable = true;
    let mut left_out: Vec<(String, String)> = Vec::new();
    loop {
        match crate::engine::sync::run(&cfg).await {
            Err(e) => {
                let Some(name) = unreachable_destination(&e) else {
                    return Err(e);
                };
                let gone = with_descendants(&cfg.destinations, &name);
                for g in &gone {
                    let why = if *g == name {
                        e.to_string()
                    } else {
                        format!("not fed: {name} is unreachable ({e})")
                    };
                    left_out.push((g.clone(), why));
                }
                cfg.destinations.retain(|d| !gone.contains(&d.name));
                if cfg.destinations.is_empty() {
                    return Err(e);
                }
            }
            Ok(mut report) => {
                for (name, error) in left_out {
                    report.failures.push(Failure {
                        artifact: "*".into(),
                        destination: name.clone(),
                        error,
                    });
                    report.destinations.push(DestinationReport {
                        name,
                        failed: 1,
                        ..Default::default()
                    });
                }
                if !report.failures.is_empty() && report.failed == 0 {
                    report.failed = 1;
                }
                return Ok(report);
            }
        }
    }
}

/// Narrows a policy to the repositories and tags of push events (still within its filters).
fn narrowed(
    mut cfg: crate::engine::SyncConfig,
    work: &BTreeSet<Work>,
) -> crate::engine::SyncConfig {
    let mut repos = BTreeSet::new();
    let mut tags = BTreeSet::new();
    for w in work {
        let (Work::Copy { repository, tag } | Work::Delete { repository, tag }) = w;
        repos.insert(repository.clone());
        tags.insert(tag.clone());
    }
    // Repository and tag names cannot hold glob metacharacters, so each is a literal glob.
    // Compiled once (an invalid glob matches nothing; validation reports it elsewhere).
    let repo_filter = crate::engine::filter::GlobFilter::new(&cfg.repositories_include, &[]);
    let repo_ok = |r: &String| {
        cfg.repositories_include.is_empty() || repo_filter.as_ref().is_ok_and(|f| f.matches(r))
    };
    let repos: Vec<String> = repos.into_iter().filter(repo_ok).collect();
    let tag_filter = crate::engine::filter::GlobFilter::tags(&cfg.tags.include, &[]);
    let tag_ok =
        |t: &String| cfg.tags.include.is_empty() || tag_filter.as_ref().is_ok_and(|f| f.matches(t));
    let tags: Vec<String> = tags.into_iter().filter(tag_ok).collect();
    cfg.repositories_include = if repos.is_empty() {
        vec!["\u{0}no-match".into()]
    } else {
        repos
    };
    cfg.tags.include = if tags.is_empty() {
        vec!["\u{0}no-match".into()]
    } else {
        tags
    };
    cfg
}

async fn reconcile_inner(obj: &ReplicationPolicy, ctx: &Context) -> Result<Action, Error> {
    let name = obj.name_any();
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(format!("ReplicationPolicy {name}"), "namespace"))?;
    let api: Api<ReplicationPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = obj.metadata.generation;
    let old = obj.status.clone().unwrap_or_default();
    let mut st = ReplicationPolicyStatus {
        observed_generation: generation,
        source: Some(endpoint_summary(&obj.spec.source, &ns)),
        ..old.clone()
    };
    if st.destinations_in_sync.is_none() {
        st.destinations_in_sync = Some(format!("0/{}", obj.spec.destinations.len()));
    }

    // Validate.
    let mut problems = validate::validate(&obj.spec);
    problems.extend(
        super::secret_problems(&ctx.client, &ns, &references::policy_secrets(&obj.spec)).await?,
    );
    let (registry_issues, referenced) = registry_problems(&ctx.client, &obj.spec, &ns).await?;
    problems.extend(registry_issues);
    let resolved_spec = match resolve_registry_refs(&obj.spec, &ns, &referenced, &ctx.registry_urls)
    {
        Ok(s) => Some(s),
        Err(p) => {
            if problems.is_empty() {
                problems.push(p);
            }
            None
        }
    };
    if !problems.is_empty() {
        let (_, reason, message) = readiness(&problems, "");
        conditions::upsert(
            &mut st.conditions,
            &Desired {
                type_: READY,
                status: false,
                reason,
                message: &message,
            },
            generation,
            Timestamp::now(),
        );
        publish_status(&api, obj, &old, &st).await?;
        let old_ready = conditions::find(&old.conditions, READY);
        if old_ready.map(|c| (&c.reason, &c.message)) != Some((&reason.to_string(), &message)) {
            status::event(ctx, obj, true, reason, "Validate", message).await;
        }
        return Ok(Action::requeue(RESYNC_PERIOD));
    }
    let Some((resolved_spec, accounts)) = resolved_spec else {
        return Ok(Action::requeue(RETRY_AFTER_ERROR));
    };
    // A destination fleet in its garbage-collection window refuses pushes: wait, keeping
    // pending work and triggers; the Registry's change back to Idle wakes this policy.
    let waiting = crate::replication::maintenance::destinations_in_window(
        &obj.spec,
        &ns,
        &referenced.registries,
    );
    if !waiting.is_empty() {
        tracing::info!(destinations = ?waiting, "destination in a garbage-collection window; waiting");
        let message = format!(
            "waiting: destination {} in its garbage-collection window (read-only)",
            waiting.join(", ")
        );
        conditions::upsert(
            &mut st.conditions,
            &Desired {
                type_: report_status::SYNCING,
                status: false,
                reason: crate::replication::maintenance::WAITING_REASON,
                message: &message,
            },
            generation,
            Timestamp::now(),
        );
        publish_status(&api, obj, &old, &st).await?;
        return Ok(Action::requeue(crate::registry::gc::WINDOW_POLL));
    }
    if conditions::find(&st.conditions, READY)
        .is_some_and(|c| c.status == "False" && !matches!(c.reason.as_str(), "OutOfSync"))
    {
        // It was invalid and is not any more: wait for the sync to say whether it is in sync.
        conditions::upsert(
            &mut st.conditions,
            &Desired {
                type_: READY,
                status: false,
                reason: "OutOfSync",
                message: "the policy is valid; syncing",
            },
            generation,
            Timestamp::now(),
        );
    }

    // Decide.
    let annotations = obj.annotations().clone();
    let (full, next) = trigger::due(&obj.spec, &old, generation, &annotations, Timestamp::now());
    let key = policy_key(&ns, &name);
    let pending: Vec<(Work, Instant)> = if obj.spec.suspend {
        Vec::new()
    } else {
        ctx.take_pending(&key)
    };
    let trigger = match (&full, pending.is_empty()) {
        (Some(t), _) => Some(t.clone()),
        (None, false) => Some(Trigger::Push),
        (None, true) => None,
    };
    let requeue = next
        .and_then(|n| n.duration_since(Timestamp::now()).try_into().ok())
        .map_or(RESYNC_PERIOD, |d: Duration| {
            d.min(RESYNC_PERIOD) + Duration::from_millis(200)
        });
    let Some(trigger) = trigger else {
        publish_status(&api, obj, &old, &st).await?;
        return Ok(Action::requeue(requeue));
    };

    // Run.
    let mut resolved = read_secrets(&ctx.client, &ns, &obj.spec).await?;
    resolved.secrets.extend(accounts);
    let cfg = match to_sync_config(&resolved_spec, &resolved) {
        Ok(cfg) => cfg,
        Err(e) => {
            let message = e.to_string();
            conditions::upsert(
                &mut st.conditions,
                &Desired {
                    type_: READY,
                    status: false,
                    reason: "InvalidSpec",
                    message: &message,
                },
                generation,
                Timestamp::now(),
            );
            publish_status(&api, obj, &old, &st).await?;
            status::event(ctx, obj, true, "InvalidSpec", "Validate", message).await;
            return Ok(Action::requeue(RESYNC_PERIOD));
        }
    };
    let cfg = if trigger == Trigger::Push {
        narrowed(cfg, &pending.iter().map(|(w, _)| w.clone()).collect())
    } else {
        cfg
    };
    let _slot = ctx
        .sync_slots
        .acquire()
        .await
        .map_err(|_| Error::Build("sync slots closed".into()))?;
    let start = Timestamp::now();
    report_status::started(&mut st, &trigger, generation, start);
    publish_status(&api, obj, &old, &st).await?;
    tracing::info!(trigger = trigger.name(), "sync started");
    let began = Instant::now();
    let result = sync_reachable(cfg).await;
    let elapsed = began.elapsed().as_secs_f64();
    let error_text;
    let outcome = match &result {
        Ok(report) => Outcome::Ran(report),
        Err(e) => {
            error_text = e.to_string();
            Outcome::Failed(&error_text)
        }
    };
    report_status::finished(
        &mut st,
        &obj.spec,
        &trigger,
        &outcome,
        generation,
        start,
        Timestamp::now(),
    );
    if trigger == Trigger::Push
        && result.is_ok()
        && let Some(oldest) = pending.iter().map(|(_, arrived)| arrived.elapsed()).max()
    {
        report_status::record_push_lag(&mut st, oldest);
    }
    if full.is_some() {
        st.synced_generation = generation;
        st.last_full_sync_time = Some(start.to_string());
        if let Trigger::Request(v) = &trigger {
            st.handled_sync_request = Some(v.clone());
        }
    }
    record_metrics(
        ctx,
        &key,
        &trigger,
        &st,
        result.as_ref().ok(),
        elapsed,
        &pending,
    );
    publish_status(&api, obj, &old, &st).await?;
    let record = st.last_sync.clone().unwrap_or_default();
    let note = format!(
        "{} sync {}: {} copied, {} skipped, {} failed, {} bytes read from the source in {elapsed:.1}s",
        trigger.name(),
        record.result,
        record.copied,
        record.skipped,
        record.failed,
        record.bytes
    );
    let warning = record.result != "Succeeded";
    status::event(
        ctx,
        obj,
        warning,
        if warning { "SyncFailed" } else { "Synced" },
        "Sync",
        note,
    )
    .await;
    if let Ok(report) = &result
        && let Some(msg) = report_status::held_back_note(report)
    {
        status::event(ctx, obj, true, "ArtifactsHeldBack", "Sync", msg).await;
    }
    if let Ok(report) = &result
        && report.deletions_withheld > 0
    {
        let msg = format!(
            "deletion sync would delete {} tags, more than spec.maxDeletions ({}), so none was deleted; check the source, then raise spec.maxDeletions if they are meant to go",
            report.deletions_withheld, obj.spec.max_deletions
        );
        status::event(ctx, obj, true, "DeletionsWithheld", "Sync", msg).await;
    }
    for msg in report_status::conflict_notes(&st) {
        status::event(ctx, obj, true, "TagConflict", "Sync", msg).await;
    }
    if warning {
        for msg in report_status::failure_notes(&st) {
            status::event(ctx, obj, true, "DestinationFailed", "Sync", msg).await;
        }
    }
    // Whatever arrived meanwhile, or a failed destination, gets another look soon.
    let again = if warning || ctx.has_pending(&key) {
        Duration::from_secs(1).max(RETRY_AFTER_ERROR.min(requeue))
    } else {
        requeue
    };
    Ok(Action::requeue(again))
}

fn record_metrics(
    ctx: &Context,
    key: &str,
    trigger: &Trigger,
    st: &ReplicationPolicyStatus,
    report: Option<&crate::engine::Report>,
    elapsed: f64,
    pending: &[(Work, Instant)],
) {
    let m = &ctx.metrics;
    let policy = PolicyLabels {
        policy: key.to_string(),
    };
    let result = st
        .last_sync
        .as_ref()
        .map(|r| r.result.clone())
        .unwrap_or_default();
    m.sync_runs
        .get_or_create(&SyncLabels {
            policy: key.into(),
            trigger: trigger.name().into(),
            result,
        })
        .inc();
    m.sync_duration.get_or_create(&policy).observe(elapsed);
    // The lag histograms exist (at zero) from the first run on, pushes or not.
    let lag_labels = |destination: &str| crate::metrics::DestinationStateLabels {
        policy: key.to_string(),
        destination: destination.to_string(),
    };
    for d in &st.destinations {
        drop(m.replication_lag.get_or_create(&lag_labels(&d.name)));
    }
    m.record_destinations(key, &st.destinations);
    if let Some(r) = report {
        m.bytes_read
            .get_or_create(&policy)
            .inc_by(r.bytes_read_from_source);
        for h in &r.unverified_details {
            m.unverified
                .get_or_create(&crate::metrics::UnverifiedLabels {
                    policy: key.into(),
                    reason: h.reason.into(),
                })
                .inc();
        }
        for d in &r.destinations {
            for (result, n) in [
                ("copied", d.copied),
                ("skipped", d.skipped),
                ("failed", d.failed),
            ] {
                let labels = DestinationLabels {
                    policy: key.into(),
                    destination: d.name.clone(),
                    result: result.into(),
                };
                m.artifacts.get_or_create(&labels).inc_by(n);
            }
            let labels = DestinationLabels {
                policy: key.into(),
                destination: d.name.clone(),
                result: String::new(),
            };
            m.bytes_written
                .get_or_create(&labels)
                .inc_by(d.bytes_written);
        }
        // Each destination the run reached has the pushes it covered.
        for d in st.destinations.iter().filter(|d| d.last_error.is_none()) {
            for (_, arrived) in pending {
                m.replication_lag
                    .get_or_create(&lag_labels(&d.name))
                    .observe(arrived.elapsed().as_secs_f64());
            }
        }
    }
}

async fn publish_status(
    api: &Api<ReplicationPolicy>,
    obj: &ReplicationPolicy,
    old: &ReplicationPolicyStatus,
    new: &ReplicationPolicyStatus,
) -> Result<(), Error> {
    if new != old {
        status::apply(api, obj, new).await?;
    }
    Ok(())
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
    use crate::api::registry::RegistryStatus;
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

    fn registry(name: &str, spec: serde_json::Value) -> Registry {
        let mut reg = Registry::new(name, serde_json::from_value(spec).expect("registry spec"));
        reg.status = Some(RegistryStatus {
            url: Some(format!("http://{name}.fleet.svc:5000")),
            ..Default::default()
        });
        reg
    }

    fn policy_spec(v: serde_json::Value) -> ReplicationPolicySpec {
        serde_json::from_value(v).expect("valid spec")
    }

    /// What a reconcile found: Registry `fleet/hq` with `spec` (its status has a URL).
    fn referencing_hq(spec: serde_json::Value) -> Referenced {
        let mut referenced = Referenced::default();
        referenced
            .registries
            .insert("fleet/hq".to_string(), registry("hq", spec));
        referenced
    }

    #[test]
    fn registry_refs_resolve_to_the_in_cluster_url_or_its_override() {
        let spec = policy_spec(serde_json::json!({
            "source": {"registryRef": {"name": "hq"}},
            "destinations": [{"name": "east", "url": "https://east.example.com"}],
        }));
        let none = BTreeMap::new();
        assert_eq!(
            resolve_registry_refs(&spec, "fleet", &Referenced::default(), &none)
                .map_err(|p| p.reason),
            Err("RegistryNotReady")
        );
        let referenced = referencing_hq(serde_json::json!({"storage": {"emptyDir": {}}}));
        let (out, accounts) =
            resolve_registry_refs(&spec, "fleet", &referenced, &none).expect("resolved");
        assert_eq!(out.source.url.as_deref(), Some("http://hq.fleet.svc:5000"));
        assert!(out.source.insecure && out.source.registry_ref.is_none());
        assert!(out.source.credentials_secret_ref.is_none() && accounts.is_empty());
        let overrides =
            BTreeMap::from([("fleet/hq".to_string(), "https://127.0.0.1:5443".to_string())]);
        let (out, _) =
            resolve_registry_refs(&spec, "fleet", &referenced, &overrides).expect("resolved");
        assert_eq!(out.source.url.as_deref(), Some("https://127.0.0.1:5443"));
        assert!(!out.source.insecure);
    }

    #[test]
    fn a_registry_with_htpasswd_auth_is_reached_with_the_operator_account() {
        let spec = policy_spec(serde_json::json!({
            "source": {"url": "https://src.example.com"},
            "destinations": [{"name": "local", "registryRef": {"name": "hq", "namespace": "fleet"}}],
        }));
        let auth = serde_json::json!({"storage": {"emptyDir": {}},
            "auth": {"htpasswd": {"secretRef": {"name": "users", "key": "htpasswd"}}}});
        let none = BTreeMap::new();
        let refused = resolve_registry_refs(&spec, "apps", &referencing_hq(auth), &none)
            .expect_err("fleet/hq does not allow namespace apps");
        assert_eq!(refused.reason, tenancy::REFERENCE_NOT_ALLOWED);
        let mut referenced = referencing_hq(serde_json::json!({"storage": {"emptyDir": {}},
            "auth": {"htpasswd": {"secretRef": {"name": "users", "key": "htpasswd"}}},
            "replication": {"allowedNamespaces": ["apps"]}}));
        let e = resolve_registry_refs(&spec, "apps", &referenced, &none).expect_err("no account");
        assert_eq!(e.reason, "RegistryNotReady");
        assert_eq!(e.field, "spec.destinations[local].registryRef");
        referenced.accounts.insert(
            "fleet/hq".to_string(),
            BTreeMap::from([
                ("username".to_string(), b"flotilla-operator".to_vec()),
                ("password".to_string(), b"pw".to_vec()),
                ("http-secret".to_string(), b"not for the engine".to_vec()),
            ]),
        );
        let (out, accounts) =
            resolve_registry_refs(&spec, "apps", &referenced, &none).expect("resolved");
        let name = &out.destinations[0]
            .endpoint
            .credentials_secret_ref
            .as_ref()
            .expect("credentials")
            .name;
        assert_eq!(accounts[name].len(), 2, "only username and password");
        let resolved = Resolved {
            secrets: accounts,
            ..Default::default()
        };
        let cfg = to_sync_config(&out, &resolved).expect("sync config");
        let creds = cfg.destinations[0]
            .endpoint
            .credentials
            .as_ref()
            .expect("credentials");
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("flotilla-operator", "pw")
        );
        assert!(cfg.destinations[0].endpoint.ca_pem.is_none());
    }

    #[test]
    fn a_registry_serving_tls_is_trusted_by_its_own_certificate() {
        let secret = |pairs: &[(&str, &[u8])]| Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(
            trust_anchor(secret(&[("tls.crt", b"LEAF"), ("ca.crt", b"CA")])),
            Some(b"CA".to_vec())
        );
        assert_eq!(
            trust_anchor(secret(&[("tls.crt", b"LEAF"), ("ca.crt", b"")])),
            Some(b"LEAF".to_vec())
        );
        let spec = policy_spec(serde_json::json!({
            "source": {"registryRef": {"name": "hq"}},
            "destinations": [{"name": "east", "url": "https://east.example.com"}],
        }));
        let mut referenced = referencing_hq(
            serde_json::json!({"storage": {"emptyDir": {}}, "tls": {"secretName": "hq-tls"}}),
        );
        referenced
            .trust
            .insert("fleet/hq".to_string(), b"PEM".to_vec());
        let (out, access) =
            resolve_registry_refs(&spec, "fleet", &referenced, &BTreeMap::new()).expect("resolved");
        assert!(out.source.credentials_secret_ref.is_none());
        let cfg = to_sync_config(
            &out,
            &Resolved {
                secrets: access,
                ..Default::default()
            },
        )
        .expect("sync config");
        assert_eq!(cfg.source.ca_pem.as_deref(), Some(&b"PEM"[..]));
    }

    #[test]
    fn unreachable_destinations_are_named_and_take_their_children_along() {
        let dest = |name: &str, from: Option<&str>| crate::engine::DestinationConfig {
            name: name.into(),
            from: from.map(str::to_string),
            ..Default::default()
        };
        let dests = [
            dest("east", None),
            dest("city", Some("east")),
            dest("town", Some("city")),
            dest("west", None),
        ];
        let gone: Vec<String> = with_descendants(&dests, "east").into_iter().collect();
        assert_eq!(gone, ["city", "east", "town"]);
        let err = SyncError::Endpoint {
            role: "destination east (http://127.0.0.1:1)".into(),
            source: crate::engine::client::ClientError::Url {
                url: "x".into(),
                reason: "y".into(),
            },
        };
        assert_eq!(unreachable_destination(&err).as_deref(), Some("east"));
        let src = SyncError::Endpoint {
            role: "source http://127.0.0.1:1".into(),
            source: crate::engine::client::ClientError::Url {
                url: "x".into(),
                reason: "y".into(),
            },
        };
        assert_eq!(unreachable_destination(&src), None);
    }

    #[test]
    fn narrowing_keeps_only_event_repositories_and_tags_within_filters() {
        let cfg = crate::engine::SyncConfig {
            repositories_include: vec!["apps/**".into()],
            tags: crate::engine::TagRules {
                include: vec!["v*".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let work: BTreeSet<Work> = [
            Work::Copy {
                repository: "apps/web".into(),
                tag: "v1".into(),
            },
            Work::Copy {
                repository: "other/x".into(),
                tag: "latest".into(),
            },
        ]
        .into();
        let n = narrowed(cfg, &work);
        assert_eq!(n.repositories_include, vec!["apps/web".to_string()]);
        assert_eq!(n.tags.include, vec!["v1".to_string()]);
    }
}
