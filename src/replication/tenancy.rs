//! Namespaces are tenants: whether a ReplicationPolicy may name a Registry of another
//! namespace by `registryRef`. Pure.
//!
//! A `registryRef` lends the policy Flotilla's own account at that Registry (pull, push and,
//! with `deletion: true`, delete), so only the Registry's owner can grant it, with
//! `spec.replication.allowedNamespaces`. The Registry's own namespace is always allowed.

use crate::api::registry::ReplicationAccess;
use crate::issue::Issue;

/// Reason: a `registryRef` names a Registry of another namespace that does not allow it.
pub const REFERENCE_NOT_ALLOWED: &str = super::reasons::REFERENCE_NOT_ALLOWED;

/// The entry of `allowedNamespaces` that allows every namespace.
pub const ALL_NAMESPACES: &str = "*";

/// Whether ReplicationPolicies of `policy_namespace` may name a Registry of
/// `registry_namespace` whose access rules are `access`.
pub fn allows(
    access: Option<&ReplicationAccess>,
    registry_namespace: &str,
    policy_namespace: &str,
) -> bool {
    policy_namespace == registry_namespace
        || access.is_some_and(|a| {
            a.allowed_namespaces
                .iter()
                .any(|n| n == ALL_NAMESPACES || n == policy_namespace)
        })
}

/// The reference one field of a policy makes to a Registry.
#[derive(Clone, Copy, Debug)]
pub struct Reference<'a> {
    /// Field holding the reference, e.g. `spec.destinations[east].registryRef`.
    pub field: &'a str,
    /// Namespace of the referring policy.
    pub policy_namespace: &'a str,
    /// Namespace of the Registry named.
    pub registry_namespace: &'a str,
    /// Name of the Registry named.
    pub registry_name: &'a str,
}

/// The problem with `reference` given the Registry's access rules, or `None` when allowed.
pub fn check(reference: &Reference<'_>, access: Option<&ReplicationAccess>) -> Option<Issue> {
    let Reference {
        field,
        policy_namespace,
        registry_namespace,
        registry_name,
    } = *reference;
    (!allows(access, registry_namespace, policy_namespace)).then(|| Issue {
        field: field.to_string(),
        reason: REFERENCE_NOT_ALLOWED,
        message: format!(
            "Registry {registry_namespace}/{registry_name} does not allow ReplicationPolicies of namespace {policy_namespace:?} to name it; \
             its owner can add {policy_namespace:?} to spec.replication.allowedNamespaces of Registry {registry_name} in namespace {registry_namespace}, \
             or name a Registry of namespace {policy_namespace:?}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(names: &[&str]) -> ReplicationAccess {
        ReplicationAccess {
            allowed_namespaces: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn reference<'a>(policy_namespace: &'a str) -> Reference<'a> {
        Reference {
            field: "spec.destinations[east].registryRef",
            policy_namespace,
            registry_namespace: "team-a",
            registry_name: "hq",
        }
    }

    #[test]
    fn the_own_namespace_is_always_allowed() {
        assert!(check(&reference("team-a"), None).is_none());
        assert!(check(&reference("team-a"), Some(&access(&[]))).is_none());
    }

    #[test]
    fn other_namespaces_are_refused_by_default_naming_the_field_and_the_fix() {
        for refused in [None, Some(access(&[])), Some(access(&["team-c"]))] {
            let issue = check(&reference("team-b"), refused.as_ref()).expect("refused");
            assert_eq!(issue.reason, REFERENCE_NOT_ALLOWED);
            assert_eq!(issue.field, "spec.destinations[east].registryRef");
            for part in [
                "team-a/hq",
                "\"team-b\"",
                "spec.replication.allowedNamespaces",
            ] {
                assert!(issue.message.contains(part), "{part}: {}", issue.message);
            }
        }
    }

    #[test]
    fn listed_namespaces_or_the_wildcard_are_allowed() {
        assert!(check(&reference("team-b"), Some(&access(&["team-c", "team-b"]))).is_none());
        assert!(check(&reference("team-b"), Some(&access(&["*"]))).is_none());
        assert!(!allows(Some(&access(&["team-b*"])), "team-a", "team-bad"));
    }
}
