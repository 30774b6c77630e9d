//! What of a URL or an HTTP error may appear in a message: never user info or a query
//! (presigned URLs carry credentials there).

use url::Url;

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
pub(super) fn without_secrets(e: &reqwest::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn a_failed_request_quotes_its_url_without_the_query() {
        // Nothing listens on port 9 of the loopback: the connection is refused at once.
        crate::engine::client::ensure_crypto_provider();
        let e = reqwest::Client::new()
            .get("http://user:pw@127.0.0.1:9/v2/a/blobs/x?X-Amz-Signature=s3cr3t")
            .send()
            .await
            .expect_err("refused");
        let m = without_secrets(&e);
        assert!(m.contains("127.0.0.1:9/v2/a/blobs/x"), "{m}");
        assert!(!m.contains("s3cr3t") && !m.contains("pw@"), "{m}");
    }
}
