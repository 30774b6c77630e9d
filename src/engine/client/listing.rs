//! Listings and their pagination: the catalog and the tags of a repository, complete or
//! an error, never a shorter list.

use std::collections::HashSet;

use reqwest::StatusCode;
use reqwest::header;
use url::Url;

use super::RegistryClient;
use super::error::ClientError;
use super::request::{self, same_origin};
use crate::engine::link;

/// The most read of one page of `_catalog` or `tags/list` (1000 names of 255 characters
/// fit four times over).
pub const MAX_PAGE_BYTES: usize = 1 << 20;
/// The most names one listing (the catalog, or the tags of one repository) may hold.
pub const MAX_LISTING: usize = 100_000;
/// The most pages one listing may take.
pub const MAX_PAGES: usize = 2_000;

/// The names of one listing page: `field` must be an array of strings, or `null` (none).
pub(super) fn page_names(body: &[u8], field: &str) -> Result<Vec<String>, String> {
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

/// The bookkeeping of one paginated listing, pure: each page at most once, at most
/// [`MAX_PAGES`] pages and [`MAX_LISTING`] names, `Link`s only on the registry's own origin.
#[derive(Debug)]
pub(super) struct Pagination {
    base: Url,
    seen: HashSet<Url>,
    names: usize,
}

impl Pagination {
    /// A listing of the registry at `base`.
    pub(super) fn new(base: &Url) -> Self {
        Self {
            base: base.clone(),
            seen: HashSet::new(),
            names: 0,
        }
    }

    /// Page `url` is about to be read.
    pub(super) fn visit(&mut self, url: &Url) -> Result<(), String> {
        if !self.seen.insert(url.clone()) {
            return Err(format!(
                "the pagination loops (Link {} was followed already); the listing is incomplete",
                url.path()
            ));
        }
        if self.seen.len() > MAX_PAGES {
            return Err(format!(
                "more than {MAX_PAGES} pages; the listing is incomplete"
            ));
        }
        Ok(())
    }

    /// A page brought `n` names.
    pub(super) fn count(&mut self, n: usize) -> Result<(), String> {
        self.names += n;
        if self.names > MAX_LISTING {
            return Err(format!(
                "more than {MAX_LISTING} names; the listing is incomplete"
            ));
        }
        Ok(())
    }

    /// The page after `current`, from its `Link` (`None`: the listing is complete).
    pub(super) fn next(&self, current: &Url, link: Option<&str>) -> Result<Option<Url>, String> {
        let Some(l) = link else {
            return Ok(None);
        };
        let target = current
            .join(l)
            .map_err(|e| format!("bad Link {l:?}: {e}"))?;
        if !same_origin(&target, &self.base) {
            return Err("a Link header points at another host; the listing is incomplete".into());
        }
        Ok(Some(target))
    }
}

impl RegistryClient {
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
        let mut pages = Pagination::new(&self.base);
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            pages.visit(&url).map_err(protocol)?;
            let resp = self.send(scopes, |c| c.get(url.clone())).await?;
            let resp = self.expect(resp, &[StatusCode::OK], what).await?;
            let link = resp
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(link::next_link);
            let body = self.read_limited(resp, MAX_PAGE_BYTES, what).await?;
            let names = page_names(&body, field).map_err(protocol)?;
            pages.count(names.len()).map_err(protocol)?;
            out.extend(names);
            next = pages.next(&url, link.as_deref()).map_err(protocol)?;
        }
        Ok(out)
    }

    /// Every repository (`_catalog`, pages of 1000).
    pub async fn catalog(&self) -> Result<Vec<String>, ClientError> {
        let url = self.url(request::CATALOG_PATH)?;
        self.paged(url, &request::catalog(), "repositories", "the catalog")
            .await
    }

    /// Every tag of a repository. Only a complete, successful listing is an `Ok`: a 404 is
    /// an error here (use [`Self::tags_if_present`] where an absent repository means none).
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&request::tags_path(repo))?;
        self.paged(
            url,
            &request::pull(repo),
            "tags",
            &format!("tags of {repo}"),
        )
        .await
    }

    /// Every tag of a repository; an unknown repository (404) has none.
    pub async fn tags_if_present(&self, repo: &str) -> Result<Vec<String>, ClientError> {
        match self.tags(repo).await {
            Err(ClientError::NotFound { .. }) => Ok(Vec::new()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

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
    fn links_are_followed_on_the_registrys_origin_only() {
        let p = Pagination::new(&u("https://r.example/"));
        let first = u("https://r.example/v2/_catalog?n=1000");
        assert_eq!(p.next(&first, None), Ok(None));
        assert_eq!(
            p.next(&first, Some("/v2/_catalog?last=b&n=1000")),
            Ok(Some(u("https://r.example/v2/_catalog?last=b&n=1000")))
        );
        assert!(
            p.next(&first, Some("https://elsewhere.example/v2/_catalog?last=b"))
                .is_err()
        );
        assert!(
            p.next(&first, Some("http://r.example/v2/_catalog"))
                .is_err()
        );
    }

    #[test]
    fn a_page_is_read_once_and_a_listing_is_bounded() {
        let mut p = Pagination::new(&u("https://r.example/"));
        let page = |n: usize| u(&format!("https://r.example/v2/_catalog?last={n}"));
        p.visit(&page(0)).expect("first");
        p.visit(&page(1)).expect("second");
        let e = p.visit(&page(0)).expect_err("a loop");
        assert!(e.contains("loops"), "{e}");
        for n in 2..MAX_PAGES {
            p.visit(&page(n)).expect("within the bound");
        }
        assert!(p.visit(&page(MAX_PAGES)).is_err(), "one page too many");
        let mut p = Pagination::new(&u("https://r.example/"));
        p.count(MAX_LISTING).expect("at the bound");
        assert!(p.count(1).is_err());
    }
}
