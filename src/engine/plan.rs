//! The planner: pure decisions from what the source has and what each destination holds.

use std::collections::HashSet;

use super::digest::Digest;
use super::filter;

/// One artifact in scope at the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Source repository.
    pub repo: String,
    /// Tag; `None` for an untagged referrer copied by digest.
    pub tag: Option<String>,
    /// Manifest digest at the source.
    pub digest: Digest,
    /// The artifact this one refers to, for a referrer that travels with it (`None`: in
    /// scope by its own tag).
    pub subject: Option<Digest>,
}

impl Item {
    /// `repo:tag` or `repo@digest`.
    pub fn display(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.repo),
            None => format!("{}@{}", self.repo, self.digest),
        }
    }
}

/// What to do at one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Already holds the digest under the reference.
    Skip,
    /// Copy.
    Copy,
    /// The tag points at another digest and overwrite is off.
    Conflict {
        /// What the destination tag points at.
        found: Digest,
    },
}

/// The action for one destination holding `current` under the item's reference.
pub fn action(wanted: &Digest, current: Option<&Digest>, overwrite: bool) -> Action {
    match current {
        Some(c) if c == wanted => Action::Skip,
        Some(c) if !overwrite => Action::Conflict { found: c.clone() },
        _ => Action::Copy,
    }
}

/// Referrer tags (`sha256-<hex>[.sig|.att|.sbom]`) in `all_tags` for the `subjects`, that are
/// not already `selected`.
pub fn referrer_tags(
    all_tags: &[String],
    subjects: &[Digest],
    selected: &HashSet<String>,
) -> Vec<String> {
    all_tags
        .iter()
        .filter(|t| !selected.contains(*t))
        .filter(|t| {
            subjects
                .iter()
                .any(|d| filter::is_referrer_tag_of(t, d.hex()))
        })
        .cloned()
        .collect()
}

/// Destination tags to delete: in scope, absent at the source.
pub fn deletions(
    dest_tags: &[String],
    source_tags: &HashSet<String>,
    in_scope: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out: Vec<String> = dest_tags
        .iter()
        .filter(|t| !source_tags.contains(*t) && in_scope(t))
        .cloned()
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(action(&a, Some(&a), false), Action::Skip);
        assert_eq!(action(&a, None, false), Action::Copy);
        assert_eq!(action(&a, Some(&b), true), Action::Copy);
        assert_eq!(action(&a, Some(&b), false), Action::Conflict { found: b });
    }

    #[test]
    fn referrers_and_deletions() {
        let a = Digest::of(b"a");
        let tags: Vec<String> = vec![
            "v1".into(),
            format!("sha256-{}.sig", a.hex()),
            format!("sha256-{}.att", Digest::of(b"other").hex()),
        ];
        let selected: HashSet<String> = ["v1".to_string()].into();
        assert_eq!(
            referrer_tags(&tags, std::slice::from_ref(&a), &selected),
            vec![format!("sha256-{}.sig", a.hex())]
        );
        let dest = vec!["v1".to_string(), "v0".to_string(), "keep-me".to_string()];
        assert_eq!(
            deletions(&dest, &selected, |t| t.starts_with('v')),
            vec!["v0".to_string()]
        );
    }
}
