use super::*;
use crate::api::registry::RegistrySpec;
use crate::fleet::operator_account::OperatorAccount;
use k8s_openapi::api::core::v1::PodSpec;

const HTTP_SECRET: &str = "HTTPSECRET-0123456789";
const TOKEN: &str = "TOKEN-abcdef";

fn registry(spec: serde_json::Value) -> Registry {
    let spec: RegistrySpec = serde_json::from_value(spec).expect("valid spec");
    let mut r = Registry::new("hq", spec);
    r.metadata.namespace = Some("fleet".into());
    r.metadata.uid = Some("uid-1".into());
    r.metadata.generation = Some(3);
    r
}

fn full_spec() -> serde_json::Value {
    serde_json::json!({
        "replicas": 3,
        "storage": {"s3": {"bucket": "imgs", "endpoint": "http://minio:9000",
                           "credentialsSecretRef": {"name": "s3-creds"}}},
        "auth": {"htpasswd": {"secretRef": {"name": "users", "key": "htpasswd"}}},
        "tls": {"secretName": "tls"},
        "proxy": {"remoteURL": "https://upstream.example", "credentialsSecretRef": {"name": "up"}},
        "cache": {"redis": {"address": "redis:6379", "passwordSecretRef": {"name": "redis", "key": "pw"}}},
        "pod": {"annotations": {"team": "a"}}
    })
}

fn generated() -> GeneratedSecrets {
    GeneratedSecrets {
        http_secret: HTTP_SECRET.into(),
        notification_token: Some(TOKEN.into()),
        proxy_credentials: Some(("PROXYUSER".into(), "PROXYPASS".into())),
        operator: Some(OperatorAccount {
            password: "OPERATORPASS".into(),
            htpasswd: "alice:x\nflotilla-operator:HASH\n".into(),
        }),
        token_key: None,
        access_groups: Default::default(),
        tls_fingerprint: None,
    }
}

fn ctx() -> BuildContext {
    BuildContext {
        receiver_url: Some("http://flotilla.flotilla-system.svc:8080/v1/events".into()),
        read_only_window: false,
        token_service_image: None,
    }
}

fn pod_spec(c: &Children) -> &PodSpec {
    c.deployment.spec.template.spec.as_ref().expect("pod spec")
}

#[test]
fn no_secret_value_in_config_map_or_literal_env() {
    let c = build(&registry(full_spec()), &ctx(), &generated()).expect("builds");
    let cm = serde_json::to_string(&c.config_map).expect("json");
    for secret in [
        HTTP_SECRET,
        TOKEN,
        "PROXYUSER",
        "PROXYPASS",
        "Bearer",
        "OPERATORPASS",
        "HASH",
    ] {
        assert!(!cm.contains(secret), "{secret} leaked into the ConfigMap");
    }
    let deployment = serde_json::to_string(&c.deployment).expect("json");
    for secret in [
        HTTP_SECRET,
        TOKEN,
        "PROXYUSER",
        "PROXYPASS",
        "OPERATORPASS",
        "HASH",
    ] {
        assert!(
            !deployment.contains(secret),
            "{secret} leaked into the Deployment"
        );
    }
    let env = pod_spec(&c).containers[0].env.clone().expect("env");
    assert!(
        env.iter()
            .all(|e| e.value.is_none() && e.value_from.is_some())
    );
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "REGISTRY_HTTP_SECRET",
            "REGISTRY_STORAGE_S3_ACCESSKEY",
            "REGISTRY_STORAGE_S3_SECRETKEY",
            "REGISTRY_REDIS_PASSWORD",
            "REGISTRY_PROXY_USERNAME",
            "REGISTRY_PROXY_PASSWORD",
            "REGISTRY_NOTIFICATIONS_ENDPOINTS",
        ]
    );
    let s3_key = env[1]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("ref");
    assert_eq!(
        (s3_key.name.as_str(), s3_key.key.as_str()),
        ("s3-creds", "accessKey")
    );
    let data = c.generated_secret.data.as_ref().expect("data");
    assert_eq!(data[HTTP_SECRET_KEY].0, HTTP_SECRET.as_bytes());
    let endpoints = String::from_utf8(data[NOTIFICATION_ENDPOINTS_KEY].0.clone()).expect("utf8");
    assert!(endpoints.contains(&format!("Bearer {TOKEN}")));
    assert!(endpoints.contains("flotilla.flotilla-system.svc"));
}

#[test]
fn proxy_basic_auth_secret_is_read_directly() {
    let mut g = generated();
    g.proxy_credentials = None;
    let c = build(&registry(full_spec()), &ctx(), &g).expect("builds");
    let env = pod_spec(&c).containers[0].env.clone().expect("env");
    let user = env
        .iter()
        .find(|e| e.name == "REGISTRY_PROXY_USERNAME")
        .expect("env");
    let r = user
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("ref");
    assert_eq!((r.name.as_str(), r.key.as_str()), ("up", "username"));
    let data = c.generated_secret.data.expect("data");
    assert!(!data.contains_key(PROXY_USERNAME_KEY));
}

#[test]
fn a_renewed_tls_certificate_rolls_the_pods() {
    let with = |tls_fingerprint: Option<&str>| {
        let g = GeneratedSecrets {
            tls_fingerprint: tls_fingerprint.map(Into::into),
            ..generated()
        };
        build(&registry(full_spec()), &ctx(), &g)
            .expect("builds")
            .checksum
    };
    assert_eq!(with(Some("cert 1")), with(Some("cert 1")));
    assert_ne!(with(Some("cert 1")), with(Some("cert 2")));
    assert_ne!(with(Some("cert 1")), with(None));
}

#[test]
fn checksum_follows_config_not_replicas() {
    let base = build(&registry(full_spec()), &ctx(), &generated()).expect("builds");
    let mut scaled = full_spec();
    scaled["replicas"] = 5.into();
    let scaled = build(&registry(scaled), &ctx(), &generated()).expect("builds");
    assert_eq!(base.checksum, scaled.checksum);
    assert_eq!(scaled.deployment.spec.replicas, Some(5));
    let mut changed = full_spec();
    changed["storage"]["s3"]["rootDirectory"] = "/other".into();
    let changed = build(&registry(changed), &ctx(), &generated()).expect("builds");
    assert_ne!(base.checksum, changed.checksum);
    let mut g = generated();
    g.notification_token = Some("rotated".into());
    let rotated = build(&registry(full_spec()), &ctx(), &g).expect("builds");
    assert_ne!(base.checksum, rotated.checksum);
    let annotations = base
        .deployment
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .expect("annotations");
    assert_eq!(
        annotations[crate::fleet::names::CONFIG_CHECKSUM_ANNOTATION],
        base.checksum
    );
    assert_eq!(annotations["team"], "a");
    // Same inputs, same objects.
    assert_eq!(
        base,
        build(&registry(full_spec()), &ctx(), &generated()).expect("builds")
    );
}

#[test]
fn deployment_shape() {
    let c = build(&registry(full_spec()), &ctx(), &generated()).expect("builds");
    let d = &c.deployment.spec;
    let ru = d
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .expect("rolling");
    assert_eq!(ru.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(ru.max_surge, Some(IntOrString::Int(1)));
    assert_eq!(d.selector.match_labels.as_ref().map(|l| l.len()), Some(2));
    let pod = pod_spec(&c);
    let ctr = &pod.containers[0];
    assert_eq!(
        ctr.image.as_deref(),
        Some(crate::api::registry::DEFAULT_REGISTRY_IMAGE)
    );
    let sc = ctr.security_context.as_ref().expect("sc");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(
        sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let requests = ctr
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .expect("requests");
    assert_eq!(requests["cpu"].0, "100m");
    assert_eq!(requests["memory"].0, "128Mi");
    let readiness = ctr
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("readiness");
    assert_eq!(readiness.path.as_deref(), Some("/debug/health"));
    assert!(ctr.liveness_probe.is_some());
    // A terminating pod keeps serving while the Service drops it, then drains: no pull in
    // flight or just routed to it fails during a scale-down or rolling update.
    let pre_stop = ctr
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .expect("preStop");
    assert_eq!(pre_stop.sleep.as_ref().map(|s| s.seconds), Some(5));
    assert!(pre_stop.exec.is_none(), "the image has no shell");
    assert_eq!(
        pod.termination_grace_period_seconds,
        Some(30),
        "preStop 5 s + draintimeout 20 s fit in the grace period"
    );
    let mounts: Vec<&str> = ctr
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(
        mounts,
        [
            "/etc/docker/registry",
            "/tmp",
            "/etc/flotilla/tls",
            "/etc/flotilla/auth"
        ]
    );
    let spread = pod.topology_spread_constraints.as_ref().expect("spread");
    assert_eq!(spread[0].topology_key, "kubernetes.io/hostname");
    for o in [
        &c.deployment.metadata,
        &c.service.metadata,
        &c.config_map.metadata,
        &c.generated_secret.metadata,
    ] {
        let owners = o.owner_references.as_ref().expect("owner");
        assert_eq!(owners[0].uid, "uid-1");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(
            o.labels
                .as_ref()
                .map(|l| l["app.kubernetes.io/managed-by"].as_str()),
            Some("flotilla")
        );
    }
    assert!(c.pod_disruption_budget.is_some());
    assert!(c.claim.is_none());
}

#[test]
fn overrides_replace_defaults() {
    let mut spec = full_spec();
    spec["pod"] = serde_json::json!({
        "resources": {"requests": {"cpu": "1"}},
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}},
        "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
        "imagePullSecrets": [{"name": "pull"}]
    });
    let c = build(&registry(spec), &ctx(), &generated()).expect("builds");
    let pod = pod_spec(&c);
    assert_eq!(
        pod.topology_spread_constraints
            .as_ref()
            .map(|t| t[0].topology_key.as_str()),
        Some("zone")
    );
    assert_eq!(
        pod.node_selector.as_ref().map(|n| n["disk"].as_str()),
        Some("ssd")
    );
    assert_eq!(pod.tolerations.as_ref().map(Vec::len), Some(1));
    assert!(pod.affinity.is_some());
    assert_eq!(
        pod.image_pull_secrets.as_ref().map(|p| p[0].name.as_str()),
        Some("pull")
    );
    let requests = pod.containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .expect("requests");
    assert_eq!(requests.get("memory"), None);
}

#[test]
fn single_replica_filesystem_claim_service() {
    let spec = serde_json::json!({
        "replicas": 1, "notifications": false,
        "storage": {"filesystem": {"size": "10Gi", "storageClassName": "fast"}},
        "service": {"type": "LoadBalancer", "port": 443, "annotations": {"lb": "x"}}
    });
    let c = build(&registry(spec), &ctx(), &generated()).expect("builds");
    assert!(c.pod_disruption_budget.is_none());
    let claim = c.claim.as_ref().expect("claim");
    assert_eq!(claim.metadata.name.as_deref(), Some("hq-data"));
    assert!(
        claim.metadata.owner_references.is_none(),
        "data outlives the Registry"
    );
    let cs = claim.spec.as_ref().expect("spec");
    assert_eq!(cs.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(cs.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
    assert_eq!(
        c.deployment
            .spec
            .strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref()),
        Some("Recreate")
    );
    let volumes = pod_spec(&c).volumes.clone().expect("volumes");
    let data = volumes
        .iter()
        .find(|v| v.name == "data")
        .expect("data volume");
    assert_eq!(
        data.persistent_volume_claim
            .as_ref()
            .map(|p| p.claim_name.as_str()),
        Some("hq-data")
    );
    let svc = c.service.spec.as_ref().expect("svc");
    assert_eq!(svc.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(svc.ports.as_ref().map(|p| p[0].port), Some(443));
    assert_eq!(
        c.service
            .metadata
            .annotations
            .as_ref()
            .map(|a| a["lb"].as_str()),
        Some("x")
    );
    // notifications off: no endpoints, no token
    let data = c.generated_secret.data.expect("data");
    assert!(!data.contains_key(NOTIFICATION_ENDPOINTS_KEY));
    let env = pod_spec(
        &build(
            &registry(serde_json::json!({"storage": {"emptyDir": {}}, "notifications": false})),
            &ctx(),
            &generated(),
        )
        .expect("b"),
    )
    .containers[0]
        .env
        .clone()
        .expect("env");
    assert_eq!(env.len(), 1);
}

#[test]
fn missing_metadata_is_an_error() {
    let mut r = registry(full_spec());
    r.metadata.uid = None;
    assert!(matches!(
        build(&r, &ctx(), &generated()),
        Err(BuildError::MissingMetadata("uid"))
    ));
    r.metadata.namespace = None;
    assert!(matches!(
        build(&r, &ctx(), &generated()),
        Err(BuildError::MissingMetadata("namespace"))
    ));
}

#[test]
fn examples_validate_and_build() {
    for (name, text) in [
        (
            "production",
            include_str!("../../examples/registry/production.yaml"),
        ),
        (
            "pull-through-cache",
            include_str!("../../examples/registry/pull-through-cache.yaml"),
        ),
        (
            "ingress",
            include_str!("../../examples/registry/ingress.yaml"),
        ),
    ] {
        let mut r: Registry = serde_yaml::from_str(text).expect(name);
        assert_eq!(crate::fleet::validate(&r.spec), [], "{name}");
        r.metadata.namespace = Some("ns".into());
        r.metadata.uid = Some("u".into());
        let ctx = BuildContext {
            token_service_image: Some("img".into()),
            ..ctx()
        };
        let c = build(&r, &ctx, &generated()).expect(name);
        assert!(
            c.pod_disruption_budget.is_some(),
            "{name}: several replicas"
        );
    }
}

#[test]
fn htpasswd_is_mounted_from_the_generated_secret_with_the_operator_account() {
    let c = build(&registry(full_spec()), &ctx(), &generated()).expect("builds");
    let volume = pod_spec(&c)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "htpasswd")
        .and_then(|v| v.secret.as_ref())
        .expect("htpasswd volume");
    assert_eq!(volume.secret_name.as_deref(), Some("hq-generated"));
    let data = c.generated_secret.data.as_ref().expect("data");
    assert_eq!(
        data[HTPASSWD_KEY].0,
        b"alice:x\nflotilla-operator:HASH\n".to_vec()
    );
    assert_eq!(data[OPERATOR_USERNAME_KEY].0, OPERATOR_USERNAME.as_bytes());
    assert_eq!(data[OPERATOR_PASSWORD_KEY].0, b"OPERATORPASS".to_vec());
    let mut other = generated();
    if let Some(a) = other.operator.as_mut() {
        a.htpasswd.push_str("bob:y\n");
    }
    let changed = build(&registry(full_spec()), &ctx(), &other).expect("builds");
    assert_ne!(
        changed.checksum, c.checksum,
        "a changed htpasswd must roll the pods"
    );
}

fn service_ports(spec: serde_json::Value) -> Vec<(String, i32)> {
    let c = build(&registry(spec), &ctx(), &generated()).expect("builds");
    c.service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port))
        .collect()
}

#[test]
fn the_debug_port_is_on_the_service_only_when_asked_for() {
    let http = || ("http".to_string(), 5000);
    assert_eq!(
        service_ports(serde_json::json!({"storage": {"emptyDir": {}}})),
        [http()]
    );
    assert_eq!(
        service_ports(serde_json::json!({"storage": {"emptyDir": {}}, "service": {"port": 5000}})),
        [http()]
    );
    assert_eq!(
        service_ports(serde_json::json!({"storage": {"emptyDir": {}},
            "service": {"exposeDebugPort": true}})),
        [http(), ("metrics".to_string(), DEBUG_PORT)]
    );
}

fn access_spec(rules: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "storage": {"emptyDir": {}},
        "auth": {"htpasswd": {"secretRef": {"name": "users", "key": "htpasswd"}}},
        "access": {"rules": rules}})
}

fn with_token_key() -> GeneratedSecrets {
    GeneratedSecrets {
        token_key: Some(crate::access::jwt::KeyMaterial {
            key_pem: "KEYPEM".into(),
            cert_pem: "CERTPEM".into(),
        }),
        ..generated()
    }
}

#[test]
fn access_rules_run_a_token_sidecar_and_stay_out_of_the_checksum() {
    let ctx = BuildContext {
        token_service_image: Some("ghcr.io/flotilla-dev/flotilla:0.1.0".into()),
        ..ctx()
    };
    let r = registry(access_spec(
        serde_json::json!([{"repositories": ["library/**"], "anonymous": ["pull"]}]),
    ));
    let c = build(&r, &ctx, &with_token_key()).expect("build");
    let config: serde_yaml::Value =
        serde_yaml::from_str(&c.config_map.data.as_ref().expect("data")[CONFIG_KEY]).expect("yaml");
    let token = &config["auth"]["token"];
    assert_eq!(token["realm"], "http://hq.fleet.svc:5002/token");
    assert_eq!(token["service"], "hq.fleet.svc");
    assert_eq!(token["issuer"], "flotilla/fleet/hq");
    assert_eq!(
        token["rootcertbundle"],
        "/etc/flotilla/token-cert/token-cert.pem"
    );
    assert!(config["auth"].get("htpasswd").is_none());

    let pod = pod_spec(&c);
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["registry", "token-service"]);
    let sidecar = &pod.containers[1];
    assert_eq!(
        sidecar.image.as_deref(),
        Some("ghcr.io/flotilla-dev/flotilla:0.1.0")
    );
    assert_eq!(sidecar.args.as_ref().expect("args")[0], "token-service");
    let access_volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "access")
        .and_then(|v| v.secret.as_ref())
        .expect("access volume");
    assert_eq!(access_volume.secret_name.as_deref(), Some("hq-access"));
    assert!(
        access_volume.items.is_none(),
        "mounted whole, so the kubelet refreshes it"
    );
    let data = c.generated_secret.data.as_ref().expect("data");
    assert!(data.contains_key(TOKEN_KEY_KEY) && !data.contains_key(HTPASSWD_KEY));
    let access = c.access_secret.as_ref().expect("access secret");
    let access_data = access.data.as_ref().expect("data");
    let bundle: crate::access::bundle::Bundle =
        serde_json::from_slice(&access_data["access.json"].0).expect("bundle");
    assert_eq!(bundle.admins.users, [OPERATOR_USERNAME]);
    assert!(String::from_utf8_lossy(&access_data["htpasswd"].0).contains("flotilla-operator:"));
    let ports = c
        .service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    assert!(
        ports
            .iter()
            .any(|p| p.name.as_deref() == Some("token") && p.port == 5002)
    );

    // Other rules, other users: a new access Secret, the same pods.
    let mut other = with_token_key();
    if let Some(a) = other.operator.as_mut() {
        a.htpasswd = "bob:y\nflotilla-operator:HASH\n".into();
    }
    let changed = registry(access_spec(serde_json::json!([
        {"repositories": ["team-a/**"], "users": ["bob"], "actions": ["push"]}
    ])));
    let c2 = build(&changed, &ctx, &other).expect("build");
    assert_eq!(c2.checksum, c.checksum);
    assert_eq!(c2.deployment, c.deployment);
    assert_ne!(c2.access_secret, c.access_secret);
    assert!(matches!(
        build(&r, &super::BuildContext::default(), &with_token_key()),
        Err(BuildError::NoTokenServiceImage)
    ));
}
