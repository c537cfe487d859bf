//! kube-apiserver's audit log (`ControlPlane::audit_log()`): which requests an identity made and
//! how they were answered, and whether they used what a role grants.

use std::path::Path;

use serde::Deserialize;

use super::chart::Grant;

/// One line of the audit log (level Metadata: no bodies).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// `ResponseStarted` (watches) or `ResponseComplete` (RequestReceived is omitted).
    pub stage: String,
    pub verb: String,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub user: AuditUser,
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AuditUser {
    #[serde(default)]
    pub username: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub subresource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub api_group: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ResponseStatus {
    #[serde(default)]
    pub code: u16,
}

impl AuditEvent {
    pub fn code(&self) -> u16 {
        self.response_status.as_ref().map_or(0, |s| s.code)
    }

    pub fn forbidden(&self) -> bool {
        self.code() == 403
    }

    /// `resource` or `resource/subresource`, as RBAC rules name it; empty for non-resource URLs.
    pub fn resource(&self) -> String {
        match &self.object_ref {
            Some(o) if o.subresource.is_empty() => o.resource.clone(),
            Some(o) => format!("{}/{}", o.resource, o.subresource),
            None => String::new(),
        }
    }

    /// Whether this request was one that `grant` allows (and was not refused): same verb, API
    /// group and resource, and the grant's namespace and object name, when it names them.
    pub fn uses(&self, grant: &Grant) -> bool {
        let Some(object) = &self.object_ref else {
            return false;
        };
        let any = |granted: &str, asked: &str| granted == "*" || granted == asked;
        !self.forbidden()
            && self.code() != 401
            && any(&grant.verb, &self.verb)
            && any(&grant.group, &object.api_group)
            && any(&grant.resource, &self.resource())
            && grant
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == object.namespace)
            && grant.name.as_ref().is_none_or(|n| *n == object.name)
    }

    /// A line for a report: verb, resource, namespace/name and the answer.
    pub fn describe(&self) -> String {
        let object = self.object_ref.clone().unwrap_or_default();
        format!(
            "{} {}{} {}/{} -> {}",
            self.verb,
            if object.api_group.is_empty() {
                String::new()
            } else {
                format!("{}/", object.api_group)
            },
            self.resource(),
            object.namespace,
            object.name,
            self.code()
        )
    }
}

/// Every event in the log, oldest first. A line still being written (the last, without its
/// newline) is left out: the next read has it.
pub fn read(path: &Path) -> Vec<AuditEvent> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "audit log {}: {e} (is the control plane scripts/control-plane-up's?)",
            path.display()
        )
    });
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit log line {l:?}: {e}")))
        .collect()
}

/// The events of `username` (e.g. `system:serviceaccount:NS:NAME`).
pub fn of_user(events: &[AuditEvent], username: &str) -> Vec<AuditEvent> {
    events
        .iter()
        .filter(|e| e.user.username == username)
        .cloned()
        .collect()
}
