//! The fan-out's bookkeeping: chunking, and what each upload gets when the source or one
//! destination misbehaves. Stores are OCI layouts in a temporary directory, and a registry
//! address on the loopback where nothing listens (refused at once): no network.

use super::*;
use crate::engine::test_stores::{TempLayout, dead_registry};

#[test]
fn small_reads_are_gathered_and_large_ones_pass_as_they_are() {
    let mut c = Coalescer::default();
    assert_eq!(c.push(Bytes::from(vec![1u8; CHUNK / 2])), None);
    let full = c
        .push(Bytes::from(vec![2u8; CHUNK / 2]))
        .expect("a full chunk");
    assert_eq!(full.len(), CHUNK);
    assert_eq!((full[0], full[CHUNK - 1]), (1, 2));
    let big = Bytes::from(vec![3u8; CHUNK + 1]);
    assert_eq!(c.push(big.clone()), Some(big), "passed on as it came");
    assert_eq!(c.push(Bytes::from_static(b"tail")), None);
    assert_eq!(c.finish(), Some(Bytes::from_static(b"tail")));
    assert_eq!(c.finish(), None, "nothing left");
    // A large read after a small one is gathered behind it (the order stays).
    let mut c = Coalescer::default();
    assert_eq!(c.push(Bytes::from_static(b"a")), None);
    let joined = c.push(Bytes::from(vec![b'b'; CHUNK])).expect("full");
    assert_eq!(
        (joined.len(), joined[0], joined[1]),
        (CHUNK + 1, b'a', b'b')
    );
}

fn upload(id: usize, store: &Store) -> Upload {
    Upload {
        id,
        store: store.clone(),
        repo: "app".into(),
        session: None,
    }
}

async fn holds(store: &Store, d: &Digest) -> bool {
    store.has_blob("app", d).await.expect("check")
}

#[tokio::test]
async fn one_read_reaches_every_destination_and_a_dead_one_fails_alone() {
    let content = vec![7u8; 3 * CHUNK + 5];
    let d = Digest::of(&content);
    let src = TempLayout::new("src").await;
    src.put_blob_as(&d, &content);
    let (a, b) = (TempLayout::new("a").await, TempLayout::new("b").await);
    let read = AtomicU64::new(0);
    let out = fan_out(
        &src.store,
        "app",
        &d,
        content.len() as u64,
        vec![
            upload(0, &a.store),
            upload(1, &dead_registry()),
            upload(2, &b.store),
        ],
        None,
        &read,
    )
    .await
    .expect("the source side is sound");
    assert_eq!(
        read.load(Ordering::Relaxed),
        content.len() as u64,
        "read once"
    );
    let by_id: std::collections::HashMap<usize, &Result<u64, CopyError>> =
        out.iter().map(|(id, r)| (*id, r)).collect();
    assert_eq!(by_id.len(), 3);
    assert_eq!(by_id[&0].as_ref().ok(), Some(&(content.len() as u64)));
    assert_eq!(by_id[&2].as_ref().ok(), Some(&(content.len() as u64)));
    let e = by_id[&1].as_ref().expect_err("nothing listens there");
    assert!(e.is_unreachable(), "{e}");
    assert!(holds(&a.store, &d).await && holds(&b.store, &d).await);
}

#[tokio::test]
async fn a_blob_that_is_not_what_its_descriptor_says_is_committed_nowhere() {
    let named = Digest::of(b"what the manifest names");
    let src = TempLayout::new("liar").await;
    src.put_blob_as(&named, b"other bytes");
    let dst = TempLayout::new("dst").await;
    let read = AtomicU64::new(0);
    let run = |size: u64, d: Digest| {
        let (src, dst, read) = (&src.store, &dst.store, &read);
        async move { fan_out(src, "app", &d, size, vec![upload(0, dst)], None, read).await }
    };
    let e = run(11, named.clone()).await.expect_err("wrong digest");
    assert!(matches!(e, CopyError::DigestMismatch { .. }), "{e}");
    // Longer than declared: cut before the end.
    let e = run(4, named.clone()).await.expect_err("too long");
    assert!(matches!(e, CopyError::Oversized { size: 4, .. }), "{e}");
    // A missing blob: the source side fails for every upload.
    let e = run(6, Digest::of(b"absent")).await.expect_err("absent");
    assert!(matches!(e, CopyError::Read { .. }), "{e}");
    assert!(!holds(&dst.store, &named).await, "nothing committed");
}
