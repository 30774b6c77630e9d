//! The Flotilla API: group `flotilla.dev`, version `v1alpha1`.
//!
//! Only types live here (no logic): they are the CRD schema, and every doc comment becomes
//! `kubectl explain` text.

pub mod access;
pub mod common;
pub mod gc;
pub mod ingress;
pub mod registry;
pub mod replication_policy;
pub mod verify;

pub use common::{Condition, LocalObjectReference, SecretKeySelector, SecretReference};
pub use registry::{Registry, RegistrySpec, RegistryStatus};
pub use replication_policy::{ReplicationPolicy, ReplicationPolicySpec, ReplicationPolicyStatus};

/// API group of every Flotilla kind.
pub const GROUP: &str = "flotilla.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// Server-side-apply field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "flotilla";
/// Annotation whose every new value requests a full sync of a ReplicationPolicy.
pub const SYNC_REQUESTED_ANNOTATION: &str = "flotilla.dev/sync-requested";
/// Annotation whose every new value requests a garbage-collection run of a Registry.
pub const GC_REQUESTED_ANNOTATION: &str = "flotilla.dev/gc-requested";
