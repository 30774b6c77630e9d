//! One page of an S3 `ListObjectsV2` response, read from its XML without a general XML
//! parser: the response is flat (`<Contents><Key>…</Key><Size>…</Size>…</Contents>`,
//! `<IsTruncated>`, `<NextContinuationToken>`), and only these elements are read.

use crate::engine::digest::Digest;

/// An object of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// Its key (XML entities decoded).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One page.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Page {
    /// The objects, in the order listed.
    pub objects: Vec<Object>,
    /// Token of the next page; `None` on the last.
    pub next: Option<String>,
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageError {
    /// Not a `ListBucketResult`.
    #[error("not a ListObjectsV2 response")]
    NotAListing,
    /// A `<Contents>` without a key or a numeric size.
    #[error("an object without a key or size")]
    BadObject,
    /// `IsTruncated` true without a token to continue from.
    #[error("a truncated listing without a continuation token")]
    NoToken,
}

fn decode(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The text of the first `<tag>…</tag>` in `xml`.
pub fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..start + end])
}

/// Reads one page.
pub fn parse_page(xml: &str) -> Result<Page, PageError> {
    if !xml.contains("<ListBucketResult") {
        return Err(PageError::NotAListing);
    }
    let mut objects = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find("<Contents>") {
        let body_start = at + "<Contents>".len();
        let len = rest[body_start..]
            .find("</Contents>")
            .ok_or(PageError::BadObject)?;
        let body = &rest[body_start..body_start + len];
        let key = element(body, "Key").ok_or(PageError::BadObject)?;
        let size = element(body, "Size")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or(PageError::BadObject)?;
        objects.push(Object {
            key: decode(key),
            size,
        });
        rest = &rest[body_start + len..];
    }
    let truncated = element(xml, "IsTruncated").is_some_and(|t| t.trim() == "true");
    let next = if truncated {
        Some(decode(
            element(xml, "NextContinuationToken").ok_or(PageError::NoToken)?,
        ))
    } else {
        None
    };
    Ok(Page { objects, next })
}

/// The digest of a blob's data object, from its key below the blobs prefix
/// (`sha256/ab/abcd…/data` → `sha256:abcd…`, a valid [`Digest`]); `None` for any other key.
pub fn blob_digest(relative_key: &str) -> Option<String> {
    let mut parts = relative_key.split('/');
    let (algorithm, shard, hex, data) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let digest: Digest = format!("{algorithm}:{hex}").parse().ok()?;
    let well_formed =
        parts.next().is_none() && data == "data" && digest.hex().get(..2) == Some(shard);
    well_formed.then(|| digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_objects_and_the_continuation_token() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>r/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>1/x&amp;y=</NextContinuationToken><Contents><Key>r/a&amp;b</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;e&quot;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>r/c</Key><Size>0</Size></Contents></ListBucketResult>"#;
        let page = parse_page(xml).expect("page");
        assert_eq!(
            page.objects,
            vec![
                Object {
                    key: "r/a&b".into(),
                    size: 12
                },
                Object {
                    key: "r/c".into(),
                    size: 0
                }
            ]
        );
        assert_eq!(page.next.as_deref(), Some("1/x&y="));
        let last = xml.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(parse_page(&last).expect("last").next, None);
    }

    #[test]
    fn refuses_what_is_not_a_listing() {
        assert_eq!(
            parse_page("<Error><Code>AccessDenied</Code></Error>"),
            Err(PageError::NotAListing)
        );
        let no_size = "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>";
        assert_eq!(parse_page(no_size), Err(PageError::BadObject));
        let no_token = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert_eq!(parse_page(no_token), Err(PageError::NoToken));
    }

    #[test]
    fn only_blob_data_keys_are_blobs() {
        let hex = "ab".to_string() + &"0".repeat(62);
        assert_eq!(
            blob_digest(&format!("sha256/ab/{hex}/data")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(blob_digest(&format!("sha256/cd/{hex}/data")), None);
        assert_eq!(blob_digest(&format!("sha256/ab/{hex}/link")), None);
        assert_eq!(blob_digest(&format!("sha256/ab/{hex}/data/x")), None);
        assert_eq!(blob_digest("sha256/ab/zz/data"), None);
    }
}
