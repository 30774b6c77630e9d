//! The test tools built by e2e/build-tools.sh (helm, kubeconform, promtool, lua-health, olareg,
//! cosign, oras, …), found by e2e/tool-path.sh: `$NAME_BIN`, else the build cache.
//! Loaded by path from the support files that need it (see packaging.rs).

use std::path::PathBuf;
use std::process::Command;

/// The path of `name`; panics saying how to build it (or which variable names it).
pub fn tool(name: &str) -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/tool-path.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(name)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    assert!(
        out.status.success(),
        "{name} is missing: run e2e/build-tools.sh (it builds {name} from its Go module into \
         ~/.cache/flotilla/bin/), or set {var}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
