use std::process::ExitCode;

use clap::Parser;
use lightsail_gui_operator::cli::{Cli, Command, RunArgs};
use lightsail_gui_operator::operator;

fn main() -> ExitCode {
    lightsail_gui_operator::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::Crd { kind }) => match serde_yaml::to_string(&kind.crd().0) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lightsail-gui-operator: cannot serialise the CRD: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(args: RunArgs) -> ExitCode {
    if let Err(e) = operator::init_logging(args.log_format, &args.log) {
        eprintln!("lightsail-gui-operator: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lightsail-gui-operator: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(operator::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("lightsail-gui-operator: {e:#}");
            ExitCode::FAILURE
        }
    }
}
