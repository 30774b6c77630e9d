//! The copy's bookkeeping: which target needs which blob, what one failed target does to the
//! others, and the retry decision of an upload. Stores are OCI layouts in temporary
//! directories and a registry on the loopback where nothing listens: no network.

use super::blobs::{Settled, settle};
use super::*;
use crate::engine::client::ClientError;
use crate::engine::store::StoreError;
use crate::engine::test_stores::{TempLayout, dead_registry};

fn refused() -> CopyError {
    CopyError::Upload {
        destination: "r".into(),
        source: StoreError::Client(ClientError::Connect {
            registry: "r".into(),
            reason: "connection refused".into(),
        }),
    }
}

fn unavailable() -> CopyError {
    CopyError::Upload {
        destination: "r".into(),
        source: StoreError::Client(ClientError::Status {
            registry: "r".into(),
            method: "PUT".into(),
            path: "/v2/a/blobs/uploads/1".into(),
            status: 503,
            body: String::new(),
            retry_after: None,
        }),
    }
}

#[test]
fn an_upload_is_retried_only_while_it_may_help() {
    assert!(matches!(settle(Ok(5), false, false), Settled::Written(5)));
    assert!(matches!(
        settle(Err(unavailable()), false, false),
        Settled::Retry(_)
    ));
    assert!(matches!(
        settle(Err(unavailable()), true, false),
        Settled::Failed(_)
    ));
    // A destination that went away: retried by `flotilla copy`, not waited for by the operator.
    assert!(matches!(
        settle(Err(refused()), false, false),
        Settled::Retry(_)
    ));
    assert!(matches!(
        settle(Err(refused()), false, true),
        Settled::Failed(_)
    ));
    assert!(matches!(
        settle(Err(unavailable()), false, true),
        Settled::Retry(_)
    ));
    let mismatch = CopyError::Internal("x".into());
    assert!(matches!(
        settle(Err(mismatch), false, false),
        Settled::Failed(_)
    ));
}

#[test]
fn a_target_keeps_its_first_failure() {
    let mut f = Failures::default();
    f.absorb(vec![(0, Err(refused())), (1, Ok(()))]);
    f.absorb(vec![(0, Err(unavailable())), (1, Err(unavailable()))]);
    assert!(matches!(
        f.take(0),
        Some(CopyError::Upload {
            source: StoreError::Client(ClientError::Connect { .. }),
            ..
        })
    ));
    assert!(matches!(f.take(1), Some(CopyError::Upload { .. })));
    assert!(!f.has(0) && f.take(2).is_none());
}

#[test]
fn a_push_error_names_the_reference_and_the_foreign_layers() {
    let d = Digest::of(b"m");
    let bytes = bytes::Bytes::from_static(b"{}");
    let m = |tag, external_layers| Manifest {
        digest: &d,
        tag,
        media_type: "x",
        bytes: &bytes,
        external_layers,
    };
    assert_eq!(
        m(Some("v1"), false).push_what("app"),
        "push of manifest app:v1"
    );
    assert_eq!(
        m(None, false).push_what("app"),
        format!("push of manifest app:{d}")
    );
    assert!(
        m(Some("v1"), true)
            .push_what("app")
            .contains("validation.manifests.urls.allow")
    );
}

fn copier(destinations: usize) -> Copier {
    Copier::new(
        destinations,
        Limiter::new(None),
        RetryConfig {
            max_attempts: 2,
            initial_backoff: std::time::Duration::from_millis(1),
            ..RetryConfig::default()
        },
        Vec::new(),
        3,
    )
}

#[test]
fn a_blob_known_in_one_repository_is_mounted_into_the_others() {
    let c = copier(2);
    let d = Digest::of(b"layer");
    assert_eq!(c.known(0, &d, "a"), (false, None));
    c.remember(0, &d, "a");
    assert_eq!(c.known(0, &d, "a"), (true, None));
    assert_eq!(c.known(0, &d, "b"), (false, Some("a".into())));
    assert_eq!(c.known(1, &d, "a"), (false, None), "another destination");
}

#[test]
fn only_a_fail_fast_run_marks_a_destination_unreachable_and_only_for_connection_errors() {
    let c = copier(2);
    c.note_failure(0, &refused());
    assert!(c.unreachable(0).is_none(), "flotilla copy retries instead");
    let c = copier(2).failing_fast(true);
    c.note_failure(0, &unavailable());
    assert!(c.unreachable(0).is_none(), "a 503 is no absence");
    c.note_failure(0, &refused());
    assert!(c.unreachable(0).is_some());
    assert!(c.unreachable(1).is_none());
}

/// A source layout holding an image (config, two layers, one of them twice) tagged `v1`.
async fn image() -> (TempLayout, Digest, Vec<Digest>, u64) {
    let src = TempLayout::new("copy-src").await;
    let blobs: Vec<&[u8]> = vec![b"{\"config\":1}", b"layer one", b"layer two"];
    let digests: Vec<Digest> = blobs.iter().map(|b| Digest::of(b)).collect();
    for (b, d) in blobs.iter().zip(&digests) {
        src.put_blob_as(d, b);
    }
    let desc = |i: usize, mt: &str| serde_json::json!({"mediaType": mt, "digest": digests[i].to_string(), "size": blobs[i].len()});
    let layer = "application/vnd.oci.image.layer.v1.tar";
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc(0, "application/vnd.oci.image.config.v1+json"),
        "layers": [desc(1, layer), desc(2, layer), desc(1, layer)],
    });
    let bytes = bytes::Bytes::from(serde_json::to_vec(&m).expect("json"));
    src.store
        .put_manifest(
            "app",
            Some("v1"),
            "application/vnd.oci.image.manifest.v1+json",
            &bytes,
        )
        .await
        .expect("manifest");
    (src, Digest::of(&bytes), digests, bytes.len() as u64)
}

fn target(id: usize, store: &Store) -> TargetRepo {
    TargetRepo {
        id,
        store: store.clone(),
        repo: "app".into(),
    }
}

#[tokio::test]
async fn a_dead_destination_fails_alone_and_then_at_once() {
    let (src, digest, blobs, manifest_len) = image().await;
    let (a, b) = (
        TempLayout::new("copy-a").await,
        TempLayout::new("copy-b").await,
    );
    let dead = dead_registry();
    let c = copier(3).failing_fast(true);
    let feeder = Feeder {
        store: &src.store,
        repo: "app",
        is_source: true,
    };
    let targets = [target(0, &a.store), target(1, &dead), target(2, &b.store)];
    let mut out = c.copy_manifest(feeder, &digest, &targets, Some("v1")).await;
    out.sort_by_key(|(id, _)| *id);
    assert!(out[0].1.is_ok() && out[2].1.is_ok(), "{out:?}");
    let e = out[1].1.as_ref().expect_err("nothing listens there");
    assert!(e.is_unreachable(), "{e}");
    for t in [&a.store, &b.store] {
        assert_eq!(
            t.resolve("app", "v1").await.expect("resolve"),
            Some(digest.clone())
        );
        for d in &blobs {
            assert!(t.has_blob("app", d).await.expect("check"), "{d}");
        }
    }
    // Each blob read once for both (the repeated layer once too) and the manifest once.
    assert_eq!(
        c.source_read.load(Ordering::Relaxed),
        12 + 9 + 9 + manifest_len
    );
    for (id, holds) in [(0, true), (1, false), (2, true)] {
        assert_eq!(c.known(id, &blobs[1], "app").0, holds, "destination {id}");
    }
    // Later in the run: the dead destination fails without a request; the others are known.
    let (out, unknown) = c.triage(&blobs[1], &targets);
    assert!(unknown.is_empty());
    let by_id: HashMap<usize, bool> = out.iter().map(|(id, r)| (*id, r.is_ok())).collect();
    assert_eq!(by_id, HashMap::from([(0, true), (1, false), (2, true)]));
}
