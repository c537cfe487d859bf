//! Load generator for `lightsail-sim`: keeps N `GetOperation` calls in flight for a while and
//! prints the requests per second the simulator sustained.
//!
//! ```text
//! cargo run --release -p lightsail-sim --example sim_load -- [--endpoint http://127.0.0.1:4580]
//!     [--mode sdk|presigned] [--concurrency 64] [--duration 10s] [--computer bench-1]
//! ```
//!
//! Without `--endpoint` it starts a simulator in-process (same runtime, same two cores). With
//! one, the computer must exist there (e.g. `lightsail-sim --computer bench-1`) and the
//! default test credentials must be accepted. `sdk` calls through `aws-sdk-lightsail`;
//! `presigned` signs one request up front and replays it over keep-alive connections, which
//! leaves more of the CPU to the simulator.

use aws_sdk_lightsail::config::retry::RetryConfig;
use aws_sdk_lightsail::config::{BehaviorVersion, Credentials, Region};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lightsail_sim::{
    ComputerSpec, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, SimConfig, Simulator,
    parse_duration,
};
use std::time::{Duration, Instant, SystemTime};

const REGION: &str = "us-east-1";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    /// Every call through aws-sdk-lightsail.
    Sdk,
    /// One SigV4-signed request replayed over raw hyper connections.
    Presigned,
}

/// Measures lightsail-sim's GetOperation throughput.
#[derive(Debug, Parser)]
struct Args {
    /// A running simulator; without it one is started in-process.
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long, value_enum, default_value = "sdk")]
    mode: Mode,
    /// Calls in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to measure (after a 1 s warm-up).
    #[arg(long, default_value = "10s", value_parser = |s: &str| parse_duration(s).map_err(|e| e.to_string()))]
    duration: Duration,
    /// Computer whose operation is read.
    #[arg(long, default_value = "bench-1")]
    computer: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let in_process = match &args.endpoint {
        Some(_) => None,
        None => Some(
            Simulator::start(
                SimConfig::default().with_computer(ComputerSpec::new(&args.computer)),
                "127.0.0.1:0",
            )
            .await?,
        ),
    };
    let endpoint = match (&args.endpoint, &in_process) {
        (Some(endpoint), _) => endpoint.clone(),
        (None, Some(sim)) => sim.endpoint_url(),
        (None, None) => anyhow::bail!("no endpoint"),
    };

    let client = aws_sdk_lightsail::Client::from_conf(
        aws_sdk_lightsail::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                DEFAULT_ACCESS_KEY_ID,
                DEFAULT_SECRET_ACCESS_KEY,
                None,
                None,
                "sim-load",
            ))
            .endpoint_url(&endpoint)
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let started = client
        .start_gui_session()
        .resource_name(&args.computer)
        .send()
        .await?;
    let operation_id = started
        .operations()
        .first()
        .and_then(|o| o.id())
        .ok_or_else(|| anyhow::anyhow!("StartGUISession returned no operation id"))?
        .to_owned();

    let warm_up = Duration::from_secs(1);
    let began = Instant::now();
    let measure_from = began + warm_up;
    let measure_until = measure_from + args.duration;
    let mut workers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let worker = match args.mode {
            Mode::Sdk => tokio::spawn(sdk_worker(
                client.clone(),
                operation_id.clone(),
                measure_from,
                measure_until,
            )),
            Mode::Presigned => tokio::spawn(presigned_worker(
                endpoint.clone(),
                operation_id.clone(),
                measure_from,
                measure_until,
            )),
        };
        workers.push(worker);
    }
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await??);
    }
    tally.latencies_us.sort_unstable();
    let percentile = |p: f64| {
        let index = ((tally.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        tally.latencies_us.get(index).copied().unwrap_or(0)
    };
    let seconds = args.duration.as_secs_f64();
    println!(
        "GetOperation via {:?}, {} in flight, {:.1} s: {} ok, {} errors, {:.0} req/s, p50 {} us, p99 {} us",
        args.mode,
        args.concurrency,
        seconds,
        tally.ok,
        tally.errors,
        (tally.ok + tally.errors) as f64 / seconds,
        percentile(0.50),
        percentile(0.99),
    );
    if let Some(sim) = in_process {
        sim.shutdown().await?;
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

impl Tally {
    fn record(&mut self, ok: bool, sent: Instant, measure_from: Instant) {
        if sent < measure_from {
            return;
        }
        if ok {
            self.ok += 1;
        } else {
            self.errors += 1;
        }
        let micros = sent.elapsed().as_micros();
        self.latencies_us
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
    }
}

async fn sdk_worker(
    client: aws_sdk_lightsail::Client,
    operation_id: String,
    measure_from: Instant,
    measure_until: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    loop {
        let sent = Instant::now();
        if sent >= measure_until {
            return Ok(tally);
        }
        let result = client
            .get_operation()
            .operation_id(&operation_id)
            .send()
            .await;
        tally.record(result.is_ok(), sent, measure_from);
    }
}

async fn presigned_worker(
    endpoint: String,
    operation_id: String,
    measure_from: Instant,
    measure_until: Instant,
) -> anyhow::Result<Tally> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let body = Bytes::from(serde_json::to_vec(
        &serde_json::json!({ "operationId": operation_id }),
    )?);
    let request = presigned_request(&endpoint, &body)?;
    let mut tally = Tally::default();
    loop {
        let sent = Instant::now();
        if sent >= measure_until {
            return Ok(tally);
        }
        let mut attempt = http::Request::new(Full::new(body.clone()));
        *attempt.method_mut() = request.method().clone();
        *attempt.uri_mut() = request.uri().clone();
        *attempt.headers_mut() = request.headers().clone();
        let ok = match client.request(attempt).await {
            Ok(response) => {
                let ok = response.status().is_success();
                // Read the body so the connection can be reused.
                response.into_body().collect().await.is_ok() && ok
            }
            Err(_) => false,
        };
        tally.record(ok, sent, measure_from);
    }
}

/// A GetOperation request signed now; valid for the simulator's 15 minutes of clock skew.
fn presigned_request(endpoint: &str, body: &[u8]) -> anyhow::Result<http::Request<()>> {
    let host = endpoint.trim_start_matches("http://");
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("{endpoint}/"))
        .header("host", host)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Lightsail_20161128.GetOperation")
        .body(())?;
    let identity: Identity = Credentials::new(
        DEFAULT_ACCESS_KEY_ID,
        DEFAULT_SECRET_ACCESS_KEY,
        None,
        None,
        "sim-load",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("lightsail")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()?
        .into();
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let signable = SignableRequest::new(
        "POST",
        request.uri().to_string(),
        headers.into_iter(),
        SignableBody::Bytes(body),
    )?;
    let (instructions, _signature) = sign(signable, &params)?.into_parts();
    instructions.apply_to_request_http1x(&mut request);
    Ok(request)
}
