//! Every reason a ReplicationPolicy's conditions and Events carry, in one place (programs and
//! alerts match on them).

/// Ready: the policy is valid; a sync will say whether it is in sync.
pub const OUT_OF_SYNC: &str = "OutOfSync";
/// Ready: every destination is in sync.
pub const IN_SYNC: &str = "InSync";
/// Ready: the spec cannot become an engine configuration.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// Ready: a `registryRef` names no Registry.
pub const REGISTRY_NOT_FOUND: &str = "RegistryNotFound";
/// Ready: a referenced Registry has no URL or no operator account yet.
pub const REGISTRY_NOT_READY: &str = "RegistryNotReady";
/// Ready: a Registry does not let this namespace refer to it.
pub const REFERENCE_NOT_ALLOWED: &str = "ReferenceNotAllowed";
/// Ready: `spec.trigger.schedule` is no cron expression.
pub const INVALID_SCHEDULE: &str = "InvalidSchedule";
/// Ready: `spec.bandwidthLimit` is no quantity.
pub const INVALID_BANDWIDTH_LIMIT: &str = "InvalidBandwidthLimit";
/// Ready: the policy has no destination.
pub const NO_DESTINATIONS: &str = "NoDestinations";
/// Ready: two destinations share a name.
pub const DUPLICATE_DESTINATION: &str = "DuplicateDestination";
/// Ready: a `from` names no destination.
pub const UNKNOWN_DESTINATION: &str = "UnknownDestination";
/// Ready: destinations feed each other in a cycle.
pub const CYCLIC_DESTINATIONS: &str = "CyclicDestinations";
/// Syncing: no run going on.
pub const IDLE: &str = "Idle";
/// Syncing: waiting for a destination's garbage-collection window to end.
pub const MAINTENANCE_WINDOW: &str = "MaintenanceWindow";
/// Degraded: the last run reached every destination.
pub const AS_EXPECTED: &str = "AsExpected";
/// Degraded: the last run could not read the source.
pub const SOURCE_UNAVAILABLE: &str = "SourceUnavailable";
/// Degraded, and the Event of each failed destination.
pub const DESTINATION_FAILED: &str = "DestinationFailed";
/// Event: a run succeeded.
pub const SYNCED: &str = "Synced";
/// Event: a run failed somewhere.
pub const SYNC_FAILED: &str = "SyncFailed";
/// Event: artifacts whose signatures do not verify were held back.
pub const ARTIFACTS_HELD_BACK: &str = "ArtifactsHeldBack";
/// Event: a deletion sync would have deleted more than `maxDeletions`.
pub const DELETIONS_WITHHELD: &str = "DeletionsWithheld";
/// Event: a destination tag points elsewhere and `overwrite` is false.
pub const TAG_CONFLICT: &str = "TagConflict";
