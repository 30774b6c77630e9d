//! Which repositories, tags and platforms are in scope.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// Errors compiling filters.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Bad glob.
    #[error("invalid glob {glob:?}: {reason}")]
    Glob {
        /// The pattern.
        glob: String,
        /// Why.
        reason: String,
    },
    /// Bad regular expression.
    #[error("invalid tag regex {0:?}: {1}")]
    Regex(String, String),
    /// Bad semver range.
    #[error("invalid semver range {0:?}: {1}")]
    Semver(String, String),
}

/// Include/exclude glob lists.
#[derive(Clone, Debug, Default)]
pub struct GlobFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

fn build_set(globs: &[String]) -> Result<Option<GlobSet>, FilterError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob: Glob = GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| FilterError::Glob {
                glob: g.clone(),
                reason: e.kind().to_string(),
            })?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|e| FilterError::Glob {
        glob: globs.join(","),
        reason: e.to_string(),
    })
}

impl GlobFilter {
    /// Compiles include/exclude globs (`*` stays within a path segment, `**` crosses them).
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, FilterError> {
        Ok(Self {
            include: build_set(include)?,
            exclude: build_set(exclude)?,
        })
    }

    /// Whether `name` passes.
    pub fn matches(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|s| s.is_match(name))
            && !self.exclude.as_ref().is_some_and(|s| s.is_match(name))
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
    /// Compiles the rules.
    pub fn new(
        include: &[String],
        exclude: &[String],
        regex: Option<&str>,
        semver: Option<&str>,
    ) -> Result<Self, FilterError> {
        Ok(Self {
            globs: GlobFilter::new(include, exclude)?,
            regex: regex
                .map(|r| {
                    regex::Regex::new(&format!("^(?:{r})$"))
                        .map_err(|e| FilterError::Regex(r.to_string(), e.to_string()))
                })
                .transpose()?,
            semver: semver
                .map(|s| {
                    semver::VersionReq::parse(s)
                        .map_err(|e| FilterError::Semver(s.to_string(), e.to_string()))
                })
                .transpose()?,
        })
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
    fn referrer_tags() {
        let h = "ab".repeat(32);
        assert!(is_referrer_tag_of(&format!("sha256-{h}.sig"), &h));
        assert!(is_referrer_tag_of(&format!("sha256-{h}"), &h));
        assert!(!is_referrer_tag_of(&format!("sha256-{h}.foo"), &h));
        assert!(!is_referrer_tag_of("v1", &h));
    }
}
