//! What one run covers: everything in the policy's filters, or only the artifacts that
//! notifications named. Pure.

use std::collections::BTreeMap;

use super::digest::Digest;

/// An artifact a notification named.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Named {
    /// `repository:tag` was pushed: copy what the source serves under that tag now.
    Pushed {
        /// Source repository.
        repository: String,
        /// The tag pushed.
        tag: String,
    },
    /// The manifest `digest` was deleted from `repository` at the source.
    Deleted {
        /// Source repository.
        repository: String,
        /// The manifest deleted.
        digest: Digest,
        /// The tag deleted, when the notification named one.
        tag: Option<String>,
    },
}

impl Named {
    /// The source repository.
    pub fn repository(&self) -> &str {
        match self {
            Named::Pushed { repository, .. } | Named::Deleted { repository, .. } => repository,
        }
    }
}

/// What a run covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SyncScope {
    /// Every repository and tag the policy's filters select (the catalog and tag lists are
    /// read).
    #[default]
    All,
    /// Only these artifacts, fetched by reference (no listing), still within the policy's
    /// filters, rewrite, platforms and referrer rules.
    Only(Vec<Named>),
}

/// The pushed tags and the deletions of an `Only` scope, by repository (each repository
/// once, tags and deletions without duplicates, in order).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ByRepository {
    /// Tags pushed, by repository.
    pub pushed: BTreeMap<String, Vec<String>>,
    /// Manifests deleted (digest, tag named), by repository.
    pub deleted: BTreeMap<String, Vec<(Digest, Option<String>)>>,
}

/// Groups `items` by repository.
pub fn by_repository(items: &[Named]) -> ByRepository {
    let mut out = ByRepository::default();
    for item in items {
        match item {
            Named::Pushed { repository, tag } => {
                let tags = out.pushed.entry(repository.clone()).or_default();
                if !tags.contains(tag) {
                    tags.push(tag.clone());
                }
            }
            Named::Deleted {
                repository,
                digest,
                tag,
            } => {
                let gone = out.deleted.entry(repository.clone()).or_default();
                let entry = (digest.clone(), tag.clone());
                if !gone.contains(&entry) {
                    gone.push(entry);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_grouped_by_repository_once_each() {
        let d = Digest::of(b"gone");
        let push = |r: &str, t: &str| Named::Pushed {
            repository: r.into(),
            tag: t.into(),
        };
        let items = [
            push("apps/web", "v1"),
            push("apps/api", "v2"),
            push("apps/web", "v1"),
            push("apps/web", "v3"),
            Named::Deleted {
                repository: "apps/web".into(),
                digest: d.clone(),
                tag: None,
            },
        ];
        let g = by_repository(&items);
        assert_eq!(g.pushed["apps/web"], ["v1", "v3"]);
        assert_eq!(g.pushed["apps/api"], ["v2"]);
        assert_eq!(g.deleted["apps/web"], [(d, None)]);
        assert_eq!(items[4].repository(), "apps/web");
    }
}
