//! Property tests of every parser of untrusted input: notification envelopes, manifests and
//! indexes, `WWW-Authenticate`, `Link`, docker configs, quantities, cron schedules, globs,
//! digests, policy files, and the token service's scopes, Basic credentials and groups files.
//! Each must not panic on arbitrary input, and round-trips hold
//! where they apply. 256 cases per property keep the file at a few seconds; set
//! `PROPTEST_CASES` for a longer hunt.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use std::str::FromStr;

use base64::Engine as _;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Value, json};

use flotilla::engine::auth::{Challenge, DockerConfig, parse_challenge};
use flotilla::engine::digest::Digest;
use flotilla::engine::filter::{self, GlobFilter, GlobList, TagFilter};
use flotilla::engine::link::next_link;
use flotilla::engine::manifest::{self, Descriptor, Parsed};
use flotilla::notifications::{ManifestAction, is_manifest_media_type, parse_envelope};
use flotilla::replication::validate::parse_schedule;
use flotilla::sync_config::{SUFFIXES, parse_docker_config, parse_quantity};

/// 256 cases, or `PROPTEST_CASES` (e.g. 100000 for a longer hunt).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map("[a-zA-Z]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bytes that are often almost-JSON: arbitrary bytes, or JSON with a byte flipped or cut.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..256),
        (json_value(), any::<usize>(), any::<u8>()).prop_map(|(v, at, b)| {
            let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = b;
            }
            bytes
        }),
        (json_value(), any::<usize>()).prop_map(|(v, at)| {
            let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
            bytes.truncate(at % (bytes.len() + 1));
            bytes
        }),
    ]
}

const MEDIA_TYPES: [&str; 6] = [
    manifest::OCI_MANIFEST,
    manifest::OCI_INDEX,
    manifest::DOCKER_MANIFEST,
    manifest::DOCKER_LIST,
    "application/octet-stream",
    "application/vnd.oci.image.layer.v1.tar+gzip",
];

fn media_type() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(&MEDIA_TYPES[..]).prop_map(str::to_string),
        "\\PC{0,24}",
    ]
}

fn digest() -> impl Strategy<Value = Digest> {
    vec(any::<u8>(), 0..32).prop_map(|b| Digest::of(&b))
}

// ---- notification envelopes (src/notifications/) ----

/// One event as Distribution might send it, or garbled.
fn raw_event() -> impl Strategy<Value = Value> {
    let action = prop_oneof![
        proptest::sample::select(&["push", "pull", "delete", "mount"][..]).prop_map(str::to_string),
        "\\PC{0,8}",
    ];
    (
        action,
        media_type(),
        prop_oneof![digest().prop_map(|d| d.to_string()), "\\PC{0,12}"],
        "\\PC{0,24}",
        prop_oneof![Just(String::new()), "\\PC{0,12}"],
        proptest::option::of("\\PC{0,16}"),
    )
        .prop_map(|(action, mt, digest, repository, tag, host)| {
            json!({
                "id": "e",
                "action": action,
                "target": {"mediaType": mt, "digest": digest, "repository": repository, "tag": tag,
                           "url": "http://r/v2/x/manifests/y"},
                "request": {"host": host},
                "source": {"addr": "r:5000"},
            })
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn envelopes_never_panic(body in hostile_bytes(), sender in "\\PC{0,8}") {
        let _ = parse_envelope(&body, &sender);
    }

    #[test]
    fn envelopes_keep_exactly_manifest_pushes_and_deletes(events in vec(raw_event(), 0..12)) {
        let body = serde_json::to_vec(&json!({ "events": events })).expect("json");
        let parsed = parse_envelope(&body, "ns/reg").expect("a well-formed envelope parses");
        let manifest_events: Vec<&Value> = events.iter().filter(|e| {
            let action = e["action"].as_str().unwrap_or_default();
            action == "delete"
                || (action == "push"
                    && is_manifest_media_type(e["target"]["mediaType"].as_str().unwrap_or_default()))
        }).collect();
        let well_formed = |e: &&&Value| {
            let t = &e["target"];
            let tag = t["tag"].as_str().unwrap_or_default();
            let digest = t["digest"].as_str().unwrap_or_default();
            flotilla::engine::names::check_repository(t["repository"].as_str().unwrap_or_default()).is_ok()
                && (tag.is_empty() || flotilla::engine::names::is_tag(tag))
                && (digest.is_empty() || flotilla::engine::names::is_digest(digest))
        };
        let wanted = manifest_events.iter().filter(well_formed);
        prop_assert_eq!(parsed.events.len(), wanted.clone().count());
        prop_assert_eq!(parsed.malformed, manifest_events.len() - parsed.events.len());
        for (p, e) in parsed.events.iter().zip(wanted) {
            prop_assert_eq!(p.sender.as_str(), "ns/reg");
            prop_assert_eq!(p.repository.as_str(), e["target"]["repository"].as_str().unwrap_or_default());
            prop_assert_eq!(
                p.action == ManifestAction::Push,
                e["action"] == "push"
            );
            prop_assert!(p.tag.as_deref() != Some(""), "an empty tag is no tag");
        }
    }
}

// ---- manifests and indexes (src/engine/manifest.rs) ----

type PlatformParts = Option<(String, String, Option<String>)>;

fn descriptor() -> impl Strategy<Value = (String, Digest, u64, PlatformParts)> {
    (
        media_type(),
        digest(),
        any::<u64>(),
        proptest::option::of((
            "[a-z0-9]{1,8}",
            "[a-z0-9_]{1,8}",
            proptest::option::of("[a-z0-9]{1,4}"),
        )),
    )
}

fn descriptor_json(d: &(String, Digest, u64, PlatformParts)) -> Value {
    let mut v = json!({"mediaType": d.0, "digest": d.1.to_string(), "size": d.2});
    if let Some((os, arch, variant)) = &d.3 {
        v["platform"] = json!({"os": os, "architecture": arch});
        if let Some(var) = variant {
            v["platform"]["variant"] = json!(var);
        }
    }
    v
}

fn same(parsed: &Descriptor, d: &(String, Digest, u64, PlatformParts)) -> bool {
    let platform = d.3.as_ref().map(|(os, arch, variant)| match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    });
    parsed.media_type == d.0
        && parsed.digest == d.1
        && parsed.size == d.2
        && parsed.platform == platform
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn manifests_never_panic(ct in media_type(), body in hostile_bytes()) {
        let _ = manifest::parse(&ct, &body);
        let _ = manifest::media_type_of(&ct, &body);
    }

    #[test]
    fn an_index_round_trips(children in vec(descriptor(), 0..8)) {
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_INDEX,
            "manifests": children.iter().map(descriptor_json).collect::<Vec<_>>(),
        })).expect("json");
        let Ok(Parsed::Index { manifests }) = manifest::parse("", &body) else {
            return Err(TestCaseError::fail("not read as an index"));
        };
        prop_assert_eq!(manifests.len(), children.len());
        for (m, c) in manifests.iter().zip(&children) {
            prop_assert!(same(m, c), "{:?} != {:?}", m, c);
        }
    }

    #[test]
    fn an_image_manifest_round_trips(config_d in descriptor(), layers in vec(descriptor(), 0..8)) {
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": descriptor_json(&config_d),
            "layers": layers.iter().map(descriptor_json).collect::<Vec<_>>(),
        })).expect("json");
        let Ok(Parsed::Image { config, layers: got }) = manifest::parse("", &body) else {
            return Err(TestCaseError::fail("not read as an image manifest"));
        };
        prop_assert!(config.is_some_and(|c| same(&c, &config_d)));
        prop_assert_eq!(got.len(), layers.len());
        for (m, l) in got.iter().zip(&layers) {
            prop_assert!(same(m, l), "{:?} != {:?}", m, l);
        }
    }
}

// ---- WWW-Authenticate (src/engine/auth.rs) ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn challenges_never_panic(value in "\\PC{0,64}") {
        let _ = parse_challenge(&value);
    }

    #[test]
    fn challenges_with_quotes_and_commas_never_panic(
        parts in vec(prop_oneof![Just("\"".to_string()), Just(",".to_string()), Just("=".to_string()),
                                  Just("Bearer ".to_string()), Just("realm".to_string()), "[a-z ]{0,4}"], 0..16)
    ) {
        let _ = parse_challenge(&parts.concat());
    }

    #[test]
    fn a_bearer_challenge_round_trips(
        scheme in proptest::sample::select(&["Bearer", "bearer", "BEARER"][..]),
        realm in "https://[a-z0-9.]{1,16}(:[0-9]{1,5})?/[a-zA-Z0-9/_.-]{0,16}",
        service in proptest::option::of("[a-zA-Z0-9._:-]{1,20}"),
        scope in proptest::option::of("repository:[a-z0-9/]{1,12}:(pull|push|pull,push)( repository:[a-z0-9/]{1,12}:pull)?"),
    ) {
        let mut header = format!("{scheme} realm=\"{realm}\"");
        if let Some(s) = &service { header.push_str(&format!(",service=\"{s}\"")); }
        if let Some(s) = &scope { header.push_str(&format!(", scope=\"{s}\"")); }
        prop_assert_eq!(
            parse_challenge(&header),
            Some(Challenge::Bearer { realm, service, scope })
        );
    }
}

// ---- Link (src/engine/link.rs) ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn links_never_panic(value in "\\PC{0,64}") {
        let _ = next_link(&value);
    }

    /// Targets as Distribution writes them (`last` is a repository or tag: no `,;<>`).
    #[test]
    fn a_next_link_round_trips(
        target in "(https?://[a-z0-9.:]{1,16})?/v2/[a-z0-9/]{1,16}(_catalog|/tags/list)\\?n=[0-9]{1,4}&last=[A-Za-z0-9._/-]{1,20}",
        prev in proptest::option::of("/v2/[a-z]{1,8}\\?last=[a-z]{1,8}"),
        quoted in any::<bool>(),
    ) {
        let rel = if quoted { "rel=\"next\"" } else { "rel=next" };
        let header = match &prev {
            Some(p) => format!("<{p}>; rel=\"prev\", <{target}>; {rel}"),
            None => format!("<{target}>; {rel}"),
        };
        prop_assert_eq!(next_link(&header), Some(target));
    }
}

// ---- docker config (src/engine/auth.rs, src/sync_config/docker_config.rs) ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn docker_configs_never_panic(body in hostile_bytes()) {
        let _ = DockerConfig::parse(&body);
        let _ = parse_docker_config(&body);
    }

    #[test]
    fn docker_config_credentials_round_trip(
        entries in btree_map("[a-z0-9]{1,10}(\\.[a-z]{2,5})?(:[0-9]{2,5})?", ("[a-zA-Z0-9_.@-]{1,12}", "\\PC{0,24}", any::<bool>()), 1..5),
    ) {
        let auths: serde_json::Map<String, Value> = entries.iter().map(|(host, (user, pass, as_auth))| {
            let entry = if *as_auth {
                json!({"auth": base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))})
            } else {
                json!({"username": user, "password": pass})
            };
            (format!("https://{host}/v1/"), entry)
        }).collect();
        let body = serde_json::to_vec(&json!({ "auths": auths })).expect("json");
        let cfg = parse_docker_config(&body).expect("parses");
        for (host, (user, pass, _)) in &entries {
            let c = cfg.lookup(host).expect("entry for host");
            prop_assert_eq!(&c.username, user);
            prop_assert_eq!(&c.password, pass);
        }
    }

    /// Wherever a password lands in a malformed document, the error does not quote it.
    #[test]
    fn docker_config_errors_never_quote_a_secret(
        secret in "[A-Za-z0-9]{12,20}",
        shape in 0usize..6,
        cut in any::<usize>(),
    ) {
        let s = &secret;
        let body = match shape {
            0 => format!(r#"{{"auths": "{s}"}}"#),
            1 => format!(r#"{{"auths": {{"h": "{s}"}}}}"#),
            2 => format!(r#"{{"auths": {{"h": {{"password": ["{s}"]}}}}}}"#),
            3 => format!(r#"{{"auths": {{"h": {{"username": 1, "password": "{s}"}}}}}}"#),
            4 => format!(r#"["{s}"]"#),
            _ => {
                let full = format!(r#"{{"auths": {{"h": {{"username": "u", "password": "{s}"}}}}}}"#);
                full[..cut % full.len()].to_string()
            }
        };
        if let Err(e) = parse_docker_config(body.as_bytes()) {
            prop_assert!(!e.to_string().contains(s.as_str()), "{}", e);
            prop_assert!(!format!("{e:?}").contains(s.as_str()), "{:?}", e);
        }
    }
}

// ---- quantities (src/sync_config/quantity.rs) ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn quantities_never_panic(q in "\\PC{0,24}") {
        let _ = parse_quantity(&q);
    }

    #[test]
    fn quantities_of_digits_and_suffixes_never_panic(q in "[0-9.]{0,30}(k|M|G|T|Ki|Mi|Gi|Ti|Xi|)") {
        if let Some(n) = parse_quantity(&q) {
            prop_assert!(n >= 1);
        }
    }

    #[test]
    fn a_formatted_quantity_parses_back(n in 1u64..8192, suffix in 0..=SUFFIXES.len()) {
        let (text, bytes) = match SUFFIXES.get(suffix) {
            Some((s, mult)) => (format!("{n}{s}"), n * mult),
            None => (n.to_string(), n),
        };
        prop_assert_eq!(parse_quantity(&text), Some(bytes));
        prop_assert_eq!(parse_quantity(&format!(" {text} ")), Some(bytes), "trimmed");
    }
}

// ---- cron (src/replication/validate.rs, used by trigger.rs) ----

fn cron_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        (0u32..80).prop_map(|n| n.to_string()),
        (0u32..80).prop_map(|n| format!("*/{n}")),
        (0u32..80, 0u32..80).prop_map(|(a, b)| format!("{a}-{b}")),
        (0u32..80, 0u32..80, 0u32..20).prop_map(|(a, b, s)| format!("{a}-{b}/{s}")),
        (0u32..80, 0u32..80).prop_map(|(a, b)| format!("{a},{b}")),
        proptest::sample::select(&["MON", "jan", "L", "?", "#", "W", "-", "/", ","][..])
            .prop_map(str::to_string),
        "\\PC{1,4}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn schedules_never_panic(expr in "\\PC{0,40}") {
        let _ = parse_schedule(&expr);
    }

    #[test]
    fn schedules_of_cron_like_fields_never_panic_and_fire_in_the_future(fields in vec(cron_field(), 5)) {
        let expr = fields.join(" ");
        if let Ok(schedule) = parse_schedule(&expr) {
            let now = chrono::DateTime::from_timestamp(1_780_000_000, 0).expect("time");
            if let Some(next) = schedule.after(&now).next() {
                prop_assert!(next > now);
            }
        }
    }
}

// ---- globs (src/engine/filter.rs) ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn globs_never_panic(pattern in "\\PC{0,24}", name in "\\PC{0,24}") {
        if let Ok(f) = GlobFilter::new(std::slice::from_ref(&pattern), &[]) {
            let _ = f.matches(&name);
        }
        let _ = filter::glob(GlobList::TagsInclude, 0, &pattern);
    }

    #[test]
    fn glob_metacharacters_never_panic(
        parts in vec(prop_oneof![Just("*"), Just("**"), Just("?"), Just("["), Just("]"), Just("{"), Just("}"),
                                  Just(","), Just("!"), Just("\\"), Just("/"), Just("a"), Just("-")], 0..16)
    ) {
        let pattern = parts.concat();
        let _ = GlobFilter::new(std::slice::from_ref(&pattern), std::slice::from_ref(&pattern)).map(|f| f.matches("a/b"));
    }

    /// The operator narrows a policy to pushed names by using each name as a glob: a
    /// repository or tag of the Distribution grammar is a literal that matches itself only.
    #[test]
    fn a_distribution_name_is_a_literal_glob(
        repo in "[a-z0-9]{1,6}([._-][a-z0-9]{1,4}){0,2}(/[a-z0-9]{1,6}){0,3}",
        tag in "[A-Za-z0-9_][A-Za-z0-9._-]{0,20}",
        other in "[a-z0-9]{1,6}",
    ) {
        let f = GlobFilter::new(std::slice::from_ref(&repo), &[]).expect("compiles");
        prop_assert!(f.matches(&repo));
        let deeper = format!("{repo}/{other}");
        prop_assert!(!f.matches(&deeper));
        let t = TagFilter::new(std::slice::from_ref(&tag), &[], None, None).expect("compiles");
        prop_assert!(t.matches(&tag));
        let longer = format!("{tag}x");
        prop_assert!(!t.matches(&longer));
    }

    #[test]
    fn tag_rules_never_panic(regex in "\\PC{0,16}", semver in "[<>=~^*., 0-9a-z-]{0,16}", tag in "\\PC{0,16}") {
        if let Ok(f) = TagFilter::new(&[], &[], Some(&regex), Some(&semver)) {
            let _ = f.matches(&tag);
        }
    }
}

// ---- digests (src/engine/digest.rs) ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn digests_never_panic(s in "\\PC{0,80}") {
        if let Ok(d) = Digest::from_str(&s) {
            prop_assert_eq!(d.to_string(), s);
            prop_assert_eq!(d.hex().len(), 64);
        }
    }

    #[test]
    fn digest_like_strings_never_panic(s in "(sha256|sha512|SHA256|)(:|)[0-9a-fA-FgG]{0,70}") {
        let _ = Digest::from_str(&s);
    }

    #[test]
    fn a_digest_display_parses_back(bytes in vec(any::<u8>(), 0..512)) {
        let d = Digest::of(&bytes);
        let back: Digest = d.to_string().parse().expect("parses");
        prop_assert_eq!(back.hex(), d.hex());
        prop_assert_eq!(back, d);
    }
}

// ---- policy files (src/cli/policy_file.rs) ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn policy_files_never_panic(text in "\\PC{0,200}") {
        let _ = flotilla::cli::policy_file::parse_documents(&text);
    }

    #[test]
    fn policy_shaped_documents_never_panic(spec in json_value(), kind in proptest::sample::select(&["ReplicationPolicy", "Secret"][..])) {
        let doc = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}, "spec": spec, "data": spec});
        let text = serde_yaml::to_string(&doc).expect("yaml");
        let _ = flotilla::cli::policy_file::parse_documents(&text);
    }
}

// ---- `flotilla copy` references (src/cli/copy.rs) ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn references_never_panic(s in "\\PC{0,60}", insecure in any::<bool>()) {
        let _ = flotilla::cli::copy::parse_reference(&s, insecure);
    }

    #[test]
    fn a_registry_reference_round_trips(
        scheme in proptest::sample::select(&["", "http://", "https://", "docker://", "docker://https://"][..]),
        host in "[a-z0-9.-]{1,16}(:[0-9]{1,5})?",
        repo in "[a-z0-9]{1,6}([._-][a-z0-9]{1,4}){0,2}(/[a-z0-9]{1,6}){0,3}",
        tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9._-]{0,20}"),
        by_digest in proptest::option::of(digest()),
    ) {
        let (suffix, reference) = match (&by_digest, &tag) {
            (Some(d), _) => (format!("@{d}"), Some(d.to_string())),
            (None, Some(t)) => (format!(":{t}"), Some(t.clone())),
            (None, None) => (String::new(), None),
        };
        let s = format!("{scheme}{host}/{repo}{suffix}");
        let parsed = flotilla::cli::copy::parse_reference(&s, false).expect("parses");
        let want_scheme = if scheme.contains("http://") { "http" } else { "https" };
        prop_assert_eq!(
            parsed,
            flotilla::cli::copy::Reference::Registry {
                url: format!("{want_scheme}://{host}"),
                repo,
                reference,
            }
        );
    }
}

// ---- when a policy syncs next (src/replication/trigger.rs) ----

/// Any time a status can hold: every second jiff can represent.
fn status_time() -> impl Strategy<Value = Time> {
    (Timestamp::MIN.as_second()..=Timestamp::MAX.as_second())
        .prop_map(|s| Time(Timestamp::from_second(s).expect("in range")))
}

proptest! {
    #![proptest_config(config())]

    /// Schedules and times read back from status are untrusted too (anyone with write
    /// access to the status can put any time there, near the ends of the range included).
    #[test]
    fn the_next_sync_time_never_panics(
        fields in vec(cron_field(), 5),
        last in status_time(),
        failures in any::<i64>(),
        ended in proptest::option::of(status_time()),
    ) {
        use flotilla::api::replication_policy::{ReplicationPolicySpec, ReplicationPolicyStatus, SyncRecord};
        use flotilla::replication::trigger::{next_scheduled, retry_at};
        let mut spec: ReplicationPolicySpec = serde_json::from_value(json!({
            "source": {"url": "https://s"},
            "destinations": [{"name": "a", "url": "https://a"}],
        })).expect("spec");
        spec.trigger.schedule = Some(fields.join(" "));
        let status = ReplicationPolicyStatus {
            last_full_sync_time: Some(last),
            consecutive_failures: failures,
            last_sync: Some(SyncRecord { completion_time: ended, ..Default::default() }),
            ..Default::default()
        };
        let _ = next_scheduled(&spec, &status);
        let _ = retry_at(&status);
    }
}

// ---- repository names, tags and references (src/engine/names.rs) ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn names_never_panic(s in "\\PC{0,80}") {
        use flotilla::engine::names::{check_reference, check_repository, is_tag};
        let _ = check_repository(&s);
        let _ = check_reference(&s);
        let _ = is_tag(&s);
    }

    /// The grammar's own strings are accepted; anything that could leave the repository's
    /// URL path (`..`, `/` at either end, `?`, `#`, `%`, whitespace) is refused.
    #[test]
    fn the_grammar_is_accepted_and_path_escapes_are_not(
        repo in "[a-z0-9]{1,6}([._-][a-z0-9]{1,4}){0,2}(/[a-z0-9]{1,6}([._-][a-z0-9]{1,3})?){0,3}",
        tag in "[A-Za-z0-9_][A-Za-z0-9._-]{0,40}",
        d in digest(),
        escape in proptest::sample::select(&["..", "/", "?", "#", "%2e", " ", "\n", "\\"][..]),
        at in any::<usize>(),
    ) {
        use flotilla::engine::names::{check_reference, check_repository, is_tag};
        prop_assert!(check_repository(&repo).is_ok(), "{}", repo);
        prop_assert!(is_tag(&tag) && check_reference(&tag).is_ok(), "{}", tag);
        prop_assert!(check_reference(&d.to_string()).is_ok());
        let cut = (at % (repo.len() + 1), at % (tag.len() + 1));
        // Inside a component a `/` only splits it in two: put it at an end.
        let repo_cut = if escape == "/" { if at % 2 == 0 { 0 } else { repo.len() } } else { cut.0 };
        let bad_repo = format!("{}{escape}{}", &repo[..repo_cut], &repo[repo_cut..]);
        prop_assert!(check_repository(&bad_repo).is_err(), "{:?}", bad_repo);
        // `..` inside a tag is grammatical (`v1..2`) and harmless: a tag never starts with `.`.
        if escape != "/" && escape != ".." {
            let bad_tag = format!("{}{escape}{}", &tag[..cut.1], &tag[cut.1..]);
            prop_assert!(check_reference(&bad_tag).is_err(), "{:?}", bad_tag);
        }
    }
}

// --- the token service: scopes, Basic credentials, groups files ---------------------------

use flotilla::access::bundle::parse_groups;
use flotilla::access::rules::{Scope, parse_scope};
use flotilla::access::service::parse_basic;
use flotilla::api::access::Action;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn scopes_basic_credentials_and_groups_never_panic(value in "\\PC{0,80}", bytes in hostile_bytes()) {
        let _ = parse_scope(&value);
        let _ = parse_basic(&value);
        let _ = parse_basic(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&bytes)));
        let _ = parse_groups(&value);
        let _ = parse_groups(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn a_repository_scope_round_trips(
        name in "[a-z0-9]{1,8}(/[a-z0-9._-]{1,8}){0,3}",
        actions in proptest::sample::subsequence(vec!["pull", "push", "delete"], 0..=3),
    ) {
        let parsed = parse_scope(&format!("repository:{name}:{}", actions.join(",")));
        let want: std::collections::BTreeSet<Action> = actions
            .iter()
            .map(|a| match *a { "pull" => Action::Pull, "push" => Action::Push, _ => Action::Delete })
            .collect();
        prop_assert_eq!(parsed, Some(Scope::Repository { name, actions: want }));
    }

    #[test]
    fn basic_credentials_round_trip(user in "[^:\\x00]{0,16}", password in "\\PC{0,24}") {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        prop_assert_eq!(parse_basic(&header), Some((user, password)));
    }

    #[test]
    fn a_groups_file_round_trips(
        groups in btree_map("[a-z][a-z0-9-]{0,8}", vec("[a-z][a-z0-9._-]{0,8}", 0..5), 0..6),
    ) {
        let text: String = groups
            .iter()
            .map(|(g, users)| format!("{g}: {}\n", users.join(" ")))
            .collect();
        prop_assert_eq!(parse_groups(&text).expect("parses"), groups);
    }
}
