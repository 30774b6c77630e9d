//! `flotilla status` and `kubectl flotilla status` on a real control plane: Registries made
//! Ready by kwok (and one that cannot be), and an HQ → 2 regions → 4 cities policy over real
//! registries with one city down, checked line by line and as JSON.

use crate::support::cluster;
use crate::support::registry;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cluster::{Cluster, Operator, wait_for};
use registry::{Pusher, Registry};

const WAIT: Duration = Duration::from_secs(90);
/// `flotilla status` cuts errors to this many characters (src/cli/status/text.rs).
const ERROR_WIDTH: usize = 80;

fn logs_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-e2e-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// A JSONPath value of `object` in namespace `ns` (empty when absent).
fn jsonpath(c: &Cluster, ns: &str, object: &str, path: &str) -> String {
    let out = c.kubectl(&["get", object, "-n", ns, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn condition(c: &Cluster, ns: &str, object: &str, type_: &str) -> String {
    jsonpath(
        c,
        ns,
        object,
        &format!(
            r#"{{.status.conditions[?(@.type=="{type_}")].status}}/{{.status.conditions[?(@.type=="{type_}")].reason}}"#
        ),
    )
}

/// Runs `flotilla status ARGS` against the cluster, as a pipe (so never coloured).
fn status(c: &Cluster, args: &[&str]) -> Output {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("status")
        .args(args)
        .env("KUBECONFIG", c.kubeconfig())
        .env_remove("NO_COLOR")
        .output()
        .expect("run flotilla status");
    println!(
        "flotilla status {args:?}: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    out
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

/// The text with its one-line rules: one space-collapsed line, cut at `ERROR_WIDTH` with `…`.
fn one_line(s: &str) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= ERROR_WIDTH {
        return flat;
    }
    let mut cut: String = flat.chars().take(ERROR_WIDTH - 1).collect();
    cut.push('…');
    cut
}

/// Splits `line` at the character columns where `header`'s titles start: the table is
/// aligned exactly when every cell of every row begins there.
fn cells(header: &str, titles: &[&str], line: &str) -> Vec<String> {
    let header: Vec<char> = header.chars().collect();
    let starts: Vec<usize> = titles
        .iter()
        .map(|t| {
            let t: Vec<char> = t.chars().collect();
            header
                .windows(t.len())
                .position(|w| w == t.as_slice())
                .unwrap_or_else(|| panic!("no {t:?} in the header"))
        })
        .collect();
    let chars: Vec<char> = line.chars().collect();
    starts
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let end = starts
                .get(i + 1)
                .copied()
                .unwrap_or(chars.len())
                .min(chars.len());
            if i > 0 && s < chars.len() {
                assert!(
                    s == 0 || chars[s - 1] == ' ',
                    "cell {i} of {line:?} does not start at its column"
                );
            }
            // The first cell keeps its leading tree glyphs and blanks.
            let cell: String = chars[s.min(chars.len())..end].iter().collect();
            if i == 0 {
                cell.trim_end().to_string()
            } else {
                cell.trim().to_string()
            }
        })
        .collect()
}

fn ago() -> regex::Regex {
    regex::Regex::new(r"^[0-9]+[smhd] ago$").expect("regex")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_draws_the_relay_tree_with_the_failing_city() {
    let c = Cluster::start();
    c.install_crds();
    let _op = Operator::start(&c, &logs_dir());

    // Two Registries: one kwok makes Ready, one that waits for a missing S3 Secret.
    c.apply("apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {name: hq}\nspec:\n  storage: {emptyDir: {}}\n");
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: fleet}\n---\napiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {name: broken, namespace: fleet}\nspec:\n  storage:\n    s3: {bucket: images, credentialsSecretRef: {name: absent}}\n");

    // HQ → region-1 → city-1, city-2 (down); HQ → region-2 → city-3, city-4.
    let hq = Registry::start().await;
    let regions = Registry::start_many::<2>().await;
    let mut cities = Registry::start_many::<4>().await;
    let layer = registry::layer(&[("app.bin", &registry::pseudo_random(41, 64 * 1024))]);
    Pusher::new(&hq.url())
        .image("tiers/app", Some("v1"), "amd64", &[layer], false)
        .await;
    cities[1].kill();
    let dests = [
        ("region-1", regions[0].url(), None),
        ("region-2", regions[1].url(), None),
        ("city-1", cities[0].url(), Some("region-1")),
        ("city-2", cities[1].url(), Some("region-1")),
        ("city-3", cities[2].url(), Some("region-2")),
        ("city-4", cities[3].url(), Some("region-2")),
    ];
    let mut y = format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: tiers}}\nspec:\n  source: {{url: \"{}\", insecure: true}}\n  retry: {{maxAttempts: 2, initialBackoffMillis: 50}}\n  destinations:\n",
        hq.url()
    );
    for (n, u, from) in &dests {
        let from = from.map(|f| format!(", from: {f}")).unwrap_or_default();
        y.push_str(&format!(
            "  - {{name: {n}, url: \"{u}\", insecure: true{from}}}\n"
        ));
    }
    c.apply(&y);

    wait_for("registry/hq Ready", WAIT, || {
        condition(&c, "default", "registry/hq", "Ready") == "True/Ready"
    });
    wait_for("registry fleet/broken not Ready", WAIT, || {
        condition(&c, "fleet", "registry/broken", "Ready").starts_with("False/")
    });
    wait_for("tiers degraded by city-2 alone", WAIT, || {
        condition(&c, "default", "replicationpolicy/tiers", "Degraded") == "True/DestinationFailed"
            && c.jsonpath("replicationpolicy/tiers", "{.status.destinationsInSync}") == "5/6"
    });
    let city2_error = c.jsonpath(
        "replicationpolicy/tiers",
        r#"{.status.destinations[?(@.name=="city-2")].lastError}"#,
    );
    assert!(!city2_error.is_empty(), "no lastError for city-2");
    let broken_reason = jsonpath(
        &c,
        "fleet",
        "registry/broken",
        r#"{.status.conditions[?(@.type=="Ready")].reason}"#,
    );
    let hq_url = c.jsonpath("registry/hq", "{.status.url}");
    let broken_url = jsonpath(&c, "fleet", "registry/broken", "{.status.url}");

    // ---- text, line by line
    let text = stdout_ok(&status(&c, &[]));
    println!("{text}");
    assert!(!text.contains('\x1b'), "colour on a pipe:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4 + 3 + 6, "{text}");
    let reg_titles = ["REGISTRY", "READY", "STATUS", "REASON", "URL"];
    assert_eq!(cells(lines[0], &reg_titles, lines[0]), reg_titles);
    assert_eq!(
        cells(lines[0], &reg_titles, lines[1]),
        ["default/hq", "1/1", "Ready", "Ready", hq_url.as_str()]
    );
    assert_eq!(
        cells(lines[0], &reg_titles, lines[2]),
        [
            "fleet/broken",
            "0/1",
            "NotReady",
            broken_reason.as_str(),
            broken_url.as_str()
        ]
    );
    assert_eq!(lines[3], "");
    let header = regex::Regex::new(
        r"^POLICY default/tiers  Degraded \(DestinationFailed\)  5/6 in sync  last sync [0-9]+[smh] ago \((SpecChange|Retry), PartiallyFailed\)$",
    )
    .expect("regex");
    assert!(header.is_match(lines[4]), "{:?}", lines[4]);
    let titles = ["DESTINATION", "IN SYNC", "LAST SYNC", "LAG", "LAST ERROR"];
    assert_eq!(cells(lines[5], &titles, lines[5]), titles);
    assert!(lines[5].starts_with("  DESTINATION"));
    assert_eq!(lines[6], format!("  {} (source)", hq.url()));
    let expected = [
        ("├─ region-1", "yes", String::new()),
        ("│  ├─ city-1", "yes", String::new()),
        ("│  └─ city-2", "no", one_line(&city2_error)),
        ("└─ region-2", "yes", String::new()),
        ("   ├─ city-3", "yes", String::new()),
        ("   └─ city-4", "yes", String::new()),
    ];
    for (line, (tree, in_sync, error)) in lines[7..].iter().zip(&expected) {
        let got = cells(lines[5], &titles, line);
        assert_eq!(
            (got[0].as_str(), got[1].as_str(), got[3].as_str(), &got[4]),
            (*tree, *in_sync, "-", error),
            "{line:?} (no push ran: no lag)"
        );
        assert!(ago().is_match(&got[2]), "last sync of {line:?}");
        assert!(line.starts_with("  "), "{line:?}");
    }

    // ---- -o wide: the same lines, city-2's error in full
    let wide = stdout_ok(&status(&c, &["-o", "wide"]));
    let city2 = wide
        .lines()
        .find(|l| l.contains("└─ city-2"))
        .expect("city-2 line");
    let full = city2_error.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(city2.ends_with(&format!("  {full}")), "{city2:?}");

    // ---- JSON: parses and says the same
    let json: serde_json::Value =
        serde_json::from_str(&stdout_ok(&status(&c, &["-o", "json"]))).expect("JSON output");
    assert_eq!(json["formatVersion"], 1);
    let regs: Vec<(String, i64, i64, String)> = json["registries"]
        .as_array()
        .expect("registries")
        .iter()
        .map(|r| {
            (
                format!(
                    "{}/{}",
                    r["namespace"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or("")
                ),
                r["readyReplicas"].as_i64().unwrap_or(-1),
                r["desiredReplicas"].as_i64().unwrap_or(-1),
                r["ready"]["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        regs,
        [
            ("default/hq".to_string(), 1, 1, "True".to_string()),
            ("fleet/broken".to_string(), 0, 1, "False".to_string())
        ]
    );
    let policies = json["policies"].as_array().expect("policies");
    assert_eq!(policies.len(), 1);
    let p = &policies[0];
    assert_eq!(
        (&p["namespace"], &p["name"], &p["phase"], &p["reason"]),
        (
            &"default".into(),
            &"tiers".into(),
            &"Degraded".into(),
            &serde_json::Value::from("DestinationFailed")
        )
    );
    assert_eq!(
        (&p["inSync"], &p["destinationCount"]),
        (&5.into(), &6.into())
    );
    assert_eq!(p["source"]["endpoint"], hq.url());
    // The same tree: (depth, name, from, inSync, lastError, endpoint).
    fn walk(
        nodes: &serde_json::Value,
        depth: usize,
        out: &mut Vec<(usize, String, String, bool, String, String)>,
    ) {
        for n in nodes.as_array().expect("destinations") {
            let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
            out.push((
                depth,
                s("name"),
                s("from"),
                n["inSync"] == true,
                s("lastError"),
                s("endpoint"),
            ));
            assert!(
                n["secondsSinceSync"].as_i64().is_some_and(|s| s >= -5),
                "{n}"
            );
            walk(&n["children"], depth + 1, out);
        }
    }
    let mut tree = Vec::new();
    walk(&p["destinations"], 0, &mut tree);
    let want: Vec<(usize, String, String, bool, String, String)> = [
        (0, "region-1", "", true, ""),
        (1, "city-1", "region-1", true, ""),
        (1, "city-2", "region-1", false, city2_error.as_str()),
        (0, "region-2", "", true, ""),
        (1, "city-3", "region-2", true, ""),
        (1, "city-4", "region-2", true, ""),
    ]
    .into_iter()
    .map(|(d, n, f, ok, e)| {
        let url = dests
            .iter()
            .find(|x| x.0 == n)
            .map(|x| x.1.clone())
            .unwrap_or_default();
        (d, n.to_string(), f.to_string(), ok, e.to_string(), url)
    })
    .collect();
    assert_eq!(tree, want);

    // ---- one namespace
    let fleet_only = stdout_ok(&status(&c, &["-n", "fleet"]));
    assert_eq!(fleet_only.lines().count(), 2, "{fleet_only}");
    assert!(
        fleet_only
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("fleet/broken "))
    );
    let empty = status(&c, &["-n", "nothing-here"]);
    assert_eq!(stdout_ok(&empty), "");
    assert!(
        String::from_utf8_lossy(&empty.stderr).contains("found in namespace nothing-here"),
        "{}",
        String::from_utf8_lossy(&empty.stderr)
    );

    // ---- colours: on a terminal (a pty from `script`), and not with NO_COLOR
    let on_tty = |no_color: Option<&str>| {
        let mut cmd = Command::new("script");
        cmd.args([
            "-qec",
            &format!("{} status", env!("CARGO_BIN_EXE_flotilla")),
            "/dev/null",
        ])
        .env("KUBECONFIG", c.kubeconfig())
        .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        stdout_ok(&cmd.output().expect("run script"))
    };
    let colored = on_tty(None);
    assert!(
        colored.contains("\x1b[32myes\x1b[0m") && colored.contains("\x1b[31mno\x1b[0m"),
        "{colored:?}"
    );
    let no_color = on_tty(Some("1"));
    assert!(
        !no_color.contains('\x1b') && no_color.contains("city-2"),
        "{no_color:?}"
    );

    // ---- the kubectl plugin: the same binary on PATH as kubectl-flotilla
    kubectl_plugin(&c, &text);
}

fn kubectl_plugin(c: &Cluster, text: &str) {
    let bin = Command::new("bash")
        .arg(cluster::root().join("e2e/cluster.sh"))
        .args(["bin", "kubectl"])
        .output()
        .expect("find kubectl");
    let kubectl = String::from_utf8_lossy(&bin.stdout).trim().to_string();
    let dir = logs_dir().join("plugin-path");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    let link = dir.join("kubectl-flotilla");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_flotilla"), &link).expect("symlink");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| {
        Command::new(&kubectl)
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", c.kubeconfig())
            .output()
            .expect("run kubectl")
    };
    let list = stdout_ok(&run(&["plugin", "list"]));
    assert!(list.contains(&link.display().to_string()), "{list}");
    let help = stdout_ok(&run(&["flotilla", "status", "--help"]));
    assert!(help.contains("Usage: kubectl flotilla status"), "{help}");
    let via_kubectl = stdout_ok(&run(&["flotilla", "status"]));
    // Ages may have moved on, and a retry may have ended since; the picture may not.
    let shape = |t: &str| {
        let t = regex::Regex::new(r"[0-9]+[smhd] ago")
            .expect("regex")
            .replace_all(t, "_ ago");
        regex::Regex::new(r"\((SpecChange|Retry), ")
            .expect("regex")
            .replace_all(&t, "(_, ")
            .replace(char::is_whitespace, "")
    };
    assert_eq!(shape(&via_kubectl), shape(text), "{via_kubectl}");
}
