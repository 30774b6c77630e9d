//! What one sync does: the engine's own configuration, free of Kubernetes types.

use super::backoff::RetryConfig;
use super::client::EndpointConfig;
use super::referrers::ReferrerRules;
use super::rewrite::Rewrite;
use super::scope::SyncScope;
use super::verify::VerifyConfig;

/// Errors in a sync configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `from` names no destination.
    #[error("destination {name:?} has from: {from:?}, which is not a destination of this policy")]
    UnknownFrom {
        /// Destination.
        name: String,
        /// Its `from`.
        from: String,
    },
    /// `from` chain loops.
    #[error("destinations {0} feed each other in a cycle; remove one of their from fields")]
    Cycle(String),
    /// Two destinations with one name.
    #[error("destination name {0:?} is used twice")]
    Duplicate(String),
    /// No destination.
    #[error("the policy has no destinations")]
    NoDestinations,
}

/// Default of `max_deletions`.
pub const DEFAULT_MAX_DELETIONS: usize = 50;
/// Default of `deadline`: generous, a full sync of a large registry takes hours.
pub const DEFAULT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// A destination.
#[derive(Clone, Debug, Default)]
pub struct DestinationConfig {
    /// Unique name.
    pub name: String,
    /// Feeding destination (hierarchical), `None`: the source.
    pub from: Option<String>,
    /// How to reach it.
    pub endpoint: EndpointConfig,
}

/// Tag rules.
#[derive(Clone, Debug, Default)]
pub struct TagRules {
    /// Include globs.
    pub include: Vec<String>,
    /// Exclude globs.
    pub exclude: Vec<String>,
    /// Anchored regex.
    pub regex: Option<String>,
    /// Semver range.
    pub semver: Option<String>,
}

/// One sync.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Source registry.
    pub source: EndpointConfig,
    /// Destinations.
    pub destinations: Vec<DestinationConfig>,
    /// Repository include globs.
    pub repositories_include: Vec<String>,
    /// Repository exclude globs.
    pub repositories_exclude: Vec<String>,
    /// Tag rules.
    pub tags: TagRules,
    /// Platforms kept from indexes (empty: all).
    pub platforms: Vec<String>,
    /// Copy referrers (signatures, SBOMs).
    pub referrers: bool,
    /// Which referrers travel with their subject (empty: all).
    pub referrer_rules: ReferrerRules,
    /// Copy only artifacts signed by one of these keys (`None`: no signature required).
    pub verify: Option<VerifyConfig>,
    /// Repository renaming.
    pub rewrite: Rewrite,
    /// Delete destination tags the source no longer has.
    pub deletion: bool,
    /// The most tags one sync deletes: a sync that would delete more deletes none and says so.
    pub max_deletions: usize,
    /// The longest one run may take; then it is stopped.
    pub deadline: std::time::Duration,
    /// Move destination tags that point elsewhere.
    pub overwrite: bool,
    /// Artifacts copied at once.
    pub concurrency: usize,
    /// Bytes per second read from the source, all copies together.
    pub bandwidth_limit: Option<u64>,
    /// Request retries.
    pub retry: RetryConfig,
    /// Plan only: read the source and the destinations, report what would be copied and
    /// deleted, write nothing.
    pub dry_run: bool,
    /// What the run covers: everything (listing the source) or the artifacts notifications
    /// named (fetched by reference).
    pub scope: SyncScope,
    /// What to do when a destination does not answer its ping (or refuses the credentials).
    pub unreachable: OnUnreachable,
}

/// What a run does about a destination that does not answer its ping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnUnreachable {
    /// Stop before anything is written ([`super::sync::SyncError::Endpoint`]): the user is at
    /// the keyboard (`flotilla sync`).
    #[default]
    Stop,
    /// Serve the others: leave it out with the destinations it feeds, and name it in
    /// [`super::report::Report::unreachable`] (the operator).
    Skip,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            source: EndpointConfig::default(),
            destinations: Vec::new(),
            repositories_include: Vec::new(),
            repositories_exclude: Vec::new(),
            tags: TagRules::default(),
            platforms: Vec::new(),
            referrers: true,
            referrer_rules: ReferrerRules::default(),
            verify: None,
            rewrite: Rewrite::default(),
            deletion: false,
            max_deletions: DEFAULT_MAX_DELETIONS,
            deadline: DEFAULT_DEADLINE,
            overwrite: true,
            concurrency: 4,
            bandwidth_limit: None,
            retry: RetryConfig::default(),
            dry_run: false,
            scope: SyncScope::All,
            unreachable: OnUnreachable::Stop,
        }
    }
}
