//! The checked-in CRD must match what the code generates.

use kube::CustomResourceExt;
use lightsail_gui_operator::crd::GuiSession;

#[test]
fn checked_in_crd_matches_generated() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/guisession.yaml");
    let generated = serde_yaml::to_string(&GuiSession::crd()).expect("CRD serialises to YAML");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "crds/guisession.yaml is out of date with src/crd.rs; regenerate it with\n\n    \
         cargo run -- crd > crds/guisession.yaml\n"
    );
}
