//! The access Secret: read, created when absent, patched with a resourceVersion precondition,
//! deleted with uid and resourceVersion preconditions. Only the operator's keys are judged.

use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use super::{DATA_DIGEST_ANNOTATION, Error, Reconcile, SESSION_ANNOTATION, SecretVersion};
use crate::guisession::policy::{AccessSecret, SecretError, SecretSeen};
use crate::guisession::types::GuiSession;
use crate::kubernetes::{FIELD_MANAGER, MANAGED_BY_LABEL};

/// The keys of an access Secret that the operator writes (and judges intact).
const KEY_PRIMARY_URL: &str = "primaryUrl";
const KEY_SECONDARY_URL: &str = "secondaryUrl";
const KEY_RESOURCE_NAME: &str = "resourceName";
const KEY_EXPIRES_AT: &str = "expiresAt";
const OPERATOR_KEYS: &[&str] = &[
    KEY_PRIMARY_URL,
    KEY_SECONDARY_URL,
    KEY_RESOURCE_NAME,
    KEY_EXPIRES_AT,
];

impl Reconcile<'_> {
    /// Reads the Secret `spec.access` names, when there is one to read.
    pub(super) async fn read_secret(&self) -> Result<(SecretSeen, Option<SecretVersion>), Error> {
        let Some(access) = &self.obj.spec.access else {
            return Ok((SecretSeen::NotRead, None));
        };
        if !self.ctx.settings.access_secrets {
            return Ok((SecretSeen::NotRead, None));
        }
        match self
            .secrets
            .get_opt(&access.secret_name_for(&self.obj.name_any()))
            .await
        {
            Ok(Some(secret)) => Ok((secret_seen(&secret, &self.obj), SecretVersion::of(&secret))),
            Ok(None) => Ok((SecretSeen::Missing, None)),
            // Not allowed to read: the write will tell the same, and the state machine shows it.
            Err(kube::Error::Api(s)) if s.code == 403 => Ok((SecretSeen::Missing, None)),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the access Secret: created when it was missing (a create fails if someone else
    /// was first, so a Secret made in between is never taken over), otherwise updated with the
    /// resourceVersion it was judged at as a precondition (so it is still the GuiSession's own).
    /// Only the operator's keys are written; keys others added stay.
    pub(super) async fn write_secret(&self, secret: &AccessSecret) -> Result<Secret, SecretError> {
        let mut data = BTreeMap::new();
        data.insert(KEY_PRIMARY_URL, secret.primary_url.expose().to_owned());
        if let Some(url) = &secret.secondary_url {
            data.insert(KEY_SECONDARY_URL, url.expose().to_owned());
        }
        data.insert(KEY_RESOURCE_NAME, secret.resource_name.clone());
        data.insert(KEY_EXPIRES_AT, secret.expires_at.to_string());
        let data: BTreeMap<String, ByteString> = data
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
            .collect();
        let annotations = BTreeMap::from([
            (
                SESSION_ANNOTATION.to_owned(),
                secret.session_started_at.to_string(),
            ),
            (DATA_DIGEST_ANNOTATION.to_owned(), data_digest(&data)),
        ]);
        let labels = BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned())]);
        let Some(version) = &self.secret_version else {
            let owner = OwnerReference {
                api_version: GuiSession::api_version(&()).into_owned(),
                kind: GuiSession::kind(&()).into_owned(),
                name: self.obj.name_any(),
                uid: self.obj.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            };
            let body = Secret {
                metadata: ObjectMeta {
                    name: Some(secret.name.clone()),
                    labels: Some(labels),
                    annotations: Some(annotations),
                    owner_references: Some(vec![owner]),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".into()),
                data: Some(data),
                ..Secret::default()
            };
            return self
                .secrets
                .create(&PostParams::default(), &body)
                .await
                .map_err(secret_error);
        };
        // A merge patch replaces the operator's keys and removes those of its keys this session
        // has none of; the resourceVersion makes it conditional on the Secret judged ours.
        let mut patch_data = serde_json::Map::new();
        for key in OPERATOR_KEYS {
            let value = data.get(*key).map_or(serde_json::Value::Null, |v| {
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
            });
            patch_data.insert((*key).to_owned(), value);
        }
        let patch = json!({
            "metadata": {
                "uid": version.uid,
                "resourceVersion": version.resource_version,
                "labels": labels,
                "annotations": annotations,
            },
            "data": patch_data,
        });
        self.secrets
            .patch(&secret.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(secret_error)
    }

    /// Deletes an access Secret this GuiSession owns, on the condition that it is still the
    /// object (uid) and the version (resourceVersion) that was judged to be its own.
    pub(super) async fn delete_secret(&self, name: &str) -> Result<(), SecretError> {
        let secret = match self.secrets.get_opt(name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(()),
            Err(e) => return Err(secret_error(e)),
        };
        // Only a Secret this GuiSession owns is ever deleted.
        if secret_seen(&secret, &self.obj) == SecretSeen::Foreign {
            return Ok(());
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.metadata.uid.clone(),
                resource_version: secret.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match self.secrets.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(secret_error(e)),
        }
    }
}

impl SecretVersion {
    pub(super) fn of(secret: &Secret) -> Option<SecretVersion> {
        Some(SecretVersion {
            uid: secret.metadata.uid.clone()?,
            resource_version: secret.metadata.resource_version.clone()?,
        })
    }
}

/// What a read Secret is to `owner`: its own (for which session, edited or not) or someone else's.
pub(super) fn secret_seen(secret: &Secret, owner: &GuiSession) -> SecretSeen {
    let owned = owner.uid().is_some_and(|uid| {
        secret
            .owner_references()
            .iter()
            .any(|r| r.uid == uid && r.controller == Some(true))
    });
    if !owned {
        return SecretSeen::Foreign;
    }
    let annotations = secret.annotations();
    // Judged on the operator's own keys only: a key someone else added is theirs to keep, and
    // must not make the Secret look edited (and so rewritten, with an access call, forever).
    let ours: BTreeMap<String, ByteString> = secret
        .data
        .iter()
        .flatten()
        .filter(|(k, _)| OPERATOR_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let intact = annotations.get(DATA_DIGEST_ANNOTATION) == Some(&data_digest(&ours));
    SecretSeen::Ours {
        session_started_at: annotations
            .get(SESSION_ANNOTATION)
            .and_then(|t| t.parse().ok()),
        intact,
    }
}

/// SHA-256 (hex) over a Secret's data, keys in order. Only a digest of the URLs is ever kept.
pub(super) fn data_digest(data: &BTreeMap<String, ByteString>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (key, value) in data {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(&value.0);
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn secret_error(e: kube::Error) -> SecretError {
    match e {
        kube::Error::Api(s) => SecretError {
            forbidden: s.code == 403,
            // AlreadyExists on a create, a failed precondition on an update or delete: someone
            // else wrote the Secret since it was read.
            conflict: s.code == 409,
            message: format!("{} ({})", s.message, s.code),
        },
        e => SecretError {
            forbidden: false,
            conflict: false,
            message: e.to_string(),
        },
    }
}
