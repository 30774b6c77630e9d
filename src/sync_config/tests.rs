//! Conversion of specs, with Secrets and docker configs.
use super::*;

#[test]
fn debug_of_resolved_credentials_names_keys_only() {
    let mut secrets = SecretData::new();
    secrets.insert(
        "src".into(),
        BTreeMap::from([("password".to_string(), b"hunter2-planted".to_vec())]),
    );
    let r = Resolved {
        secrets,
        config_maps: SecretData::new(),
        docker_config: Some(
            DockerConfig::parse(
                br#"{"auths":{"h":{"username":"u","password":"hunter3-planted"}}}"#,
            )
            .expect("config"),
        ),
    };
    let text = format!("{r:?}");
    assert!(!text.contains("planted"), "{text}");
    assert!(text.contains("password"), "{text}");
}

fn spec(yaml: &str) -> ReplicationPolicySpec {
    serde_yaml::from_str(yaml).expect("valid spec")
}

#[test]
fn converts_with_secrets_and_docker_config() {
    let s = spec(
        r#"
source: {url: "http://127.0.0.1:5000", insecure: true, credentialsSecretRef: {name: src}}
destinations:
  - {name: east, url: "https://east.example.com"}
  - {name: city, url: "https://city.example.com", from: east}
tags: {include: ["v*"], semver: ">=1"}
rewrite: {prefix: mirror}
concurrency: 8
bandwidthLimit: 10Mi
"#,
    );
    let mut secrets = SecretData::new();
    secrets.insert(
        "src".into(),
        [
            ("username".to_string(), b"u".to_vec()),
            ("password".to_string(), b"p".to_vec()),
        ]
        .into(),
    );
    let docker =
        DockerConfig::parse(br#"{"auths":{"east.example.com":{"username":"e","password":"x"}}}"#)
            .expect("docker config");
    let cfg = to_sync_config(
        &s,
        &Resolved {
            secrets,
            config_maps: SecretData::new(),
            docker_config: Some(docker),
        },
    )
    .expect("converts");
    assert_eq!(
        cfg.source.credentials.as_ref().map(|c| c.username.as_str()),
        Some("u")
    );
    assert!(cfg.source.insecure);
    assert_eq!(
        cfg.destinations[0]
            .endpoint
            .credentials
            .as_ref()
            .map(|c| c.username.as_str()),
        Some("e")
    );
    assert!(cfg.destinations[1].endpoint.credentials.is_none());
    assert_eq!(cfg.destinations[1].from.as_deref(), Some("east"));
    assert_eq!(cfg.concurrency, 8);
    assert_eq!(cfg.bandwidth_limit, Some(10 * 1024 * 1024));
    assert_eq!(cfg.rewrite.apply("a"), "mirror/a");
    assert_eq!(cfg.tags.include, vec!["v*".to_string()]);
    assert!(cfg.referrers && cfg.overwrite && !cfg.deletion);
}

#[test]
fn authfile_stands_in_for_an_absent_secret() {
    let s = spec(
        "source: {url: 'https://s.example.com', credentialsSecretRef: {name: absent}}\ndestinations: [{name: a, url: 'https://a'}]",
    );
    let docker =
        DockerConfig::parse(br#"{"auths":{"s.example.com":{"username":"cli","password":"x"}}}"#)
            .expect("docker config");
    let cfg = to_sync_config(
        &s,
        &Resolved {
            secrets: SecretData::new(),
            config_maps: SecretData::new(),
            docker_config: Some(docker),
        },
    )
    .expect("converts");
    assert_eq!(
        cfg.source.credentials.map(|c| c.username),
        Some("cli".to_string())
    );
}

#[test]
fn explains_what_to_fix() {
    let s = spec("source: {registryRef: {name: hq}}\ndestinations: [{name: a, url: 'https://a'}]");
    let e = to_sync_config(&s, &Resolved::default()).expect_err("registryRef");
    assert!(
        e.to_string().starts_with("spec.source.registryRef: ") && e.to_string().contains("set url"),
        "{e}"
    );
    let s = spec(
        "source: {url: 'https://s', credentialsSecretRef: {name: nope}}\ndestinations: [{name: a, url: 'https://a'}]",
    );
    let e = to_sync_config(&s, &Resolved::default()).expect_err("missing secret");
    assert!(
        e.to_string()
            .starts_with("spec.source.credentialsSecretRef: Secret \"nope\""),
        "{e}"
    );
}

fn error(yaml: &str, secrets: SecretData) -> String {
    let resolved = Resolved {
        secrets,
        config_maps: SecretData::new(),
        docker_config: None,
    };
    to_sync_config(&spec(yaml), &resolved)
        .expect_err("refused")
        .to_string()
}

const ONE_DEST: &str = "destinations: [{name: east, url: 'https://east'}]\n";

#[test]
fn every_error_names_its_field() {
    let src = "source: {url: 'https://s'}\n";
    let e = error(
        &format!("{src}{ONE_DEST}bandwidthLimit: 5Xi"),
        SecretData::new(),
    );
    assert!(
        e.starts_with("spec.bandwidthLimit: \"5Xi\" is not a byte quantity"),
        "{e}"
    );
    let e = error(&format!("{src}{ONE_DEST}concurrency: 0"), SecretData::new());
    assert_eq!(e, "spec.concurrency: 0 is below the minimum of 1");
    let e = error(
        &format!("{src}{ONE_DEST}maxDeletions: -1"),
        SecretData::new(),
    );
    assert_eq!(e, "spec.maxDeletions: -1 is below the minimum of 0");
    let e = error(
        &format!("{src}{ONE_DEST}activeDeadlineSeconds: 0"),
        SecretData::new(),
    );
    assert!(e.starts_with("spec.activeDeadlineSeconds: "), "{e}");
    let e = error(
        &format!("{src}{ONE_DEST}retry: {{requestTimeoutSeconds: 0}}"),
        SecretData::new(),
    );
    assert!(e.starts_with("spec.retry.requestTimeoutSeconds: "), "{e}");
    let e = error(
        &format!("{src}{ONE_DEST}retry: {{maxAttempts: 0}}"),
        SecretData::new(),
    );
    assert!(e.starts_with("spec.retry.maxAttempts: "), "{e}");
    let e = error(
        &format!("{src}{ONE_DEST}retry: {{initialBackoffMillis: -1}}"),
        SecretData::new(),
    );
    assert!(e.starts_with("spec.retry.initialBackoffMillis: "), "{e}");
    let e = error(
        &format!("{src}destinations: [{{name: east, registryRef: {{name: hq}}}}]"),
        SecretData::new(),
    );
    assert!(
        e.starts_with("spec.destinations[east].registryRef: "),
        "{e}"
    );
    let e = error(
        &format!("{src}destinations: [{{name: east}}]"),
        SecretData::new(),
    );
    assert_eq!(
        e,
        "spec.destinations[east]: neither url nor registryRef is set"
    );
    let mut secrets = SecretData::new();
    secrets.insert("ca".into(), [("other".to_string(), b"x".to_vec())].into());
    let e = error(
        &format!(
            "source: {{url: 'https://s', caSecretRef: {{name: ca, key: ca.crt}}}}\n{ONE_DEST}"
        ),
        secrets,
    );
    assert_eq!(
        e,
        "spec.source.caSecretRef: Secret \"ca\" has no key \"ca.crt\""
    );
}

#[test]
fn a_malformed_dockerconfigjson_is_reported_without_its_content() {
    let mut secrets = SecretData::new();
    secrets.insert(
        "creds".into(),
        [(
            ".dockerconfigjson".to_string(),
            br#"{"auths": {"east": {"username": "u", "password": 4711123}}}"#.to_vec(),
        )]
        .into(),
    );
    let e = error(
        "source: {url: 'https://s'}\ndestinations: [{name: east, url: 'https://east', credentialsSecretRef: {name: creds}}]",
        secrets,
    );
    assert!(
        e.starts_with("spec.destinations[east].credentialsSecretRef: Secret \"creds\" key .dockerconfigjson: auths[\"east\"].password must be a string"),
        "{e}"
    );
    assert!(!e.contains("4711123"), "{e}");
}
