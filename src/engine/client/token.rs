//! The auth challenge flow: what to send for a scope (Basic, or a Bearer token fetched from
//! the realm a 401 names and cached per scope).

use std::time::{Duration, Instant};

use reqwest::header;
use reqwest::{Response, StatusCode};
use url::Url;

use super::RegistryClient;
use super::error::{ClientError, connect_error};
use crate::engine::auth::{self, Challenge};

/// The most read of a token endpoint's answer.
pub const MAX_TOKEN_BYTES: usize = 64 << 10;

/// A token fetched this recently for a scope is shared by the requests that were challenged
/// with it, instead of each fetching another.
const FRESH_TOKEN: Duration = Duration::from_secs(5);

/// The token request for `scopes` at `realm`: https only (plain http with `insecure`), with
/// the challenge's service and the scopes to ask for.
pub(super) fn token_url(
    realm: &str,
    service: Option<&str>,
    challenge_scope: Option<&str>,
    scopes: &[String],
    insecure: bool,
) -> Result<Url, String> {
    let mut url = Url::parse(realm).map_err(|e| e.to_string())?;
    match url.scheme() {
        "https" => {}
        "http" if insecure => {}
        _ => return Err("the registry names a token realm that is not https; credentials are sent only over https (set insecure: true on the endpoint to allow plain http)".into()),
    }
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = service {
            q.append_pair("service", s);
        }
        for s in auth::token_scopes(scopes, challenge_scope) {
            q.append_pair("scope", &s);
        }
    }
    Ok(url)
}

/// The token of a token endpoint's answer (`token`, or OAuth2's `access_token`). The error
/// never quotes the body: serde's messages quote the values they saw.
pub(super) fn parse_token(body: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Tok {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
    }
    let tok: Tok = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the answer is not a JSON object with a token (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    tok.token
        .or(tok.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "no token in the response".into())
}

impl RegistryClient {
    /// What to send as `Authorization` for `scope_key`: Basic when the registry asked for it,
    /// else a cached token granted for that scope or one covering it.
    pub(super) fn auth_header(&self, scope_key: &str) -> Option<String> {
        if let Ok(basic) = self.basic.lock()
            && *basic
        {
            return self.credentials.as_ref().map(auth::basic_header);
        }
        let tokens = self.tokens.lock().ok()?;
        tokens.get(scope_key).cloned().or_else(|| {
            tokens
                .iter()
                .find(|(granted, _)| auth::key_covers(granted, scope_key))
                .map(|(_, h)| h.clone())
        })
    }

    /// Answers a 401 challenge: fetches and caches what to send for this scope.
    pub(super) async fn authenticate(
        &self,
        resp: &Response,
        scopes: &[String],
    ) -> Result<(), ClientError> {
        let challenge = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(auth::parse_challenge);
        let unauthorized = || ClientError::Unauthorized {
            registry: self.name.clone(),
            what: scopes.join(" "),
        };
        match challenge {
            Some(Challenge::Basic) => {
                if self.credentials.is_none() {
                    return Err(unauthorized());
                }
                if let Ok(mut b) = self.basic.lock() {
                    *b = true;
                }
                Ok(())
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let key = scopes.join(" ");
                let mut fetched = self.token_fetches.lock().await;
                if fetched.get(&key).is_some_and(|t| t.elapsed() < FRESH_TOKEN) {
                    // Fetched while this request waited: retry with that token.
                    return Ok(());
                }
                let realm = self.token_realm.as_deref().unwrap_or(&realm);
                let token = self
                    .fetch_token(realm, service.as_deref(), scope.as_deref(), scopes)
                    .await?;
                if let Ok(mut t) = self.tokens.lock() {
                    t.insert(key.clone(), format!("Bearer {token}"));
                }
                fetched.insert(key, Instant::now());
                Ok(())
            }
            None => Err(unauthorized()),
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        challenge_scope: Option<&str>,
        scopes: &[String],
    ) -> Result<String, ClientError> {
        let token_err = |reason: String| ClientError::Token {
            realm: realm.to_string(),
            reason,
        };
        let url =
            token_url(realm, service, challenge_scope, scopes, self.insecure).map_err(token_err)?;
        let mut req = self.http.get(url);
        if let Some(c) = &self.credentials {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = req
            .timeout(self.retry.request_timeout)
            .send()
            .await
            .map_err(|e| connect_error(&self.name, &e))?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(ClientError::Unauthorized {
                registry: self.name.clone(),
                what: scopes.join(" "),
            });
        }
        if !resp.status().is_success() {
            return Err(token_err(format!("status {}", resp.status())));
        }
        let body = self
            .read_limited(resp, MAX_TOKEN_BYTES, "the token response")
            .await?;
        parse_token(&body).map_err(token_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_request_names_service_and_scopes_over_https_only() {
        let scopes = vec!["repository:a:pull".to_string()];
        let u = token_url(
            "https://auth.example/token?x=1",
            Some("reg"),
            None,
            &scopes,
            false,
        )
        .expect("https");
        let q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(
            q,
            [
                ("x".into(), "1".into()),
                ("service".into(), "reg".into()),
                ("scope".into(), "repository:a:pull".into())
            ]
        );
        assert!(token_url("http://auth.example/token", None, None, &scopes, false).is_err());
        assert!(token_url("http://auth.example/token", None, None, &scopes, true).is_ok());
        assert!(token_url("ftp://auth.example/token", None, None, &scopes, true).is_err());
        assert!(token_url("not a url", None, None, &scopes, true).is_err());
    }

    #[test]
    fn a_token_answer_gives_its_token_and_an_error_never_quotes_it() {
        assert_eq!(parse_token(br#"{"token":"t1"}"#), Ok("t1".into()));
        assert_eq!(parse_token(br#"{"access_token":"t2"}"#), Ok("t2".into()));
        assert!(parse_token(br#"{"token":""}"#).is_err());
        assert!(parse_token(br#"{}"#).is_err());
        let e = parse_token(br#"{"token": 5ecret}"#).expect_err("not JSON");
        assert!(!e.contains("5ecret"), "{e}");
        let e = parse_token(br#"{"token": ["s3cr3t"]}"#).expect_err("not a string");
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
