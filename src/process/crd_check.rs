//! The CRDs in the cluster against the ones this binary generates, checked once at start.
//!
//! A server-side apply that names a field the CRD does not declare fails as a whole ("field not
//! declared in schema", HTTP 500), so an operator running on CRDs older than itself (CRDs managed
//! outside the chart with `crds.install=false`, or a rollout applied out of order) would fail
//! every status write, forever, with that message. It refuses to start instead, and says which
//! CRD lacks which fields and how to update it. CRDs newer than the binary (the old replica of a
//! rolling update) pass: every field it writes is still declared.

use anyhow::{Context as _, bail};
use clap::ValueEnum as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, JSONSchemaProps,
    JSONSchemaPropsOrArray,
};
use kube::Client;
use kube::api::Api;
use tracing::warn;

use crate::process::cli::CrdKind;

/// How many missing fields an error names before it counts the rest.
const NAMED: usize = 8;

/// Fails, naming the CRD and its missing fields, when a CRD in the cluster lacks a field that
/// this binary's CRD declares. An identity that may not read CRDs skips the check, with a warning.
pub async fn check_installed_crds(client: &Client) -> anyhow::Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for kind in CrdKind::value_variants() {
        let (expected, _) = kind.crd();
        let name = expected.metadata.name.clone().unwrap_or_default();
        let served = match api.get(&name).await {
            Ok(crd) => crd,
            Err(kube::Error::Api(e)) if e.code == 403 => {
                warn!(
                    crd = name,
                    "may not get this CRD, so it is not checked against this version's: grant \
                     get on customresourcedefinitions {name} (the chart does)"
                );
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot read the CustomResourceDefinition {name}: is it installed \
                         (`lightsail-gui-operator crd --kind {}`)?",
                        kind_name(*kind)
                    )
                });
            }
        };
        let missing = missing_in(&expected, &served);
        if !missing.is_empty() {
            let named: Vec<&str> = missing.iter().take(NAMED).map(String::as_str).collect();
            let more = match missing.len().saturating_sub(NAMED) {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            bail!(
                "the CustomResourceDefinition {name} in the cluster is older than this operator: \
                 it does not declare {}{more}. Update it (helm upgrade does, unless \
                 crds.install=false; otherwise `lightsail-gui-operator crd --kind {} | kubectl \
                 apply --server-side -f -` with this version), then restart the operator",
                named.join(", "),
                kind_name(*kind)
            );
        }
    }
    Ok(())
}

fn kind_name(kind: CrdKind) -> String {
    kind.to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// Every version and field `expected` declares that `served` does not, as `version` or
/// `version: .path.to.field` (`[]` for a list's items).
pub fn missing_in(
    expected: &CustomResourceDefinition,
    served: &CustomResourceDefinition,
) -> Vec<String> {
    let mut missing = Vec::new();
    for version in &expected.spec.versions {
        let Some(served_version) = served
            .spec
            .versions
            .iter()
            .find(|v| v.name == version.name && v.served)
        else {
            missing.push(format!("version {}", version.name));
            continue;
        };
        if let (Some(want), Some(have)) = (schema_of(version), schema_of(served_version)) {
            let mut paths = Vec::new();
            missing_fields(want, have, "", &mut paths);
            missing.extend(paths.into_iter().map(|p| format!("{}: {p}", version.name)));
        }
    }
    missing
}

fn schema_of(version: &CustomResourceDefinitionVersion) -> Option<&JSONSchemaProps> {
    version.schema.as_ref()?.open_api_v3_schema.as_ref()
}

/// Appends to `out` the path of every property under `want` that `have` lacks. A schema that
/// keeps unknown fields (`x-kubernetes-preserve-unknown-fields`) declares everything below it.
fn missing_fields(
    want: &JSONSchemaProps,
    have: &JSONSchemaProps,
    path: &str,
    out: &mut Vec<String>,
) {
    if have.x_kubernetes_preserve_unknown_fields == Some(true) {
        return;
    }
    for (field, want_field) in want.properties.iter().flatten() {
        let field_path = format!("{path}.{field}");
        match have.properties.as_ref().and_then(|p| p.get(field)) {
            Some(have_field) => missing_fields(want_field, have_field, &field_path, out),
            None => out.push(field_path),
        }
    }
    if let (
        Some(JSONSchemaPropsOrArray::Schema(want_items)),
        Some(JSONSchemaPropsOrArray::Schema(have_items)),
    ) = (&want.items, &have.items)
    {
        missing_fields(want_items, have_items, &format!("{path}[]"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guisession_crd() -> CustomResourceDefinition {
        CrdKind::GuiSession.crd().0
    }

    /// Removes the field at `path` (`[]` steps into a list's items) from the first version.
    fn remove(crd: &mut CustomResourceDefinition, path: &[&str]) {
        let mut schema = crd.spec.versions[0]
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .expect("schema");
        let (last, parents) = path.split_last().expect("a path");
        for step in parents {
            schema = match (*step, schema.items.as_mut()) {
                ("[]", Some(JSONSchemaPropsOrArray::Schema(items))) => items,
                _ => schema
                    .properties
                    .as_mut()
                    .and_then(|p| p.get_mut(*step))
                    .expect("field on the path"),
            };
        }
        schema
            .properties
            .as_mut()
            .and_then(|p| p.remove(*last))
            .expect("field to remove");
    }

    #[test]
    fn the_generated_crds_lack_nothing_of_themselves() {
        for kind in CrdKind::value_variants() {
            let crd = kind.crd().0;
            assert_eq!(missing_in(&crd, &crd), Vec::<String>::new(), "{kind:?}");
        }
    }

    #[test]
    fn a_crd_from_before_a_field_existed_is_named_with_the_field() {
        let mut older = guisession_crd();
        remove(&mut older, &["status", "computer"]);
        remove(&mut older, &["spec", "computer", "idleStop"]);
        assert_eq!(
            missing_in(&guisession_crd(), &older),
            vec![
                "v1alpha1: .spec.computer.idleStop".to_owned(),
                "v1alpha1: .status.computer".to_owned(),
            ]
        );
    }

    #[test]
    fn a_field_missing_inside_list_items_is_named_with_its_list() {
        let mut older = guisession_crd();
        remove(&mut older, &["status", "conditions", "[]", "reason"]);
        assert_eq!(
            missing_in(&guisession_crd(), &older),
            vec!["v1alpha1: .status.conditions[].reason".to_owned()]
        );
    }

    #[test]
    fn a_newer_crd_passes_and_a_missing_version_is_named() {
        let newer = guisession_crd();
        let mut older = guisession_crd();
        remove(&mut older, &["status", "computer"]);
        assert!(
            missing_in(&older, &newer).is_empty(),
            "a newer CRD lacks nothing"
        );
        let mut renamed = guisession_crd();
        renamed.spec.versions[0].name = "v1beta1".into();
        assert_eq!(
            missing_in(&guisession_crd(), &renamed),
            vec!["version v1alpha1".to_owned()]
        );
    }
}
