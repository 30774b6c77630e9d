//! `spec.verify` and `spec.referrerFilter` into the engine's terms: the trusted keys parsed
//! from the Secrets and ConfigMaps they name, the referrer rules as they are.

use super::{Resolved, SpecError, SpecProblem, at};
use crate::api::ReplicationPolicySpec;
use crate::engine::referrers::{ReferrerRule, ReferrerRules};
use crate::engine::verify::{VerifyConfig, parse_keys};
use crate::field_path::FieldPath;

/// The referrer rules of `spec.referrerFilter` (none when unset).
pub fn referrer_rules(spec: &ReplicationPolicySpec) -> ReferrerRules {
    let Some(f) = &spec.referrer_filter else {
        return ReferrerRules::default();
    };
    let rules = |rs: &[crate::api::verify::ReferrerRule]| {
        rs.iter()
            .map(|r| ReferrerRule {
                artifact_type: r.artifact_type.clone(),
                annotations: r.annotations.clone(),
            })
            .collect()
    };
    ReferrerRules {
        include: rules(&f.include),
        exclude: rules(&f.exclude),
    }
}

/// The keys and attestations of `spec.verify`; an error names the key reference at fault
/// (`spec.verify.keys[0].secretKeyRef`). Never quotes key material.
pub fn verify(
    spec: &ReplicationPolicySpec,
    resolved: &Resolved,
) -> Result<Option<VerifyConfig>, SpecError> {
    let Some(v) = &spec.verify else {
        return Ok(None);
    };
    let mut keys = Vec::new();
    for (i, k) in v.keys.iter().enumerate() {
        let field = FieldPath::spec().field("verify").field("keys").index(i);
        let (field, kind, name, key, store) = match (&k.secret_key_ref, &k.config_map_key_ref) {
            (Some(s), None) => (
                field.field("secretKeyRef"),
                "Secret",
                &s.name,
                &s.key,
                &resolved.secrets,
            ),
            (None, Some(c)) => (
                field.field("configMapKeyRef"),
                "ConfigMap",
                &c.name,
                &c.key,
                &resolved.config_maps,
            ),
            _ => return Err(at(field, SpecProblem::KeyReference)),
        };
        let data = store.get(name).ok_or_else(|| {
            at(
                field.clone(),
                match kind {
                    "Secret" => SpecProblem::MissingSecret { name: name.clone() },
                    _ => SpecProblem::MissingConfigMap { name: name.clone() },
                },
            )
        })?;
        let pem = data.get(key).ok_or_else(|| {
            at(
                field.clone(),
                SpecProblem::ObjectKey {
                    kind,
                    name: name.clone(),
                    key: key.clone(),
                },
            )
        })?;
        let found = parse_keys(&format!("{kind} {name} key {key}"), pem)
            .map_err(|e| at(field.clone(), SpecProblem::Key(e)))?;
        keys.extend(found);
    }
    Ok(Some(VerifyConfig {
        keys,
        attestations: v.attestations.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync_config::SecretData;

    /// A P-256 public key made with openssl for this test.
    const PUB: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENKTIl0HLcF1UVVK/zh2IJFfbYuBb\nbEs9qSQfFpDQ1yvMQ7u05Ka9hLP0LWOyZHnbfeZ3GhhSSIbCwgikWUZ40w==\n-----END PUBLIC KEY-----\n";

    fn spec(verify: &str) -> ReplicationPolicySpec {
        serde_yaml::from_str(&format!(
            "source: {{url: 'http://s'}}\ndestinations: [{{name: a, url: 'http://a'}}]\n{verify}"
        ))
        .expect("spec")
    }

    fn one(name: &str, key: &str, value: &str) -> SecretData {
        [(
            name.to_string(),
            [(key.to_string(), value.as_bytes().to_vec())].into(),
        )]
        .into()
    }

    #[test]
    fn keys_come_from_secrets_and_config_maps() {
        let s = spec(
            "verify: {keys: [{secretKeyRef: {name: s, key: cosign.pub}}, {configMapKeyRef: {name: c, key: k}}], attestations: [x]}",
        );
        let resolved = Resolved {
            secrets: one("s", "cosign.pub", PUB),
            config_maps: one("c", "k", PUB),
            docker_config: None,
        };
        let v = verify(&s, &resolved).expect("ok").expect("some");
        assert_eq!(v.keys.len(), 2);
        assert_eq!(v.keys[1].source, "ConfigMap c key k");
        assert_eq!(v.attestations, vec!["x".to_string()]);
        assert!(verify(&spec(""), &resolved).expect("ok").is_none());
    }

    #[test]
    fn errors_name_the_key_reference() {
        let s = spec(
            "verify: {keys: [{secretKeyRef: {name: s, key: cosign.pub}}, {configMapKeyRef: {name: c, key: k}}]}",
        );
        let err = |r: Resolved| verify(&s, &r).expect_err("refused").to_string();
        let secrets = one("s", "cosign.pub", PUB);
        assert_eq!(
            err(Resolved::default()),
            "spec.verify.keys[0].secretKeyRef: Secret \"s\" was not provided (and no docker config entry for the endpoint's host stands in)"
        );
        assert_eq!(
            err(Resolved {
                secrets: secrets.clone(),
                ..Default::default()
            }),
            "spec.verify.keys[1].configMapKeyRef: ConfigMap \"c\" was not provided"
        );
        assert_eq!(
            err(Resolved {
                secrets: secrets.clone(),
                config_maps: one("c", "other", PUB),
                ..Default::default()
            }),
            "spec.verify.keys[1].configMapKeyRef: ConfigMap \"c\" has no key \"k\""
        );
        let e = err(Resolved {
            secrets: one("s", "cosign.pub", "not a key"),
            ..Default::default()
        });
        assert!(
            e.starts_with("spec.verify.keys[0].secretKeyRef: Secret s key cosign.pub: no"),
            "{e}"
        );
    }

    #[test]
    fn referrer_rules_are_carried_over() {
        let s = spec(
            "referrerFilter: {include: [{artifactType: 'application/spdx+json'}], exclude: [{annotations: {a: b}}]}",
        );
        let r = referrer_rules(&s);
        assert_eq!(
            r.include[0].artifact_type.as_deref(),
            Some("application/spdx+json")
        );
        assert_eq!(r.exclude[0].annotations["a"], "b");
        assert!(referrer_rules(&spec("")).is_empty());
    }
}
