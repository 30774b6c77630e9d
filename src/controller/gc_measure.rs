//! The figures of a garbage-collection run: the operator lists the fleet's blob data in its
//! S3 bucket (read-only, while every pod serves read-only) before the Job and after it, and
//! reads the Job pod's log for what it found eligible. A figure that cannot be had leaves a
//! note; it never fails or holds up the run.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};

use super::Context;
use crate::api::gc::GcMeasurement;
use crate::api::registry::Registry;
use crate::fleet::gc_report;
use crate::s3::{self, Bucket, Credentials};

/// Longest one listing of the bucket may take.
const LISTING_DEADLINE: Duration = Duration::from_secs(120);
/// Most pages of 1,000 keys one listing may take.
const LISTING_PAGES: usize = 10_000;
/// Most bytes of the Job's log read (a line per eligible blob: about 100 bytes).
const LOG_BYTES: i64 = 16 << 20;

/// A Kubernetes error in a line: the API's own message, not the whole status.
fn brief(e: &kube::Error) -> String {
    let text = match e {
        kube::Error::Api(s) => format!("{} {}", s.code, s.message),
        other => other.to_string(),
    };
    text.chars().take(240).collect()
}

/// Size by digest of every blob, or why it could not be listed.
pub async fn blobs(ctx: &Context, obj: &Registry) -> Result<BTreeMap<String, u64>, String> {
    let Some(s3) = obj.spec.storage.s3.as_ref() else {
        return Err("only S3 storage is measured".into());
    };
    let Some(creds_ref) = s3.credentials_secret_ref.as_ref() else {
        return Err("S3 with ambient credentials is not measured (the operator does not hold the pods' identity)".into());
    };
    let ns = obj.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = secrets
        .get_opt(&creds_ref.name)
        .await
        .map_err(|e| format!("reading Secret {}: {}", creds_ref.name, brief(&e)))?
        .ok_or_else(|| format!("Secret {} not found", creds_ref.name))?;
    let key = |k: &str| -> Result<String, String> {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .map(|v| v.trim().to_string())
            .ok_or_else(|| format!("Secret {} has no key {k}", creds_ref.name))
    };
    let creds = Credentials {
        access_key: key(&creds_ref.access_key_key)?,
        secret_key: key(&creds_ref.secret_key_key)?,
    };
    let endpoint = s3
        .endpoint
        .clone()
        .map(|e| e.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", s3.region));
    let bucket = Bucket {
        endpoint: url::Url::parse(&endpoint).map_err(|e| format!("endpoint: {e}"))?,
        name: s3.bucket.clone(),
        region: s3.region.clone(),
        path_style: s3.path_style(),
        root: s3.root_directory.clone().unwrap_or_default(),
    };
    let http = s3::http_client().map_err(|e| e.to_string())?;
    s3::list_blobs(&http, &bucket, &creds, LISTING_DEADLINE, LISTING_PAGES)
        .await
        .map_err(|e| format!("listing the bucket: {e}"))
}

/// The log of the Job's pod that ran to completion (the last one, bounded).
pub async fn job_log(ctx: &Context, ns: &str, job: &str) -> Result<String, String> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let listed = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .map_err(|e| format!("listing the pods of Job {job}: {}", brief(&e)))?;
    let done = listed
        .items
        .iter()
        .filter(|p| {
            p.owner_references()
                .iter()
                .any(|o| o.kind == "Job" && o.name == job)
        })
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
        .max_by_key(|p| p.metadata.creation_timestamp.clone())
        .ok_or_else(|| format!("no completed pod of Job {job} is left"))?;
    let params = LogParams {
        limit_bytes: Some(LOG_BYTES),
        ..LogParams::default()
    };
    pods.logs(&done.name_any(), &params)
        .await
        .map_err(|e| format!("reading the log of {}: {}", done.name_any(), brief(&e)))
}

/// Before the Job: the storage as listed now.
pub async fn before(ctx: &Context, obj: &Registry) -> GcMeasurement {
    let mut m = GcMeasurement::default();
    match blobs(ctx, obj).await {
        Ok(sizes) => m.before = Some(gc_report::usage(&sizes)),
        Err(why) => gc_report::add_note(&mut m, &why),
    }
    m
}

/// After the Job: the storage listed again, and (`read_log`) what its log names eligible. A dry
/// run's `wouldFree` is what those blobs occupy in the listing (nothing was deleted, so the
/// listing now is the one the Job saw).
pub async fn after(
    ctx: &Context,
    obj: &Registry,
    job: &str,
    dry_run: bool,
    read_log: bool,
    mut m: GcMeasurement,
) -> GcMeasurement {
    let ns = obj.namespace().unwrap_or_default();
    let sizes = match blobs(ctx, obj).await {
        Ok(sizes) => {
            m.after = Some(gc_report::usage(&sizes));
            Some(sizes)
        }
        Err(why) => {
            if m.before.is_some() {
                gc_report::add_note(&mut m, &why);
            }
            None
        }
    };
    if !read_log {
        return m;
    }
    match job_log(ctx, &ns, job).await {
        Ok(log) => {
            let parsed = gc_report::parse_log(&log);
            m.manifests_eligible = parsed.manifests;
            if !parsed.complete() {
                gc_report::add_note(
                    &mut m,
                    "the Job's log was cut or has no summary: eligible figures are lower bounds",
                );
            }
            if dry_run && let Some(sizes) = &sizes {
                m.would_free = Some(gc_report::would_free(&parsed, sizes));
            }
        }
        Err(why) => gc_report::add_note(&mut m, &why),
    }
    m
}
