//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator replicas
//! only one reconciles and writes status. The decision is a pure function; the loop around it
//! does optimistic-concurrency updates (a conflict means another replica moved first).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

/// How long a lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews.
pub const RENEW_PERIOD: Duration = Duration::from_secs(5);
/// How often a standby replica retries.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Errors of leader election.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// The Lease could not be read or written.
    #[error("Lease {name}: {source}")]
    Kube {
        /// Lease name.
        name: String,
        /// Cause.
        source: kube::Error,
    },
}

/// What to do with the Lease as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holder's term expired: take it (new term).
    Take,
    /// We hold it: renew.
    Renew,
    /// Someone else holds a live lease.
    Wait,
}

/// Decides from the Lease's spec (`None`: no Lease yet).
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Take;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Take;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    match renewed {
        Some(t) if now < t + SignedDuration::from_secs(duration) => Decision::Wait,
        _ => Decision::Take,
    }
}

/// One replica's candidacy for the Lease `name`.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
}

impl Elector {
    /// A candidate `identity` for Lease `name` in the namespace of `api`.
    pub fn new(api: Api<Lease>, name: &str, identity: &str) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
        }
    }

    fn err(&self, source: kube::Error) -> Error {
        Error::Kube {
            name: self.name.clone(),
            source,
        }
    }

    /// One round: reads the Lease and takes or renews it when allowed. `Ok(true)` while we
    /// hold it.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, Error> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.err(e))?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        if decision == Decision::Wait {
            return Ok(false);
        }
        let old = current
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: if decision == Decision::Take {
                Some(MicroTime(now))
            } else {
                old.acquire_time.clone()
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(
                old.lease_transitions.unwrap_or(0)
                    + i32::from(decision == Decision::Take && current.is_some()),
            ),
            ..old
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => Ok(true),
            // Another replica wrote first (409 conflict or 409 already exists): not ours.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(RETRY_PERIOD).await;
        }
    }

    /// Renews until a renewal fails for longer than the lease lasts; returns then (leadership
    /// lost: the caller must stop reconciling).
    pub async fn hold(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_PERIOD).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the leader Lease");
                    if last_ok.elapsed() >= LEASE_DURATION {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the Lease up so a standby takes over at once (on shutdown).
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            if let Err(e) = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                tracing::warn!(error = %e, "cannot release the leader Lease");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn held_by(holder: &str, renewed: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(t(renewed))),
            ..Default::default()
        }
    }

    #[test]
    fn no_lease_or_no_holder_is_taken() {
        assert_eq!(decide(None, "a", t("2026-01-01T00:00:00Z")), Decision::Take);
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "a", t("2026-01-01T00:00:00Z")),
            Decision::Take
        );
    }

    #[test]
    fn a_live_lease_of_another_is_respected_until_it_expires() {
        let spec = held_by("b", "2026-01-01T00:00:00Z");
        assert_eq!(
            decide(Some(&spec), "a", t("2026-01-01T00:00:14Z")),
            Decision::Wait
        );
        assert_eq!(
            decide(Some(&spec), "a", t("2026-01-01T00:00:15Z")),
            Decision::Take
        );
    }

    #[test]
    fn the_holder_renews() {
        let spec = held_by("a", "2026-01-01T00:00:00Z");
        assert_eq!(
            decide(Some(&spec), "a", t("2026-01-01T00:01:00Z")),
            Decision::Renew
        );
    }
}
