//! The `gatehouse` binary: `dev`, `control` (and, as the data plane lands,
//! `proxy`).

mod dev;

use clap::{Parser, Subcommand};
use gatehouse_control::ControlArgs;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A multi-tenant API gateway extensible with WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Control plane on SQLite with a dev tenant, for trying Gatehouse out.
    Dev(ControlArgs),
    /// The control plane: REST API, tenant auth, storage.
    Control(ControlArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = match cli.command {
        Command::Dev(args) => runtime.block_on(dev::run(args)),
        Command::Control(args) => runtime.block_on(gatehouse_control::run(args)),
    };
    if let Err(err) = &outcome {
        eprintln!("gatehouse: {err:#}");
        std::process::exit(1);
    }
    Ok(())
}
