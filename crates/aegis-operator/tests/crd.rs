//! The CRD in `deploy/crds/` and in the Helm chart is what the Rust types generate.

#[test]
fn the_crds_in_deploy_are_generated_from_the_current_types() {
    let generated = aegis_operator::crd::yaml().expect("the CRD renders");
    for dir in aegis_operator::crd::GENERATED_IN {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(dir)
            .join(format!("{}.yaml", aegis_operator::crd::NAME));
        let written = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; run `cargo xtask codegen`",
                path.display()
            )
        });
        assert!(
            written == generated,
            "{} is stale: run `cargo xtask codegen` and commit the result",
            path.display()
        );
    }
}
