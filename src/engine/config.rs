//! What one sync does: the engine's own configuration, free of Kubernetes types.

use super::backoff::RetryConfig;
use super::client::EndpointConfig;
use super::referrers::ReferrerRules;
use super::rewrite::Rewrite;
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
    /// A destination that does not answer its first request is reported failed (with what
    /// it feeds) and the run serves the others, instead of stopping before anything is
    /// written (the operator's choice; `flotilla sync` stops: the user is at the keyboard).
    pub leave_out_unreachable: bool,
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
            leave_out_unreachable: false,
        }
    }
}

/// Destination indexes by depth, and each destination's parent index.
pub type FeedTree = (Vec<Vec<usize>>, Vec<Option<usize>>);

/// The destinations grouped by depth: level 0 is fed by the source, level n by level n-1.
/// Also returns each destination's parent index.
pub fn feed_levels(dests: &[DestinationConfig]) -> Result<FeedTree, ConfigError> {
    if dests.is_empty() {
        return Err(ConfigError::NoDestinations);
    }
    let mut parents = Vec::with_capacity(dests.len());
    for (i, d) in dests.iter().enumerate() {
        if dests[..i].iter().any(|o| o.name == d.name) {
            return Err(ConfigError::Duplicate(d.name.clone()));
        }
    }
    for d in dests {
        parents.push(match &d.from {
            None => None,
            Some(f) => Some(
                dests
                    .iter()
                    .position(|o| &o.name == f && o.name != d.name)
                    .ok_or_else(|| ConfigError::UnknownFrom {
                        name: d.name.clone(),
                        from: f.clone(),
                    })?,
            ),
        });
    }
    let mut depth = vec![None::<usize>; dests.len()];
    for (start, slot) in depth.iter_mut().enumerate() {
        let mut chain = vec![start];
        let mut cur = start;
        while let Some(p) = parents[cur] {
            if chain.contains(&p) {
                let names: Vec<&str> = chain.iter().map(|&i| dests[i].name.as_str()).collect();
                return Err(ConfigError::Cycle(names.join(", ")));
            }
            chain.push(p);
            cur = p;
        }
        *slot = Some(chain.len() - 1);
    }
    let max = depth.iter().flatten().copied().max().unwrap_or(0);
    let mut levels = vec![Vec::new(); max + 1];
    for (i, d) in depth.iter().enumerate() {
        levels[d.unwrap_or(0)].push(i);
    }
    Ok((levels, parents))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str, from: Option<&str>) -> DestinationConfig {
        DestinationConfig {
            name: name.into(),
            from: from.map(Into::into),
            endpoint: EndpointConfig::default(),
        }
    }

    #[test]
    fn levels_of_a_tree() {
        let dests = vec![
            d("c1", Some("east")),
            d("east", None),
            d("west", None),
            d("c2", Some("west")),
        ];
        let (levels, parents) = feed_levels(&dests).expect("valid");
        assert_eq!(levels, vec![vec![1, 2], vec![0, 3]]);
        assert_eq!(parents, vec![Some(1), None, None, Some(2)]);
    }

    #[test]
    fn rejects_bad_trees() {
        assert_eq!(
            feed_levels(&[d("a", Some("b")), d("b", Some("a"))]),
            Err(ConfigError::Cycle("a, b".into()))
        );
        assert!(matches!(
            feed_levels(&[d("a", Some("zzz"))]),
            Err(ConfigError::UnknownFrom { .. })
        ));
        assert!(matches!(
            feed_levels(&[d("a", Some("a"))]),
            Err(ConfigError::UnknownFrom { .. })
        ));
        assert!(matches!(
            feed_levels(&[d("a", None), d("a", None)]),
            Err(ConfigError::Duplicate(_))
        ));
        assert_eq!(feed_levels(&[]), Err(ConfigError::NoDestinations));
    }
}
