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

/// The directory of the Gateway API CRDs (standard channel) that e2e/build-tools.sh fetched,
/// the newest version; panics saying how to fetch them.
pub fn gateway_api_crds() -> PathBuf {
    let cache = std::env::var_os("FLOTILLA_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/flotilla"),
        PathBuf::from,
    );
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&cache)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("gateway-api-v"))
                && p.join("gateway.networking.k8s.io_httproutes.yaml").exists()
        })
        .collect();
    dirs.sort();
    dirs.pop().unwrap_or_else(|| {
        panic!(
            "no Gateway API CRDs under {}: run e2e/build-tools.sh (fetches sigs.k8s.io/gateway-api from the Go module proxy)",
            cache.display()
        )
    })
}

/// Installs the Gateway API CRDs of [`gateway_api_crds`] on `c` and waits until HTTPRoute
/// is served.
pub fn install_gateway_api(c: &super::cluster::Cluster) {
    let dir = gateway_api_crds();
    c.kubectl_ok(&["apply", "--server-side", "-f", dir.to_str().expect("utf-8")]);
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/httproutes.gateway.networking.k8s.io",
        "--timeout=60s",
    ]);
}
