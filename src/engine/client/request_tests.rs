//! Request building without a registry: URLs, scopes, headers, credentials' reach.

use super::*;

fn u(s: &str) -> Url {
    Url::parse(s).expect("url")
}

/// A plain HTTP client (the process's TLS provider installed first, as the registry client does).
fn client() -> Client {
    crate::engine::client::ensure_crypto_provider();
    Client::new()
}

fn digest() -> Digest {
    Digest::of(b"x")
}

#[test]
fn paths_and_scopes_of_each_call() {
    let base = u("https://r.example:5000/");
    let d = digest();
    let join = |p: &str| base.join(p).expect("join").to_string();
    assert_eq!(
        join(&manifest_path("team/app", "v1")),
        "https://r.example:5000/v2/team/app/manifests/v1"
    );
    assert_eq!(
        join(&blob_path("app", &d)),
        format!("https://r.example:5000/v2/app/blobs/{d}")
    );
    assert_eq!(
        join(&uploads_path("app")),
        "https://r.example:5000/v2/app/blobs/uploads/"
    );
    assert_eq!(
        join(&tags_path("app")),
        "https://r.example:5000/v2/app/tags/list?n=1000"
    );
    assert_eq!(
        join(CATALOG_PATH),
        "https://r.example:5000/v2/_catalog?n=1000"
    );
    assert_eq!(
        join(&referrers_path("app", &d)),
        format!("https://r.example:5000/v2/app/referrers/{d}")
    );
    assert_eq!(pull("a/b"), ["repository:a/b:pull"]);
    assert_eq!(push("a/b"), ["repository:a/b:pull,push"]);
    assert_eq!(delete("a/b"), ["repository:a/b:delete"]);
    assert_eq!(
        mount_scopes("to", "from"),
        ["repository:to:pull,push", "repository:from:pull"]
    );
    assert_eq!(catalog(), ["registry:catalog:*"]);
}

#[test]
fn a_mount_and_a_commit_add_their_query_to_what_is_there() {
    let d = digest();
    let m = with_mount(u("https://r.example/v2/to/blobs/uploads/"), &d, "team/from");
    assert_eq!(
        m.query(),
        Some(format!("mount=sha256%3A{}&from=team%2Ffrom", d.hex()).as_str())
    );
    // Distribution's Location carries its upload state in the query: kept, digest added.
    let c = commit_url(u("https://r.example/v2/a/blobs/uploads/abc?_state=xyz"), &d);
    let pairs: Vec<(String, String)> = c.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [
            ("_state".to_string(), "xyz".to_string()),
            ("digest".to_string(), d.to_string())
        ]
    );
    assert_eq!(c.path(), "/v2/a/blobs/uploads/abc");
}

#[test]
fn a_location_resolves_against_the_url_that_answered() {
    let answered = u("https://r.example:5000/v2/a/blobs/uploads/");
    assert_eq!(
        resolve_location(&answered, Some("/v2/a/blobs/uploads/u1?_state=s")).expect("relative"),
        u("https://r.example:5000/v2/a/blobs/uploads/u1?_state=s")
    );
    assert_eq!(
        resolve_location(&answered, Some("u2")).expect("relative to the path"),
        u("https://r.example:5000/v2/a/blobs/uploads/u2")
    );
    assert_eq!(
        resolve_location(&answered, Some("https://storage.example/up?sig=1"))
            .expect("absolute elsewhere"),
        u("https://storage.example/up?sig=1")
    );
    assert!(resolve_location(&answered, None).is_err());
    assert!(resolve_location(&answered, Some("http://[::1")).is_err());
}

#[test]
fn reads_accept_what_is_copied_and_writes_say_what_they_send() {
    let c = client();
    let url = u("https://r.example/v2/a/manifests/v1");
    for head in [false, true] {
        let r = manifest_read(&c, &url, head).build().expect("request");
        assert_eq!(r.method(), if head { "HEAD" } else { "GET" });
        let accept = r.headers()[header::ACCEPT].to_str().expect("ascii");
        for mt in [
            manifest::OCI_INDEX,
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ] {
            assert!(accept.split(", ").any(|a| a == mt), "{mt} in {accept}");
        }
    }
    let r = manifest_write(
        &c,
        &url,
        "application/vnd.oci.image.manifest.v1+json",
        "{}".into(),
    )
    .build()
    .expect("request");
    assert_eq!(r.method(), "PUT");
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(r.body().and_then(|b| b.as_bytes()), Some(&b"{}"[..]));
    let r = referrers_read(&c, &url).build().expect("request");
    assert_eq!(r.headers()[header::ACCEPT], manifest::OCI_INDEX);
    let r = upload_commit(&c, &url).build().expect("request");
    assert_eq!(
        (r.method().as_str(), &r.headers()[header::CONTENT_LENGTH]),
        ("PUT", &HeaderValue::from_static("0"))
    );
    let r = blob_write(&c, url.clone(), reqwest::Body::from("abc"))
        .build()
        .expect("request");
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
}

#[test]
fn credentials_go_only_to_the_registrys_own_origin() {
    let c = client();
    let base = u("https://r.example/");
    let auth = || Some("Bearer t0k3n".to_string());
    for (to, sent) in [
        ("https://r.example/v2/a/blobs/uploads/1", true),
        ("https://r.example:443/v2/", true),
        ("https://storage.example/bucket/up?sig=1", false),
        ("http://r.example/v2/", false),
        ("https://r.example:8443/v2/", false),
        ("https://r.example.evil.example/v2/", false),
    ] {
        let mut req = c.get(u(to)).build().expect("request");
        authorize(&mut req, &base, auth());
        assert_eq!(
            req.headers().get(header::AUTHORIZATION).is_some(),
            sent,
            "{to}"
        );
    }
    let mut req = c.get(u("https://r.example/v2/")).build().expect("request");
    authorize(&mut req, &base, None);
    assert!(req.headers().get(header::AUTHORIZATION).is_none());
    // A value that is no header (a newline from a hostile token endpoint) is not sent.
    authorize(&mut req, &base, Some("Bearer a\nb".into()));
    assert!(req.headers().get(header::AUTHORIZATION).is_none());
}

#[test]
fn origins_compare_scheme_host_and_port() {
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
fn a_content_type_loses_its_parameters() {
    let mut h = HeaderMap::new();
    assert_eq!(content_type(&h), "");
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.oci.image.index.v1+json; charset=utf-8"),
    );
    assert_eq!(content_type(&h), manifest::OCI_INDEX);
}
