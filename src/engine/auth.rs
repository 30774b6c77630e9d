//! Registry credentials and the `WWW-Authenticate` challenge grammar.

use std::collections::BTreeMap;

use base64::Engine as _;

/// Errors reading credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The docker config document is not JSON of the expected shape.
    #[error("docker config is not valid JSON with an \"auths\" object: {0}")]
    DockerConfig(String),
    /// An `auth` entry is not base64 of `user:password`.
    #[error(
        "docker config entry for {0} has an \"auth\" value that is not base64 of user:password"
    )]
    BadAuthField(String),
}

/// A username and password (or identity token as password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parsed `auths` of a docker config (`~/.docker/config.json`, `.dockerconfigjson`).
#[derive(Clone, Debug, Default)]
pub struct DockerConfig {
    by_host: BTreeMap<String, Credentials>,
}

#[derive(serde::Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, RawEntry>,
}

#[derive(serde::Deserialize)]
struct RawEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl DockerConfig {
    /// Parses a docker config JSON document.
    pub fn parse(json: &[u8]) -> Result<Self, AuthError> {
        // serde's own message quotes the value it met, which may be a password: only the
        // position and the kind of the problem are reported.
        let raw: RawConfig = serde_json::from_slice(json).map_err(|e| {
            let kind = match e.classify() {
                serde_json::error::Category::Syntax => "a syntax error",
                serde_json::error::Category::Eof => "an unexpected end",
                serde_json::error::Category::Data => "a value of the wrong type",
                serde_json::error::Category::Io => "a read error",
            };
            AuthError::DockerConfig(format!(
                "{kind} at line {}, column {}",
                e.line(),
                e.column()
            ))
        })?;
        let mut by_host = BTreeMap::new();
        for (key, entry) in raw.auths {
            let creds = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|_| AuthError::BadAuthField(key.clone()))?;
                    let text = String::from_utf8(decoded)
                        .map_err(|_| AuthError::BadAuthField(key.clone()))?;
                    let (u, p) = text
                        .split_once(':')
                        .ok_or_else(|| AuthError::BadAuthField(key.clone()))?;
                    Credentials {
                        username: u.to_string(),
                        password: p.to_string(),
                    }
                }
                (_, Some(username), Some(password)) => Credentials { username, password },
                _ => continue,
            };
            by_host.insert(normalize_host(&key), creds);
        }
        Ok(Self { by_host })
    }

    /// Credentials for a registry host (`host` or `host:port`).
    pub fn lookup(&self, host: &str) -> Option<&Credentials> {
        let host = normalize_host(host);
        self.by_host.get(&host).or_else(|| {
            if host == "docker.io" || host == "registry-1.docker.io" {
                self.by_host.get("index.docker.io")
            } else {
                None
            }
        })
    }
}

/// `https://host:port/v1/` → `host:port`.
pub fn normalize_host(key: &str) -> String {
    let no_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    no_scheme
        .split('/')
        .next()
        .unwrap_or(no_scheme)
        .to_ascii_lowercase()
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=...`.
    Basic,
    /// `Bearer realm=...,service=...,scope=...`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service` parameter, if any.
        service: Option<String>,
        /// `scope` parameter, if any.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value. Returns `None` for schemes other than Basic/Bearer or
/// a Bearer challenge without realm.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `k="v", k2=v2` with commas allowed inside quotes.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => break,
                    _ => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    out
}

/// The scopes to ask a token endpoint for: ours, plus those of the challenge's `scope`
/// (space separated) that ours do not already cover. Distribution answers a
/// `repository:x:pull,push` request with a challenge for `repository:x:push,pull`: the same
/// scope, which must not be asked for twice.
pub fn token_scopes(ours: &[String], challenge: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in ours
        .iter()
        .map(String::as_str)
        .chain(challenge.into_iter().flat_map(str::split_whitespace))
    {
        if !out.iter().any(|o| scope_covers(o, s)) {
            out.push(s.to_string());
        }
    }
    out
}

/// Whether a token granted `granted` (`type:name:actions`) allows `wanted`: same resource,
/// every wanted action granted.
fn scope_covers(granted: &str, wanted: &str) -> bool {
    fn split(s: &str) -> Option<(&str, std::collections::BTreeSet<&str>)> {
        let (resource, actions) = s.rsplit_once(':')?;
        Some((
            resource,
            actions.split(',').filter(|a| !a.is_empty()).collect(),
        ))
    }
    granted == wanted
        || matches!((split(granted), split(wanted)), (Some((rg, ag)), Some((rw, aw))) if rg == rw && aw.is_subset(&ag))
}

/// Whether a token cached under scope key `granted` (scopes joined by spaces) allows every
/// scope of `wanted`: a mount's token (`repository:a:pull,push repository:b:pull`) serves the
/// upload into `a` that follows a refused mount.
pub fn key_covers(granted: &str, wanted: &str) -> bool {
    wanted
        .split_whitespace()
        .all(|w| granted.split_whitespace().any(|g| scope_covers(g, w)))
}

/// The `Authorization: Basic` value for credentials.
pub fn basic_header(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_comma_in_scope() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
    }

    #[test]
    fn a_mount_token_covers_the_upload_into_its_repository() {
        let mount = "repository:team/c:pull,push repository:team/a:pull";
        assert!(key_covers(mount, "repository:team/c:pull,push"));
        assert!(key_covers(mount, "repository:team/c:push"));
        assert!(key_covers(mount, "repository:team/a:pull"));
        assert!(!key_covers(mount, "repository:team/a:pull,push"));
        assert!(!key_covers(mount, "repository:team/b:pull"));
        assert!(!key_covers(
            "repository:team/c:pull",
            "repository:team/c:pull,push"
        ));
    }

    #[test]
    fn parses_basic_and_rejects_unknown() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn docker_config_auth_and_user_password() {
        let doc = br#"{"auths":{
            "https://reg.example.com:5000/v1/":{"auth":"dXNlcjpwYTpzcw=="},
            "other.example.com":{"username":"u2","password":"p2"}}}"#;
        let cfg = DockerConfig::parse(doc).expect("parses");
        let c = cfg.lookup("reg.example.com:5000").expect("found");
        assert_eq!(c.username, "user");
        assert_eq!(c.password, "pa:ss");
        assert_eq!(
            cfg.lookup("OTHER.example.com").map(|c| c.username.as_str()),
            Some("u2")
        );
        assert!(cfg.lookup("nope").is_none());
        assert!(DockerConfig::parse(b"[1]").is_err());
        let leaked = DockerConfig::parse(br#"{"auths":"s3cr3t-value"}"#)
            .expect_err("auths that is a string")
            .to_string();
        assert!(!leaked.contains("s3cr3t"), "{leaked}");
        assert!(leaked.contains("line 1"), "{leaked}");
        let leaked = DockerConfig::parse(br#"{"auths":{"h":{"auth":"s3cr3t-value"#)
            .expect_err("cut short")
            .to_string();
        assert!(!leaked.contains("s3cr3t"), "{leaked}");
        assert!(DockerConfig::parse(br#"{"auths":{"h":{"auth":"!!"}}}"#).is_err());
    }

    #[test]
    fn basic_header_encodes() {
        let c = Credentials {
            username: "a".into(),
            password: "b".into(),
        };
        assert_eq!(basic_header(&c), "Basic YTpi");
    }

    #[test]
    fn token_scopes_are_not_asked_twice() {
        let ours = vec!["repository:a/b:pull,push".to_string()];
        assert_eq!(
            token_scopes(&ours, Some("repository:a/b:push,pull")),
            ours,
            "same actions in another order"
        );
        assert_eq!(token_scopes(&ours, Some("repository:a/b:pull")), ours);
        let mount = vec![
            "repository:b:pull,push".to_string(),
            "repository:a:pull".to_string(),
        ];
        assert_eq!(
            token_scopes(&mount, Some("repository:b:push,pull repository:a:pull")),
            mount,
            "a space-separated challenge scope"
        );
        assert_eq!(
            token_scopes(&[], Some("registry:catalog:*")),
            vec!["registry:catalog:*".to_string()]
        );
        assert_eq!(
            token_scopes(
                &["repository:a:pull".to_string()],
                Some("repository:a:delete")
            ),
            vec![
                "repository:a:pull".to_string(),
                "repository:a:delete".to_string()
            ]
        );
        assert!(token_scopes(&[], None).is_empty());
    }
}
