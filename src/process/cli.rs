//! Command line of `lightsail-gui-operator`. Every flag of `run` has an environment-variable
//! fallback so the Helm chart (and users) can configure the operator without editing args.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::account::policy::NamespaceSelector;
use crate::duration::parse_go_duration;

/// Kubernetes operator that keeps AWS Lightsail GUI sessions alive.
///
/// Without a subcommand it runs the controller (same as `run`).
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

// Parsed once at start-up: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller (the default).
    Run(RunArgs),
    /// Print a CustomResourceDefinition as YAML (GuiSession unless told otherwise).
    Crd {
        /// Which kind's CRD.
        #[arg(long, value_enum, default_value_t = CrdKind::GuiSession)]
        kind: CrdKind,
    },
}

/// The kinds the operator defines.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CrdKind {
    #[value(name = "guisession")]
    GuiSession,
    #[value(name = "lightsailaccount")]
    LightsailAccount,
    #[value(name = "clusterlightsailaccount")]
    ClusterLightsailAccount,
}

impl CrdKind {
    /// The generated CRD, and the file it is checked in as (under `crds/`).
    pub fn crd(
        self,
    ) -> (
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        &'static str,
    ){
        use kube::CustomResourceExt;
        match self {
            CrdKind::GuiSession => (
                crate::guisession::types::GuiSession::crd(),
                "guisession.yaml",
            ),
            CrdKind::LightsailAccount => (
                crate::account::types::LightsailAccount::crd(),
                "lightsailaccount.yaml",
            ),
            CrdKind::ClusterLightsailAccount => (
                crate::account::types::ClusterLightsailAccount::crd(),
                "clusterlightsailaccount.yaml",
            ),
        }
    }
}

/// The label that assigns a GuiSession to a shard (the convention Flux's controllers use).
pub const SHARD_LABEL: &str = "sharding.fluxcd.io/key";

impl RunArgs {
    /// The namespaces watched (`--namespace`, empty entries dropped); empty: all of them.
    pub fn namespaces(&self) -> Vec<&str> {
        let mut namespaces: Vec<&str> = self
            .namespace
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        namespaces
    }

    /// `--shard`, unless empty (the chart always sets the variable).
    pub fn shard(&self) -> Option<&str> {
        self.shard.as_deref().filter(|s| !s.is_empty())
    }

    /// The shard keys other instances serve (`--shards`, empty entries dropped).
    pub fn other_shards(&self) -> Vec<&str> {
        self.shards
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Checks the shard keys are label values, so a typo fails at start with a clear error
    /// instead of a watch that never selects anything.
    pub fn check_shards(&self) -> Result<(), String> {
        let valid = |k: &str| {
            k.len() <= 63
                && k.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && k.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if self.shard().is_some() && !self.other_shards().is_empty() {
            return Err("--shard and --shards exclude each other: a shard instance serves one key, the default instance lists the others".into());
        }
        match self
            .shard()
            .into_iter()
            .chain(self.other_shards())
            .find(|k| !valid(k))
        {
            Some(k) => Err(format!(
                "invalid shard key {k:?}: it must be a label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
            )),
            None => Ok(()),
        }
    }

    /// The label selector of the GuiSession watch: `--selector` and the shard.
    pub fn watch_selector(&self) -> Option<String> {
        let shard = match (self.shard(), self.other_shards()) {
            (Some(key), _) => Some(format!("{SHARD_LABEL}={key}")),
            (None, others) if !others.is_empty() => {
                Some(format!("{SHARD_LABEL} notin ({})", others.join(",")))
            }
            _ => None,
        };
        let parts: Vec<String> = self
            .selector
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .chain(shard)
            .collect();
        (!parts.is_empty()).then(|| parts.join(","))
    }

    /// The leader Lease's name: one per shard.
    pub fn lease_name(&self) -> String {
        match self.shard() {
            Some(key) => format!("{}-{key}", self.lease_name),
            None => self.lease_name.clone(),
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings of the controller.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Watch GuiSessions (and LightsailAccounts and access Secrets) in these namespaces only,
    /// comma-separated (default: all namespaces).
    #[arg(long, env = "LGO_WATCH_NAMESPACE", value_delimiter = ',')]
    pub namespace: Vec<String>,

    /// Watch only GuiSessions matching this label selector, e.g. `team=research`.
    #[arg(long, env = "LGO_LABEL_SELECTOR")]
    pub selector: Option<String>,

    /// Serve one shard: reconcile only GuiSessions labelled `sharding.fluxcd.io/key=KEY` (Flux's
    /// sharding label), under a Lease of their own (`<lease-name>-KEY`). Account statuses are
    /// left to the default instance.
    #[arg(long, env = "LGO_SHARD")]
    pub shard: Option<String>,

    /// On the default instance: the shard keys other instances serve (comma-separated). It
    /// reconciles every GuiSession not labelled with one of them, unlabelled ones included.
    #[arg(long, env = "LGO_SHARDS", value_delimiter = ',')]
    pub shards: Vec<String>,

    /// AWS Region for GuiSessions without `spec.region` (default: the AWS SDK's region chain,
    /// e.g. AWS_REGION or the profile).
    #[arg(long, env = "LGO_DEFAULT_REGION")]
    pub region: Option<String>,

    /// Guard rail: a smaller `spec.maxSessionAge` is raised to this (Go duration).
    #[arg(long, env = "LGO_MIN_SESSION_AGE", default_value = "5m", value_parser = duration_arg)]
    pub min_session_age: Duration,

    /// How long to wait before retrying after a terminal error (NotFound, AccessDenied, a failed
    /// operation, ...). A change to the GuiSession's spec retries at once.
    #[arg(long, env = "LGO_STALLED_RETRY", default_value = "5m", value_parser = duration_arg)]
    pub stalled_retry: Duration,

    /// First delay after a retryable error (throttling, 5xx, timeouts); doubles per failure, with jitter.
    #[arg(long, env = "LGO_RETRY_INITIAL", default_value = "2s", value_parser = duration_arg)]
    pub retry_initial: Duration,

    /// Longest delay after repeated retryable errors.
    #[arg(long, env = "LGO_RETRY_MAX", default_value = "5m", value_parser = duration_arg)]
    pub retry_max: Duration,

    /// First delay before polling a running Lightsail operation with GetOperation.
    #[arg(long, env = "LGO_POLL_INITIAL", default_value = "1s", value_parser = duration_arg)]
    pub poll_initial: Duration,

    /// Longest delay between polls of a running operation.
    #[arg(long, env = "LGO_POLL_MAX", default_value = "30s", value_parser = duration_arg)]
    pub poll_max: Duration,

    /// First delay before reading the state of a computer that is not running again (ComputerStopped,
    /// or a stop respected inside a window); later delays grow with how long it has been stopped.
    #[arg(long, env = "LGO_COMPUTER_RECHECK_INITIAL", default_value = "30s", value_parser = duration_arg)]
    pub computer_recheck_initial: Duration,

    /// Longest delay between two reads of a computer that is not running.
    #[arg(long, env = "LGO_COMPUTER_RECHECK_MAX", default_value = "5m", value_parser = duration_arg)]
    pub computer_recheck_max: Duration,

    /// How long a pending start (status.pendingStart) belongs to the replica that wrote it: no
    /// other replica starts a session for the object before it has passed, and after it the
    /// resource's operations are looked up (and adopted) before anyone starts again. Must be
    /// longer than --lightsail-timeout.
    #[arg(long, env = "LGO_START_SETTLE", default_value = "60s", value_parser = duration_arg)]
    pub start_settle: Duration,

    /// Largest difference between the clocks of the operator's replicas (NTP keeps nodes within
    /// milliseconds). A start is sent only while it can end inside the settle window as every
    /// replica's clock sees it: --start-settle must exceed --lightsail-timeout plus a second
    /// plus this.
    #[arg(long, env = "LGO_MAX_CLOCK_SKEW", default_value = "1s", value_parser = duration_or_zero_arg)]
    pub max_clock_skew: Duration,

    /// Longest a Lightsail call may take, connecting included.
    #[arg(long, env = "LGO_LIGHTSAIL_TIMEOUT", default_value = "30s", value_parser = duration_arg)]
    pub lightsail_timeout: Duration,

    /// Client-side limit on Lightsail requests per second, per Region.
    #[arg(long, env = "LGO_RATE_LIMIT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,

    /// Burst size of the client-side Lightsail rate limit.
    #[arg(long, env = "LGO_RATE_BURST", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,

    /// Let GuiSessions with `spec.access` have their access URLs written into Secrets. Needs
    /// permission to read and write Secrets (chart value `accessSecrets.enabled`); off, such
    /// GuiSessions keep their sessions alive and report AccessSecretsDisabled.
    #[arg(long, env = "LGO_ACCESS_SECRETS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub access_secrets: bool,

    /// Let LightsailAccount / ClusterLightsailAccount objects name a Secret of static AWS keys
    /// (credentialsSecretRef). Needs permission to read Secrets (chart value
    /// `accounts.staticKeys`); off, such accounts report StaticKeysDisabled.
    #[arg(long, env = "LGO_ACCOUNT_STATIC_KEYS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub account_static_keys: bool,

    /// How often a working account's credentials are checked again (GetCallerIdentity).
    #[arg(long, env = "LGO_ACCOUNT_RECHECK", default_value = "1h", value_parser = duration_arg)]
    pub account_recheck: Duration,

    /// This cluster's id, in the external id the operator sends for every LightsailAccount
    /// (`lightsail-gui-operator:<cluster id>:<namespace>`). Default: the uid of the Namespace
    /// kube-system, read once at start.
    #[arg(long, env = "LGO_CLUSTER_ID", value_parser = cluster_id_arg)]
    pub cluster_id: Option<String>,

    /// Role ARNs that namespaced LightsailAccounts may assume, as comma-separated patterns in
    /// which `*` matches anything (e.g. `arn:aws:iam::111122223333:role/lab-*`). Empty: any role
    /// (the external id and session tag the operator chooses are then the guard).
    #[arg(long, env = "LGO_NAMESPACED_ACCOUNT_ROLES", value_delimiter = ',')]
    pub namespaced_account_roles: Vec<String>,

    /// Which namespaces' GuiSessions may use the operator's own AWS identity (those without
    /// spec.accountRef): a label selector over namespaces, e.g. `lightsail.operators.dev/own-account=true`.
    /// Empty: every namespace. `none`: no namespace, so every GuiSession must name an account.
    #[arg(long, env = "LGO_OWN_IDENTITY_NAMESPACES", value_parser = namespace_selector_arg)]
    pub own_identity_namespaces: Option<NamespaceSelector>,

    /// Most GuiSessions reconciled at the same time.
    #[arg(long, env = "LGO_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Elect a leader through a Lease so that only one replica reconciles. Turn off for local runs.
    #[arg(long, env = "LGO_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,

    /// Name of the leader-election Lease.
    #[arg(long, env = "LGO_LEASE_NAME", default_value = "lightsail-gui-operator")]
    pub lease_name: String,

    /// Namespace of the leader-election Lease (default: the kubeconfig's or Pod's namespace).
    #[arg(long, env = "LGO_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long a Lease is valid without renewal; a standby takes over after it (Go duration).
    #[arg(long, env = "LGO_LEASE_DURATION", default_value = "15s", value_parser = duration_arg)]
    pub lease_duration: Duration,

    /// This replica's identity in the Lease (default: host name and a random suffix).
    #[arg(long, env = "LGO_IDENTITY")]
    pub identity: Option<String>,

    /// On SIGTERM, how long reconciles already running may take to finish (and record what they
    /// started) before the operator gives up on them, releases the Lease and exits. Keep it
    /// several seconds under the Pod's terminationGracePeriodSeconds.
    #[arg(long, env = "LGO_SHUTDOWN_GRACE", default_value = "20s", value_parser = duration_arg)]
    pub shutdown_grace: Duration,

    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "LGO_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "LGO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `lightsail_gui_operator=debug`.
    #[arg(long, env = "LGO_LOG", default_value = "info")]
    pub log: String,
}

fn namespace_selector_arg(s: &str) -> Result<NamespaceSelector, String> {
    match s.trim() {
        "" => Ok(NamespaceSelector::All),
        "none" => Ok(NamespaceSelector::None),
        text => crate::account::policy::parse_label_selector(text).map(NamespaceSelector::Matching),
    }
}

fn cluster_id_arg(s: &str) -> Result<String, String> {
    // It becomes part of an STS external id: 2 to 1224 characters of [\w+=,.@:/-].
    let valid = s.len() <= 1100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
    if valid {
        Ok(s.to_owned())
    } else {
        Err("a cluster id is at most 1100 letters, digits and _+=,.@:/- (it is part of an STS external id)".into())
    }
}

fn duration_or_zero_arg(s: &str) -> Result<Duration, String> {
    parse_go_duration(s).map_err(|e| e.to_string())
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    match parse_go_duration(s) {
        Ok(d) if d.is_zero() => Err("must be greater than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod shard_tests {
    use super::*;

    fn run(args: &[&str]) -> RunArgs {
        let mut argv = vec!["lightsail-gui-operator", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Some(Command::Run(run)) => run,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_shard_selects_its_label_and_has_its_own_lease() {
        let a = run(&["--shard", "blue", "--selector", "team=lab"]);
        assert_eq!(
            a.watch_selector().as_deref(),
            Some("team=lab,sharding.fluxcd.io/key=blue")
        );
        assert_eq!(a.lease_name(), "lightsail-gui-operator-blue");
        let default = run(&["--shards", "blue,green"]);
        assert_eq!(
            default.watch_selector().as_deref(),
            Some("sharding.fluxcd.io/key notin (blue,green)")
        );
        assert_eq!(default.lease_name(), "lightsail-gui-operator");
        let plain = run(&["--shard", "", "--shards", ""]);
        assert_eq!(
            plain.watch_selector(),
            None,
            "empty values (the chart's) are unset"
        );
        assert!(plain.check_shards().is_ok());
    }

    #[test]
    fn bad_shard_keys_are_refused_and_shard_excludes_shards() {
        let bad = run(&["--shard", "blue team"]);
        let err = bad.check_shards().expect_err("refused");
        assert!(err.contains("\"blue team\""), "{err}");
        assert!(run(&["--shards", "ok,-bad"]).check_shards().is_err());
        let both = run(&["--shard", "a", "--shards", "b"]).check_shards();
        assert!(
            both.is_err_and(|e| e.contains("exclude each other")),
            "--shard and --shards exclude each other"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lightsail-gui-operator").chain(args.iter().copied()))
    }

    #[test]
    fn run_is_the_default_and_defaults_match_the_docs() {
        let cli = parse(&[]).expect("no args parse");
        assert!(cli.command.is_none());
        assert_eq!(cli.run.min_session_age, Duration::from_secs(300));
        assert_eq!(cli.run.rate_limit, 5);
        assert_eq!(cli.run.rate_burst, 50);
        assert!(cli.run.leader_elect);
        assert_eq!(cli.run.http_addr.port(), 8080);
        assert_eq!(cli.run.shutdown_grace, Duration::from_secs(20));
    }

    #[test]
    fn run_subcommand_takes_the_same_flags() {
        let cli =
            parse(&["run", "--min-session-age", "3s", "--leader-elect", "false"]).expect("parses");
        let Some(Command::Run(run)) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(run.min_session_age, Duration::from_secs(3));
        assert!(!run.leader_elect);
    }

    #[test]
    fn switches_take_the_bare_form_and_an_explicit_value() {
        let run = |args: &[&str]| parse(args).expect("parses").run;
        let bare = run(&[
            "--access-secrets",
            "--account-static-keys",
            "--leader-elect",
        ]);
        assert!(bare.access_secrets && bare.account_static_keys && bare.leader_elect);
        let set = run(&["--access-secrets=true", "--leader-elect=false"]);
        assert!(set.access_secrets && !set.leader_elect);
        let spaced = run(&["--leader-elect", "false", "--access-secrets", "true"]);
        assert!(!spaced.leader_elect && spaced.access_secrets);
        let e = parse(&["--access-secrets=maybe"]).expect_err("not a bool");
        assert!(e.to_string().contains("maybe"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected_with_a_reason() {
        let e = parse(&["--min-session-age", "5 minutes"]).expect_err("rejected");
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let e = parse(&["--poll-max", "0s"]).expect_err("rejected");
        assert!(e.to_string().contains("greater than zero"), "{e}");
        assert!(parse(&["--rate-limit", "0"]).is_err());
        assert!(parse(&["--log-format", "xml"]).is_err());
    }
}
