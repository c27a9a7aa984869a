//! The CRD in `deploy/crds/` is what the Rust types generate.

#[test]
fn the_crd_in_deploy_is_generated_from_the_current_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/crds")
        .join(format!("{}.yaml", aegis_operator::crd::NAME));
    let written = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run `cargo xtask codegen`",
            path.display()
        )
    });
    let generated = aegis_operator::crd::yaml().expect("the CRD renders");
    assert!(
        written == generated,
        "{} is stale: run `cargo xtask codegen` and commit the result",
        path.display()
    );
}
