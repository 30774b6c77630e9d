//! The chart's PrometheusRule passes `promtool check rules` and its unit tests
//! (tests/alerts/flotilla.test.yaml: every alert fires when it should and stays quiet
//! otherwise); every alert has a test and a runbook in the README; the dashboard is valid and
//! its queries use only the families the alerts and the operator know (the e2e test
//! e2e_argocd_health checks them against a running operator's /metrics).

use crate::support::chart_metrics;

use std::collections::BTreeSet;
use std::process::Command;

use chart_metrics::*;

fn promtool(args: &[&str], dir: &std::path::Path) -> String {
    let out = Command::new(tool("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = std::env::temp_dir().join(format!("flotilla-alerts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    write_rules(&dir);
    let text = promtool(&["check", "rules", "rules.yaml"], &dir);
    assert!(text.contains("SUCCESS: 8 rules found"), "{text}");
    std::fs::copy(
        repo().join("tests/alerts/flotilla.test.yaml"),
        dir.join("flotilla.test.yaml"),
    )
    .expect("copy tests");
    let text = promtool(&["test", "rules", "flotilla.test.yaml"], &dir);
    assert!(text.contains("SUCCESS"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_test_and_a_runbook() {
    let tests: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("tests/alerts/flotilla.test.yaml")).expect("tests"),
    )
    .expect("yaml");
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for t in tests["tests"].as_sequence().into_iter().flatten() {
        for a in t["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = a["alertname"].as_str().unwrap_or_default().to_string();
            if a["exp_alerts"].as_sequence().is_some_and(|e| e.is_empty()) {
                quiet.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    for (alert, _) in alerts() {
        assert!(firing.contains(&alert), "no test makes {alert} fire");
        assert!(quiet.contains(&alert), "no test keeps {alert} quiet");
        assert!(
            readme.contains(&format!("#### {alert}\n")),
            "README has no runbook heading `#### {alert}`"
        );
    }
}

#[test]
fn the_dashboard_is_valid_and_uses_known_metric_families() {
    let d = dashboard();
    assert_eq!(d["uid"], "flotilla");
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    let known = [
        "flotilla_registry_ready_replicas",
        "flotilla_registry_desired_replicas",
        "flotilla_registry_available",
        "flotilla_leader",
        "flotilla_destination_in_sync",
        "flotilla_replication_lag_seconds",
        "flotilla_sync_runs",
        "flotilla_sync_duration_seconds",
        "flotilla_source_read_bytes",
        "flotilla_destination_written_bytes",
        "flotilla_artifacts",
        "flotilla_reconcile_failures",
    ];
    for q in &queries {
        let f = families(q);
        assert!(!f.is_empty(), "a panel query names no Flotilla metric: {q}");
        for name in f {
            assert!(known.contains(&name.as_str()), "{name} in {q}");
        }
    }
    // Panels do not overlap on Grafana's 24-column grid.
    let mut cells = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().expect("x"),
            g["y"].as_u64().expect("y"),
            g["w"].as_u64().expect("w"),
            g["h"].as_u64().expect("h"),
        );
        assert!(x + w <= 24, "{p}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "panels overlap at {cx},{cy}");
            }
        }
    }
}

#[test]
fn the_network_policy_opens_only_metrics_receiver_dns_api_registries_and_storage() {
    let np = render("templates/networkpolicy.yaml");
    assert_eq!(np["kind"], "NetworkPolicy");
    let ingress: Vec<u64> = np["spec"]["ingress"]
        .as_sequence()
        .expect("ingress")
        .iter()
        .flat_map(|r| r["ports"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_u64())
        .collect();
    assert_eq!(ingress, vec![8080, 8081]);
    let egress: BTreeSet<u64> = np["spec"]["egress"]
        .as_sequence()
        .expect("egress")
        .iter()
        .flat_map(|r| r["ports"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_u64())
        .collect();
    // 9000: MinIO's S3 port, for the blob listings of a garbage collection.
    assert_eq!(egress, BTreeSet::from([53, 443, 5000, 6443, 9000]));
}
