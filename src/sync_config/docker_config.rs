//! Reading a docker config (`.dockerconfigjson`, `--authfile`) without ever quoting it in an
//! error: serde's messages quote the offending value (`invalid type: string "hunter2"`), which
//! in these documents is a password. Errors here say where the document is wrong, never what
//! it holds.

use crate::engine::auth::{AuthError, DockerConfig};

/// Why a docker config cannot be used. No variant holds any text of the document but the
/// registry host keys (which are not secret).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DockerConfigError {
    /// Not JSON at all.
    #[error("not JSON (syntax error at line {line}, column {column})")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON, but a part has the wrong type.
    #[error(
        "{at} must be {expected} (a docker config is {{\"auths\": {{\"HOST\": {{\"auth\": \"BASE64(user:password)\"}}}}}}, or \"username\" and \"password\" instead of \"auth\")"
    )]
    Shape {
        /// Where, e.g. `auths["east.example.com"].password`.
        at: String,
        /// What it must be.
        expected: &'static str,
    },
    /// An `auth` value is not base64 of `user:password`.
    #[error("the entry for {host} has an \"auth\" value that is not base64 of user:password")]
    BadAuth {
        /// The `auths` key.
        host: String,
    },
}

/// Parses a docker config document.
pub fn parse(json: &[u8]) -> Result<DockerConfig, DockerConfigError> {
    DockerConfig::parse(json).map_err(|e| match e {
        AuthError::BadAuthField(host) => DockerConfigError::BadAuth { host },
        AuthError::DockerConfig(_) => locate(json),
    })
}

/// Where a document the docker config parser refused goes wrong, found by a walk of its
/// JSON value (the parser's message is never used).
fn locate(json: &[u8]) -> DockerConfigError {
    let value: serde_json::Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(e) => {
            return DockerConfigError::Syntax {
                line: e.line(),
                column: e.column(),
            };
        }
    };
    let shape = |at: String, expected| DockerConfigError::Shape { at, expected };
    let Some(root) = value.as_object() else {
        return shape("the document".into(), "a JSON object");
    };
    let Some(auths) = root.get("auths") else {
        return shape("the document".into(), "a JSON object");
    };
    let Some(auths) = auths.as_object() else {
        return shape("auths".into(), "an object of registry hosts");
    };
    for (host, entry) in auths {
        let Some(entry) = entry.as_object() else {
            return shape(format!("auths[{host:?}]"), "an object");
        };
        for key in ["auth", "username", "password"] {
            if entry
                .get(key)
                .is_some_and(|v| !(v.is_string() || v.is_null()))
            {
                return shape(format!("auths[{host:?}].{key}"), "a string");
            }
        }
    }
    shape("the document".into(), "a docker config")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "hunter2-Zq9";

    fn refused(json: &str) -> DockerConfigError {
        let e = parse(json.as_bytes()).expect_err("refused");
        assert!(!e.to_string().contains(SECRET), "leaks the secret: {e}");
        assert!(
            !format!("{e:?}").contains(SECRET),
            "leaks the secret: {e:?}"
        );
        e
    }

    #[test]
    fn errors_never_quote_the_document() {
        assert_eq!(
            refused(&format!(r#"{{"auths": "{SECRET}"}}"#)),
            DockerConfigError::Shape {
                at: "auths".into(),
                expected: "an object of registry hosts"
            }
        );
        assert_eq!(
            refused(&format!(r#"{{"auths": {{"h.example.com": "{SECRET}"}}}}"#)),
            DockerConfigError::Shape {
                at: "auths[\"h.example.com\"]".into(),
                expected: "an object"
            }
        );
        let e = refused(&format!(
            r#"{{"auths": {{"h": {{"username": "u", "password": ["{SECRET}"]}}}}}}"#
        ));
        assert!(
            e.to_string()
                .starts_with("auths[\"h\"].password must be a string"),
            "{e}"
        );
        assert_eq!(
            refused(&format!("{{\"auths\": {{\"h\": {{\"auth\": \"{SECRET}\n")),
            DockerConfigError::Syntax { line: 2, column: 0 }
        );
        assert_eq!(
            refused(&format!(r#"{{"auths": {{"h": {{"auth": "{SECRET}"}}}}}}"#)),
            DockerConfigError::BadAuth { host: "h".into() }
        );
        refused(&format!(r#"["{SECRET}"]"#));
    }

    #[test]
    fn a_good_document_parses() {
        let c = parse(br#"{"auths": {"h.example.com": {"username": "u", "password": "p"}}}"#)
            .expect("parses");
        assert_eq!(
            c.lookup("h.example.com").map(|c| c.username.as_str()),
            Some("u")
        );
    }
}
