//! Repository renaming on the way to the destinations.

/// `stripPrefix` then `prefix`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rewrite {
    /// Removed from the start of the name when present.
    pub strip_prefix: Option<String>,
    /// Added in front (a `/` is inserted when missing).
    pub prefix: Option<String>,
}

impl Rewrite {
    /// The destination repository for a source repository.
    pub fn apply(&self, repo: &str) -> String {
        let stripped = match &self.strip_prefix {
            Some(p) if !p.is_empty() => repo
                .strip_prefix(p.as_str())
                .map(|r| r.trim_start_matches('/'))
                .filter(|r| !r.is_empty())
                .unwrap_or(repo),
            _ => repo,
        };
        match &self.prefix {
            Some(p) if !p.is_empty() => {
                let p = p.trim_end_matches('/');
                format!("{p}/{stripped}")
            }
            _ => stripped.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_then_prefixes() {
        let r = Rewrite {
            strip_prefix: Some("library/".into()),
            prefix: Some("mirror/".into()),
        };
        assert_eq!(r.apply("library/nginx"), "mirror/nginx");
        assert_eq!(r.apply("other/nginx"), "mirror/other/nginx");
        let strip_only = Rewrite {
            strip_prefix: Some("library".into()),
            prefix: None,
        };
        assert_eq!(strip_only.apply("library/nginx"), "nginx");
        assert_eq!(strip_only.apply("library"), "library", "never empty");
        assert_eq!(Rewrite::default().apply("a/b"), "a/b");
    }
}
