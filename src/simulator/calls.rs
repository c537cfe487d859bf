//! Call counts by (action, resource, outcome), served as JSON and Prometheus text.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Outcome of a call that answered 200.
pub const OUTCOME_OK: &str = "ok";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CallKey {
    action: &'static str,
    resource: Arc<str>,
    outcome: &'static str,
}

/// Live counters.
#[derive(Default)]
pub(crate) struct CallCounter {
    counts: HashMap<CallKey, u64>,
}

impl CallCounter {
    pub(crate) fn record(
        &mut self,
        action: &'static str,
        resource: Arc<str>,
        outcome: &'static str,
    ) {
        *self
            .counts
            .entry(CallKey {
                action,
                resource,
                outcome,
            })
            .or_default() += 1;
    }

    pub(crate) fn reset(&mut self) {
        self.counts.clear();
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
        counter.record("GetOperation", Arc::clone(&vm), OUTCOME_OK);
        counter.record("GetOperation", Arc::clone(&vm), OUTCOME_OK);
        counter.record(
            "GetOperation",
            Arc::from("odd\"name"),
            "ThrottlingException",
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
}
