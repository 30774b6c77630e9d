//! Kubernetes-convention conditions: pure helpers that keep `lastTransitionTime` stable while
//! a condition's status does not change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::Condition;

/// Condition type telling whether a resource is valid and being served.
pub const READY: &str = "Ready";

/// What a reconciler wants one condition to say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired<'a> {
    /// Condition type, e.g. `Ready`.
    pub type_: &'a str,
    /// `True` when set.
    pub status: bool,
    /// CamelCase reason a program can match on.
    pub reason: &'a str,
    /// Sentence a human can act on.
    pub message: &'a str,
}

/// Inserts or replaces the condition of `desired.type_`. `lastTransitionTime` moves to `now`
/// only when the status changes (or the condition is new).
pub fn upsert(
    conditions: &mut Vec<Condition>,
    desired: &Desired<'_>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if desired.status { "True" } else { "False" };
    let existing = conditions.iter().position(|c| c.type_ == desired.type_);
    let last_transition_time = match existing.map(|i| &conditions[i]) {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: desired.type_.to_string(),
        status: status.to_string(),
        reason: desired.reason.to_string(),
        message: desired.message.to_string(),
        last_transition_time,
        observed_generation: generation,
    };
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid timestamp")
    }

    fn ready(status: bool, reason: &'static str) -> Desired<'static> {
        Desired {
            type_: READY,
            status,
            reason,
            message: "m",
        }
    }

    #[test]
    fn new_condition_gets_now_as_transition_time() {
        let mut c = Vec::new();
        upsert(&mut c, &ready(true, "Valid"), Some(3), at(100));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, "True");
        assert_eq!(c[0].observed_generation, Some(3));
        assert_eq!(c[0].last_transition_time, Time(at(100)));
    }

    #[test]
    fn same_status_keeps_transition_time_but_updates_reason_and_generation() {
        let mut c = Vec::new();
        upsert(&mut c, &ready(false, "SecretNotFound"), Some(1), at(100));
        upsert(
            &mut c,
            &ready(false, "CyclicDestinations"),
            Some(2),
            at(200),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].reason, "CyclicDestinations");
        assert_eq!(c[0].observed_generation, Some(2));
        assert_eq!(c[0].last_transition_time, Time(at(100)));
    }

    #[test]
    fn status_change_moves_transition_time() {
        let mut c = Vec::new();
        upsert(&mut c, &ready(false, "SecretNotFound"), Some(1), at(100));
        upsert(&mut c, &ready(true, "Valid"), Some(2), at(200));
        assert_eq!(c[0].last_transition_time, Time(at(200)));
        assert_eq!(find(&c, READY).map(|c| c.status.as_str()), Some("True"));
    }

    #[test]
    fn other_types_are_left_alone() {
        let mut c = Vec::new();
        upsert(&mut c, &ready(true, "Valid"), None, at(1));
        upsert(
            &mut c,
            &Desired {
                type_: "Syncing",
                status: false,
                reason: "Idle",
                message: "",
            },
            None,
            at(2),
        );
        assert_eq!(c.len(), 2);
        assert!(find(&c, "Syncing").is_some());
        assert!(find(&c, "Degraded").is_none());
    }
}
