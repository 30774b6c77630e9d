//! The supply-chain gate of one repository's discovery: reads the referrers found beside
//! each artifact (signatures, attestations, SBOMs …), holds back artifacts whose signatures
//! do not verify ([`super::verify`]), and keeps only the referrers the policy's rules let
//! travel ([`super::referrers`]). Every read is bounded: manifests by the client's
//! [`MAX_MANIFEST_BYTES`](super::client::MAX_MANIFEST_BYTES), payloads by
//! [`MAX_PAYLOAD_BYTES`], layers per artifact by [`MAX_LAYERS`].

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures::StreamExt;

use super::client::{ClientError, RegistryClient};
use super::digest::Digest;
use super::plan::Item;
use super::referrers::{ReferrerFilter, describe};
use super::verify::evidence::{SignedPayload, evidence_layers};
use super::verify::{
    Evidence, MAX_LAYERS, MAX_PAYLOAD_BYTES, Refusal, SIGNATURE_ANNOTATION, VerifyConfig, decide,
};

/// Artifacts examined at once in one repository.
const CONCURRENCY: usize = 8;

/// An artifact held back, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unverified {
    /// `repo:tag` or `repo@digest`.
    pub artifact: String,
    /// Its digest at the source.
    pub digest: Digest,
    /// Why.
    pub refusal: Refusal,
}

/// A referrer found for an artifact (by the referrers API or the tag scheme), with what the
/// destinations hold (`H`, opaque here).
pub struct Found<H> {
    /// The referrer itself; its `subject` is the artifact it refers to.
    pub item: Item,
    /// What the destinations hold under its reference.
    pub held: H,
}

/// What one policy asks of artifacts and their referrers.
pub struct Gate {
    /// Signatures required (`None`: none).
    pub verify: Option<VerifyConfig>,
    /// Which referrers travel.
    pub filter: ReferrerFilter,
    /// Whether `filter` has rules (else every referrer travels unread).
    pub filtering: bool,
    /// Whether referrers are copied at all (`spec.referrers`).
    pub copy_referrers: bool,
}

/// The subjects and referrers that go on to planning, and those held back.
pub type Gated<H> = (Vec<(Item, H)>, Vec<Unverified>);

impl Gate {
    /// Whether the gate has anything to do (else discovery is as without it).
    pub fn active(&self) -> bool {
        self.verify.is_some() || self.filtering
    }

    /// Applies the gate to the `subjects` of `repo` and the `referrers` found for them.
    /// `settled` says whether every destination already holds an item: an artifact settled
    /// with all its referrers would have nothing copied, so nothing of it is read.
    pub async fn apply<H>(
        &self,
        client: &RegistryClient,
        repo: &str,
        subjects: Vec<(Item, H)>,
        referrers: Vec<Found<H>>,
        settled: impl Fn(&Item, &H) -> bool,
    ) -> Result<Gated<H>, ClientError> {
        let (done, subjects, referrers) = split_settled(subjects, referrers, settled);
        let mut kept: Vec<(Item, H)> = Vec::with_capacity(subjects.len() + done.len());
        for (item, held, refs) in done {
            kept.push((item, held));
            if self.copy_referrers {
                kept.extend(refs.into_iter().map(|f| (f.item, f.held)));
            }
        }
        // Futures built first, then run a few at once (a closure returning a borrowing
        // future would not be `Send` for every lifetime, as the controller needs).
        let reads: Vec<_> = referrers
            .iter()
            .map(|f| referrer_manifest(client, repo, &f.item.digest))
            .collect();
        let read: Vec<Result<Bytes, ClientError>> = futures::stream::iter(reads)
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut manifests = Vec::with_capacity(referrers.len());
        for (f, m) in referrers.into_iter().zip(read) {
            manifests.push((f, m?));
        }
        let mut unverified = Vec::new();
        let verdicts: Vec<Result<Option<Refusal>, ClientError>> = match &self.verify {
            None => subjects.iter().map(|_| Ok(None)).collect(),
            Some(cfg) => {
                let checks: Vec<_> = subjects
                    .iter()
                    .map(|(item, _)| {
                        let beside: Vec<Bytes> = manifests
                            .iter()
                            .filter(|(f, _)| f.item.subject.as_ref() == Some(&item.digest))
                            .map(|(_, m)| m.clone())
                            .collect();
                        check(cfg, client, repo, item.digest.clone(), beside)
                    })
                    .collect();
                futures::stream::iter(checks)
                    .buffered(CONCURRENCY)
                    .collect()
                    .await
            }
        };
        let mut passed = HashSet::new();
        for ((item, held), verdict) in subjects.into_iter().zip(verdicts) {
            match verdict? {
                None => {
                    passed.insert(item.digest.clone());
                    kept.push((item, held));
                }
                Some(refusal) => {
                    tracing::warn!(artifact = %item.display(), digest = %item.digest, reason = refusal.code(), %refusal, "held back: not verified");
                    unverified.push(Unverified {
                        artifact: item.display(),
                        digest: item.digest,
                        refusal,
                    });
                }
            }
        }
        if self.copy_referrers {
            for (f, bytes) in manifests {
                if f.item.subject.as_ref().is_some_and(|s| passed.contains(s))
                    && (!self.filtering || self.filter.matches(&describe(&bytes)))
                {
                    kept.push((f.item, f.held));
                }
            }
        }
        Ok((kept, unverified))
    }
}

/// A settled subject with its referrers.
type Settled<H> = (Item, H, Vec<Found<H>>);

/// The subjects that, with every referrer of theirs, are `settled`; and the others with
/// their referrers.
#[allow(clippy::type_complexity)]
fn split_settled<H>(
    subjects: Vec<(Item, H)>,
    referrers: Vec<Found<H>>,
    settled: impl Fn(&Item, &H) -> bool,
) -> (Vec<Settled<H>>, Vec<(Item, H)>, Vec<Found<H>>) {
    let unsettled: HashSet<Digest> = subjects
        .iter()
        .filter(|(i, h)| !settled(i, h))
        .map(|(i, _)| i.digest.clone())
        .chain(
            referrers
                .iter()
                .filter(|f| !settled(&f.item, &f.held))
                .filter_map(|f| f.item.subject.clone()),
        )
        .collect();
    let (rest, done): (Vec<_>, Vec<_>) = subjects
        .into_iter()
        .partition(|(i, _)| unsettled.contains(&i.digest));
    let mut done: Vec<Settled<H>> = done.into_iter().map(|(i, h)| (i, h, Vec::new())).collect();
    let at: HashMap<Digest, usize> = done
        .iter()
        .enumerate()
        .map(|(n, (i, _, _))| (i.digest.clone(), n))
        .collect();
    let mut open = Vec::new();
    for f in referrers {
        match f.item.subject.as_ref().and_then(|s| at.get(s)) {
            Some(&n) => done[n].2.push(f),
            None => open.push(f),
        }
    }
    (done, rest, open)
}

/// The verdict on `subject`, from the referrer manifests `beside` it.
async fn check(
    cfg: &VerifyConfig,
    client: &RegistryClient,
    repo: &str,
    subject: Digest,
    beside: Vec<Bytes>,
) -> Result<Option<Refusal>, ClientError> {
    let ev = evidence(client, repo, &beside).await?;
    Ok(decide(cfg, &subject, &ev))
}

/// A referrer's manifest by digest, checked against it.
async fn referrer_manifest(
    client: &RegistryClient,
    repo: &str,
    digest: &Digest,
) -> Result<Bytes, ClientError> {
    let (bytes, _) = client.get_manifest(repo, digest.as_str()).await?;
    if &Digest::of(&bytes) != digest {
        return Err(ClientError::Protocol {
            registry: client.name().to_string(),
            reason: format!("manifest {repo}@{digest} arrived with other content"),
        });
    }
    Ok(bytes)
}

/// The signatures and attestations in the referrer manifests `beside` one artifact: each
/// evidence layer's blob read (bounded) and checked against its digest.
async fn evidence(
    client: &RegistryClient,
    repo: &str,
    beside: &[Bytes],
) -> Result<Evidence, ClientError> {
    let mut ev = Evidence::default();
    let layers = beside
        .iter()
        .flat_map(|m| evidence_layers(m))
        .take(MAX_LAYERS);
    for layer in layers {
        if layer.size > MAX_PAYLOAD_BYTES as u64 {
            continue;
        }
        let blob = client
            .get_small_blob(repo, &layer.digest, MAX_PAYLOAD_BYTES)
            .await?;
        if layer.is_signature() {
            let signature = layer
                .annotations
                .get(SIGNATURE_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            ev.signatures.push(SignedPayload {
                payload: blob.to_vec(),
                signature,
            });
        } else {
            ev.attestations.push(blob.to_vec());
        }
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(tag: &str, subject: Option<&Digest>) -> Item {
        Item {
            repo: "r".into(),
            tag: Some(tag.into()),
            digest: Digest::of(tag.as_bytes()),
            subject: subject.cloned(),
        }
    }

    #[test]
    fn only_artifacts_settled_with_all_their_referrers_skip_the_gate() {
        let (a, b, c) = (item("a", None), item("b", None), item("c", None));
        let found = |tag: &str, of: &Item, held: bool| Found {
            item: item(tag, Some(&of.digest)),
            held,
        };
        let referrers = vec![
            found("a.sig", &a, true),
            found("b.sig", &b, false),
            found("c.sig", &c, true),
        ];
        // a and its signature are everywhere; b's signature is new; c itself is new.
        let subjects = vec![(a.clone(), true), (b.clone(), true), (c.clone(), false)];
        let (done, rest, open) = split_settled(subjects, referrers, |_, held| *held);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, a);
        assert_eq!(done[0].2.len(), 1, "a travels with its referrers, unread");
        let rest: Vec<&str> = rest.iter().filter_map(|(i, _)| i.tag.as_deref()).collect();
        assert_eq!(rest, vec!["b", "c"]);
        let open: Vec<&str> = open.iter().filter_map(|f| f.item.tag.as_deref()).collect();
        assert_eq!(open, vec!["b.sig", "c.sig"]);
    }
}
