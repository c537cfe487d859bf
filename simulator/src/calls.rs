//! Call counts by (action, resource, outcome), served as JSON and Prometheus text, and a log of
//! the session-changing calls and the STS calls with their times and callers.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

/// Outcome of a call that answered 200.
pub const OUTCOME_OK: &str = "ok";
/// Entries the call log keeps; older ones are dropped (and counted) past this.
pub const CALL_LOG_CAPACITY: usize = 10_000;
/// The actions the call log keeps: those that change something, and the STS ones.
const LOGGED_ACTIONS: [&str; 8] = [
    "StartGUISession",
    "StopGUISession",
    "StartInstance",
    "StopInstance",
    "EnableAddOn",
    "DisableAddOn",
    "AssumeRole",
    "GetCallerIdentity",
];

/// What a call log entry keeps besides who and when, for the calls that have it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Details {
    /// What an `AssumeRole` whose parameters were valid asked for.
    pub assume_role: Option<AssumeRoleRequest>,
    /// `StopInstance`'s `force`, as sent.
    pub force: Option<bool>,
}

/// Who made a call, as far as the simulator knows: never a secret.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Who<'a> {
    /// The access key id the request's signature names.
    pub access_key_id: Option<&'a str>,
    /// The account of that key, when the simulator knows the key.
    pub account: Option<&'a str>,
    /// The principal's ARN, when the simulator knows the key.
    pub caller_arn: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CallKey {
    action: &'static str,
    resource: Arc<str>,
    outcome: &'static str,
}

/// Live counters and the call log.
pub(crate) struct CallCounter {
    counts: HashMap<CallKey, u64>,
    log: VecDeque<CallLogEntry>,
    log_capacity: usize,
    dropped: u64,
}

impl Default for CallCounter {
    fn default() -> Self {
        Self::with_log_capacity(CALL_LOG_CAPACITY)
    }
}

impl CallCounter {
    pub(crate) fn with_log_capacity(log_capacity: usize) -> Self {
        Self {
            counts: HashMap::new(),
            log: VecDeque::new(),
            log_capacity,
            dropped: 0,
        }
    }

    /// Counts a call; the calls that change something and the STS calls also go into the log,
    /// with who signed them (as claimed, when the signature was refused), the wall-clock time
    /// and their [`Details`].
    pub(crate) fn record(
        &mut self,
        action: &'static str,
        resource: Arc<str>,
        outcome: &'static str,
        who: Who<'_>,
        details: Details,
    ) {
        if LOGGED_ACTIONS.contains(&action) {
            if self.log.len() >= self.log_capacity {
                self.log.pop_front();
                self.dropped += 1;
            }
            if self.log_capacity > 0 {
                self.log.push_back(CallLogEntry {
                    action: action.to_owned(),
                    resource: resource.to_string(),
                    outcome: outcome.to_owned(),
                    time: jiff::Timestamp::now(),
                    access_key_id: who.access_key_id.map(str::to_owned),
                    account: who.account.map(str::to_owned),
                    caller_arn: who.caller_arn.map(str::to_owned),
                    assume_role: details.assume_role,
                    force: details.force,
                });
            }
        }
        *self
            .counts
            .entry(CallKey {
                action,
                resource,
                outcome,
            })
            .or_default() += 1;
    }

    /// Zeroes the counts and empties the log.
    pub(crate) fn reset(&mut self) {
        self.counts.clear();
        self.log.clear();
        self.dropped = 0;
    }

    /// A copy of the log, oldest first.
    pub(crate) fn log(&self) -> CallLog {
        CallLog {
            entries: self.log.iter().cloned().collect(),
            dropped: self.dropped,
        }
    }

    /// A sorted copy.
    pub(crate) fn report(&self) -> CallReport {
        let mut calls: Vec<CallCount> = self
            .counts
            .iter()
            .map(|(key, count)| CallCount {
                action: key.action.to_owned(),
                resource: key.resource.to_string(),
                outcome: key.outcome.to_owned(),
                count: *count,
            })
            .collect();
        calls.sort_by(|a, b| {
            (&a.action, &a.resource, &a.outcome).cmp(&(&b.action, &b.resource, &b.outcome))
        });
        let total = calls.iter().map(|c| c.count).sum();
        CallReport { calls, total }
    }
}

/// One counter: calls of `action` about `resource` (empty when the call named none, e.g. a
/// `GetOperation` for an unknown id) that ended in `outcome` (`ok` or the error's `__type`,
/// e.g. `ThrottlingException`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCount {
    /// Action name, e.g. `StartGUISession`; `Unknown` for unknown targets.
    pub action: String,
    /// Resource name the call was about.
    pub resource: String,
    /// `ok` or the error type.
    pub outcome: String,
    /// How many.
    pub count: u64,
}

/// One `StartGUISession`, `StopGUISession`, `StartInstance`, `StopInstance`, `EnableAddOn`,
/// `DisableAddOn`, `AssumeRole` or `GetCallerIdentity` call in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallLogEntry {
    /// The action, e.g. `StartGUISession` or `StopInstance`.
    pub action: String,
    /// What the call was about: the computer's name for the Lightsail calls, the `RoleArn` as
    /// requested
    /// for `AssumeRole` (so `matching(Some("AssumeRole"), Some(role_arn), Some("ok"))` counts a
    /// role's assumptions), empty when it named none and for `GetCallerIdentity`.
    pub resource: String,
    /// `ok` (only these changed a session) or the error's `__type`, as in the counts.
    pub outcome: String,
    /// When the simulator decided the outcome, on this machine's wall clock: not shifted by
    /// the clock offset, so it compares with the caller's own clock.
    pub time: jiff::Timestamp,
    /// The access key id in the request's SigV4 `Credential` (also when the signature was
    /// refused); none when the request was not signed.
    pub access_key_id: Option<String>,
    /// The account that key belongs to: the base account for the base credentials, the role's
    /// account for credentials from `AssumeRole` (also when the call was refused, e.g. for an
    /// expired token); none when the key is unknown or the request was not signed.
    #[serde(default)]
    pub account: Option<String>,
    /// The principal behind that key, as `GetCallerIdentity` names it:
    /// `arn:aws:iam::ACCOUNT:user/lightsail-sim` or
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`; none when `account` is none.
    #[serde(default)]
    pub caller_arn: Option<String>,
    /// For an `AssumeRole` whose parameters were valid (granted or refused by the role's trust
    /// policy): what it asked for, session tags included. None for other calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRoleRequest>,
    /// For a `StopInstance`: its `force` member as sent (`true` forces a stop, which AWS warns
    /// can lose data); none when it was not sent, and for other calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// What an `AssumeRole` call asked for, as the call log keeps it: no secrets (an external id is
/// not one). JSON: `{"roleArn","roleSessionName","externalId","durationSeconds","tags":[{"key",
/// "value"}],"transitiveTagKeys":[...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRoleRequest {
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub role_session_name: String,
    /// `ExternalId`, when sent.
    #[serde(default)]
    pub external_id: Option<String>,
    /// `DurationSeconds`, when sent.
    #[serde(default)]
    pub duration_seconds: Option<u32>,
    /// The session tags (`Tags.member.N`), in the order sent.
    #[serde(default)]
    pub tags: Vec<SessionTag>,
    /// `TransitiveTagKeys.member.N`, in the order sent.
    #[serde(default)]
    pub transitive_tag_keys: Vec<String>,
}

impl AssumeRoleRequest {
    /// The value of session tag `key` (tag keys ignore case, as in IAM).
    pub fn tag(&self, key: &str) -> Option<&str> {
        let key = key.to_lowercase();
        self.tags
            .iter()
            .find(|tag| tag.key.to_lowercase() == key)
            .map(|tag| tag.value.as_str())
    }
}

/// A session tag: `{"key": "kubernetes-namespace", "value": "physics"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTag {
    /// 1 to 128 characters.
    pub key: String,
    /// 0 to 256 characters.
    pub value: String,
}

impl SessionTag {
    /// A tag.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// What `GET /_sim/calls/log` returns: `{"entries": [...], "dropped": N}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLog {
    /// Oldest first; at most [`CALL_LOG_CAPACITY`].
    pub entries: Vec<CallLogEntry>,
    /// Older entries dropped to stay within the capacity since the last reset.
    pub dropped: u64,
}

impl CallLog {
    /// Entries of `action` about `resource` that ended in `outcome` (`None` matches anything).
    pub fn matching<'a>(
        &'a self,
        action: Option<&'a str>,
        resource: Option<&'a str>,
        outcome: Option<&'a str>,
    ) -> impl Iterator<Item = &'a CallLogEntry> + 'a {
        self.entries
            .iter()
            .filter(move |e| action.is_none_or(|a| e.action == a))
            .filter(move |e| resource.is_none_or(|r| e.resource == r))
            .filter(move |e| outcome.is_none_or(|o| e.outcome == o))
    }

    /// What each `AssumeRole` call of `role_arn` that ended in `outcome` asked for (`None`
    /// matches anything), oldest first: e.g. the session tags the operator sent.
    pub fn assume_role_requests<'a>(
        &'a self,
        role_arn: Option<&'a str>,
        outcome: Option<&'a str>,
    ) -> impl Iterator<Item = &'a AssumeRoleRequest> + 'a {
        self.matching(Some("AssumeRole"), role_arn, outcome)
            .filter_map(|e| e.assume_role.as_ref())
    }

    /// Entries of calls signed with credentials of `account`.
    pub fn from_account<'a>(
        &'a self,
        account: &'a str,
    ) -> impl Iterator<Item = &'a CallLogEntry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.account.as_deref() == Some(account))
    }
}

/// What `GET /_sim/calls` returns: `{"calls": [...], "total": N}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallReport {
    /// Counters sorted by action, resource, outcome.
    pub calls: Vec<CallCount>,
    /// Sum of all counters.
    pub total: u64,
}

impl CallReport {
    /// Calls matching all given filters (`None` matches anything).
    pub fn count(
        &self,
        action: Option<&str>,
        resource: Option<&str>,
        outcome: Option<&str>,
    ) -> u64 {
        self.calls
            .iter()
            .filter(|c| action.is_none_or(|a| c.action == a))
            .filter(|c| resource.is_none_or(|r| c.resource == r))
            .filter(|c| outcome.is_none_or(|o| c.outcome == o))
            .map(|c| c.count)
            .sum()
    }

    /// Prometheus text exposition of the counters.
    pub fn to_prometheus(&self) -> String {
        let mut text = String::from(
            "# HELP lightsail_sim_calls_total Calls answered by the Lightsail simulator.\n\
             # TYPE lightsail_sim_calls_total counter\n",
        );
        for call in &self.calls {
            // Writing into a String cannot fail.
            let _ = writeln!(
                text,
                "lightsail_sim_calls_total{{action=\"{}\",resource=\"{}\",outcome=\"{}\"}} {}",
                escape_label(&call.action),
                escape_label(&call.resource),
                escape_label(&call.outcome),
                call.count
            );
        }
        text
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accumulate_and_render() {
        let mut counter = CallCounter::default();
        let vm: Arc<str> = Arc::from("vm-1");
        counter.record(
            "GetOperation",
            Arc::clone(&vm),
            OUTCOME_OK,
            Who::default(),
            Details::default(),
        );
        counter.record(
            "GetOperation",
            Arc::clone(&vm),
            OUTCOME_OK,
            Who::default(),
            Details::default(),
        );
        counter.record(
            "GetOperation",
            Arc::from("odd\"name"),
            "ThrottlingException",
            Who::default(),
            Details::default(),
        );
        let report = counter.report();
        assert_eq!(report.total, 3);
        assert_eq!(
            report.count(Some("GetOperation"), Some("vm-1"), Some("ok")),
            2
        );
        assert_eq!(report.count(None, None, Some("ThrottlingException")), 1);
        let text = report.to_prometheus();
        assert!(text.contains(
            "lightsail_sim_calls_total{action=\"GetOperation\",resource=\"vm-1\",outcome=\"ok\"} 2\n"
        ));
        assert!(text.contains("resource=\"odd\\\"name\""));
        counter.reset();
        assert_eq!(counter.report().total, 0);
    }

    #[test]
    fn the_log_keeps_session_calls_up_to_its_capacity() {
        let mut counter = CallCounter::with_log_capacity(2);
        let vm: Arc<str> = Arc::from("vm-1");
        let key = |id| Who {
            access_key_id: Some(id),
            ..Who::default()
        };
        counter.record(
            "GetOperation",
            Arc::clone(&vm),
            OUTCOME_OK,
            key("AKID1"),
            Details::default(),
        );
        counter.record(
            "StartGUISession",
            Arc::clone(&vm),
            OUTCOME_OK,
            key("AKID1"),
            Details::default(),
        );
        counter.record(
            "StopGUISession",
            Arc::clone(&vm),
            "NotFoundException",
            Who::default(),
            Details::default(),
        );
        counter.record(
            "StartGUISession",
            Arc::clone(&vm),
            OUTCOME_OK,
            key("AKID2"),
            Details::default(),
        );
        let log = counter.log();
        assert_eq!(log.dropped, 1);
        let kept: Vec<(&str, &str, Option<&str>)> = log
            .entries
            .iter()
            .map(|e| {
                (
                    e.action.as_str(),
                    e.outcome.as_str(),
                    e.access_key_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            kept,
            [
                ("StopGUISession", "NotFoundException", None),
                ("StartGUISession", "ok", Some("AKID2")),
            ]
        );
        assert!(log.entries[0].time <= log.entries[1].time);
        assert_eq!(log.matching(Some("StartGUISession"), None, None).count(), 1);
        counter.reset();
        assert_eq!(counter.log(), CallLog::default());
    }

    #[test]
    fn the_log_keeps_sts_calls_with_their_account_and_principal() {
        let mut counter = CallCounter::default();
        let role: Arc<str> = Arc::from("arn:aws:iam::111122223333:role/gui");
        let base = Who {
            access_key_id: Some("AKIDBASE"),
            account: Some("000000000000"),
            caller_arn: Some("arn:aws:iam::000000000000:user/lightsail-sim"),
        };
        let asked = AssumeRoleRequest {
            role_arn: role.to_string(),
            role_session_name: "op-1".to_owned(),
            external_id: Some("lab-1".to_owned()),
            duration_seconds: None,
            tags: vec![SessionTag::new("kubernetes-namespace", "physics")],
            transitive_tag_keys: Vec::new(),
        };
        counter.record(
            "AssumeRole",
            Arc::clone(&role),
            OUTCOME_OK,
            base,
            Details {
                assume_role: Some(asked.clone()),
                force: None,
            },
        );
        let none = Details::default;
        counter.record(
            "AssumeRole",
            Arc::clone(&role),
            "AccessDenied",
            base,
            none(),
        );
        counter.record("GetCallerIdentity", Arc::from(""), OUTCOME_OK, base, none());
        counter.record("GetOperation", Arc::from("vm-1"), OUTCOME_OK, base, none());
        let log = counter.log();
        assert_eq!(log.entries.len(), 3);
        assert_eq!(
            log.matching(Some("AssumeRole"), Some(&role), Some(OUTCOME_OK))
                .count(),
            1
        );
        assert_eq!(log.from_account("000000000000").count(), 3);
        assert_eq!(log.from_account("111122223333").count(), 0);
        let json = serde_json::to_value(&log.entries[0]).ok();
        assert_eq!(
            json.as_ref()
                .map(|j| (j["account"].clone(), j["callerArn"].clone())),
            Some((
                serde_json::json!("000000000000"),
                serde_json::json!("arn:aws:iam::000000000000:user/lightsail-sim")
            ))
        );
        assert_eq!(
            json.as_ref().map(|j| j["assumeRole"].clone()),
            Some(
                serde_json::json!({"roleArn": "arn:aws:iam::111122223333:role/gui",
                "roleSessionName": "op-1", "externalId": "lab-1", "durationSeconds": null,
                "tags": [{"key": "kubernetes-namespace", "value": "physics"}],
                "transitiveTagKeys": []})
            )
        );
        assert_eq!(
            log.assume_role_requests(Some(&role), Some(OUTCOME_OK))
                .collect::<Vec<_>>(),
            [&asked]
        );
        assert_eq!(
            log.assume_role_requests(None, Some("AccessDenied")).count(),
            0
        );
        assert_eq!(asked.tag("Kubernetes-Namespace"), Some("physics"));
        assert_eq!(asked.tag("team"), None);
        // Other calls have no assumeRole member.
        let other = serde_json::to_value(&log.entries[2]).ok();
        assert_eq!(
            other.as_ref().map(|j| j.get("assumeRole").is_none()),
            Some(true)
        );
        // Entries written before the account fields existed still read.
        let old = serde_json::json!({"action": "StartGUISession", "resource": "vm-1",
            "outcome": "ok", "time": "2026-01-01T00:00:00Z", "accessKeyId": null});
        let old: Option<CallLogEntry> = serde_json::from_value(old).ok();
        assert_eq!(old.map(|e| e.account), Some(None));
        assert_eq!(
            counter
                .report()
                .count(Some("AssumeRole"), Some(&role), None),
            2
        );
    }
}
