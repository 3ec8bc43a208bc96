//! The `gatehouse` binary: `dev`, `control` and `proxy`; the plugin kit
//! (`plugin new / build / push`) and config as code (`export`, `diff`,
//! `apply`, `sync`), clients of the REST API.

mod client;
mod config;
mod dev;
mod plugin;

use clap::{Parser, Subcommand};
use gatehouse_control::ControlArgs;
use gatehouse_proxy::ProxyArgs;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, LevelFilter};
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

// The hot path allocates small objects per request (headers, log records,
// plugin arguments); mimalloc's thread-local free lists cost less than
// glibc's malloc there (malloc/free were ~10 % of a node's CPU). Built
// without transparent huge pages (`no_thp`): with them its arenas made an
// idle node resident at 87 MB instead of 43.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a node calls after a config change: mimalloc hands the calling
/// thread's freed pages (and abandoned ones) back to the OS at once.
#[allow(unsafe_code)]
fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointers; it only walks mimalloc's own
    // heaps, and any thread may call it at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

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
    /// Control plane on SQLite plus one gateway node for a dev tenant.
    Dev(dev::DevArgs),
    /// The control plane: REST API, tenant auth, storage.
    Control(ControlArgs),
    /// One gateway node of a tenant.
    Proxy(ProxyArgs),
    /// Make, build and push a tenant plugin.
    Plugin(plugin::PluginArgs),
    /// Print the tenant's live config as YAML.
    Export(config::ExportArgs),
    /// Show what applying a config file would change (what `sync` would do).
    Diff(config::DiffArgs),
    /// Create and update what a config file holds; delete nothing.
    Apply(config::ApplyArgs),
    /// Make the live config the file: apply it, and delete what it lacks.
    Sync(config::ApplyArgs),
}

/// Whatever `RUST_LOG` asks for, pingora logs at most at info: at debug it
/// logs whole request headers and bodies (API keys, tokens, passwords).
/// Decided once per callsite, and it leaves the level hint to the
/// `RUST_LOG` filter it is combined with (the more restrictive of the two
/// wins): without a hint, every disabled `log::trace!` of cranelift was
/// matched against the filter at run time, which made compiling a plugin
/// four times slower.
struct FreeOfPayloads;

impl FreeOfPayloads {
    fn allows(metadata: &Metadata<'_>) -> bool {
        !(metadata.target().starts_with("pingora") && *metadata.level() > Level::INFO)
    }
}

impl<S> Filter<S> for FreeOfPayloads {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::allows(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // It only ever narrows pingora's events, never the overall level.
        Some(LevelFilter::TRACE)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::allows(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}

fn main() {
    gatehouse_proxy::memory::set_release(release_freed_memory);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info,pingora=warn"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(FreeOfPayloads.and(filter)),
        )
        .init();
    let outcome = match Cli::parse().command {
        Command::Dev(args) => dev::run(args),
        Command::Control(args) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(gatehouse_control::run(args))),
        // pingora starts its own runtimes: it runs on this thread.
        Command::Proxy(args) => gatehouse_proxy::run(args),
        Command::Plugin(args) => plugin::run(args),
        Command::Export(args) => config::export(args),
        Command::Diff(args) => config::diff(args).map(|differs| {
            if differs {
                // For CI: the file and the live config differ.
                std::process::exit(2);
            }
        }),
        Command::Apply(args) => config::apply(args, false),
        Command::Sync(args) => config::apply(args, true),
    };
    if let Err(err) = outcome {
        eprintln!("gatehouse: {err:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `gatehouse dev` and `gatehouse proxy` never share a state dir by
    /// default: a node of another tenant on the same machine must not find
    /// the dev tenant's config and telemetry (nor the other way round).
    #[test]
    fn dev_and_proxy_default_to_different_state_dirs() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).expect("flags parse");
        let Command::Dev(dev) = parse(&["gatehouse", "dev"]).command else {
            panic!("dev");
        };
        let Command::Proxy(proxy) = parse(&[
            "gatehouse",
            "proxy",
            "--control-url=http://127.0.0.1:1",
            "--gateway-key=gk_x",
        ])
        .command
        else {
            panic!("proxy");
        };
        assert_ne!(dev.state_dir, proxy.state_dir);
        assert!(!dev.state_dir.starts_with(&proxy.state_dir));
        assert!(!proxy.state_dir.starts_with(&dev.state_dir));
    }
}
