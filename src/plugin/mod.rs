//! `gatehouse plugin new | build | push`: a plugin author's first minute.
//! `new` scaffolds a plugin that builds (Rust, JavaScript or Python, with
//! the WIT it is built against and a manifest, `gatehouse-plugin.json`);
//! `build` runs the language's component toolchain, installing the pinned
//! JavaScript and Python ones on first use (`toolchain`); `push` uploads
//! the component through the REST API and attaches it to a route (`push`).

mod manifest;
mod push;
mod templates;
mod toolchain;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

pub use manifest::Manifest;
pub use push::upload;

/// `gatehouse plugin ...`.
#[derive(Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Scaffolds a plugin in a new directory.
    New(NewArgs),
    /// Builds the plugin in a directory into a component.
    Build(BuildArgs),
    /// Uploads the built component and attaches it to a route.
    Push(push::PushArgs),
}

/// The languages `new` has templates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    Js,
    Python,
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rust => "Rust",
            Self::Js => "JavaScript",
            Self::Python => "Python",
        })
    }
}

#[derive(Args)]
struct NewArgs {
    /// The plugin's name: lowercase letters, digits and dashes, starting
    /// with a letter (the name it is uploaded under).
    name: String,
    #[arg(long, value_enum)]
    lang: Language,
    /// Where to make it (default: a new directory named after the plugin).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args)]
struct BuildArgs {
    /// The plugin's directory (holding `gatehouse-plugin.json`).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Where to write the component (default: `<dir>/<name>.wasm`).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: PluginArgs) -> anyhow::Result<()> {
    match args.command {
        PluginCommand::New(args) => {
            let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
            templates::scaffold(&args.name, args.lang, &dir)?;
            println!(
                "made {} ({} plugin {}); next: gatehouse plugin build --dir {0}",
                dir.display(),
                args.lang,
                args.name
            );
            Ok(())
        }
        PluginCommand::Build(args) => {
            let manifest = Manifest::read(&args.dir)?;
            let out = args
                .out
                .unwrap_or_else(|| manifest.component_path(&args.dir));
            toolchain::build(&manifest, &args.dir, &out)?;
            println!("built {}", out.display());
            Ok(())
        }
        PluginCommand::Push(args) => push::run(args),
    }
}
