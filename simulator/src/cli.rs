//! Command-line flags of `lightsail-sim`, each with a `LIGHTSAIL_SIM_*` environment fallback.

use super::config::{
    ComputerSpec, ConfigError, ConfigFile, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCOUNT_ID,
    DEFAULT_INSTANCE_START_TIME, DEFAULT_INSTANCE_STOP_TIME, DEFAULT_SECRET_ACCESS_KEY, ErrorStyle,
    Faults, RateLimit, SimConfig, StsFaults, parse_duration, parse_signed_duration,
};
use jiff::SignedDuration;
use std::path::PathBuf;
use std::time::Duration;

const AFTER_HELP: &str = "\
On start it prints one line to stdout, `lightsail-sim listening on http://ADDR`, then logs to
stderr (RUST_LOG sets the level; default info). SIGTERM or SIGINT stop it gracefully.

Durations are a number and a unit: 250us, 500ms, 2s, 1.5m, 1h (or 0); the clock offset may
start with - or +.

Config file (--config; YAML, or JSON when named *.json):
  clockOffset: -2h               # AWS's clock two hours behind this machine's (--clock-offset wins)
  instanceStartTime: 2s          # pending -> running after StartInstance (--instance-start-time wins)
  instanceStopTime: 2s           # stopping -> stopped after StopInstance (--instance-stop-time wins)
  accountId: \"000000000000\"      # the base account, of --access-key-id (--account-id wins)
  stsCredentialLifetime: 20s     # SIMULATOR KNOB, not AWS: every STS credential expires after this
                                 # at the latest, whatever DurationSeconds asked (1s to 12h;
                                 # --sts-credential-lifetime wins)
  accounts:                      # other accounts, reached through STS AssumeRole
    - id: \"111122223333\"         # 12 digits
      roles:
        - name: gui              # [\\w+=,.@-]{1,64}; ARN arn:aws:iam::111122223333:role/gui
          trustPolicy:           # an IAM trust policy document, evaluated as IAM does
            Version: \"2012-10-17\"
            Statement:
              - Effect: Allow
                Principal: {AWS: \"arn:aws:iam::000000000000:root\"}
                Action: [sts:AssumeRole, sts:TagSession]   # TagSession: to pass session tags
                Condition: {StringEquals: {sts:ExternalId: ext-1}}
          maxSessionDuration: 1h # longest DurationSeconds, 1h (default) to 12h
        - name: legacy           # the legacy form instead of trustPolicy:
          trustedAccounts: [\"000000000000\"]   # who may assume it ([] = nobody)
          externalId: ext-1      # optional: AssumeRole must pass this ExternalId
  computers:
    - name: vm-1                 # \\w[\\w\\-]*\\w; unique across all accounts
      region: us-west-2          # default us-east-1
      account: \"111122223333\"    # default the base account; seen only by its credentials
      startFailsWith: {errorCode: InternalError, errorDetails: \"disk full\"}
      stopFailsWith: {errorCode: InternalError, errorDetails: \"stuck\"}
      accessDenied: false        # calls answer AccessDeniedException
      unauthenticated: false     # calls answer UnauthenticatedException
      invalidInput: false        # calls answer InvalidInputException
      serviceError: false        # calls answer ServiceException
      callsFailWith: RegionSetupInProgressException   # any modelled exception
      holdStartResponse: false   # StartGUISession responses wait for a release
      omitIsTerminal: false      # operations leave out isTerminal
      accessSetupCalls: 0        # CreateGUISessionAccessDetails calls after each start that answer
                                 # settingUpInstance (first half), then starting, before started
                                 # (0 to 99; counted, not timed)
      accessFailure: {status: failedInstanceCreation, reason: \"no capacity\"}
                                 # after the setup calls access fails with this status (or
                                 # failedStartingGUISession) and failureReason, not started
      state: running             # power state when added: pending, running (default), stopping,
                                 # stopped; an update keeps the live state
      startingTime: 500ms        # pending -> running (default instanceStartTime)
      stoppingTime: 500ms        # stopping -> stopped (default instanceStopTime)
      sessionWhenNotRunning: error   # StartGUISession on a computer not running: error
                                 # (InvalidInputException) or failedOperation (an operation that
                                 # ends Failed, errorCode InstanceNotRunning)
      meterWindows:              # billed time is split inside/outside these (half-open, RFC 3339,
        - {start: \"2026-03-02T08:00:00Z\", end: \"2026-03-02T18:00:00Z\"}   # wall clock)
      blueprintId: lfr_ubuntu    # what GetInstance reports (optional)

Computers: GetInstanceState, GetInstance, StartInstance, StopInstance (force: only on a stopping
one), EnableAddOn and DisableAddOn (the StopInstanceOnIdle add-on) act on the computer behind a
session. States pending (0), running (16), stopping (64), stopped (80); only a stopped computer
starts, only a running or pending one stops (else InvalidInputException). A computer that is not
running has no session: CreateGUISessionAccessDetails answers stopped. A computer is billed while
pending, running or stopping; /_sim/computers shows runningSeconds, the part inside and outside
meterWindows, and the billed intervals.

STS: the same URL answers STS (awsQuery: form-encoded POST /, Action=AssumeRole or
GetCallerIdentity, Version=2011-06-15, SigV4 service sts) next to Lightsail: point
AWS_ENDPOINT_URL_STS (or AWS_ENDPOINT_URL) at it. Credentials from AssumeRole (ASIA...) sign
Lightsail calls with their X-Amz-Security-Token and see only their account's computers; once
expired (on AWS's clock, which PUT /_sim/clock moves) they answer ExpiredTokenException.
The Lightsail faults (--latency ... --rate-burst, the top-level fields of /_sim/faults) apply
to Lightsail calls only. STS has its own, the \"sts\" part of /_sim/faults (at start:
--sts-unavailable, --sts-throttle-rate, --sts-service-error-rate), checked on every AssumeRole
and GetCallerIdentity once its signature holds and before it is acted on, answered in STS's XML
error shape, counted and logged with the code as outcome:
  \"unavailable\": true       STS down: every call answers HTTP 503 ServiceUnavailable (which the
                            SDK retries) until cleared; Lightsail keeps answering
  \"throttleRate\": 0.1       that share answers HTTP 400 Throttling (\"Rate exceeded\")
  \"serviceErrorRate\": 0.1   that share answers HTTP 500 InternalFailure

Control endpoint, same port; with --control-token every /_sim/ request needs
`Authorization: Bearer TOKEN` (the token is required off loopback):
  GET  /_sim/calls                      call counts by action, resource, outcome (JSON); AssumeRole
                                        is counted by the RoleArn asked for
  GET  /_sim/calls/log                  every Start/StopGUISession, Start/StopInstance (with force as
                                        sent), Enable/DisableAddOn, AssumeRole and GetCallerIdentity
                                        call: action, resource (RoleArn for AssumeRole), outcome,
                                        wall-clock time, accessKeyId, account, callerArn, and for
                                        AssumeRole assumeRole: {roleArn, roleSessionName,
                                        externalId, durationSeconds, tags:[{key,value}],
                                        transitiveTagKeys}; {\"entries\":[...],\"dropped\":N}
  GET  /_sim/metrics                    the same counts in Prometheus text
  POST /_sim/reset[?scope=all]          zero the counts and the log (all: also sessions, operations,
                                        the cost meters (states stay),
                                        bucket; issued STS credentials stay valid either way)
  GET  /_sim/clock, PUT /_sim/clock     the clock offset: {\"offset\":\"-2h\"}; GET adds AWS's \"now\"
  GET  /_sim/faults, PUT /_sim/faults   faults as JSON: {\"latency\":\"20ms\",\"latencyJitter\":\"5ms\",
                                        \"serviceErrorRate\":0.1,\"throttleRate\":0.1,
                                        \"rateLimit\":{\"requestsPerSecond\":50,\"burst\":100},
                                        \"sts\":{\"unavailable\":false,\"throttleRate\":0,
                                        \"serviceErrorRate\":0}}; PUT replaces them all, omitted
                                        fields are off: {\"sts\":{\"unavailable\":true}} takes
                                        STS down, {} clears every fault
  GET  /_sim/computers                  all computers with session state, held responses,
                                        accessCallsSinceStart (reading it counts no call), state,
                                        idleStop, runningSeconds(Inside|Outside)Windows and
                                        billedIntervals
  POST /_sim/computers                  add or update a computer (a config-file entry as JSON, e.g.
                                        {\"name\":\"vm-1\",\"accessSetupCalls\":4}); keeps its history
  GET|DELETE /_sim/computers/NAME       one computer
  POST /_sim/computers/NAME/release     clear holdStartResponse and send the held responses
  POST /_sim/computers/NAME/idle-stop   the StopInstanceOnIdle rule fires: running -> stopping ->
                                        stopped (409 unless the add-on is on and it is running)
  POST /_sim/computers/NAME/state       set the state by hand (a person in the console), e.g.
                                        {\"state\":\"stopped\"}; pending/stopping then settle
  GET  /_sim/accounts                   {\"accountId\",\"baseUserArn\",\"accounts\":[...]}
  POST /_sim/accounts                   add or replace an account (a config-file entry as JSON, e.g.
                                        {\"id\":\"111122223333\",\"roles\":[{\"name\":\"gui\",
                                        \"trustedAccounts\":[\"000000000000\"]}]})
  GET  /_sim/sts, PUT /_sim/sts         the simulator knob {\"credentialLifetime\":\"20s\"} (null: off)
                                        for credentials issued from then on; GET adds
                                        issuedCredentials (a count; secrets are never shown)";

/// Serves the Lightsail GUI-session API (awsJson1_1, SigV4) for tests and benchmarks, with the
/// computers behind the sessions (their power state and idle-stop add-on).
#[derive(Debug, clap::Parser)]
#[command(name = "lightsail-sim", version, after_help = AFTER_HELP)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (see the line printed on start).
    #[arg(long, env = "LIGHTSAIL_SIM_LISTEN", default_value = "127.0.0.1:4580")]
    pub listen: String,

    /// YAML or JSON file with the computer inventory.
    #[arg(long, env = "LIGHTSAIL_SIM_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// A well-behaved computer, NAME or NAME@REGION (region default us-east-1); repeatable, or
    /// comma-separated. Per-computer behaviours (accessSetupCalls, accessFailure, ...) go in
    /// --config or POST /_sim/computers.
    #[arg(
        long = "computer",
        env = "LIGHTSAIL_SIM_COMPUTERS",
        value_name = "NAME[@REGION]",
        value_delimiter = ',',
        value_parser = computer_arg
    )]
    pub computers: Vec<ComputerSpec>,

    /// Access key id whose signatures are accepted.
    #[arg(long, env = "LIGHTSAIL_SIM_ACCESS_KEY_ID", default_value = DEFAULT_ACCESS_KEY_ID)]
    pub access_key_id: String,

    /// The base account (12 digits): the account of --access-key-id, and of computers that
    /// name none. Default: the config file's accountId, else 000000000000.
    #[arg(long, env = "LIGHTSAIL_SIM_ACCOUNT_ID", value_name = "ACCOUNT")]
    pub account_id: Option<String>,

    /// Simulator knob, not an AWS setting: every credential STS AssumeRole issues expires after
    /// this at the latest (1s to 12h, whole seconds), so tests can watch clients refresh.
    /// Default: the config file's stsCredentialLifetime, else off.
    #[arg(
        long,
        env = "LIGHTSAIL_SIM_STS_CREDENTIAL_LIFETIME",
        value_name = "DURATION",
        value_parser = duration_arg
    )]
    pub sts_credential_lifetime: Option<Duration>,

    /// Secret key of that access key.
    #[arg(
        long,
        env = "LIGHTSAIL_SIM_SECRET_ACCESS_KEY",
        default_value = DEFAULT_SECRET_ACCESS_KEY,
        hide_env_values = true
    )]
    pub secret_access_key: String,

    /// How long a started GUI session lasts before it is startExpired.
    #[arg(long, env = "LIGHTSAIL_SIM_SESSION_LIFETIME", default_value = "1h", value_parser = duration_arg)]
    pub session_lifetime: Duration,

    /// How long a Start/Stop operation stays Started before it succeeds or fails.
    #[arg(long, env = "LIGHTSAIL_SIM_SETTLE_TIME", default_value = "1s", value_parser = duration_arg)]
    pub settle_time: Duration,

    /// How modelled Lightsail exceptions are written in error bodies.
    #[arg(
        long,
        env = "LIGHTSAIL_SIM_ERROR_STYLE",
        value_enum,
        default_value = "code"
    )]
    pub error_style: ErrorStyle,

    /// How long a computer stays pending after StartInstance before it is running (a computer's
    /// startingTime wins). Default: the config file's instanceStartTime, else 2s.
    #[arg(
        long,
        env = "LIGHTSAIL_SIM_INSTANCE_START_TIME",
        value_name = "DURATION",
        value_parser = duration_arg
    )]
    pub instance_start_time: Option<Duration>,

    /// How long a computer stays stopping after StopInstance before it is stopped (a computer's
    /// stoppingTime wins). Default: the config file's instanceStopTime, else 2s.
    #[arg(
        long,
        env = "LIGHTSAIL_SIM_INSTANCE_STOP_TIME",
        value_name = "DURATION",
        value_parser = duration_arg
    )]
    pub instance_stop_time: Option<Duration>,

    /// Operations per GetOperationsForResource page.
    #[arg(long, env = "LIGHTSAIL_SIM_OPERATIONS_PAGE_SIZE", default_value_t = super::config::DEFAULT_OPERATIONS_PAGE_SIZE)]
    pub operations_page_size: usize,

    /// Fixed latency added to every authenticated Lightsail call.
    #[arg(long, env = "LIGHTSAIL_SIM_LATENCY", default_value = "0", value_parser = duration_arg)]
    pub latency: Duration,

    /// Random extra latency, uniform between 0 and this.
    #[arg(long, env = "LIGHTSAIL_SIM_LATENCY_JITTER", default_value = "0", value_parser = duration_arg)]
    pub latency_jitter: Duration,

    /// Fraction (0 to 1) of Lightsail calls that answer ServiceException (HTTP 500).
    #[arg(long, env = "LIGHTSAIL_SIM_SERVICE_ERROR_RATE", default_value_t = 0.0, value_parser = fraction_arg)]
    pub service_error_rate: f64,

    /// Fraction (0 to 1) of Lightsail calls that answer ThrottlingException (HTTP 400).
    #[arg(long, env = "LIGHTSAIL_SIM_THROTTLE_RATE", default_value_t = 0.0, value_parser = fraction_arg)]
    pub throttle_rate: f64,

    /// Token-bucket refill rate in requests per second past which Lightsail calls are throttled;
    /// 0 means unlimited.
    #[arg(
        long,
        env = "LIGHTSAIL_SIM_RATE_LIMIT",
        default_value_t = 0.0,
        value_name = "REQ_PER_S"
    )]
    pub rate_limit: f64,

    /// Token-bucket size (calls allowed back to back); default: the rate limit, rounded up.
    #[arg(long, env = "LIGHTSAIL_SIM_RATE_BURST", value_name = "CALLS")]
    pub rate_burst: Option<u32>,

    /// STS is down from the start: every AssumeRole and GetCallerIdentity answers HTTP 503
    /// ServiceUnavailable until the sts faults are cleared (PUT /_sim/faults).
    #[arg(long, env = "LIGHTSAIL_SIM_STS_UNAVAILABLE")]
    pub sts_unavailable: bool,

    /// Fraction (0 to 1) of STS calls that answer Throttling (HTTP 400).
    #[arg(long, env = "LIGHTSAIL_SIM_STS_THROTTLE_RATE", default_value_t = 0.0, value_parser = fraction_arg)]
    pub sts_throttle_rate: f64,

    /// Fraction (0 to 1) of STS calls that answer InternalFailure (HTTP 500).
    #[arg(long, env = "LIGHTSAIL_SIM_STS_SERVICE_ERROR_RATE", default_value_t = 0.0, value_parser = fraction_arg)]
    pub sts_service_error_rate: f64,

    /// Offset of the simulated AWS clock from this machine's, e.g. -2h for AWS two hours behind:
    /// shifts reported timestamps, the Date header and the SigV4 time window. Default: the
    /// config file's clockOffset, else 0.
    #[arg(
        long,
        env = "LIGHTSAIL_SIM_CLOCK_OFFSET",
        value_name = "DURATION",
        allow_hyphen_values = true,
        value_parser = signed_duration_arg
    )]
    pub clock_offset: Option<SignedDuration>,

    /// Bearer token the /_sim/* control routes require (`Authorization: Bearer TOKEN`).
    /// Required when --listen is not a loopback address.
    #[arg(
        long,
        env = "LIGHTSAIL_SIM_CONTROL_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub control_token: Option<String>,
}

fn signed_duration_arg(text: &str) -> Result<SignedDuration, String> {
    parse_signed_duration(text).map_err(|e| e.to_string())
}

fn duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

fn fraction_arg(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a fraction between 0 and 1")),
    }
}

fn computer_arg(text: &str) -> Result<ComputerSpec, String> {
    ComputerSpec::parse_flag(text).map_err(|e| e.to_string())
}

impl SimArgs {
    /// The configuration these flags (and the config file they name) describe.
    pub fn to_config(&self) -> Result<SimConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        let account_id = self
            .account_id
            .clone()
            .or_else(|| file.account_id.clone())
            .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_owned());
        if let Some(path) = &self.config
            && super::config::is_valid_account_id(&account_id)
        {
            file.check_references(path, &account_id)?;
        }
        let mut computers = file.computers;
        computers.extend(self.computers.iter().cloned());
        let rate_limit = if self.rate_limit == 0.0 {
            if self.rate_burst.is_some() {
                return Err(ConfigError::Invalid(
                    "--rate-burst needs --rate-limit".to_owned(),
                ));
            }
            None
        } else {
            let default_burst = self.rate_limit.ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
            Some(RateLimit::new(
                self.rate_limit,
                self.rate_burst.unwrap_or(default_burst),
            ))
        };
        let config = SimConfig {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            account_id,
            accounts: file.accounts,
            sts_credential_lifetime: self
                .sts_credential_lifetime
                .or(file.sts_credential_lifetime),
            computers,
            session_lifetime: self.session_lifetime,
            settle_time: self.settle_time,
            instance_start_time: self
                .instance_start_time
                .or(file.instance_start_time)
                .unwrap_or(DEFAULT_INSTANCE_START_TIME),
            instance_stop_time: self
                .instance_stop_time
                .or(file.instance_stop_time)
                .unwrap_or(DEFAULT_INSTANCE_STOP_TIME),
            error_style: self.error_style,
            operations_page_size: self.operations_page_size,
            faults: Faults {
                latency: self.latency,
                latency_jitter: self.latency_jitter,
                service_error_rate: self.service_error_rate,
                throttle_rate: self.throttle_rate,
                rate_limit,
                sts: StsFaults {
                    unavailable: self.sts_unavailable,
                    throttle_rate: self.sts_throttle_rate,
                    service_error_rate: self.sts_service_error_rate,
                },
            },
            clock_offset: self
                .clock_offset
                .or(file.clock_offset)
                .unwrap_or(SignedDuration::ZERO),
            control_token: self.control_token.clone(),
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn flags_are_consistent() {
        SimArgs::command().debug_assert();
    }

    /// The config file example in `--help` is a file the simulator accepts, trust policy and
    /// all.
    #[test]
    fn the_config_file_example_in_the_help_loads() {
        let example: String = AFTER_HELP
            .lines()
            .skip_while(|line| !line.starts_with("Config file"))
            .skip(1)
            .take_while(|line| !line.is_empty())
            .map(|line| format!("{}\n", line.strip_prefix("  ").unwrap_or(line)))
            .collect();
        let Ok(dir) = tempfile::tempdir() else {
            panic!("no temporary directory");
        };
        let path = dir.path().join("example.yaml");
        assert!(std::fs::write(&path, &example).is_ok());
        let file = match ConfigFile::load(&path) {
            Ok(file) => file,
            Err(error) => panic!("{error}\n{example}"),
        };
        let roles = &file.accounts[0].roles;
        assert_eq!(roles.len(), 2, "{example}");
        let condition = roles[0]
            .trust_policy
            .as_ref()
            .map(|policy| policy["Statement"][0]["Condition"]["StringEquals"].clone());
        assert_eq!(
            condition,
            Some(serde_json::json!({"sts:ExternalId": "ext-1"})),
            "{example}"
        );
        assert_eq!(roles[1].external_id.as_deref(), Some("ext-1"));
        assert!(
            file.check_references(&path, DEFAULT_ACCOUNT_ID).is_ok(),
            "{example}"
        );
    }

    #[test]
    fn flags_build_a_config() {
        let args = SimArgs::try_parse_from([
            "lightsail-sim",
            "--computer",
            "vm-1",
            "--computer",
            "vm-2@eu-west-1,vm-3",
            "--settle-time",
            "250ms",
            "--rate-limit",
            "2.5",
        ]);
        let config = args
            .map_err(|e| e.to_string())
            .and_then(|a| a.to_config().map_err(|e| e.to_string()));
        let config = match config {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        let names: Vec<&str> = config.computers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["vm-1", "vm-2", "vm-3"]);
        assert_eq!(config.computers[1].region, "eu-west-1");
        assert_eq!(config.settle_time, Duration::from_millis(250));
        assert_eq!(config.faults.rate_limit, Some(RateLimit::new(2.5, 3)));
    }

    #[test]
    fn the_clock_offset_flag_takes_negative_values_and_wins_over_the_file() {
        let parse = |args: &[&str]| -> Result<SimConfig, String> {
            SimArgs::try_parse_from(args)
                .map_err(|e| e.to_string())
                .and_then(|a| a.to_config().map_err(|e| e.to_string()))
        };
        let config = parse(&["lightsail-sim", "--clock-offset", "-2h"]);
        assert_eq!(
            config.map(|c| c.clock_offset),
            Ok(SignedDuration::from_hours(-2))
        );
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else {
            panic!("{dir:?}");
        };
        let path = dir.path().join("sim.yaml");
        assert!(std::fs::write(&path, "clockOffset: 90s\n").is_ok());
        let path = path.display().to_string();
        let from_file = parse(&["lightsail-sim", "--config", &path]);
        assert_eq!(
            from_file.map(|c| c.clock_offset),
            Ok(SignedDuration::from_secs(90))
        );
        let overridden = parse(&["lightsail-sim", "--config", &path, "--clock-offset=-1m"]);
        assert_eq!(
            overridden.map(|c| c.clock_offset),
            Ok(SignedDuration::from_mins(-1))
        );
        let too_far = parse(&["lightsail-sim", "--clock-offset", "9000h"]);
        assert!(too_far.is_err_and(|e| e.contains("more than")));
    }

    #[test]
    fn sts_fault_flags_set_the_sts_faults_only() {
        let parse = |args: &[&str]| -> Result<Faults, String> {
            SimArgs::try_parse_from(args)
                .map_err(|e| e.to_string())
                .and_then(|a| a.to_config().map_err(|e| e.to_string()))
                .map(|c| c.faults)
        };
        assert_eq!(parse(&["lightsail-sim"]), Ok(Faults::default()));
        assert_eq!(
            parse(&[
                "lightsail-sim",
                "--sts-unavailable",
                "--sts-throttle-rate",
                "0.25",
                "--sts-service-error-rate=0.5",
            ]),
            Ok(Faults::sts_only(StsFaults {
                unavailable: true,
                throttle_rate: 0.25,
                service_error_rate: 0.5,
            }))
        );
        let refused = parse(&["lightsail-sim", "--sts-throttle-rate", "1.5"]);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("not a fraction between 0 and 1")),
            "{refused:?}"
        );
    }

    #[test]
    fn instance_times_come_from_the_flags_else_the_file_else_two_seconds() {
        let parse = |args: &[&str]| -> Result<(Duration, Duration), String> {
            SimArgs::try_parse_from(args)
                .map_err(|e| e.to_string())
                .and_then(|a| a.to_config().map_err(|e| e.to_string()))
                .map(|c| (c.instance_start_time, c.instance_stop_time))
        };
        let two = Duration::from_secs(2);
        assert_eq!(parse(&["lightsail-sim"]), Ok((two, two)));
        let Ok(dir) = tempfile::tempdir() else {
            panic!("no temporary directory");
        };
        let path = dir.path().join("sim.yaml");
        let file = "instanceStartTime: 300ms\ninstanceStopTime: 1s\n";
        assert!(std::fs::write(&path, file).is_ok());
        let path = path.display().to_string();
        assert_eq!(
            parse(&["lightsail-sim", "--config", &path]),
            Ok((Duration::from_millis(300), Duration::from_secs(1)))
        );
        assert_eq!(
            parse(&[
                "lightsail-sim",
                "--config",
                &path,
                "--instance-stop-time",
                "200ms"
            ]),
            Ok((Duration::from_millis(300), Duration::from_millis(200)))
        );
        let too_long = parse(&["lightsail-sim", "--instance-start-time", "25h"]);
        assert!(too_long.is_err_and(|e| e.contains("is more than 24h")));
    }

    #[test]
    fn burst_without_rate_is_rejected() {
        let args = SimArgs::try_parse_from(["lightsail-sim", "--rate-burst", "5"]);
        assert!(args.is_ok_and(|a| a.to_config().is_err()));
    }
}
