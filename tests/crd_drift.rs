//! The checked-in CRDs (crds/ and the chart's copy) must match what the code generates.

use clap::ValueEnum;
use lightsail_gui_operator::process::cli::CrdKind;

#[test]
fn checked_in_crds_match_generated() {
    let root = env!("CARGO_MANIFEST_DIR");
    for kind in CrdKind::value_variants() {
        let (crd, file) = kind.crd();
        let generated = serde_yaml::to_string(&crd).expect("CRD serialises to YAML");
        let name = kind
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        for dir in ["crds", "charts/lightsail-gui-operator/files/crds"] {
            let checked_in =
                std::fs::read_to_string(format!("{root}/{dir}/{file}")).unwrap_or_default();
            assert!(
                checked_in == generated,
                "{dir}/{file} is out of date with the Rust types; regenerate it with\n\n    \
                 cargo run -- crd --kind {name} > crds/{file} && \
                 cp crds/{file} charts/lightsail-gui-operator/files/crds/\n"
            );
        }
    }
}
