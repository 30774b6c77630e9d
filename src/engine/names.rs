//! The Distribution grammar of repository names, tags and references: every name that comes
//! from a remote listing, a manifest or a user is checked here before it becomes part of a URL,
//! so that no remote string can make a request land outside the repository a policy chose.

use super::digest::Digest;

/// Longest repository name Distribution accepts.
pub const MAX_REPOSITORY_LEN: usize = 255;
/// Longest tag.
pub const MAX_TAG_LEN: usize = 128;

/// A name outside the grammar.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// Not `[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*`, or too long.
    #[error(
        "repository name {0:?} is not a valid Distribution repository name (lowercase path components of [a-z0-9] separated by one of . _ - __, joined by /, at most 255 characters)"
    )]
    Repository(String),
    /// Not `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}` nor a digest.
    #[error(
        "reference {0:?} is neither a valid tag ([A-Za-z0-9_][A-Za-z0-9._-], at most 128 characters) nor a sha256 digest"
    )]
    Reference(String),
}

/// Checks a repository name against the Distribution grammar.
pub fn check_repository(name: &str) -> Result<(), NameError> {
    let err = || NameError::Repository(shorten(name));
    if name.is_empty() || name.len() > MAX_REPOSITORY_LEN {
        return Err(err());
    }
    if name.split('/').all(path_component_ok) {
        Ok(())
    } else {
        Err(err())
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `tag` is a valid tag.
pub fn is_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// Whether `digest` has the form of a digest of any algorithm (`algorithm:encoded`, at most
/// 1 KiB): `[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`. The engine itself copies only sha256
/// ([`Digest`]).
pub fn is_digest(digest: &str) -> bool {
    let Some((alg, enc)) = digest.split_once(':') else {
        return false;
    };
    let alg_ok = alg.split(['+', '.', '_', '-']).all(|p| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    digest.len() <= 1024
        && alg_ok
        && !enc.is_empty()
        && enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

/// Checks a manifest reference: a tag or a sha256 digest.
pub fn check_reference(reference: &str) -> Result<(), NameError> {
    if is_tag(reference) || reference.parse::<Digest>().is_ok() {
        Ok(())
    } else {
        Err(NameError::Reference(shorten(reference)))
    }
}

/// A remote string quoted in an error: at most 80 characters of it.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(80).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories() {
        for ok in [
            "a",
            "library/alpine",
            "team-a/app.v2/x_y",
            "a__b",
            "a--b",
            "0/1",
        ] {
            assert_eq!(check_repository(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "../../v2/other",
            "a/../b",
            "A",
            "a//b",
            "/a",
            "a/",
            "a?b",
            "a#b",
            "a%2fb",
            "a b",
            "a.-b",
            "a___b",
            "-a",
            "a.",
            long.as_str(),
        ] {
            assert!(check_repository(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn references() {
        let d = format!("sha256:{}", "a".repeat(64));
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", d.as_str()] {
            assert_eq!(check_reference(ok), Ok(()), "{ok}");
        }
        let long = "t".repeat(129);
        for bad in [
            "",
            ".x",
            "-x",
            "a/b",
            "a?b",
            "..",
            "a:b",
            "sha256:zz",
            long.as_str(),
        ] {
            assert!(check_reference(bad).is_err(), "{bad:?} accepted");
        }
        assert!(is_tag(&"t".repeat(128)));
    }

    #[test]
    fn digests_of_any_algorithm() {
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(is_digest("sha512+b64:AbC="));
        for bad in [
            "",
            "sha256",
            ":abc",
            "sha256:",
            "SHA256:ab",
            "a..b:c",
            "a:b/c",
            "a:b c",
        ] {
            assert!(!is_digest(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn errors_quote_at_most_80_characters() {
        let e = check_repository(&"X".repeat(5000)).unwrap_err().to_string();
        assert!(e.len() < 400, "{e}");
    }
}
