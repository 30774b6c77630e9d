//! The garbage-collection window of a Registry, driven from its reconcile: read the run's
//! Job, let the pure state machine (`crate::fleet::gc`) decide, create or delete the Job,
//! then put the window into the status (`status.garbageCollection`, condition
//! `Maintenance`), an Event and the metrics. The reconcile that calls this has already applied
//! the configuration of the phase it started in (read-only in `EnteringReadOnly` and
//! `Collecting`), so "the fleet serves it" is asked of exactly that configuration.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};

use super::{Context, Error, gc_measure, status};
use crate::api::GC_REQUESTED_ANNOTATION;
use crate::api::gc::{GcPhase, GcResult};
use crate::api::registry::{Registry, RegistryStatus};
use crate::conditions::{Desired, upsert};
use crate::fleet::Children;
use crate::fleet::gc::{self, Input, JobAction, JobState};
use crate::fleet::gc_job;

/// What the reconcile saw and did before the window is looked at.
pub struct Seen<'a> {
    /// The Registry's Deployment, read after applying.
    pub deployment: Option<&'a Deployment>,
    /// The objects applied in this reconcile (`None`: nothing was applied).
    pub applied: Option<&'a Children>,
}

/// The state of a run's Job; pods that still run or terminate keep it `Running`.
pub fn job_state(job: &Job) -> JobState {
    let status = job.status.clone().unwrap_or_default();
    let pods = status.active.unwrap_or(0) + status.terminating.unwrap_or(0);
    if job.metadata.deletion_timestamp.is_some() || pods > 0 {
        return JobState::Running;
    }
    let conditions = status.conditions.unwrap_or_default();
    let holds = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if holds("Complete").is_some() {
        return JobState::Succeeded;
    }
    match holds("Failed") {
        Some(c) => JobState::Failed {
            reason: c.reason.clone().unwrap_or_else(|| "Failed".into()),
            message: c.message.clone().unwrap_or_default(),
        },
        None => JobState::Running,
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Advances the window; updates `new` (status and `Maintenance`) and returns when to look
/// again, if sooner than the usual resync.
pub async fn window(
    ctx: &Context,
    obj: &Registry,
    seen: &Seen<'_>,
    blocked: bool,
    new: &mut RegistryStatus,
) -> Result<Option<Duration>, Error> {
    let (name, ns) = (obj.name_any(), obj.namespace().unwrap_or_default());
    let spec = obj.spec.garbage_collection.as_ref();
    let request = obj.annotations().get(GC_REQUESTED_ANNOTATION);
    let old = new.garbage_collection.clone().unwrap_or_default();
    if spec.is_none() && request.is_none() && new.garbage_collection.is_none() {
        // Series at zero for every Registry, so the alerts on them evaluate from the start.
        ctx.metrics.record_gc(&format!("{ns}/{name}"), 0, None);
        return Ok(None);
    }
    let refusals = gc::check(&obj.spec);
    let fleet_current = match (seen.deployment, seen.applied) {
        (Some(d), Some(c)) => gc::fleet_serves(d, &c.checksum),
        _ => false,
    };
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job_name = old.current.as_ref().and_then(|r| r.job_name.clone());
    let job = match &job_name {
        Some(n) => jobs.get_opt(n).await?.map(|j| job_state(&j)),
        None => None,
    };
    let now = Timestamp::now();
    let mut step = gc::step(&Input {
        instance: &name,
        spec,
        status: &old,
        refusals: &refusals,
        blocked,
        request: request.map(String::as_str),
        fleet_current,
        job: job.as_ref(),
        now,
    });
    measure(ctx, obj, old.phase, &mut step).await;
    let run = step.status.current.as_ref();
    match (step.job, run.and_then(|r| r.job_name.as_deref())) {
        (JobAction::Create, Some(job_name)) => {
            // Built from the pods as applied in this (read-only) reconcile; when nothing was
            // applied (the Registry has problems) the next reconcile tries again.
            if let (Some(children), Some(run)) = (seen.applied, run) {
                let timeout = spec.map_or(3600, |s| s.timeout_seconds);
                let job = gc_job::build_job(obj, &children.deployment.spec.template, run, timeout)
                    .map_err(|e| Error::Build(e.to_string()))?;
                match jobs.create(&PostParams::default(), &job).await {
                    Ok(_) => tracing::info!(job = job_name, "garbage-collect Job created"),
                    Err(e) if is_status(&e, 409) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        (JobAction::Delete, Some(job_name)) => {
            match jobs.delete(job_name, &DeleteParams::foreground()).await {
                Ok(_) => tracing::warn!(
                    job = job_name,
                    "garbage-collect Job past its deadline deleted"
                ),
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        _ => {}
    }
    let window_seconds = run
        .map(|r| r.start_time.0)
        .map_or(0, |t| now.duration_since(t).as_secs().max(0));
    ctx.metrics.record_gc(
        &format!("{ns}/{name}"),
        window_seconds,
        step.finished.as_ref().map(|r| r.result.name()),
    );
    if let Some((status, reason, message)) = gc::condition(spec, &step.status, &refusals) {
        let desired = Desired {
            type_: gc::MAINTENANCE,
            status,
            reason: &reason,
            message: &message,
        };
        upsert(&mut new.conditions, &desired, obj.metadata.generation, now);
    }
    new.garbage_collection = Some(step.status.clone());
    if let Some(note) = step.note {
        status::event(
            ctx,
            obj,
            note.warning,
            note.reason,
            "GarbageCollection",
            note.message,
        )
        .await;
    }
    Ok(step.wake)
}

/// Lists the storage when the Job is about to be created for the first time (every pod serves
/// read-only), and again with the Job's log when it has just succeeded (the pods still serve
/// read-only: they roll back in the next reconcile).
async fn measure(ctx: &Context, obj: &Registry, was: GcPhase, step: &mut gc::Step) {
    let phase = step.status.phase;
    let Some(run) = step.status.current.as_mut() else {
        return;
    };
    let entering = was == GcPhase::EnteringReadOnly && step.job == JobAction::Create;
    if entering && run.measured.is_none() {
        run.measured = Some(gc_measure::before(ctx, obj).await);
    }
    // After a failed or stopped Job too: it may have deleted part of what it found.
    let ended = was == GcPhase::Collecting && phase == GcPhase::LeavingReadOnly;
    if let (true, Some(job)) = (ended, run.job_name.clone()) {
        let so_far = run.measured.take().unwrap_or_default();
        let log = run.result == Some(GcResult::Succeeded);
        run.measured = Some(gc_measure::after(ctx, obj, &job, run.dry_run, log, so_far).await);
    }
    if (entering || ended)
        && let Some(note) = run.measured.as_ref().and_then(|m| m.note.as_deref())
    {
        tracing::warn!(note, "garbage-collection figures incomplete");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(v: serde_json::Value) -> Job {
        serde_json::from_value(v).expect("job")
    }

    #[test]
    fn a_job_is_finished_only_when_no_pod_of_it_runs() {
        let complete = serde_json::json!({"type": "Complete", "status": "True"});
        assert_eq!(
            job_state(&job(
                serde_json::json!({"status": {"conditions": [complete]}})
            )),
            JobState::Succeeded
        );
        assert_eq!(
            job_state(&job(serde_json::json!({"status": {"terminating": 1,
                "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}}))),
            JobState::Running
        );
        assert_eq!(
            job_state(&job(serde_json::json!({"status": {
                "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                    "message": "too long"}]}}))),
            JobState::Failed {
                reason: "DeadlineExceeded".into(),
                message: "too long".into()
            }
        );
        assert_eq!(
            job_state(&job(serde_json::json!({"status": {"active": 1}}))),
            JobState::Running
        );
    }
}
