//! `lightsail-sim`: the Lightsail GUI-session simulator as a stand-alone server.
//! See `lightsail-sim --help` and `lightsail_sim`.

use clap::Parser;
use lightsail_sim::{SimArgs, Simulator};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = SimArgs::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lightsail-sim: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: SimArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
    let simulator = Simulator::start(config, args.listen.as_str()).await?;
    // Listen for signals before announcing the address: a parent may send SIGTERM as soon as it
    // has read the line.
    let stop = shutdown_signal()?;
    // The one stdout line: a parent started with `--listen 127.0.0.1:0` reads the port here.
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "lightsail-sim listening on {}",
        simulator.endpoint_url()
    )?;
    stdout.flush()?;
    drop(stdout);
    stop.await;
    tracing::info!("stopping");
    simulator.shutdown().await
}

/// Installs the SIGTERM and SIGINT handlers now; the future resolves on either signal.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
