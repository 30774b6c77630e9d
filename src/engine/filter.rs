//! Which repositories, tags and platforms are in scope.

mod error;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

pub use error::{FilterError, FilterField, FilterProblem, GlobList};

/// Include/exclude glob lists.
#[derive(Clone, Debug, Default)]
pub struct GlobFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

/// Compiles one glob (`*` stays within a path segment, `**` crosses them) of `list` at
/// `index`.
pub fn glob(list: GlobList, index: usize, pattern: &str) -> Result<Glob, FilterError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| FilterError {
            field: FilterField::Glob(list, index),
            problem: FilterProblem::Glob {
                glob: pattern.to_string(),
                reason: e.kind().clone(),
            },
        })
}

/// Compiles a tag regex, anchored at both ends. The expression must be complete by itself,
/// so that a pattern such as `a)|(.*` cannot break out of the anchoring group.
pub fn tag_regex(pattern: &str) -> Result<regex::Regex, FilterError> {
    let invalid = |e: regex::Error| FilterError {
        field: FilterField::TagsRegex,
        problem: FilterProblem::Regex {
            regex: pattern.to_string(),
            reason: error::regex_reason(&e),
        },
    };
    regex::Regex::new(pattern).map_err(invalid)?;
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(invalid)
}

/// Compiles a semantic-version range.
pub fn semver_range(range: &str) -> Result<semver::VersionReq, FilterError> {
    semver::VersionReq::parse(range).map_err(|reason| FilterError {
        field: FilterField::TagsSemver,
        problem: FilterProblem::Semver {
            range: range.to_string(),
            reason,
        },
    })
}

fn build_set(list: GlobList, globs: &[String]) -> Result<Option<GlobSet>, FilterError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for (i, g) in globs.iter().enumerate() {
        b.add(glob(list, i, g)?);
    }
    b.build().map(Some).map_err(|e| FilterError {
        field: FilterField::Globs(list),
        problem: FilterProblem::Glob {
            glob: globs.join(","),
            reason: e.kind().clone(),
        },
    })
}

impl GlobFilter {
    /// Compiles repository include/exclude globs (`spec.repositories`, the fields errors
    /// name); [`GlobFilter::tags`] for tag globs.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, FilterError> {
        Self::of(
            (GlobList::RepositoriesInclude, include),
            (GlobList::RepositoriesExclude, exclude),
        )
    }

    /// Compiles tag include/exclude globs (`spec.tags`).
    pub fn tags(include: &[String], exclude: &[String]) -> Result<Self, FilterError> {
        Self::of(
            (GlobList::TagsInclude, include),
            (GlobList::TagsExclude, exclude),
        )
    }

    fn of(
        include: (GlobList, &[String]),
        exclude: (GlobList, &[String]),
    ) -> Result<Self, FilterError> {
        Ok(Self {
            include: build_set(include.0, include.1)?,
            exclude: build_set(exclude.0, exclude.1)?,
        })
    }

    /// Whether `name` passes.
    pub fn matches(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|s| s.is_match(name))
            && !self.exclude.as_ref().is_some_and(|s| s.is_match(name))
    }

    /// Whether every name passes (no include nor exclude glob).
    pub fn selects_all(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }
}

/// Tag rules: globs, an anchored regex and a semver range, all of which must pass.
#[derive(Clone, Debug, Default)]
pub struct TagFilter {
    globs: GlobFilter,
    regex: Option<regex::Regex>,
    semver: Option<semver::VersionReq>,
}

impl TagFilter {
    /// Compiles the rules; an error names the field of `spec.tags` at fault.
    pub fn new(
        include: &[String],
        exclude: &[String],
        regex: Option<&str>,
        semver: Option<&str>,
    ) -> Result<Self, FilterError> {
        Ok(Self {
            globs: GlobFilter::tags(include, exclude)?,
            regex: regex.map(tag_regex).transpose()?,
            semver: semver.map(semver_range).transpose()?,
        })
    }

    /// Whether every tag passes (no rule is set).
    pub fn selects_all(&self) -> bool {
        self.globs.selects_all() && self.regex.is_none() && self.semver.is_none()
    }

    /// Whether `tag` passes every rule that is set.
    pub fn matches(&self, tag: &str) -> bool {
        if !self.globs.matches(tag) {
            return false;
        }
        if let Some(re) = &self.regex
            && !re.is_match(tag)
        {
            return false;
        }
        if let Some(req) = &self.semver {
            let v = tag.strip_prefix('v').unwrap_or(tag);
            return semver::Version::parse(v).is_ok_and(|v| req.matches(&v));
        }
        true
    }
}

/// Whether an index child with `platform` is copied, given the wanted platforms (empty: all).
/// `linux/arm64` matches `linux/arm64/v8`; children without a platform are always copied.
pub fn platform_selected(wanted: &[String], platform: Option<&str>) -> bool {
    let Some(p) = platform else { return true };
    wanted.is_empty()
        || wanted.iter().any(|w| {
            p == w
                || p.strip_prefix(w.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// The include list itself when it has patterns and every one is a repository name of the
/// Distribution grammar (so no glob character), sorted and without duplicates; `None`
/// otherwise (the catalog must be read, e.g. for a pattern that can match nothing).
pub fn plain_names(include: &[String]) -> Option<Vec<String>> {
    let plain = |p: &String| super::names::check_repository(p).is_ok();
    if include.is_empty() || !include.iter().all(plain) {
        return None;
    }
    let mut names = include.to_vec();
    names.sort();
    names.dedup();
    Some(names)
}

/// Whether a tag has the form of the cosign / OCI-fallback referrer tag scheme
/// (`sha256-<64 hex>[.sig|.att|.sbom]`), of whatever digest.
pub fn is_referrer_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .and_then(|rest| rest.get(..64).map(|hex| (hex, &rest[64..])))
        .is_some_and(|(hex, tail)| {
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && matches!(tail, "" | ".sig" | ".att" | ".sbom")
        })
}

/// The tags a referrer of the digest with hex `digest_hex` may have in the cosign /
/// OCI-fallback scheme.
pub fn referrer_tags_of(digest_hex: &str) -> [String; 4] {
    ["", ".sig", ".att", ".sbom"].map(|tail| format!("sha256-{digest_hex}{tail}"))
}

/// The subject digest a tag of the referrer scheme names (`None`: not of that scheme).
pub fn referrer_subject(tag: &str) -> Option<super::digest::Digest> {
    if !is_referrer_tag(tag) {
        return None;
    }
    let hex = tag.strip_prefix("sha256-")?.get(..64)?;
    format!("sha256:{hex}").parse().ok()
}

/// Whether a tag belongs to the cosign / OCI-fallback referrer tag scheme of a digest.
pub fn is_referrer_tag_of(tag: &str, digest_hex: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let Some(tail) = rest.strip_prefix(digest_hex) else {
        return false;
    };
    matches!(tail, "" | ".sig" | ".att" | ".sbom")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn repo_globs() {
        let f = GlobFilter::new(&s(&["team-a/**", "base"]), &s(&["team-a/secret/*"])).expect("ok");
        assert!(f.matches("team-a/x/y"));
        assert!(f.matches("base"));
        assert!(!f.matches("team-a/secret/z"));
        assert!(!f.matches("team-b/x"));
        let one = GlobFilter::new(&s(&["lib/*"]), &[]).expect("ok");
        assert!(one.matches("lib/a"));
        assert!(!one.matches("lib/a/b"));
        assert!(GlobFilter::default().matches("anything/at/all"));
        assert!(GlobFilter::new(&s(&["a[b"]), &[]).is_err());
    }

    #[test]
    fn tag_rules() {
        let f = TagFilter::new(&s(&["v*"]), &s(&["*-rc*"]), None, Some(">=1.2, <2")).expect("ok");
        assert!(f.matches("v1.2.0"));
        assert!(f.matches("v1.9.3"));
        assert!(!f.matches("v2.0.0"));
        assert!(!f.matches("v1.1.0"));
        assert!(!f.matches("v1.3.0-rc1"));
        assert!(!f.matches("latest"));
        let re = TagFilter::new(&[], &[], Some(r"[0-9]+\.[0-9]+"), None).expect("ok");
        assert!(re.matches("1.2"));
        assert!(!re.matches("1.2.3"), "anchored");
        assert!(TagFilter::new(&[], &[], Some("("), None).is_err());
        assert!(TagFilter::new(&[], &[], None, Some("nope")).is_err());
    }

    fn error(r: Result<impl std::fmt::Debug, FilterError>) -> String {
        r.expect_err("invalid").to_string()
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = error(GlobFilter::new(&s(&["ok/*", "a[b"]), &[]));
        assert!(
            e.starts_with("spec.repositories.include[1]: invalid glob \"a[b\": "),
            "{e}"
        );
        let e = error(GlobFilter::new(&[], &s(&["{x"])));
        assert!(
            e.starts_with("spec.repositories.exclude[0]: invalid glob"),
            "{e}"
        );
        let e = error(TagFilter::new(&[], &s(&["v*", "v["]), None, None));
        assert!(
            e.starts_with("spec.tags.exclude[1]: invalid glob \"v[\""),
            "{e}"
        );
        let e = error(TagFilter::new(&s(&["{"]), &[], None, None));
        assert!(e.starts_with("spec.tags.include[0]: "), "{e}");
        let e = error(TagFilter::new(&[], &[], None, Some(">>1")));
        assert!(
            e.starts_with("spec.tags.semver: invalid semver range \">>1\": "),
            "{e}"
        );
        let e = error(TagFilter::new(&[], &[], Some("(unclosed"), None));
        assert_eq!(
            e, "spec.tags.regex: invalid regex \"(unclosed\": unclosed group",
            "one line"
        );
    }

    #[test]
    fn a_regex_cannot_escape_its_anchors() {
        // `^(?:a)|(.*)$` would match every tag.
        let e = error(TagFilter::new(&[], &[], Some("a)|(.*"), None));
        assert!(e.starts_with("spec.tags.regex: "), "{e}");
    }

    #[test]
    fn platforms() {
        let w = s(&["linux/arm64"]);
        assert!(platform_selected(&w, Some("linux/arm64/v8")));
        assert!(platform_selected(&w, Some("linux/arm64")));
        assert!(!platform_selected(&w, Some("linux/amd64")));
        assert!(!platform_selected(&w, Some("linux/arm64v8")));
        assert!(platform_selected(&w, None));
        assert!(platform_selected(&[], Some("windows/amd64")));
    }

    #[test]
    fn plain_include_lists_need_no_catalog() {
        assert_eq!(
            plain_names(&s(&["b/x", "a", "b/x"])),
            Some(s(&["a", "b/x"]))
        );
        assert_eq!(plain_names(&s(&["a", "b/*"])), None);
        // The controller's "nothing in scope" pattern is no name: the catalog decides.
        assert_eq!(plain_names(&s(&["\u{0}no-match"])), None);
        assert_eq!(plain_names(&[]), None);
    }

    #[test]
    fn referrer_tags() {
        let h = "ab".repeat(32);
        assert!(is_referrer_tag_of(&format!("sha256-{h}.sig"), &h));
        assert!(is_referrer_tag_of(&format!("sha256-{h}"), &h));
        assert!(!is_referrer_tag_of(&format!("sha256-{h}.foo"), &h));
        assert!(!is_referrer_tag_of("v1", &h));
        assert!(
            is_referrer_tag(&format!("sha256-{h}.att")) && is_referrer_tag(&format!("sha256-{h}"))
        );
        assert!(!is_referrer_tag("sha256-abc.sig") && !is_referrer_tag(&format!("sha256-{h}.x")));
    }
}
