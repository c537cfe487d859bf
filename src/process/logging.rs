//! Log output: text on a terminal, JSON in a cluster.

use crate::process::cli::LogFormat;
use anyhow::Context as _;

/// Sets up logging. Nothing the operator logs carries credentials or session URLs: the URLs
/// live in a type that redacts itself when formatted and are only ever put into the access
/// Secret, and AWS and Kubernetes client internals log below `info`.
pub fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid log filter {filter:?}"))?;
    // Colour only on a terminal: escape codes in a file or a pipe are noise to every reader.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
