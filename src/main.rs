use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube::CustomResourceExt;
use lightsail_gui_operator::crd::GuiSession;

/// Kubernetes operator that keeps AWS Lightsail GUI sessions alive.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller.
    Run,
    /// Print the GuiSession CustomResourceDefinition as YAML.
    Crd,
}

fn main() -> ExitCode {
    lightsail_gui_operator::install_crypto_provider();
    match Cli::parse().command {
        Command::Run => {
            eprintln!("lightsail-gui-operator: the controller is not implemented yet (issue #4)");
            ExitCode::FAILURE
        }
        Command::Crd => match serde_yaml::to_string(&GuiSession::crd()) {
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
