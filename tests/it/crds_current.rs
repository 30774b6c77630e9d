//! The committed CRDs under `crds/` are what the code generates (`flotilla crd --out-dir crds`).

#[test]
fn committed_crds_match_the_generated_ones() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for (file, crd) in flotilla::crd::all() {
        let generated = flotilla::crd::to_yaml(&crd).expect("serialise CRD");
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            committed == generated,
            "crds/{file} is stale or missing: run `cargo run -- crd --out-dir crds` and commit the result"
        );
    }
    let extra: Vec<String> = std::fs::read_dir(&dir)
        .expect("read crds/")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|f| !flotilla::crd::all().iter().any(|(name, _)| name == f))
        .collect();
    assert!(
        extra.is_empty(),
        "crds/ holds files the code does not generate: {extra:?}"
    );
}
