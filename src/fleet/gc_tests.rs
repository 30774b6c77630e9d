use super::*;

fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn gc_spec(v: serde_json::Value) -> GarbageCollectionSpec {
    serde_json::from_value(v).expect("gc spec")
}

struct World {
    spec: Option<GarbageCollectionSpec>,
    status: GarbageCollectionStatus,
    request: Option<String>,
    fleet_current: bool,
    job: Option<JobState>,
    refusals: Vec<Issue>,
}

impl World {
    fn new(spec: serde_json::Value) -> Self {
        World {
            spec: Some(gc_spec(spec)),
            status: GarbageCollectionStatus::default(),
            request: None,
            fleet_current: true,
            job: None,
            refusals: Vec::new(),
        }
    }

    /// One reconcile at `now`; the status is kept for the next.
    fn at(&mut self, now: &str) -> Step {
        let input = Input {
            instance: "hq",
            spec: self.spec.as_ref(),
            status: &self.status,
            refusals: &self.refusals,
            blocked: false,
            request: self.request.as_deref(),
            fleet_current: self.fleet_current,
            job: self.job.as_ref(),
            now: t(now),
        };
        let s = step(&input);
        self.status = s.status.clone();
        s
    }
}

#[test]
fn a_request_runs_one_window_through_every_phase() {
    let mut w = World::new(serde_json::json!({"uploadGraceSeconds": 30}));
    assert_eq!(w.at("2026-01-01T00:00:00Z").status.phase, GcPhase::Idle);
    w.request = Some("r1".into());
    let s = w.at("2026-01-01T00:00:01Z");
    assert_eq!(s.status.phase, GcPhase::EnteringReadOnly);
    assert!(renders_read_only(Some(&s.status)));
    assert_eq!(
        s.note.as_ref().map(|n| n.reason),
        Some("GarbageCollectionStarted")
    );
    // The next reconcile applies the read-only config: the rollout has not finished.
    w.fleet_current = false;
    let s = w.at("2026-01-01T00:00:02Z");
    assert_eq!(
        (s.status.phase, s.job),
        (GcPhase::EnteringReadOnly, JobAction::None)
    );
    // Every pod read-only: the grace period starts.
    w.fleet_current = true;
    let s = w.at("2026-01-01T00:00:10Z");
    assert_eq!(s.status.phase, GcPhase::EnteringReadOnly);
    assert_eq!(s.wake, Some(Duration::from_secs(30)));
    let s = w.at("2026-01-01T00:00:40Z");
    assert_eq!(
        (s.status.phase, s.job),
        (GcPhase::Collecting, JobAction::Create)
    );
    let run = s.status.current.clone().expect("run");
    assert_eq!(run.job_name.as_deref(), Some("hq-gc-1767225601"));
    w.job = Some(JobState::Running);
    assert_eq!(w.at("2026-01-01T00:01:00Z").job, JobAction::None);
    w.job = Some(JobState::Succeeded);
    let s = w.at("2026-01-01T00:02:00Z");
    assert_eq!(s.status.phase, GcPhase::LeavingReadOnly);
    assert!(
        !renders_read_only(Some(&s.status)),
        "read-write is rendered again"
    );
    assert!(in_window(Some(&s.status)), "policies still wait");
    // Rolling back to read-write.
    w.fleet_current = false;
    assert_eq!(
        w.at("2026-01-01T00:02:01Z").status.phase,
        GcPhase::LeavingReadOnly
    );
    w.fleet_current = true;
    let s = w.at("2026-01-01T00:02:30Z");
    assert_eq!(s.status.phase, GcPhase::Idle);
    let last = s.finished.expect("finished");
    assert_eq!(last.result, GcResult::Succeeded);
    assert_eq!(last.duration_seconds, 149);
    assert_eq!(last.job_name.as_deref(), Some("hq-gc-1767225601"));
    assert_eq!(s.note.as_ref().map(|n| n.warning), Some(false));
    // The same request value does not run again.
    assert_eq!(w.at("2026-01-01T00:03:00Z").status.phase, GcPhase::Idle);
}

fn into_collecting(w: &mut World) {
    w.request = Some("r".into());
    w.at("2026-01-01T00:00:00Z");
    let s = w.at("2026-01-01T00:00:01Z");
    assert_eq!(s.status.phase, GcPhase::Collecting);
}

#[test]
fn a_failed_job_still_leaves_read_only_and_is_reported() {
    let mut w = World::new(serde_json::json!({"uploadGraceSeconds": 0}));
    into_collecting(&mut w);
    w.job = Some(JobState::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: "Job has reached the specified backoff limit".into(),
    });
    let s = w.at("2026-01-01T00:01:00Z");
    assert_eq!(s.status.phase, GcPhase::LeavingReadOnly);
    let s = w.at("2026-01-01T00:01:05Z");
    let last = s.finished.expect("finished");
    assert_eq!(last.result, GcResult::Failed);
    assert!(
        last.message.contains("BackoffLimitExceeded"),
        "{}",
        last.message
    );
    let note = s.note.expect("note");
    assert!(note.warning);
    assert_eq!(note.reason, "GarbageCollectionFailed");
}

#[test]
fn a_job_past_its_deadline_is_deleted_and_the_window_closes_only_when_it_is_gone() {
    let mut w = World::new(serde_json::json!({"uploadGraceSeconds": 0, "timeoutSeconds": 600}));
    into_collecting(&mut w);
    w.job = Some(JobState::Running);
    assert_eq!(w.at("2026-01-01T00:10:00Z").job, JobAction::None);
    // 600 s deadline + 60 s margin: the Job controller did not stop it; the operator does.
    let s = w.at("2026-01-01T00:11:02Z");
    assert_eq!(
        (s.status.phase, s.job),
        (GcPhase::Collecting, JobAction::Delete)
    );
    assert!(
        renders_read_only(Some(&s.status)),
        "read-only while a pod may run"
    );
    // Its pods are still terminating.
    assert_eq!(w.at("2026-01-01T00:11:10Z").job, JobAction::Delete);
    w.job = None;
    let s = w.at("2026-01-01T00:11:20Z");
    assert_eq!(
        (s.status.phase, s.job),
        (GcPhase::LeavingReadOnly, JobAction::None)
    );
    let s = w.at("2026-01-01T00:11:30Z");
    assert_eq!(s.finished.expect("finished").result, GcResult::TimedOut);
}

#[test]
fn the_jobs_own_deadline_counts_as_a_timeout() {
    let mut w = World::new(serde_json::json!({"uploadGraceSeconds": 0}));
    into_collecting(&mut w);
    w.job = Some(JobState::Failed {
        reason: "DeadlineExceeded".into(),
        message: "Job was active longer than specified deadline".into(),
    });
    w.at("2026-01-01T00:10:00Z");
    let s = w.at("2026-01-01T00:10:01Z");
    assert_eq!(s.finished.expect("finished").result, GcResult::TimedOut);
}

#[test]
fn a_missing_job_is_created_again_after_a_restart() {
    let mut w = World::new(serde_json::json!({"uploadGraceSeconds": 0}));
    into_collecting(&mut w);
    // The operator restarted between writing the status and creating the Job.
    let s = w.at("2026-01-01T00:00:05Z");
    assert_eq!(
        (s.status.phase, s.job),
        (GcPhase::Collecting, JobAction::Create)
    );
}

#[test]
fn a_fleet_that_never_becomes_read_only_fails_the_run_and_leaves() {
    let mut w = World::new(serde_json::json!({"timeoutSeconds": 600}));
    w.request = Some("r".into());
    w.at("2026-01-01T00:00:00Z");
    w.fleet_current = false;
    assert_eq!(
        w.at("2026-01-01T00:09:00Z").status.phase,
        GcPhase::EnteringReadOnly
    );
    let s = w.at("2026-01-01T00:10:00Z");
    assert_eq!(
        (s.status.phase, s.job),
        (GcPhase::LeavingReadOnly, JobAction::None)
    );
    w.fleet_current = true;
    let last = w.at("2026-01-01T00:10:30Z").finished.expect("finished");
    assert_eq!(last.result, GcResult::Failed);
    assert!(last.job_name.is_none());
}

#[test]
fn refusals_record_a_refused_run_and_open_no_window() {
    let mut w = World::new(serde_json::json!({"deleteUntagged": true}));
    let spec: RegistrySpec = serde_json::from_value(serde_json::json!({
        "storage": {"s3": {"bucket": "b"}}, "garbageCollection": {"deleteUntagged": true}
    }))
    .expect("spec");
    w.refusals = check(&spec);
    assert_eq!(w.refusals[0].reason, DELETE_UNTAGGED_UNSAFE);
    assert_eq!(w.refusals[0].field, "spec.garbageCollection.deleteUntagged");
    w.request = Some("r".into());
    let s = w.at("2026-01-01T00:00:00Z");
    assert_eq!(s.status.phase, GcPhase::Idle);
    let last = s.finished.expect("refused");
    assert_eq!(last.result, GcResult::Refused);
    assert!(last.message.contains("#3178"), "{}", last.message);
    assert_eq!(s.note.expect("note").reason, "GarbageCollectionRefused");
    let (status, reason, _) =
        condition(w.spec.as_ref(), &s.status, &w.refusals).expect("condition");
    assert_eq!((status, reason.as_str()), (false, DELETE_UNTAGGED_UNSAFE));
}

#[test]
fn a_request_without_garbage_collection_configured_is_refused() {
    let mut w = World::new(serde_json::json!({}));
    w.spec = None;
    w.request = Some("r".into());
    let s = w.at("2026-01-01T00:00:00Z");
    assert_eq!(s.status.phase, GcPhase::Idle);
    assert_eq!(s.finished.expect("refused").result, GcResult::Refused);
}

#[test]
fn the_schedule_fires_after_it_was_first_seen_and_after_each_run() {
    let mut w = World::new(serde_json::json!({"schedule": "0 3 * * *"}));
    let s = w.at("2026-01-01T02:00:00Z");
    assert_eq!(s.status.phase, GcPhase::Idle, "no run for a past firing");
    assert_eq!(s.wake, Some(Duration::from_secs(3600)));
    let s = w.at("2026-01-01T03:00:00Z");
    assert_eq!(s.status.phase, GcPhase::EnteringReadOnly);
    assert_eq!(s.status.current.expect("run").trigger, "Schedule");
    assert_eq!(
        next_firing(w.spec.as_ref(), &w.status),
        Some(t("2026-01-02T03:00:00Z"))
    );
}

#[test]
fn checks_name_the_field() {
    let spec = |v: serde_json::Value| -> RegistrySpec { serde_json::from_value(v).expect("spec") };
    let bad_cron = check(&spec(
        serde_json::json!({"storage": {"s3": {"bucket": "b"}},
        "garbageCollection": {"schedule": "every day"}}),
    ));
    assert_eq!(bad_cron[0].field, "spec.garbageCollection.schedule");
    assert_eq!(bad_cron[0].reason, INVALID_SCHEDULE);
    let empty_dir = check(&spec(serde_json::json!({"storage": {"emptyDir": {}},
        "garbageCollection": {}})));
    assert_eq!(empty_dir[0].field, "spec.storage.emptyDir");
    let v3 = check(&spec(
        serde_json::json!({"storage": {"s3": {"bucket": "b"}},
        "image": "docker.io/library/registry:3.0.0",
        "garbageCollection": {"deleteUntagged": true}}),
    ));
    assert!(v3.is_empty(), "{v3:?}");
    assert!(check(&spec(serde_json::json!({"storage": {"emptyDir": {}}}))).is_empty());
}

#[test]
fn distribution_versions_are_read_from_the_tag() {
    assert!(!is_distribution_3("docker.io/library/registry:2.8.3"));
    assert!(!is_distribution_3("registry@sha256:0123"));
    assert!(!is_distribution_3("localhost:5000/registry"));
    assert!(is_distribution_3("localhost:5000/registry:3.0.0"));
    assert!(is_distribution_3(
        "ghcr.io/distribution/distribution:v3.1.0@sha256:ab"
    ));
}

#[test]
fn job_names_fit_a_label() {
    let long = "a".repeat(63);
    let n = job_name(&long, t("2026-01-01T00:00:00Z"));
    assert!(n.len() <= 63, "{n}");
    assert!(n.ends_with("-gc-1767225600"));
    assert_eq!(job_name("x-", t("2026-01-01T00:00:00Z")), "x-gc-1767225600");
}

#[test]
fn the_fleet_serves_a_checksum_only_when_no_older_pod_is_left() {
    let d = |checksum: &str, generation: i64, observed: i64, updated: i32, replicas: i32| {
        serde_json::from_value::<Deployment>(serde_json::json!({
            "metadata": {"generation": generation},
            "spec": {"selector": {}, "template": {"metadata": {"annotations":
                {CONFIG_CHECKSUM_ANNOTATION: checksum}}}},
            "status": {"observedGeneration": observed, "updatedReplicas": updated,
                "replicas": replicas}
        }))
        .expect("deployment")
    };
    assert!(fleet_serves(&d("ro", 3, 3, 2, 2), "ro"));
    assert!(
        !fleet_serves(&d("ro", 3, 2, 2, 2), "ro"),
        "not observed yet"
    );
    assert!(
        !fleet_serves(&d("ro", 3, 3, 1, 2), "ro"),
        "an old pod is left"
    );
    assert!(!fleet_serves(&d("rw", 3, 3, 2, 2), "ro"), "other template");
}

#[test]
fn the_maintenance_condition_shows_the_window() {
    let mut w = World::new(serde_json::json!({}));
    let (s, r, _) = condition(w.spec.as_ref(), &w.status, &[]).expect("condition");
    assert_eq!((s, r.as_str()), (false, "Idle"));
    w.request = Some("r".into());
    w.at("2026-01-01T00:00:00Z");
    let (s, r, m) = condition(w.spec.as_ref(), &w.status, &[]).expect("condition");
    assert_eq!((s, r.as_str()), (true, "EnteringReadOnly"), "{m}");
    assert!(condition(None, &GarbageCollectionStatus::default(), &[]).is_none());
}
