//! A client of one registry (Distribution / OCI v2 API): auth challenge flow with a token
//! cache per scope, retries, manifests as exact bytes, blobs as streams.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{self, HeaderMap};
use reqwest::{RequestBuilder, Response, StatusCode};
use url::Url;

use super::auth::{self, Challenge, Credentials};
use super::backoff::{self, RetryConfig};
use super::digest::Digest;
use super::link;
use super::manifest;
use super::names;

/// How to reach one registry.
#[derive(Clone, Debug, Default)]
pub struct EndpointConfig {
    /// `scheme://host[:port]`.
    pub url: String,
    /// Credentials, if any (anonymous otherwise).
    pub credentials: Option<Credentials>,
    /// PEM CA bundle to trust besides the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Allow plain HTTP and unverified TLS.
    pub insecure: bool,
}

/// Errors talking to a registry.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint URL is unusable.
    #[error("invalid registry URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The TLS setup failed (e.g. a bad CA bundle).
    #[error("TLS setup for {registry} failed: {reason}")]
    Tls {
        /// Registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// The server's TLS certificate is not trusted (unknown issuer, wrong name, expired):
    /// not retried, trying again cannot help.
    #[error(
        "registry {registry} presented a TLS certificate that is not trusted ({reason}); if a private CA signed it, give that CA in the endpoint's caSecretRef"
    )]
    Certificate {
        /// Registry.
        registry: String,
        /// What the TLS library said.
        reason: String,
    },
    /// No connection (refused, DNS, TLS handshake, timeout).
    #[error("cannot reach registry {registry}: {reason}")]
    Connect {
        /// Registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// Credentials missing or rejected.
    #[error(
        "registry {registry} rejected the credentials{} (check the username/password or token)",
        for_what(.what)
    )]
    Unauthorized {
        /// Registry.
        registry: String,
        /// The operation.
        what: String,
    },
    /// A 404.
    #[error("{what} not found on {registry}")]
    NotFound {
        /// Registry.
        registry: String,
        /// What was looked up.
        what: String,
    },
    /// Any other unexpected status.
    #[error("{method} {path} on {registry} answered {status}: {body}")]
    Status {
        /// Registry.
        registry: String,
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Status code.
        status: u16,
        /// Start of the body.
        body: String,
        /// `Retry-After`, seconds.
        retry_after: Option<Duration>,
    },
    /// A response body broke off or could not be read.
    #[error("reading from {registry} failed: {reason}")]
    Body {
        /// Registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// A token endpoint misbehaved.
    #[error("token endpoint {realm} failed: {reason}")]
    Token {
        /// Realm URL.
        realm: String,
        /// Why.
        reason: String,
    },
    /// A response body larger than Flotilla reads of that kind.
    #[error("{what} on {registry} is larger than the {limit} bytes Flotilla reads; not read")]
    TooLarge {
        /// Registry.
        registry: String,
        /// What was read.
        what: String,
        /// The limit, bytes.
        limit: usize,
    },
    /// The server asked to wait longer before a retry than Flotilla waits.
    #[error(
        "{registry} answered {status} to {what} and asked to retry after {asked_secs} s, longer than the {limit_secs} s Flotilla waits; gave up"
    )]
    RetryAfterTooLong {
        /// Registry.
        registry: String,
        /// The request.
        what: String,
        /// The status.
        status: u16,
        /// `Retry-After`, seconds.
        asked_secs: u64,
        /// The cap, seconds.
        limit_secs: u64,
    },
    /// A name from a listing, a manifest or a policy is outside the Distribution grammar.
    #[error("{registry}: {source}")]
    InvalidName {
        /// Registry.
        registry: String,
        /// The grammar error.
        source: names::NameError,
    },
    /// An unparseable response.
    #[error("unexpected response from {registry}: {reason}")]
    Protocol {
        /// Registry.
        registry: String,
        /// Why.
        reason: String,
    },
}

/// ` for <what>`, or nothing when `what` is empty (a token for no scope, as for `/v2/`).
fn for_what(what: &str) -> String {
    if what.is_empty() {
        String::new()
    } else {
        format!(" for {what}")
    }
}

impl ClientError {
    /// Whether trying again may help (connection errors, 5xx, 429, broken bodies).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Body { .. } => true,
            ClientError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The server's `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What a `HEAD` of a manifest told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    /// Digest.
    pub digest: Digest,
    /// Content type.
    pub media_type: String,
}

/// Result of a cross-repository mount attempt.
#[derive(Debug)]
pub enum Mount {
    /// The blob is now in the repository.
    Mounted,
    /// Not mounted; an upload session was opened instead.
    Upload(Url),
}

/// A byte stream of a blob.
pub type BlobStream = BoxStream<'static, Result<Bytes, ClientError>>;

/// A client of one registry.
#[derive(Debug)]
pub struct RegistryClient {
    base: Url,
    name: String,
    http: reqwest::Client,
    credentials: Option<Credentials>,
    /// Token fetches, one at a time, and when each scope's token was fetched: requests that
    /// were challenged together (concurrent blob checks) wait for one fetch and share it.
    token_fetches: tokio::sync::Mutex<HashMap<String, std::time::Instant>>,
    retry: RetryConfig,
    /// Authorization header value per scope key.
    tokens: Mutex<HashMap<String, String>>,
    /// The registry asked for Basic auth: send it with every request.
    basic: Mutex<bool>,
    /// Bounds the requests (other than blob uploads) awaiting their response headers.
    in_flight: tokio::sync::Semaphore,
    /// Plain HTTP allowed (also for a token realm).
    insecure: bool,
}

fn pull(repo: &str) -> Vec<String> {
    vec![format!("repository:{repo}:pull")]
}

fn push(repo: &str) -> Vec<String> {
    vec![format!("repository:{repo}:pull,push")]
}

/// Requests sent to one registry at once (blob uploads aside, which stream for long). A burst
/// of concurrent HEADs would otherwise open a connection each (about 130 for a no-op sync of
/// 32 tags to 3 destinations); a bound lets them reuse a few kept-alive connections, which
/// costs a Distribution registry about 40% less CPU per request. Crane's default is 4 jobs.
const REQUESTS_IN_FLIGHT: usize = 8;

/// The most Flotilla reads of one manifest or index: Distribution's own limit.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The most read of one page of `_catalog` or `tags/list` (1000 names of 255 characters
/// fit four times over).
pub const MAX_PAGE_BYTES: usize = 1 << 20;
/// The most read of a token endpoint's answer.
pub const MAX_TOKEN_BYTES: usize = 64 << 10;
/// The most read of an error body (only its start is quoted).
const MAX_ERROR_BYTES: usize = 4 << 10;
/// The most names one listing (the catalog, or the tags of one repository) may hold.
pub const MAX_LISTING: usize = 100_000;
/// The most pages one listing may take.
pub const MAX_PAGES: usize = 2_000;

/// Installs the rustls crypto provider once per process.
fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// HTTP clients by TLS settings, shared by every registry of the process: building one loads
/// the system trust store, which costs more than a whole no-op sync of a small policy.
type HttpCache = HashMap<(bool, Option<Vec<u8>>), reqwest::Client>;

fn shared_http(insecure: bool, ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
    static CACHE: std::sync::OnceLock<Mutex<HttpCache>> = std::sync::OnceLock::new();
    let key = (insecure, ca_pem.map(<[u8]>::to_vec));
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(c) = cache.lock()
        && let Some(http) = c.get(&key)
    {
        return Ok(http.clone());
    }
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(64)
        .user_agent(concat!("flotilla/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("CA bundle is not valid PEM: {e}"))?;
        builder = builder.tls_certs_merge(certs);
    }
    if insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    let http = builder.build().map_err(|e| e.to_string())?;
    if let Ok(mut c) = cache.lock() {
        c.insert(key, http.clone());
    }
    Ok(http)
}

impl RegistryClient {
    /// Builds a client. `http://` URLs need `insecure`.
    pub fn new(cfg: &EndpointConfig, retry: RetryConfig) -> Result<Self, ClientError> {
        ensure_crypto_provider();
        let url_err = |reason: &str| ClientError::Url {
            url: cfg.url.clone(),
            reason: reason.to_string(),
        };
        let mut base = Url::parse(&cfg.url).map_err(|e| url_err(&e.to_string()))?;
        match base.scheme() {
            "https" => {}
            "http" if cfg.insecure => {}
            "http" => {
                return Err(url_err(
                    "plain http needs insecure: true (or --src-insecure/--dest-insecure)",
                ));
            }
            _ => return Err(url_err("scheme must be http or https")),
        }
        if base.host_str().is_none() {
            return Err(url_err("no host"));
        }
        base.set_path("/");
        base.set_query(None);
        let name = match base.port() {
            Some(p) => format!("{}:{p}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_string(),
        };
        let http = shared_http(cfg.insecure, cfg.ca_pem.as_deref()).map_err(|reason| {
            ClientError::Tls {
                registry: name.clone(),
                reason,
            }
        })?;
        Ok(Self {
            base,
            name,
            http,
            credentials: cfg.credentials.clone(),
            token_fetches: tokio::sync::Mutex::new(HashMap::new()),
            retry,
            tokens: Mutex::new(HashMap::new()),
            basic: Mutex::new(false),
            in_flight: tokio::sync::Semaphore::new(REQUESTS_IN_FLIGHT),
            insecure: cfg.insecure,
        })
    }

    /// `host[:port]`, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base.join(path).map_err(|e| ClientError::Url {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }

    fn connect_err(&self, e: &reqwest::Error) -> ClientError {
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            if let Some(cert) = s
                .to_string()
                .strip_prefix("invalid peer certificate: ")
                .map(str::to_string)
            {
                return ClientError::Certificate {
                    registry: self.name.clone(),
                    reason: cert,
                };
            }
            src = s.source();
        }
        ClientError::Connect {
            registry: self.name.clone(),
            reason: without_secrets(e),
        }
    }

    fn auth_header(&self, scope_key: &str) -> Option<String> {
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
    async fn authenticate(&self, resp: &Response, scopes: &[String]) -> Result<(), ClientError> {
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
                if fetched
                    .get(&key)
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
                {
                    // Fetched while this request waited: retry with that token.
                    return Ok(());
                }
                let token = self
                    .fetch_token(&realm, service.as_deref(), scope.as_deref(), scopes)
                    .await?;
                if let Ok(mut t) = self.tokens.lock() {
                    t.insert(key.clone(), format!("Bearer {token}"));
                }
                fetched.insert(key, std::time::Instant::now());
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
        let mut url = Url::parse(realm).map_err(|e| token_err(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.insecure => {}
            _ => {
                return Err(token_err(
                    "the registry names a token realm that is not https; credentials are sent only over https (set insecure: true on the endpoint to allow plain http)".into(),
                ));
            }
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
        let mut req = self.http.get(url);
        if let Some(c) = &self.credentials {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = req
            .timeout(self.retry.request_timeout)
            .send()
            .await
            .map_err(|e| self.connect_err(&e))?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(ClientError::Unauthorized {
                registry: self.name.clone(),
                what: scopes.join(" "),
            });
        }
        if !resp.status().is_success() {
            return Err(token_err(format!("status {}", resp.status())));
        }
        #[derive(serde::Deserialize)]
        struct Tok {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let body = self
            .read_limited(resp, MAX_TOKEN_BYTES, "the token response")
            .await?;
        // serde's messages quote the values they saw: never a token in an error.
        let tok: Tok = serde_json::from_slice(&body).map_err(|e| {
            token_err(format!(
                "the answer is not a JSON object with a token (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        tok.token
            .or(tok.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_err("no token in the response".into()))
    }

    /// Sends a request built by `build`, answering auth challenges and retrying connection
    /// errors, 5xx and 429 per the retry policy. Other statuses are returned to the caller.
    async fn send<F>(&self, scopes: &[String], build: F) -> Result<Response, ClientError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        self.send_with(scopes, Some(self.retry.request_timeout), build)
            .await
    }

    /// [`Self::send`] with a total deadline per attempt (`None`: the response streams for as
    /// long as it takes, as a blob does; reads still time out when nothing arrives).
    /// Credentials go only to this registry's own origin.
    async fn send_with<F>(
        &self,
        scopes: &[String],
        timeout: Option<Duration>,
        build: F,
    ) -> Result<Response, ClientError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let key = scopes.join(" ");
        let mut attempt = 0u32;
        let mut authenticated = false;
        loop {
            attempt += 1;
            let mut builder = build(&self.http);
            if let Some(t) = timeout {
                builder = builder.timeout(t);
            }
            let mut req = builder.build().map_err(|e| ClientError::Url {
                url: self.base.to_string(),
                reason: without_secrets(&e),
            })?;
            if same_origin(req.url(), &self.base)
                && let Some(h) = self.auth_header(&key)
                && let Ok(v) = header::HeaderValue::from_str(&h)
            {
                req.headers_mut().insert(header::AUTHORIZATION, v);
            }
            let sent = {
                let _permit = self.in_flight.acquire().await;
                self.http.execute(req).await
            };
            let err = match sent {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    if authenticated {
                        return Err(ClientError::Unauthorized {
                            registry: self.name.clone(),
                            what: key,
                        });
                    }
                    self.authenticate(&resp, scopes).await?;
                    authenticated = true;
                    attempt -= 1;
                    continue;
                }
                Ok(resp)
                    if resp.status() == StatusCode::TOO_MANY_REQUESTS
                        || resp.status().is_server_error() =>
                {
                    self.status_error(resp, "request").await
                }
                Ok(resp) => return Ok(resp),
                Err(e) => self.connect_err(&e),
            };
            if attempt >= self.retry.max_attempts.max(1) || !err.is_retryable() {
                return Err(err);
            }
            if let (Some(asked), ClientError::Status { status, path, .. }) =
                (err.retry_after(), &err)
                && asked > backoff::MAX_RETRY_AFTER
            {
                return Err(ClientError::RetryAfterTooLong {
                    registry: self.name.clone(),
                    what: path.clone(),
                    status: *status,
                    asked_secs: asked.as_secs(),
                    limit_secs: backoff::MAX_RETRY_AFTER.as_secs(),
                });
            }
            let wait = self
                .retry
                .delay(attempt, backoff::jitter(), err.retry_after());
            tracing::debug!(registry = %self.name, %err, ?wait, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn status_error(&self, resp: Response, what: &str) -> ClientError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(backoff::parse_retry_after);
        let path = resp.url().path().to_string();
        let body = self
            .read_limited(resp, MAX_ERROR_BYTES, "an error body")
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        ClientError::Status {
            registry: self.name.clone(),
            method: what.to_string(),
            path,
            status,
            body: body
                .chars()
                .take(300)
                .collect::<String>()
                .trim()
                .to_string(),
            retry_after,
        }
    }

    async fn expect(
        &self,
        resp: Response,
        ok: &[StatusCode],
        what: &str,
    ) -> Result<Response, ClientError> {
        if ok.contains(&resp.status()) {
            return Ok(resp);
        }
        match resp.status() {
            StatusCode::NOT_FOUND => Err(ClientError::NotFound {
                registry: self.name.clone(),
                what: what.to_string(),
            }),
            StatusCode::FORBIDDEN => Err(ClientError::Unauthorized {
                registry: self.name.clone(),
                what: what.to_string(),
            }),
            _ => Err(self.status_error(resp, what).await),
        }
    }

    /// `GET /v2/`: reachable and, if credentials are needed, accepted.
    pub async fn ping(&self) -> Result<(), ClientError> {
        let url = self.url("v2/")?;
        let resp = self.send(&[], |c| c.get(url.clone())).await?;
        self.expect(resp, &[StatusCode::OK], "the /v2/ API endpoint")
            .await
            .map(drop)
    }

    /// Reads a response body of at most `limit` bytes: a longer one (by its `Content-Length`
    /// or as it streams) is refused without reading the rest.
    async fn read_limited(
        &self,
        mut resp: Response,
        limit: usize,
        what: &str,
    ) -> Result<Bytes, ClientError> {
        let too_large = || ClientError::TooLarge {
            registry: self.name.clone(),
            what: what.to_string(),
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| ClientError::Body {
            registry: self.name.clone(),
            reason: format!("{what}: {}", without_secrets(&e)),
        })? {
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Every name of a paginated listing (`field` of each page), following `Link` headers of
    /// this registry's own origin, each at most once, up to [`MAX_LISTING`] names in
    /// [`MAX_PAGES`] pages. Only a listing that completed is returned: any failure is an
    /// error, never a shorter list.
    async fn paged(
        &self,
        first: Url,
        scopes: &[String],
        field: &str,
        what: &str,
    ) -> Result<Vec<String>, ClientError> {
        let protocol = |reason: String| ClientError::Protocol {
            registry: self.name.clone(),
            reason: format!("{what}: {reason}"),
        };
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            if !seen.insert(url.clone()) {
                return Err(protocol(format!(
                    "the pagination loops (Link {} was followed already); the listing is incomplete",
                    url.path()
                )));
            }
            if seen.len() > MAX_PAGES {
                return Err(protocol(format!(
                    "more than {MAX_PAGES} pages; the listing is incomplete"
                )));
            }
            let resp = self.send(scopes, |c| c.get(url.clone())).await?;
            let resp = self.expect(resp, &[StatusCode::OK], what).await?;
            let link = resp
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(link::next_link);
            let body = self.read_limited(resp, MAX_PAGE_BYTES, what).await?;
            out.extend(page_names(&body, field).map_err(protocol)?);
            if out.len() > MAX_LISTING {
                return Err(protocol(format!(
                    "more than {MAX_LISTING} names; the listing is incomplete"
                )));
            }
            if let Some(l) = link {
                let target = url
                    .join(&l)
                    .map_err(|e| protocol(format!("bad Link {l:?}: {e}")))?;
                if !same_origin(&target, &self.base) {
                    return Err(protocol(
                        "a Link header points at another host; the listing is incomplete".into(),
                    ));
                }
                next = Some(target);
            }
        }
        Ok(out)
    }

    /// Every repository (`_catalog`, pages of 1000).
    pub async fn catalog(&self) -> Result<Vec<String>, ClientError> {
        let url = self.url("v2/_catalog?n=1000")?;
        self.paged(
            url,
            &["registry:catalog:*".to_string()],
            "repositories",
            "the catalog",
        )
        .await
    }

    /// Every tag of a repository. Only a complete, successful listing is an `Ok`: a 404 is
    /// an error here (use [`Self::tags_if_present`] where an absent repository means none).
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&format!("v2/{repo}/tags/list?n=1000"))?;
        self.paged(url, &pull(repo), "tags", &format!("tags of {repo}"))
            .await
    }

    /// Every tag of a repository; an unknown repository (404) has none.
    pub async fn tags_if_present(&self, repo: &str) -> Result<Vec<String>, ClientError> {
        match self.tags(repo).await {
            Err(ClientError::NotFound { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    fn check_repo(&self, repo: &str) -> Result<(), ClientError> {
        names::check_repository(repo).map_err(|source| ClientError::InvalidName {
            registry: self.name.clone(),
            source,
        })
    }

    fn check_manifest_ref(&self, repo: &str, reference: &str) -> Result<(), ClientError> {
        self.check_repo(repo)?;
        names::check_reference(reference).map_err(|source| ClientError::InvalidName {
            registry: self.name.clone(),
            source,
        })
    }

    /// `HEAD` a manifest by tag or digest; `None` when absent.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>, ClientError> {
        self.check_manifest_ref(repo, reference)?;
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .send(&pull(repo), |c| {
                c.head(url.clone()).header(header::ACCEPT, manifest::ACCEPT)
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let what = format!("manifest {repo}:{reference}");
        let resp = self.expect(resp, &[StatusCode::OK], &what).await?;
        let media_type = content_type(resp.headers());
        match resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
        {
            Some(digest) => Ok(Some(ManifestHead { digest, media_type })),
            None => {
                // No digest header: fall back to reading the manifest.
                let (bytes, media_type) = self.get_manifest(repo, reference).await?;
                Ok(Some(ManifestHead {
                    digest: Digest::of(&bytes),
                    media_type,
                }))
            }
        }
    }

    /// `GET` a manifest: exact bytes and content type.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Bytes, String), ClientError> {
        self.check_manifest_ref(repo, reference)?;
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let what = format!("manifest {repo}:{reference}");
        let resp = self
            .send(&pull(repo), |c| {
                c.get(url.clone()).header(header::ACCEPT, manifest::ACCEPT)
            })
            .await?;
        let resp = self.expect(resp, &[StatusCode::OK], &what).await?;
        let mt = content_type(resp.headers());
        let bytes = self.read_limited(resp, MAX_MANIFEST_BYTES, &what).await?;
        Ok((bytes, mt))
    }

    /// `PUT` a manifest's exact bytes under a tag or digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(), ClientError> {
        self.check_manifest_ref(repo, reference)?;
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let what = format!("push of manifest {repo}:{reference}");
        let resp = self
            .send(&push(repo), |c| {
                c.put(url.clone())
                    .header(header::CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        self.expect(resp, &[StatusCode::CREATED, StatusCode::OK], &what)
            .await
            .map(drop)
    }

    /// `DELETE` a manifest by tag or digest. Returns `false` when the registry does not support
    /// deleting that way (400/405 UNSUPPORTED).
    pub async fn delete_manifest(&self, repo: &str, reference: &str) -> Result<bool, ClientError> {
        self.check_manifest_ref(repo, reference)?;
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .send(&[format!("repository:{repo}:delete")], |c| {
                c.delete(url.clone())
            })
            .await?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NOT_FOUND => Ok(true),
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => Ok(false),
            _ => Err(self
                .status_error(resp, &format!("delete of {repo}:{reference}"))
                .await),
        }
    }

    /// Whether a blob exists in a repository.
    pub async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        let resp = self.send(&pull(repo), |c| c.head(url.clone())).await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self
                .status_error(resp, &format!("HEAD blob {repo}@{digest}"))
                .await),
        }
    }

    /// A blob's bytes as a stream (the request itself is retried; a broken stream is not).
    pub async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        let resp = self
            .send_with(&pull(repo), None, |c| c.get(url.clone()))
            .await?;
        let resp = self
            .expect(resp, &[StatusCode::OK], &format!("blob {repo}@{digest}"))
            .await?;
        let name = self.name.clone();
        Ok(resp
            .bytes_stream()
            .map_err(move |e| ClientError::Body {
                registry: name.clone(),
                reason: without_secrets(&e),
            })
            .boxed())
    }

    /// A small blob's bytes (a signature payload, an attestation), at most `limit`, checked
    /// against its digest.
    pub async fn get_small_blob(
        &self,
        repo: &str,
        digest: &Digest,
        limit: usize,
    ) -> Result<Bytes, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        let what = format!("blob {repo}@{digest}");
        let resp = self.send(&pull(repo), |c| c.get(url.clone())).await?;
        let resp = self.expect(resp, &[StatusCode::OK], &what).await?;
        let bytes = self.read_limited(resp, limit, &what).await?;
        if &Digest::of(&bytes) != digest {
            return Err(ClientError::Protocol {
                registry: self.name.clone(),
                reason: format!("{what} arrived with other content"),
            });
        }
        Ok(bytes)
    }

    fn location(&self, resp: &Response) -> Result<Url, ClientError> {
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Protocol {
                registry: self.name.clone(),
                reason: "upload response without Location".into(),
            })?;
        resp.url().join(loc).map_err(|e| ClientError::Protocol {
            registry: self.name.clone(),
            reason: format!("bad Location {loc:?}: {e}"),
        })
    }

    /// Opens an upload session.
    pub async fn start_upload(&self, repo: &str) -> Result<Url, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&format!("v2/{repo}/blobs/uploads/"))?;
        let resp = self.send(&push(repo), |c| c.post(url.clone())).await?;
        let resp = self
            .expect(resp, &[StatusCode::ACCEPTED], &format!("upload to {repo}"))
            .await?;
        self.location(&resp)
    }

    /// Tries to mount `digest` from `from` into `repo` (same registry).
    pub async fn mount(
        &self,
        repo: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<Mount, ClientError> {
        self.check_repo(repo)?;
        self.check_repo(from)?;
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from);
        let scopes = vec![
            format!("repository:{repo}:pull,push"),
            format!("repository:{from}:pull"),
        ];
        let resp = self.send(&scopes, |c| c.post(url.clone())).await?;
        let resp = self
            .expect(
                resp,
                &[StatusCode::CREATED, StatusCode::ACCEPTED],
                &format!("mount into {repo}"),
            )
            .await?;
        if resp.status() == StatusCode::CREATED {
            Ok(Mount::Mounted)
        } else {
            self.location(&resp).map(Mount::Upload)
        }
    }

    /// Streams the whole blob into an upload session and commits it under `digest` in the
    /// same request (`PUT <location>?digest=` with the body: one round trip instead of
    /// `PATCH` + `PUT`). Not retried: the body cannot be replayed. The registry commits only
    /// when the body ends cleanly, which the caller allows only after verifying the digest.
    pub async fn put_stream(
        &self,
        repo: &str,
        location: Url,
        digest: &Digest,
        body: reqwest::Body,
    ) -> Result<(), ClientError> {
        let mut url = location;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let url_for_auth = url.clone();
        let mut req = self
            .http
            .put(url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        if same_origin(&url_for_auth, &self.base)
            && let Some(h) = self.auth_header(&push(repo).join(" "))
        {
            req = req.header(header::AUTHORIZATION, h);
        }
        let resp = req.send().await.map_err(|e| self.connect_err(&e))?;
        self.expect(
            resp,
            &[StatusCode::CREATED],
            &format!("upload of blob {repo}@{digest}"),
        )
        .await
        .map(drop)
    }

    /// Commits an upload session under `digest`.
    pub async fn finish_upload(
        &self,
        repo: &str,
        location: Url,
        digest: &Digest,
    ) -> Result<(), ClientError> {
        let mut url = location;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let resp = self
            .send(&push(repo), |c| {
                c.put(url.clone()).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        self.expect(
            resp,
            &[StatusCode::CREATED],
            &format!("commit of blob {repo}@{digest}"),
        )
        .await
        .map(drop)
    }

    /// OCI 1.1 referrers of a manifest; `None` when the registry has no referrers API.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<Digest>>, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&format!("v2/{repo}/referrers/{digest}"))?;
        let resp = self
            .send(&pull(repo), |c| {
                c.get(url.clone())
                    .header(header::ACCEPT, manifest::OCI_INDEX)
            })
            .await?;
        if resp.status() != StatusCode::OK {
            return Ok(None);
        }
        let is_index = content_type(resp.headers()).starts_with(manifest::OCI_INDEX);
        let bytes = self
            .read_limited(
                resp,
                MAX_MANIFEST_BYTES,
                &format!("referrers of {repo}@{digest}"),
            )
            .await?;
        if !is_index {
            return Ok(None);
        }
        match manifest::parse(manifest::OCI_INDEX, &bytes) {
            Ok(manifest::Parsed::Index { manifests }) => {
                Ok(Some(manifests.into_iter().map(|d| d.digest).collect()))
            }
            _ => Ok(None),
        }
    }
}

/// The names of one listing page: `field` must be an array of strings, or `null` (none).
fn page_names(body: &[u8], field: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the page is not JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    match v.get(field) {
        Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{field:?} holds a value that is not a string"))
            })
            .collect(),
        _ => Err(format!("the page has no {field:?} array")),
    }
}

/// Whether `a` and `b` have the same scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// A URL as it may appear in a message: scheme, host, port and path; no user info, no query
/// (presigned URLs carry credentials there), no fragment.
pub fn redact_url(u: &Url) -> String {
    let mut r = u.clone();
    let _ = r.set_username("");
    let _ = r.set_password(None);
    r.set_query(None);
    r.set_fragment(None);
    r.to_string()
}

/// A reqwest error's message and causes, with its URL redacted.
fn without_secrets(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(u) = e.url() {
        msg = msg.replace(u.as_str(), &redact_url(u));
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_must_hold_its_field() {
        assert_eq!(
            page_names(br#"{"tags":["a","b"]}"#, "tags"),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            page_names(br#"{"name":"x","tags":null}"#, "tags"),
            Ok(vec![])
        );
        for bad in [
            &br#"{"name":"x"}"#[..],
            br#"{"tags":"a"}"#,
            br#"{"tags":[1]}"#,
            br#"{"tags":["a""#,
            b"",
        ] {
            assert!(
                page_names(bad, "tags").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let u = |s: &str| Url::parse(s).expect("url");
        assert!(same_origin(
            &u("https://r.example/v2/a"),
            &u("https://r.example:443/")
        ));
        assert!(!same_origin(
            &u("https://r.example/"),
            &u("http://r.example/")
        ));
        assert!(!same_origin(
            &u("http://127.0.0.1:1/"),
            &u("http://127.0.0.1:2/")
        ));
        assert!(!same_origin(
            &u("https://evil.example/"),
            &u("https://r.example/")
        ));
    }

    #[test]
    fn redacted_urls_keep_no_credentials() {
        let u = Url::parse(
            "https://user:pa55@s3.example/bucket/blob?X-Amz-Signature=abc&X-Amz-Credential=key#f",
        )
        .expect("url");
        let r = redact_url(&u);
        assert_eq!(r, "https://s3.example/bucket/blob");
    }

    #[tokio::test]
    async fn names_outside_the_grammar_never_become_requests() {
        let c = RegistryClient::new(
            &EndpointConfig {
                url: "http://127.0.0.1:9".into(),
                insecure: true,
                ..Default::default()
            },
            RetryConfig::default(),
        )
        .expect("client");
        for (repo, reference) in [
            ("../x", "v1"),
            ("a", "../../x"),
            ("a/../b", "v1"),
            ("a", "v1?x"),
        ] {
            let e = c.head_manifest(repo, reference).await.expect_err("refused");
            assert!(matches!(e, ClientError::InvalidName { .. }), "{e}");
        }
        assert!(matches!(
            c.tags("a/../../b").await,
            Err(ClientError::InvalidName { .. })
        ));
    }
}
