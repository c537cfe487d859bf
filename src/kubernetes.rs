//! What both controllers share of the Kubernetes side: the field manager and label the
//! operator writes with, and namespace labels as the Namespace cache holds them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{ObjectRef, Store};

/// Field manager of every status write (server-side apply).
pub const FIELD_MANAGER: &str = "lightsail-gui-operator";
/// Label on every Secret the operator writes (value [`FIELD_MANAGER`]): the operator watches only
/// Secrets carrying it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// What a GuiSession may know of the namespace it lives in: its labels, for cluster accounts'
/// namespace selectors.
pub fn namespace_labels(namespaces: &Store<Namespace>, name: &str) -> BTreeMap<String, String> {
    namespaces
        .get(&ObjectRef::new(name))
        .and_then(|ns| ns.metadata.labels.clone())
        .unwrap_or_default()
}
