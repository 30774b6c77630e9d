//! Helpers of the packaging tests (tests/e2e_packaging.rs): the helm and kubeconform binaries
//! built by e2e/build-tools.sh, a kubeconfig holding a ServiceAccount token, the operator as a
//! local process under any kubeconfig, a plain `docker-registry` process, RBAC rule expansion.
//!
#![allow(dead_code)]

use super::ports;
pub use ports::free_port;

use super::tools;
pub use tools::tool;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a program, returning its output.
pub fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// Runs a program and returns stdout, panicking with stderr on failure.
pub fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Parses a multi-document YAML stream into JSON values (empty documents dropped).
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde_json::Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The document of `kind` named `name`.
pub fn find<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among the rendered objects"))
}

/// One permission: API group, resource (with subresource), verb, and resourceNames (joined).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub names: Vec<String>,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {g}/{}", self.verb, self.resource)?;
        if !self.names.is_empty() {
            write!(f, " {:?}", self.names)?;
        }
        Ok(())
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Expands the rules of a Role/ClusterRole into single permissions.
pub fn permissions(role: &serde_json::Value) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert(Permission {
                        group: group.clone(),
                        resource: resource.clone(),
                        verb,
                        names: strings(&rule["resourceNames"]),
                    });
                }
            }
        }
    }
    out
}

/// Rules granting exactly `perms` (one rule each).
pub fn rules(perms: &BTreeSet<Permission>) -> serde_json::Value {
    perms
        .iter()
        .map(|p| {
            let mut r = serde_json::json!({
                "apiGroups": [p.group], "resources": [p.resource], "verbs": [p.verb]
            });
            if !p.names.is_empty() {
                r["resourceNames"] = serde_json::json!(p.names);
            }
            r
        })
        .collect()
}

/// Writes a kubeconfig beside `admin` that uses `token` instead of the admin's.
pub fn token_kubeconfig(admin: &Path, token: &str, out: &Path) {
    let text = std::fs::read_to_string(admin).expect("read admin kubeconfig");
    let mut replaced = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("token:") {
                replaced = true;
                format!("    token: {token}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(replaced, "no token line in {}", admin.display());
    std::fs::write(out, lines.join("\n") + "\n").expect("write kubeconfig");
}

/// `flotilla run` as a local process standing in for the operator pod: its own kubeconfig,
/// loopback ports, a log file. Killed (SIGKILL) on drop.
pub struct OperatorProcess {
    child: Option<Child>,
    pub probe_port: u16,
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Starts it; does not wait for anything (a starved RBAC may keep it from ever being ready).
    pub fn spawn(kubeconfig: &Path, log: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Self {
        let probe_port = free_port();
        let receiver_port = free_port();
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .arg("run")
            .args(["--probe-addr", &format!("127.0.0.1:{probe_port}")])
            .args(["--receiver-addr", &format!("127.0.0.1:{receiver_port}")])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,flotilla=debug,kube_runtime=debug")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log"))
            .stderr(file)
            .spawn()
            .expect("start flotilla run");
        OperatorProcess {
            child: Some(child),
            probe_port,
            log,
        }
    }

    /// Body of a GET on the probe port when it answers 200.
    pub fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.probe_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok()?;
        let (head, body) = resp.split_once("\r\n\r\n")?;
        (head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"))
            .then(|| body.to_string())
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, as a crashed or evicted pod.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain `docker-registry` (Distribution) process on a loopback port; killed on drop.
pub struct LocalRegistry {
    child: Child,
    pub port: u16,
}

impl LocalRegistry {
    /// Starts one with its data under `dir`, waiting until `/v2/` answers.
    pub fn start(dir: &Path) -> Self {
        const BIN: &str = "/usr/bin/docker-registry";
        assert!(
            Path::new(BIN).exists(),
            "{BIN} is missing: apt-get install docker-registry"
        );
        std::fs::create_dir_all(dir).expect("registry dir");
        let port = free_port();
        let cfg = dir.join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: packaging-test\n",
                dir.join("data").display()
            ),
        )
        .expect("registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
        let child = Command::new(BIN)
            .arg("serve")
            .arg(&cfg)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let r = LocalRegistry { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            use std::io::{Read, Write};
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = write!(s, "GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n");
                let mut resp = String::new();
                let _ = s.read_to_string(&mut resp);
                if resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200") {
                    return r;
                }
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Turns the API server's OpenAPI v2 document (`kubectl get --raw /openapi/v2`, which includes
/// the installed CRDs) into a kubeconform schema directory, offline: `_definitions.json` plus
/// one `<kind>-<group>-<version>.json` per kind referring into it, the names kubeconform's
/// `{{ .ResourceKind }}{{ .KindSuffix }}` template asks for. `int-or-string` becomes a oneOf,
/// as JSON Schema has no such format. Returns the `-schema-location` template.
pub fn kubeconform_schemas(openapi: &serde_json::Value, dir: &Path) -> String {
    fn int_or_string(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("format").and_then(|f| f.as_str()) == Some("int-or-string") {
                    m.remove("format");
                    m.remove("type");
                    m.insert(
                        "oneOf".into(),
                        serde_json::json!([{"type": "string"}, {"type": "integer"}]),
                    );
                }
                m.values_mut().for_each(int_or_string);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(int_or_string),
            _ => {}
        }
    }
    let mut defs = openapi["definitions"].clone();
    assert!(defs.is_object(), "no definitions in the OpenAPI document");
    int_or_string(&mut defs);
    std::fs::create_dir_all(dir).expect("schema dir");
    let mut kinds = 0;
    for (name, schema) in defs.as_object().expect("definitions") {
        for gvk in schema["x-kubernetes-group-version-kind"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let (group, version, kind) = (
                gvk["group"].as_str().unwrap_or_default(),
                gvk["version"].as_str().unwrap_or_default(),
                gvk["kind"].as_str().unwrap_or_default(),
            );
            let suffix = if group.is_empty() {
                format!("-{}", version.to_lowercase())
            } else {
                let first = group.split('.').next().unwrap_or(group);
                format!("-{}-{}", first.to_lowercase(), version.to_lowercase())
            };
            let file = dir.join(format!("{}{suffix}.json", kind.to_lowercase()));
            let reference =
                serde_json::json!({"$ref": format!("_definitions.json#/definitions/{name}")});
            std::fs::write(file, reference.to_string()).expect("write schema");
            kinds += 1;
        }
    }
    assert!(kinds > 50, "only {kinds} kinds in the OpenAPI document");
    std::fs::write(
        dir.join("_definitions.json"),
        serde_json::json!({ "definitions": defs }).to_string(),
    )
    .expect("write definitions");
    format!(
        "{}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        dir.display()
    )
}
