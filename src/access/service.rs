//! The token service (`flotilla token-service`): Distribution's token protocol over HTTP.
//! `GET /token?service=S&scope=...` with Basic credentials or none answers
//! `{token, access_token, expires_in, issued_at}`; wrong credentials answer 401. The rules and
//! users are re-read from their mounted files when they change. Nothing here logs a password,
//! an Authorization header or a token.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::bundle::{BUNDLE_KEY, Bundle, USERS_KEY, verify_password};
use super::jwt::{Claims, Signer};
use super::rules::{Policy, Subject, parse_scope};

/// File names of the key directory (keys of the generated Secret).
pub const KEY_FILE: &str = "token-key.pem";
/// See [`KEY_FILE`].
pub const CERT_FILE: &str = "token-cert.pem";
/// How often the mounted rules and users are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// The largest rules or users file read.
const MAX_FILE: u64 = 4 << 20;
/// The most scopes one request may ask for.
const MAX_SCOPES: usize = 64;

/// Errors starting the service or loading its files.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is larger than the service reads.
    #[error("{0} is larger than 4 MiB")]
    TooLarge(PathBuf),
    /// `access.json` does not parse.
    #[error("{path} is not an access bundle: {source}")]
    Bundle {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// A rule does not compile.
    #[error(transparent)]
    Rule(#[from] super::rules::RuleError),
    /// The key or certificate is unusable.
    #[error(transparent)]
    Key(#[from] super::jwt::KeyError),
}

/// Rules, users and the files they came from.
pub struct Loaded {
    bundle: Bundle,
    policy: Policy,
    htpasswd: String,
    /// The raw files, to notice changes.
    raw: (Vec<u8>, Vec<u8>),
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, ServiceError> {
    let read = |source| ServiceError::Read {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > MAX_FILE {
        return Err(ServiceError::TooLarge(path.to_path_buf()));
    }
    std::fs::read(path).map_err(read)
}

/// Loads `access.json` and `htpasswd` from `dir`.
pub fn load(dir: &Path) -> Result<Loaded, ServiceError> {
    let bundle_path = dir.join(BUNDLE_KEY);
    let raw_bundle = read_bounded(&bundle_path)?;
    let raw_users = read_bounded(&dir.join(USERS_KEY))?;
    let bundle: Bundle =
        serde_json::from_slice(&raw_bundle).map_err(|source| ServiceError::Bundle {
            path: bundle_path,
            source,
        })?;
    let policy = Policy::new(&bundle)?;
    Ok(Loaded {
        bundle,
        policy,
        htpasswd: String::from_utf8_lossy(&raw_users).into_owned(),
        raw: (raw_bundle, raw_users),
    })
}

/// Password checks (bcrypt) running at once; more wait, so a flood of wrong passwords costs
/// the pod at most this many cores.
const MAX_CONCURRENT_CHECKS: usize = 2;

/// The service's state.
pub struct Service {
    signer: Signer,
    current: RwLock<Arc<Loaded>>,
    dir: PathBuf,
    checks: tokio::sync::Semaphore,
}

impl Service {
    /// Loads the key from `key_dir` and the rules and users from `access_dir`.
    pub fn new(access_dir: &Path, key_dir: &Path) -> Result<Self, ServiceError> {
        let text = |f: &str| {
            read_bounded(&key_dir.join(f)).map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        let signer = Signer::from_pem(&text(KEY_FILE)?, &text(CERT_FILE)?)?;
        let loaded = load(access_dir)?;
        tracing::info!(
            rules = loaded.bundle.rules.len(),
            service = %loaded.bundle.service,
            "access rules loaded"
        );
        Ok(Self {
            signer,
            current: RwLock::new(Arc::new(loaded)),
            dir: access_dir.to_path_buf(),
            checks: tokio::sync::Semaphore::new(MAX_CONCURRENT_CHECKS),
        })
    }

    fn current(&self) -> Arc<Loaded> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads the files; a change that loads replaces the rules, one that does not is
    /// logged and the last good rules stay.
    pub fn reload(&self) {
        let now = self.current();
        let changed =
            |f: &str, old: &[u8]| std::fs::read(self.dir.join(f)).ok().as_deref() != Some(old);
        if !changed(BUNDLE_KEY, &now.raw.0) && !changed(USERS_KEY, &now.raw.1) {
            return;
        }
        match load(&self.dir) {
            Ok(loaded) => {
                tracing::info!(rules = loaded.bundle.rules.len(), "access rules reloaded");
                let mut g = match self.current.write() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                *g = Arc::new(loaded);
            }
            Err(e) => tracing::warn!(error = %e, "keeping the last good access rules"),
        }
    }
}

/// `user:password` of a Basic Authorization header value; `None` when it is not one.
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The Basic credentials of a request: `None` without an Authorization header, `Err` for
/// one that is not Basic credentials.
fn basic(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some(value.to_str().ok().and_then(parse_basic).ok_or(()))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"flotilla\"")],
        axum::Json(serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "wrong user name or password"}]})),
    )
        .into_response()
}

async fn token(
    State(service): State<Arc<Service>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let loaded = service.current();
    let asked_service = query.iter().find(|(k, _)| k == "service").map(|(_, v)| v);
    if asked_service.is_some_and(|s| *s != loaded.bundle.service) {
        return (StatusCode::BAD_REQUEST, "unknown service").into_response();
    }
    let user = match basic(&headers) {
        None => None,
        Some(Err(())) => return unauthorized(),
        Some(Ok((user, password))) => {
            let file = loaded.clone();
            let name = user.clone();
            let Ok(_permit) = service.checks.acquire().await else {
                return unauthorized();
            };
            let ok = tokio::task::spawn_blocking(move || {
                verify_password(&file.htpasswd, &name, &password)
            })
            .await
            .unwrap_or(false);
            if !ok {
                tracing::info!(user = %user, "token refused: wrong user name or password");
                return unauthorized();
            }
            Some(user)
        }
    };
    let subject = user.as_deref().map_or(Subject::Anonymous, Subject::User);
    let granted: Vec<_> = query
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' '))
        .take(MAX_SCOPES)
        .filter_map(parse_scope)
        .filter_map(|s| loaded.policy.grant(subject, &s))
        .collect();
    let now = chrono::Utc::now();
    let iat = now.timestamp();
    let expiry = loaded.bundle.expiry_seconds;
    let mut jti = [0u8; 16];
    rand::fill(&mut jti);
    let claims = Claims {
        iss: &loaded.bundle.issuer,
        sub: user.as_deref().unwrap_or(""),
        aud: &loaded.bundle.service,
        exp: iat + expiry,
        nbf: iat - 1,
        iat,
        jti: hex::encode(jti),
        access: &granted,
    };
    let Ok(jwt) = service.signer.sign(&claims) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot sign").into_response();
    };
    tracing::info!(
        user = user.as_deref().unwrap_or("<anonymous>"),
        granted = granted.len(),
        "token issued"
    );
    axum::Json(serde_json::json!({
        "token": jwt,
        "access_token": jwt,
        "expires_in": expiry,
        "issued_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
    .into_response()
}

/// The service's routes: `/token` and `/healthz`.
pub fn router(service: Arc<Service>) -> axum::Router {
    axum::Router::new()
        .route("/token", axum::routing::get(token))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(service)
}

/// Re-reads the rules every [`RELOAD_INTERVAL`], forever.
pub async fn watch(service: Arc<Service>) {
    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
    loop {
        tick.tick().await;
        let s = service.clone();
        let _ = tokio::task::spawn_blocking(move || s.reload()).await;
    }
}
