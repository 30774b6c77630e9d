//! Read-only access to a fleet's S3 bucket: the operator lists the registry's blob data to
//! measure what a garbage collection frees. Nothing here writes or deletes an object.

pub mod listing;
pub mod sigv4;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use url::Url;

pub use sigv4::Credentials;

/// The most bytes one listing page may have (1,000 keys are about 300 KiB).
const MAX_PAGE_BYTES: usize = 4 << 20;
/// Objects per page.
const PAGE_KEYS: &str = "1000";

/// Why the blobs could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The endpoint or bucket does not form a URL.
    #[error("bucket URL: {0}")]
    Url(String),
    /// The request failed (connection, TLS, timeout).
    #[error("request to {url}: {reason}")]
    Http {
        /// The URL without query.
        url: String,
        /// What failed.
        reason: String,
    },
    /// S3 answered with an error status.
    #[error("{url} answered {status}: {code}")]
    Status {
        /// The URL without query.
        url: String,
        /// HTTP status.
        status: u16,
        /// The S3 error code (`AccessDenied`, `NoSuchBucket`...), if the body had one.
        code: String,
    },
    /// A page over [`MAX_PAGE_BYTES`].
    #[error("a listing page over {MAX_PAGE_BYTES} bytes")]
    PageTooLarge,
    /// A page that is not a listing.
    #[error("listing: {0}")]
    Page(#[from] listing::PageError),
    /// The listing took more pages or time than allowed.
    #[error("listing not finished within {0}")]
    Bounds(String),
}

/// Where a registry keeps its blobs.
#[derive(Clone, Debug)]
pub struct Bucket {
    /// `https://s3.REGION.amazonaws.com` or the S3-compatible endpoint.
    pub endpoint: Url,
    /// Bucket name.
    pub name: String,
    /// Region.
    pub region: String,
    /// `endpoint/bucket` rather than `bucket.endpoint`.
    pub path_style: bool,
    /// The registry's `rootdirectory`, e.g. `/hq`.
    pub root: String,
}

impl Bucket {
    /// The URL of the bucket (path style or virtual-hosted).
    fn url(&self) -> Result<Url, S3Error> {
        let mut url = self.endpoint.clone();
        if self.path_style {
            url.set_path(&format!("/{}", self.name));
        } else {
            let host = url
                .host_str()
                .ok_or_else(|| S3Error::Url("no host".into()))?;
            let virtual_host = format!("{}.{host}", self.name);
            url.set_host(Some(&virtual_host))
                .map_err(|e| S3Error::Url(e.to_string()))?;
            url.set_path("/");
        }
        url.set_query(None);
        Ok(url)
    }

    /// The key prefix of blob data: `<root>/docker/registry/v2/blobs/`.
    pub fn blobs_prefix(&self) -> String {
        let root = self.root.trim_matches('/');
        if root.is_empty() {
            "docker/registry/v2/blobs/".into()
        } else {
            format!("{root}/docker/registry/v2/blobs/")
        }
    }
}

/// Lists every blob's data object, page by page, within `deadline` and `max_pages`: size by
/// digest.
pub async fn list_blobs(
    http: &reqwest::Client,
    bucket: &Bucket,
    creds: &Credentials,
    deadline: Duration,
    max_pages: usize,
) -> Result<BTreeMap<String, u64>, S3Error> {
    let started = Instant::now();
    let url = bucket.url()?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(S3Error::Url("no host".into())),
    };
    let prefix = bucket.blobs_prefix();
    let mut blobs = BTreeMap::new();
    let mut token: Option<String> = None;
    for _ in 0..max_pages {
        if started.elapsed() > deadline {
            return Err(S3Error::Bounds(format!("{} s", deadline.as_secs())));
        }
        let mut query = vec![
            ("list-type", "2"),
            ("max-keys", PAGE_KEYS),
            ("prefix", prefix.as_str()),
        ];
        if let Some(t) = &token {
            query.push(("continuation-token", t.as_str()));
        }
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let get = sigv4::Get {
            host: &host,
            path: url.path(),
            query: &query,
            region: &bucket.region,
            amz_date: &amz_date,
        };
        let mut page_url = url.clone();
        page_url.set_query(Some(&sigv4::canonical_query(&query)));
        let xml = get_page(http, &page_url, sigv4::sign(&get, creds), url.as_str()).await?;
        let page = listing::parse_page(&xml)?;
        for o in page.objects {
            let relative = o.key.strip_prefix(&prefix).unwrap_or(&o.key);
            if let Some(digest) = listing::blob_digest(relative) {
                blobs.insert(digest, o.size);
            }
        }
        match page.next {
            Some(t) => token = Some(t),
            None => return Ok(blobs),
        }
    }
    Err(S3Error::Bounds(format!("{max_pages} pages")))
}

async fn get_page(
    http: &reqwest::Client,
    page_url: &Url,
    headers: Vec<(&'static str, String)>,
    shown: &str,
) -> Result<String, S3Error> {
    let http_err = |e: reqwest::Error| S3Error::Http {
        url: shown.to_string(),
        reason: e.to_string(),
    };
    let mut request = http.get(page_url.clone());
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.send().await.map_err(http_err)?;
    let status = response.status();
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(http_err)?;
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(S3Error::PageTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        let code = listing::element(&text, "Code")
            .unwrap_or("")
            .chars()
            .take(64)
            .collect();
        return Err(S3Error::Status {
            url: shown.to_string(),
            status: status.as_u16(),
            code,
        });
    }
    Ok(text)
}

/// An HTTP client for S3 endpoints (system trust store, bounded waits).
pub fn http_client() -> Result<reqwest::Client, S3Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("flotilla/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| S3Error::Http {
            url: String::new(),
            reason: e.to_string(),
        })
}
