//! Prometheus metrics of the controller manager.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of reconcile metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `Registry` or `ReplicationPolicy`.
    pub kind: String,
}

/// Labels of reconcile failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// `Registry` or `ReplicationPolicy`.
    pub kind: String,
    /// Error class.
    pub reason: String,
}

/// Labels of sync metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// `namespace/name` of the policy.
    pub policy: String,
    /// What started the run.
    pub trigger: String,
    /// `Succeeded`, `PartiallyFailed` or `Failed`.
    pub result: String,
}

/// Labels of per-destination metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabels {
    /// `namespace/name` of the policy.
    pub policy: String,
    /// Destination name.
    pub destination: String,
    /// `copied`, `skipped` or `failed` (artifacts); empty for bytes.
    pub result: String,
}

/// Labels of artifacts held back by `spec.verify`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnverifiedLabels {
    /// `namespace/name` of the policy.
    pub policy: String,
    /// `unsigned`, `untrusted`, `digestMismatch` or `missingAttestation`.
    pub reason: String,
}

/// Labels of per-policy metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// `namespace/name` of the policy.
    pub policy: String,
}

/// Labels of per-destination state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationStateLabels {
    /// `namespace/name` of the policy.
    pub policy: String,
    /// Destination name.
    pub destination: String,
}

/// Labels of per-Registry state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabels {
    /// `namespace/name` of the Registry.
    pub registry: String,
}

/// Labels of garbage-collection runs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GcLabels {
    /// `namespace/name` of the Registry.
    pub registry: String,
    /// `Succeeded`, `Failed`, `TimedOut` or `Refused`.
    pub result: String,
}

/// Every metric the operator exports, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    /// Reconciliations run.
    pub reconciliations: Family<KindLabels, Counter>,
    /// Reconciliations that returned an error.
    pub failures: Family<FailureLabels, Counter>,
    /// Duration of reconciliations.
    pub duration: Family<KindLabels, Histogram>,
    /// Sync runs by policy, trigger and result.
    pub sync_runs: Family<SyncLabels, Counter>,
    /// Duration of sync runs.
    pub sync_duration: Family<PolicyLabels, Histogram>,
    /// Artifacts handled per destination and result.
    pub artifacts: Family<DestinationLabels, Counter>,
    /// Bytes written per destination.
    pub bytes_written: Family<DestinationLabels, Counter>,
    /// Bytes read from the source.
    pub bytes_read: Family<PolicyLabels, Counter>,
    /// Artifacts held back because their signatures do not verify, by reason.
    pub unverified: Family<UnverifiedLabels, Counter>,
    /// Seconds from a push event's arrival to the end of the run that replicated it.
    pub replication_lag: Family<DestinationStateLabels, Histogram>,
    /// 1 while this process holds the leader Lease (or runs without leader election).
    pub leader: Gauge,
    /// 1 when the destination held everything in scope at the end of the last full sync.
    pub destination_in_sync: Family<DestinationStateLabels, Gauge>,
    /// 1 while the Registry's fleet is Available (its minimum of pods ready).
    pub registry_available: Family<RegistryLabels, Gauge>,
    /// Ready pods of the Registry's fleet.
    pub registry_ready_replicas: Family<RegistryLabels, Gauge>,
    /// Pods the Registry asks for.
    pub registry_desired_replicas: Family<RegistryLabels, Gauge>,
    /// Garbage-collection runs by Registry and result.
    pub gc_runs: Family<GcLabels, Counter>,
    /// Seconds the Registry's fleet has been in its garbage-collection window (0 outside).
    pub gc_window_seconds: Family<RegistryLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let quick = || Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let seconds = || Histogram::new(exponential_buckets(0.05, 2.0, 16));
        let mut metrics = Self {
            registry: Registry::with_prefix("flotilla"),
            reconciliations: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(quick),
            unverified: Family::default(),
            sync_runs: Family::default(),
            sync_duration: Family::new_with_constructor(seconds),
            artifacts: Family::default(),
            bytes_written: Family::default(),
            bytes_read: Family::default(),
            replication_lag: Family::new_with_constructor(seconds),
            leader: Gauge::default(),
            destination_in_sync: Family::default(),
            registry_available: Family::default(),
            registry_ready_replicas: Family::default(),
            registry_desired_replicas: Family::default(),
            gc_runs: Family::default(),
            gc_window_seconds: Family::default(),
        };
        let mut r = std::mem::take(&mut metrics.registry);
        metrics.register_work(&mut r);
        metrics.register_state(&mut r);
        metrics.registry = r;
        metrics
    }
}

impl Metrics {
    /// Registers the families that count work: reconciliations, syncs, artifacts, bytes, lag.
    fn register_work(&self, r: &mut Registry) {
        r.register(
            "reconciliations",
            "Reconciliations run",
            self.reconciliations.clone(),
        );
        r.register(
            "reconcile_failures",
            "Reconciliations that failed",
            self.failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Duration of reconciliations",
            self.duration.clone(),
        );
        r.register("artifacts_unverified", "Artifacts held back (not copied) because their signatures do not verify (spec.verify), by policy and reason", self.unverified.clone());
        r.register(
            "sync_runs",
            "Sync runs by policy, trigger and result",
            self.sync_runs.clone(),
        );
        r.register(
            "sync_duration_seconds",
            "Duration of sync runs",
            self.sync_duration.clone(),
        );
        r.register(
            "artifacts",
            "Artifacts handled per destination and result",
            self.artifacts.clone(),
        );
        r.register(
            "destination_written_bytes",
            "Bytes written per destination",
            self.bytes_written.clone(),
        );
        r.register(
            "source_read_bytes",
            "Bytes read from the source",
            self.bytes_read.clone(),
        );
        r.register("replication_lag_seconds", "Seconds from a push event's arrival to the end of the run that replicated it to the destination", self.replication_lag.clone());
    }

    /// Registers the families that show state: leadership, sync state, fleets, GC.
    fn register_state(&self, r: &mut Registry) {
        r.register("leader", "1 while this operator process holds the leader Lease (or runs without leader election)", self.leader.clone());
        r.register(
            "destination_in_sync",
            "1 when the destination held everything in scope at the end of the last full sync",
            self.destination_in_sync.clone(),
        );
        r.register(
            "registry_available",
            "1 while the Registry's fleet is Available",
            self.registry_available.clone(),
        );
        r.register(
            "registry_ready_replicas",
            "Ready pods of the Registry's fleet",
            self.registry_ready_replicas.clone(),
        );
        r.register(
            "registry_desired_replicas",
            "Pods the Registry asks for",
            self.registry_desired_replicas.clone(),
        );
        r.register(
            "gc_runs",
            "Garbage-collection runs by Registry and result",
            self.gc_runs.clone(),
        );
        r.register("gc_window_seconds", "Seconds the Registry's fleet has been in its garbage-collection window (read-only or switching), 0 outside", self.gc_window_seconds.clone());
    }
}

impl Metrics {
    /// The registry, for modules that add their own metrics at start-up.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Runs one reconciliation of `kind`, counting it and timing it.
    pub async fn reconcile<T>(&self, kind: &str, work: impl std::future::Future<Output = T>) -> T {
        let labels = KindLabels { kind: kind.into() };
        self.reconciliations.get_or_create(&labels).inc();
        let started = std::time::Instant::now();
        let out = work.await;
        self.duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        out
    }

    /// Creates the failure counters of every kind and reason at zero, so that they are
    /// exported (and `rate()` reads 0) before the first failure.
    pub fn initialize_failures(&self, kinds: &[&str], reasons: &[&str]) {
        for kind in kinds {
            for reason in reasons {
                self.failures
                    .get_or_create(&FailureLabels {
                        kind: (*kind).into(),
                        reason: (*reason).into(),
                    })
                    .inc_by(0);
            }
        }
    }

    /// Counts a failed reconciliation of `kind`.
    pub fn reconcile_failed(&self, kind: &str, reason: &str) {
        let labels = FailureLabels {
            kind: kind.into(),
            reason: reason.into(),
        };
        self.failures.get_or_create(&labels).inc();
    }

    /// Records a Registry's state from its status.
    pub fn record_registry(&self, key: &str, status: &crate::api::registry::RegistryStatus) {
        let labels = RegistryLabels {
            registry: key.to_string(),
        };
        let available = crate::conditions::find(&status.conditions, "Available")
            .is_some_and(|c| c.status == "True");
        self.registry_available
            .get_or_create(&labels)
            .set(i64::from(available));
        self.registry_ready_replicas
            .get_or_create(&labels)
            .set(i64::from(status.ready_replicas));
        self.registry_desired_replicas
            .get_or_create(&labels)
            .set(i64::from(status.replicas));
    }

    /// Records a Registry's garbage-collection window: how long it has been open (0: closed),
    /// and a finished run's result.
    pub fn record_gc(&self, key: &str, window_seconds: i64, finished: Option<&str>) {
        let labels = RegistryLabels {
            registry: key.to_string(),
        };
        self.gc_window_seconds
            .get_or_create(&labels)
            .set(window_seconds);
        let results = ["Succeeded", "Failed", "TimedOut", "Refused"];
        for result in results {
            let counter = self.gc_runs.get_or_create(&GcLabels {
                registry: key.to_string(),
                result: result.to_string(),
            });
            counter.inc_by(u64::from(finished == Some(result)));
        }
    }

    /// Records whether each destination of a policy is in sync.
    pub fn record_destinations(
        &self,
        policy: &str,
        destinations: &[crate::api::replication_policy::DestinationStatus],
    ) {
        for d in destinations {
            let labels = DestinationStateLabels {
                policy: policy.to_string(),
                destination: d.name.clone(),
            };
            self.destination_in_sync
                .get_or_create(&labels)
                .set(i64::from(d.in_sync));
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition() {
        let m = Metrics::default();
        m.reconciliations
            .get_or_create(&KindLabels {
                kind: "Registry".into(),
            })
            .inc();
        let text = m.encode().expect("encodes");
        assert!(
            text.contains("flotilla_reconciliations_total{kind=\"Registry\"} 1"),
            "{text}"
        );
        assert!(text.contains("# EOF"));
    }
}
