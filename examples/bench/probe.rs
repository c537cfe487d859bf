//! What the benchmark reads from /proc: CPU seconds and memory of a process, the control plane's
//! processes, and a description of the machine.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

/// Clock ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`; 100 on every Linux we know).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds a process has used so far.
pub fn cpu_seconds(pid: u32, ticks: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / ticks)
}

/// Memory of a process from /proc/<pid>/status.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss_bytes: u64,
    /// VmHWM: the peak resident set so far.
    pub hwm_bytes: u64,
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |key: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
        let value = line[key.len()..]
            .split_whitespace()
            .next()
            .context("empty value")?;
        Ok(value.parse::<u64>()? * 1024)
    };
    Ok(Memory {
        rss_bytes: kib("VmRSS:")?,
        hwm_bytes: kib("VmHWM:")?,
    })
}

/// The pids of etcd and kube-apiserver of the control plane whose kubeconfig is `kubeconfig`:
/// `scripts/control-plane-up` keeps everything in the kubeconfig's directory, and both processes
/// name that directory on their command line.
pub fn control_plane_pids(kubeconfig: &Path) -> anyhow::Result<(u32, u32)> {
    let dir = kubeconfig
        .parent()
        .context("kubeconfig has no directory")?
        .to_string_lossy()
        .into_owned();
    let (mut etcd, mut apiserver) = (None, None);
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let Some(exe) = args.first().and_then(|a| Path::new(a).file_name()) else {
            continue;
        };
        let mentions_dir = args.iter().any(|a| a.starts_with(&dir));
        if !mentions_dir {
            continue;
        }
        match exe.to_str() {
            Some("etcd") => etcd = Some(pid),
            Some("kube-apiserver") => apiserver = Some(pid),
            _ => {}
        }
    }
    match (etcd, apiserver) {
        (Some(e), Some(a)) => Ok((e, a)),
        _ => bail!("cannot find etcd and kube-apiserver started for {dir}"),
    }
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn mem_total_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

/// The 1, 5 and 15 minute load averages: how busy the shared machine was.
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// First line of `program args...`' output, or "unknown".
pub fn version_of(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Samples the VmRSS of the operator processes a run starts, every `interval` from when each is
/// watched until it exits: the RSS-over-the-run plot.
pub struct RssSampler {
    state: std::sync::Arc<std::sync::Mutex<SamplerState>>,
    interval: std::time::Duration,
    task: tokio::task::JoinHandle<()>,
}

struct SamplerState {
    start: std::time::Instant,
    /// (index into `series`, pid) of the processes still running.
    live: Vec<(usize, u32)>,
    series: Vec<crate::report::RssSeries>,
}

impl SamplerState {
    /// One sample of every live process (of `only`, when given); a process that has exited (no
    /// VmRSS: gone, or a zombie) is dropped.
    fn sample(&mut self, only: Option<usize>) {
        let t = crate::report::round3(self.start.elapsed().as_secs_f64());
        let series = &mut self.series;
        self.live.retain(|&(i, pid)| {
            if only.is_some_and(|o| o != i) {
                return true;
            }
            match memory(pid) {
                Ok(m) if m.rss_bytes > 0 => {
                    series[i].t_s.push(t);
                    series[i].rss_mib.push(crate::report::round3(
                        m.rss_bytes as f64 / crate::report::MIB,
                    ));
                    true
                }
                _ => false,
            }
        });
    }
}

fn lock_sampler(state: &std::sync::Mutex<SamplerState>) -> std::sync::MutexGuard<'_, SamplerState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl RssSampler {
    /// Starts sampling on the current runtime; times are counted from `start`.
    pub fn start(start: std::time::Instant, interval: std::time::Duration) -> RssSampler {
        let state = std::sync::Arc::new(std::sync::Mutex::new(SamplerState {
            start,
            live: Vec::new(),
            series: Vec::new(),
        }));
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    lock_sampler(&state).sample(None);
                }
            })
        };
        RssSampler {
            state,
            interval,
            task,
        }
    }

    /// Samples `pid` from now on (one sample at once) as the operator of `process`.
    pub fn watch(&self, process: &str, pid: u32) {
        let mut s = lock_sampler(&self.state);
        let i = s.series.len();
        s.series.push(crate::report::RssSeries {
            process: process.to_owned(),
            ..Default::default()
        });
        s.live.push((i, pid));
        s.sample(Some(i));
    }

    /// The interval and every process's samples so far, those with none left out.
    pub fn series(&self) -> (f64, Vec<crate::report::RssSeries>) {
        let s = lock_sampler(&self.state);
        let series = s
            .series
            .iter()
            .filter(|r| !r.t_s.is_empty())
            .cloned()
            .collect();
        (self.interval.as_secs_f64(), series)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}
