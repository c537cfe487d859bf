use std::process::ExitCode;

use clap::Parser;
use lightsail_gui_operator::process;
use lightsail_gui_operator::process::cli::{Cli, Command, RunArgs};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// glibc's malloc, set for a long-running process that holds many small objects: one arena
/// (a reconcile's garbage is freed on whichever worker thread runs next, and with an arena per
/// thread each keeps its own free pages), and a fixed mmap threshold (glibc otherwise raises it
/// after the first large free, and later large buffers, such as list pages, fragment the heap for
/// good). At 10,000 GuiSessions this takes a restarted operator from 68-74 to 54-56 MiB (see
/// BENCHMARKS.md). A `GLIBC_TUNABLES` naming malloc settings is left to decide instead.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
fn tune_malloc() {
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc")) {
        return;
    }
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // exists, as glibc asks.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
fn tune_malloc() {}

fn run(args: RunArgs) -> ExitCode {
    tune_malloc();
    if let Err(e) = process::init_logging(args.log_format, &args.log) {
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
    match runtime.block_on(process::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("lightsail-gui-operator: {e:#}");
            ExitCode::FAILURE
        }
    }
}
