//! The verdicts, with keys and signatures made here by the same crate (real cosign
//! signatures are the integration tests' part: tests/it/engine_signatures.rs).

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};

use super::evidence::{SignedPayload, pae};
use super::*;

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).expect("valid scalar")
}

fn pem(k: &SigningKey) -> String {
    k.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem")
}

fn cfg(keys: &[&SigningKey], attestations: &[&str]) -> VerifyConfig {
    VerifyConfig {
        keys: keys
            .iter()
            .flat_map(|k| parse_keys("test", pem(k).as_bytes()).expect("key"))
            .collect(),
        attestations: attestations.iter().map(|s| s.to_string()).collect(),
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn payload(d: &Digest) -> Vec<u8> {
    format!(r#"{{"critical":{{"identity":{{"docker-reference":"r/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#).into_bytes()
}

fn sign(k: &SigningKey, payload: Vec<u8>) -> SignedPayload {
    let sig: Signature = k.sign(&payload);
    SignedPayload {
        signature: b64(sig.to_der().as_bytes()),
        payload,
    }
}

fn signed(sigs: Vec<SignedPayload>) -> Evidence {
    Evidence {
        signatures: sigs,
        attestations: Vec::new(),
    }
}

#[test]
fn a_trusted_signature_of_the_digest_passes() {
    let (k, d) = (signing_key(1), Digest::of(b"image"));
    assert_eq!(
        decide(&cfg(&[&k], &[]), &d, &signed(vec![sign(&k, payload(&d))])),
        None
    );
    // Any one trusted key suffices; other signatures beside it do not matter.
    let other = signing_key(2);
    let ev = signed(vec![sign(&other, payload(&d)), sign(&k, payload(&d))]);
    assert_eq!(decide(&cfg(&[&other, &k], &[]), &d, &ev), None);
    assert_eq!(decide(&cfg(&[&k], &[]), &d, &ev), None);
}

#[test]
fn unsigned_untrusted_tampered_and_replayed_are_refused() {
    let (k, other, d) = (signing_key(1), signing_key(2), Digest::of(b"image"));
    let c = cfg(&[&k], &[]);
    assert_eq!(
        decide(&c, &d, &Evidence::default()),
        Some(Refusal::Unsigned)
    );
    assert_eq!(
        decide(&c, &d, &signed(vec![sign(&other, payload(&d))])),
        Some(Refusal::Untrusted { found: 1 })
    );
    // Tampered: the payload changed after signing.
    let mut s = sign(&k, payload(&d));
    s.payload[10] ^= 1;
    assert_eq!(
        decide(&c, &d, &signed(vec![s])),
        Some(Refusal::Untrusted { found: 1 })
    );
    // A garbage signature annotation.
    let mut s = sign(&k, payload(&d));
    s.signature = "not base64!".into();
    assert_eq!(
        decide(&c, &d, &signed(vec![s])).map(|r| r.code()),
        Some("untrusted")
    );
    // Replayed: a real signature of another image under this one's signature tag.
    let elsewhere = Digest::of(b"other image");
    let r = decide(&c, &d, &signed(vec![sign(&k, payload(&elsewhere))]));
    assert_eq!(r.as_ref().map(Refusal::code), Some("digestMismatch"));
    assert!(r.expect("refused").to_string().contains(elsewhere.as_str()));
    // Signed bytes that are not a cosign payload.
    let junk = sign(
        &k,
        br#"{"critical":{"image":{"docker-manifest-digest":"x"},"type":"other"}}"#.to_vec(),
    );
    assert_eq!(
        decide(&c, &d, &signed(vec![junk])).map(|r| r.code()),
        Some("untrusted")
    );
}

fn attestation(k: &SigningKey, d: &Digest, predicate_type: &str) -> Vec<u8> {
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"{predicate_type}","subject":[{{"name":"r/app","digest":{{"sha256":"{}"}}}}],"predicate":{{}}}}"#,
        d.hex()
    );
    let t = "application/vnd.in-toto+json";
    let sig: Signature = k.sign(&pae(t, statement.as_bytes()));
    format!(
        r#"{{"payloadType":"{t}","payload":"{}","signatures":[{{"keyid":"","sig":"{}"}}]}}"#,
        b64(statement.as_bytes()),
        b64(sig.to_der().as_bytes())
    )
    .into_bytes()
}

#[test]
fn required_attestations_must_be_signed_for_the_digest() {
    let (k, other, d) = (signing_key(1), signing_key(2), Digest::of(b"image"));
    let spdx = "https://spdx.dev/Document";
    let c = cfg(&[&k], &[spdx]);
    let mut ev = signed(vec![sign(&k, payload(&d))]);
    let missing = Some(Refusal::MissingAttestation(spdx.into()));
    assert_eq!(decide(&c, &d, &ev), missing);
    ev.attestations
        .push(attestation(&k, &d, "https://slsa.dev/provenance/v1"));
    ev.attestations.push(attestation(&other, &d, spdx));
    ev.attestations
        .push(attestation(&k, &Digest::of(b"else"), spdx));
    assert_eq!(
        decide(&c, &d, &ev),
        missing,
        "wrong type, wrong key, wrong subject"
    );
    ev.attestations.push(attestation(&k, &d, spdx));
    assert_eq!(decide(&c, &d, &ev), None);
}

#[test]
fn keys_parse_from_pem_bundles_and_name_their_source() {
    let (a, b) = (signing_key(1), signing_key(2));
    let bundle = format!("{}\n{}", pem(&a), pem(&b));
    assert_eq!(
        parse_keys("Secret k/cosign.pub", bundle.as_bytes())
            .expect("two")
            .len(),
        2
    );
    let e = parse_keys("Secret k/cosign.pub", b"hello").expect_err("no key");
    assert!(e.to_string().starts_with("Secret k/cosign.pub: no"), "{e}");
    let bad = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    let e = parse_keys("ConfigMap k/key", bad.as_bytes()).expect_err("bad");
    assert!(matches!(e, KeyError::Invalid { index: 1, .. }), "{e}");
    assert!(matches!(
        parse_keys("x", &[0xff, 0xfe]),
        Err(KeyError::NotText { .. })
    ));
}

#[test]
fn evidence_layers_are_read_from_manifests() {
    let d = Digest::of(b"p");
    let m = format!(
        r#"{{"schemaVersion":2,"layers":[{{"mediaType":"{SIMPLE_SIGNING}","digest":"{d}","size":1,"annotations":{{"{SIGNATURE_ANNOTATION}":"AA=="}}}},{{"mediaType":"{SIMPLE_SIGNING}","digest":"{d}","size":1}},{{"mediaType":"{DSSE_ENVELOPE}","digest":"{d}","size":1}},{{"mediaType":"text/spdx","digest":"{d}","size":1}}]}}"#
    );
    let layers = evidence::evidence_layers(m.as_bytes());
    assert_eq!(
        layers.len(),
        2,
        "the unsigned payload and the SBOM layer are no evidence"
    );
    assert!(layers[0].is_signature() && layers[1].is_attestation());
    assert!(evidence::evidence_layers(b"not json").is_empty());
}
