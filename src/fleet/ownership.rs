//! Whether an object already in the cluster may be applied over. Pure.
//!
//! Server-side apply with `force` takes over any object of the same name: a user's own
//! Service or ConfigMap would get the Registry's owner reference and be garbage-collected with
//! it. So an existing object is applied over only when this Registry controls it (an owner
//! reference with its uid); the claim, which carries no owner reference (the data outlives
//! the Registry), only when Flotilla's field manager wrote it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::FIELD_MANAGER;
use crate::issue::Issue;

/// Reason: an object the Registry would own exists and belongs to someone else.
pub const OBJECT_NOT_OWNED: &str = "ObjectNotOwned";

/// What claims an object.
#[derive(Clone, Copy, Debug)]
pub enum Claimant<'a> {
    /// The Registry (by uid) must be among the object's owners.
    Registry {
        /// The Registry's name.
        name: &'a str,
        /// The Registry's `metadata.uid`.
        uid: &'a str,
    },
    /// Flotilla's field manager must have written the object (objects without owner).
    FieldManager {
        /// The Registry's name.
        name: &'a str,
    },
}

/// Whether `existing` (`None`: absent) may be applied over by `claimant`.
pub fn may_apply(existing: Option<&ObjectMeta>, claimant: Claimant<'_>) -> bool {
    let Some(meta) = existing else {
        return true;
    };
    match claimant {
        Claimant::Registry { uid, .. } => {
            meta.owner_references.iter().flatten().any(|r| r.uid == uid)
        }
        Claimant::FieldManager { .. } => meta
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some(FIELD_MANAGER)),
    }
}

/// The problem with applying `kind` `name` over `existing`, or `None` when it may be.
pub fn check(
    kind: &str,
    name: &str,
    existing: Option<&ObjectMeta>,
    claimant: Claimant<'_>,
) -> Option<Issue> {
    if may_apply(existing, claimant) {
        return None;
    }
    let (registry, whose) = match claimant {
        Claimant::Registry { name, .. } => (name, "is not controlled by this Registry"),
        Claimant::FieldManager { name } => (name, "was not created by Flotilla"),
    };
    Some(Issue {
        field: "metadata.name".into(),
        reason: OBJECT_NOT_OWNED,
        message: format!(
            "{kind} {name:?} already exists and {whose}; Flotilla changes nothing of Registry {registry} until it is gone: \
             delete or rename that {kind}, or give the Registry another name"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};

    const HQ: Claimant<'static> = Claimant::Registry {
        name: "hq",
        uid: "uid-hq",
    };

    fn owned_by(uid: &str) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                uid: uid.into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    fn managed_by(manager: &str) -> ObjectMeta {
        ObjectMeta {
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some(manager.into()),
                operation: Some("Apply".into()),
                ..ManagedFieldsEntry::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn absent_or_own_objects_may_be_applied() {
        assert!(check("Service", "hq", None, HQ).is_none());
        assert!(check("Service", "hq", Some(&owned_by("uid-hq")), HQ).is_none());
    }

    #[test]
    fn a_foreign_object_is_refused_naming_kind_name_and_fix() {
        for foreign in [
            ObjectMeta::default(),
            owned_by("uid-of-a-registry-deleted-and-recreated"),
            managed_by(FIELD_MANAGER),
        ] {
            let issue = check("ConfigMap", "hq-config", Some(&foreign), HQ).expect("refused");
            assert_eq!(issue.reason, OBJECT_NOT_OWNED);
            for part in ["ConfigMap \"hq-config\"", "delete or rename", "Registry hq"] {
                assert!(issue.message.contains(part), "{part}: {}", issue.message);
            }
        }
    }

    #[test]
    fn a_claim_is_ours_when_flotilla_wrote_it() {
        let claim = Claimant::FieldManager { name: "hq" };
        assert!(check("PersistentVolumeClaim", "hq-data", None, claim).is_none());
        assert!(
            check(
                "PersistentVolumeClaim",
                "hq-data",
                Some(&managed_by(FIELD_MANAGER)),
                claim
            )
            .is_none()
        );
        let users = check(
            "PersistentVolumeClaim",
            "hq-data",
            Some(&managed_by("kubectl-client-side-apply")),
            claim,
        )
        .expect("refused");
        assert!(users.message.contains("not created by Flotilla"));
    }
}
