//! AWS Signature Version 4 for one unsigned-payload-free GET (the only request Flotilla makes
//! to S3: `ListObjectsV2`). Pure: time, keys and the request come in, headers go out.

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

/// SHA-256 of the empty body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// An access key pair. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    /// Access key ID.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// A GET to sign.
#[derive(Clone, Debug)]
pub struct Get<'a> {
    /// `host[:port]` as sent in the `Host` header.
    pub host: &'a str,
    /// The URI-encoded path, e.g. `/bucket`.
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(&'a str, &'a str)],
    /// Region of the bucket.
    pub region: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
}

/// RFC 3986 encoding as SigV4 wants it: every byte but `A-Z a-z 0-9 - . _ ~` as `%XX`.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The query string, sorted and encoded, as both the URL and the canonical request carry it.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The headers that sign `get`: `(name, value)` pairs to add to the request.
pub fn sign(get: &Get<'_>, creds: &Credentials) -> Vec<(&'static str, String)> {
    let date = &get.amz_date[..get.amz_date.len().min(8)];
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let canonical = format!(
        "GET\n{}\n{}\nhost:{}\nx-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{}\n\n{signed_headers}\n{EMPTY_SHA256}",
        get.path,
        canonical_query(get.query),
        get.host,
        get.amz_date
    );
    let scope = format!("{date}/{}/s3/aws4_request", get.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        get.amz_date,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", creds.secret_key).as_bytes(), date);
    for part in [get.region, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &to_sign));
    vec![
        ("x-amz-date", get.amz_date.to_string()),
        ("x-amz-content-sha256", EMPTY_SHA256.to_string()),
        (
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                creds.access_key
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GET Bucket (List Objects) example of AWS's SigV4 documentation for S3
    /// ("Signature Calculations for the Authorization Header: Transferring Payload in a Single
    /// Chunk"), whose published signature is reproduced exactly.
    #[test]
    fn signs_the_documented_list_objects_example() {
        let creds = Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        };
        let get = Get {
            host: "examplebucket.s3.amazonaws.com",
            path: "/",
            query: &[("max-keys", "2"), ("prefix", "J")],
            region: "us-east-1",
            amz_date: "20130524T000000Z",
        };
        let headers = sign(&get, &creds);
        let auth = &headers
            .iter()
            .find(|(k, _)| *k == "authorization")
            .expect("auth")
            .1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
        assert!(
            !format!("{creds:?}").contains("wJalr"),
            "Debug shows the secret"
        );
    }

    #[test]
    fn query_is_sorted_and_encoded() {
        assert_eq!(
            canonical_query(&[
                ("prefix", "a b/c"),
                ("list-type", "2"),
                ("continuation-token", "x+y=")
            ]),
            "continuation-token=x%2By%3D&list-type=2&prefix=a%20b%2Fc"
        );
    }
}
