//! Watches one namespace's GuiSessions and keeps, per object, every distinct status it showed
//! and when this process saw it. Latencies, write counts and "all Ready" are all read from here,
//! the same way for the operator and for the baseline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use lightsail_gui_operator::guisession::types::{GuiSession, GuiSessionStatus};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Name of the benchmark's i-th GuiSession (and, with another prefix, its computer).
pub fn object_name(i: usize) -> String {
    format!("gs-{i:05}")
}

fn index_of(name: &str) -> Option<usize> {
    name.strip_prefix("gs-")?.parse().ok()
}

/// A status as seen on the watch.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub status: GuiSessionStatus,
}

#[derive(Default, Debug)]
pub struct ObjectLog {
    /// When the create call for it returned.
    pub created: Option<Instant>,
    /// Each distinct status, oldest first.
    pub seen: Vec<Seen>,
}

impl ObjectLog {
    pub fn last(&self) -> Option<&GuiSessionStatus> {
        self.seen.last().map(|s| &s.status)
    }

    /// The first status seen at or after `since` that satisfies `pred`.
    pub fn first_after(
        &self,
        since: Instant,
        pred: impl Fn(&GuiSessionStatus) -> bool,
    ) -> Option<&Seen> {
        self.seen.iter().find(|s| s.at >= since && pred(&s.status))
    }
}

pub struct State {
    pub objects: Vec<ObjectLog>,
    /// Watch events that carried a status different from the one seen before for that object:
    /// each one is a status write somebody made.
    pub status_changes: u64,
}

pub struct Tracker {
    state: Arc<Mutex<State>>,
    changed: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

pub fn ready(status: &GuiSessionStatus) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn operation_id(status: &GuiSessionStatus) -> Option<&str> {
    status.operation.as_ref()?.id.as_deref()
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Tracker {
    /// Starts watching `api` (one namespace) for objects `gs-00000` .. `gs-{n-1}`.
    pub fn start(api: Api<GuiSession>, n: usize) -> Tracker {
        let state = Arc::new(Mutex::new(State {
            objects: (0..n).map(|_| ObjectLog::default()).collect(),
            status_changes: 0,
        }));
        let (tx, changed) = watch::channel(0u64);
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut stream = watcher(api, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(event) = stream.next().await {
                    let obj = match event {
                        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                        Ok(_) => continue,
                        Err(e) => {
                            eprintln!("bench: watch error (retrying): {e}");
                            continue;
                        }
                    };
                    let at = Instant::now();
                    let Some(i) = obj.metadata.name.as_deref().and_then(index_of) else {
                        continue;
                    };
                    let Some(status) = obj.status else { continue };
                    let mut s = lock(&state);
                    let Some(log) = s.objects.get_mut(i) else {
                        continue;
                    };
                    // A relist replays statuses already seen: only a different one is a write.
                    if log.last() == Some(&status) {
                        continue;
                    }
                    log.seen.push(Seen { at, status });
                    s.status_changes += 1;
                    drop(s);
                    tx.send_modify(|v| *v += 1);
                }
            })
        };
        Tracker {
            state,
            changed,
            task,
        }
    }

    pub fn set_created(&self, i: usize, at: Instant) {
        if let Some(log) = lock(&self.state).objects.get_mut(i) {
            log.created = Some(at);
        }
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&lock(&self.state))
    }

    pub fn status_changes(&self) -> u64 {
        self.read(|s| s.status_changes)
    }

    /// Waits until `pred` holds for the state, re-checking on every change the watch brings;
    /// fails with `what` and `progress` after `deadline`.
    pub async fn wait_for(
        &self,
        deadline: Duration,
        what: &str,
        pred: impl Fn(&State) -> bool,
        progress: impl Fn(&State) -> String,
    ) -> anyhow::Result<Instant> {
        let until = tokio::time::Instant::now() + deadline;
        let mut changed = self.changed.clone();
        loop {
            if self.read(&pred) {
                return Ok(Instant::now());
            }
            match tokio::time::timeout_at(until, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("watch ended while waiting for {what}"),
                Err(_) => bail!("not {what} within {deadline:?}: {}", self.read(&progress)),
            }
        }
    }

    /// Waits until every object satisfies `pred` on its latest status.
    pub async fn wait_all(
        &self,
        deadline: Duration,
        what: &str,
        pred: impl Fn(&GuiSessionStatus) -> bool,
    ) -> anyhow::Result<Instant> {
        let count = |s: &State| {
            s.objects
                .iter()
                .filter(|o| o.last().is_some_and(&pred))
                .count()
        };
        self.wait_for(
            deadline,
            what,
            |s| count(s) == s.objects.len(),
            |s| format!("{} of {} so far", count(s), s.objects.len()),
        )
        .await
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
