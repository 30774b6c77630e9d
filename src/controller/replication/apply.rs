//! The apply step of the ReplicationPolicy reconciler: one status apply, the Events, the
//! metrics.

use std::time::Instant;

use kube::Api;

use super::super::{Context, Error, status};
use crate::api::replication_policy::{ReplicationPolicy, ReplicationPolicyStatus};
use crate::engine::scope::Named;
use crate::metrics::{DestinationLabels, PolicyLabels, SyncLabels};
use crate::replication::after::After;
use crate::replication::trigger::Trigger;

/// Applies `after`: the status when it differs from `old`, then its Events.
pub async fn apply(
    ctx: &Context,
    api: &Api<ReplicationPolicy>,
    obj: &ReplicationPolicy,
    old: &ReplicationPolicyStatus,
    after: &After,
) -> Result<(), Error> {
    publish_status(api, obj, old, &after.status).await?;
    for n in &after.notes {
        status::event(ctx, obj, n.warning, n.reason, n.action, n.message.clone()).await;
    }
    Ok(())
}

/// Applies `new` when it differs from `old`.
pub async fn publish_status(
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

/// Counts a finished run (`pending`: the push work it covered).
pub fn record_metrics(
    ctx: &Context,
    key: &str,
    trigger: &Trigger,
    st: &ReplicationPolicyStatus,
    report: Option<&crate::engine::Report>,
    elapsed: f64,
    pending: &[(Named, Instant)],
) {
    let m = &ctx.metrics;
    let policy = PolicyLabels {
        policy: key.to_string(),
    };
    let result = st
        .last_sync
        .as_ref()
        .map(|r| r.result.name().to_string())
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
