//! `flotilla sync -f` refuses a policy file it would misread, before it contacts any
//! registry: unknown fields (named with the nearest known one), invalid rules (named by
//! field path), and malformed credentials (reported without the secret). The endpoints are
//! unroutable on purpose: reaching them would be a failure of the test.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A distinctive secret that must never appear in any output.
const SECRET: &str = "Pa55-w0rd-zx81-q";

struct Dir(PathBuf);

impl Dir {
    fn new(label: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("flotilla-cli-input-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Dir(p)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf-8 path").to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn flotilla(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run flotilla")
}

/// Runs `flotilla sync -f` on `policy`, expects exit status 2, returns stderr (stdout too,
/// which must say nothing).
fn refused(label: &str, policy: &str, extra: &[&str]) -> String {
    let dir = Dir::new(label);
    let file = dir.write("policy.yaml", policy);
    let mut args = vec!["sync", "-f", file.as_str(), "--progress", "never"];
    args.extend_from_slice(extra);
    let out = flotilla(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    stderr
}

const HEAD: &str = "apiVersion: flotilla.dev/v1alpha1
kind: ReplicationPolicy
metadata: {name: p}
spec:
  source: {url: 'https://source.invalid'}
  destinations: [{name: east, url: 'https://east.invalid'}]
";

#[test]
fn a_typo_in_a_field_name_is_refused_and_the_right_name_suggested() {
    let err = refused("typo", &format!("{HEAD}  bandwith: 5\n"), &[]);
    assert!(
        err.contains(
            "document 1 (ReplicationPolicy): spec.bandwith: unknown field (did you mean spec.bandwidthLimit?)"
        ),
        "{err}"
    );
    assert!(!err.contains(".invalid"), "no registry contacted: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn invalid_rules_are_named_by_their_field_path() {
    let err = refused(
        "rules",
        &format!(
            "{HEAD}  tags: {{semver: '>>1', regex: '(x'}}\n  repositories: {{include: ['a/**', 'b[']}}\n  bandwidthLimit: 5Xi\n"
        ),
        &[],
    );
    for want in [
        "spec.repositories.include[1]: invalid glob \"b[\"",
        "spec.tags.regex: invalid regex \"(x\": unclosed group",
        "spec.tags.semver: invalid semver range \">>1\": ",
        "spec.bandwidthLimit: \"5Xi\" is not",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn a_malformed_dockerconfigjson_is_reported_without_the_secret() {
    // serde's own message would quote the value: `invalid type: string "…"`.
    let json = format!(r#"{{"auths": {{"east.invalid": "{SECRET}"}}}}"#);
    let policy = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds}}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{json}'\n---\n{}",
        HEAD.replace(
            "url: 'https://east.invalid'}",
            "url: 'https://east.invalid', credentialsSecretRef: {name: creds}}"
        )
    );
    let err = refused("dockerconfig", &policy, &[]);
    assert!(
        err.contains("spec.destinations[east].credentialsSecretRef: Secret \"creds\" key .dockerconfigjson: auths[\"east.invalid\"] must be an object"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "leaks the secret: {err}");
}

#[test]
fn a_malformed_authfile_is_reported_without_the_secret() {
    let dir = Dir::new("authfile");
    let auth = dir.write(
        "auth.json",
        &format!(r#"{{"auths": {{"east.invalid": {{"auth": 5}}, "west.invalid": "{SECRET}"}}}}"#),
    );
    let err = refused("authfile-sync", HEAD, &["--authfile", &auth]);
    assert!(err.contains("--authfile"), "{err}");
    assert!(!err.contains(SECRET), "leaks the secret: {err}");
    let out = flotilla(&[
        "copy",
        "--authfile",
        &auth,
        "--progress",
        "never",
        "source.invalid/a:1",
        "east.invalid/a:1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("auths[\"east.invalid\"].auth must be a string"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "leaks the secret: {err}");
}
