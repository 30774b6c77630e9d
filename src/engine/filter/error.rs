//! Why a filter rule does not compile, and which field of the policy holds it.

use std::fmt;

/// A glob list of a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobList {
    /// `spec.repositories.include`.
    RepositoriesInclude,
    /// `spec.repositories.exclude`.
    RepositoriesExclude,
    /// `spec.tags.include`.
    TagsInclude,
    /// `spec.tags.exclude`.
    TagsExclude,
    /// `spec.referrerFilter.include`.
    ReferrersInclude,
    /// `spec.referrerFilter.exclude`.
    ReferrersExclude,
}

impl fmt::Display for GlobList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GlobList::RepositoriesInclude => "spec.repositories.include",
            GlobList::RepositoriesExclude => "spec.repositories.exclude",
            GlobList::TagsInclude => "spec.tags.include",
            GlobList::TagsExclude => "spec.tags.exclude",
            GlobList::ReferrersInclude => "spec.referrerFilter.include",
            GlobList::ReferrersExclude => "spec.referrerFilter.exclude",
        })
    }
}

/// The policy field a rule comes from; displayed as its path, e.g.
/// `spec.repositories.include[1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterField {
    /// One glob of a list, by index.
    Glob(GlobList, usize),
    /// A whole glob list (the globs are fine alone but cannot be combined).
    Globs(GlobList),
    /// `spec.tags.regex`.
    TagsRegex,
    /// `spec.tags.semver`.
    TagsSemver,
    /// The `artifactType` glob of one referrer rule, by index.
    ReferrerType(GlobList, usize),
}

impl fmt::Display for FilterField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterField::Glob(list, i) => write!(f, "{list}[{i}]"),
            FilterField::Globs(list) => write!(f, "{list}"),
            FilterField::TagsRegex => f.write_str("spec.tags.regex"),
            FilterField::TagsSemver => f.write_str("spec.tags.semver"),
            FilterField::ReferrerType(list, i) => write!(f, "{list}[{i}].artifactType"),
        }
    }
}

/// What is wrong with a rule.
#[derive(Debug, thiserror::Error)]
pub enum FilterProblem {
    /// Bad glob.
    #[error("invalid glob {glob:?}: {reason}")]
    Glob {
        /// The pattern (the list, comma-separated, for [`FilterField::Globs`]).
        glob: String,
        /// Why.
        reason: globset::ErrorKind,
    },
    /// Bad regular expression.
    #[error("invalid regex {regex:?}: {reason}")]
    Regex {
        /// The expression as written.
        regex: String,
        /// Why, on one line.
        reason: String,
    },
    /// Bad semver range.
    #[error("invalid semver range {range:?}: {reason}")]
    Semver {
        /// The range as written.
        range: String,
        /// Why.
        reason: semver::Error,
    },
}

/// A rule that does not compile, with the field that holds it: `spec.tags.semver: invalid
/// semver range ">>1": …`.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FilterError {
    /// Where.
    pub field: FilterField,
    /// What.
    pub problem: FilterProblem,
}

/// The one line of a `regex` error that says what is wrong (its syntax errors span several
/// lines: the pattern, a caret, then `error: …`).
pub(super) fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_string()
}
