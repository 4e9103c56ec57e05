//! `berth`: the engine CLI, in docker's shape. For now its image commands.

mod build;
mod container;
mod filesystem;
mod history;
mod images;
mod info;
mod inspect;
mod network;
mod output;
mod registry;
mod remove;
mod serve;
mod system;
mod transfer;
mod units;
mod usage;
mod volume;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use berth_image::{Driver, ImageStore, StoreOptions};

#[derive(Parser)]
#[command(name = "berth", about = "A daemonless container engine", version)]
struct Cli {
    /// Root of berth's storage
    #[arg(long, global = true, env = "BERTH_ROOT", default_value = berth_image::DEFAULT_ROOT)]
    root: PathBuf,
    /// Storage driver: overlay or vfs (fixed when the root is created)
    #[arg(long, global = true)]
    storage_driver: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Dockerfile or Containerfile
    Build(build::BuildArgs),
    /// List images
    Images(images::LsArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Load an image from a tar archive or STDIN
    Load(transfer::LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(transfer::SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(transfer::ImportArgs),
    /// Return low-level information on containers or images
    Inspect(container::InspectArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(remove::TagArgs),
    /// Remove one or more images
    Rmi(remove::RmiArgs),
    /// Manage berth
    #[command(subcommand)]
    System(SystemCommand),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(filesystem::DiffArgs),
    /// Create a new image from a container's changes
    Commit(filesystem::CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(filesystem::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(filesystem::ExportArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Show the berth version information
    Version(info::FormatArgs),
    /// Display system-wide information
    Info(info::FormatArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// List port mappings or a specific mapping for the container
    Port(network::PortArgs),
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Log in to a registry
    Login(registry::LoginArgs),
    /// Log out from a registry
    Logout(registry::LogoutArgs),
    /// Search Docker Hub (or the registry REGISTRY/TERM names) for images
    Search(registry::SearchArgs),
    /// Serve the Docker Engine API on a socket
    Serve(serve::ServeArgs),
    /// Get real time events from berth
    Events(serve::EventsArgs),
    #[command(flatten)]
    Containers(container::Commands),
    /// Manage containers
    #[command(subcommand)]
    Container(container::Group),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build an image from a Dockerfile or Containerfile
    Build(build::BuildArgs),
    /// List images
    #[command(visible_alias = "list")]
    Ls(images::LsArgs),
    /// Display detailed information on one or more images
    Inspect(inspect::InspectArgs),
    /// Load an image from a tar archive or STDIN
    Load(transfer::LoadArgs),
    /// Save one or more images to a tar archive
    Save(transfer::SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(transfer::ImportArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(remove::TagArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(remove::RmiArgs),
    /// Remove unused images
    Prune(remove::PruneArgs),
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
}

#[derive(Subcommand)]
enum SystemCommand {
    /// Show berth disk usage
    Df(system::DfArgs),
    /// Display system-wide information
    Info(info::FormatArgs),
}

/// An error already reported to the user, or one to print as `Error: ...`.
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

pub type CmdResult = Result<(), Failure>;

pub struct Ctx {
    root: PathBuf,
    driver: Option<String>,
}

impl Ctx {
    pub fn store(&self) -> Result<ImageStore, Failure> {
        let driver = self.driver.as_deref().map(Driver::parse).transpose()?;
        Ok(ImageStore::open(&self.root, &StoreOptions { driver })?)
    }
}

fn main() -> ExitCode {
    // Like other CLI tools: `berth images | head` ends quietly instead of failing on EPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if let Some(code) = container::helper_main() {
        return code;
    }
    let cli: Cli = usage::parse();
    let ctx = Ctx {
        root: cli.root,
        driver: cli.storage_driver,
    };
    let result = match cli.command {
        Command::Build(a) | Command::Image(ImageCommand::Build(a)) => build::run(&ctx, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::run(&ctx, a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => transfer::load(&ctx, a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => transfer::save(&ctx, a),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => transfer::import(&ctx, a),
        Command::Inspect(a) => container::inspect(&ctx, a),
        Command::Image(ImageCommand::Inspect(a)) => inspect::run(&ctx, a),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => history::run(&ctx, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => remove::tag(&ctx, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => remove::rmi(&ctx, a),
        Command::Image(ImageCommand::Prune(a)) => remove::prune(&ctx, a),
        Command::System(SystemCommand::Df(a)) => system::df(&ctx, a),
        Command::Info(a) | Command::System(SystemCommand::Info(a)) => info::info(&ctx, a),
        Command::Version(a) => info::version(&ctx, a),
        Command::Diff(a) => filesystem::diff(&ctx, a),
        Command::Commit(a) => filesystem::commit(&ctx, a),
        Command::Cp(a) => filesystem::cp(&ctx, a),
        Command::Export(a) => filesystem::export(&ctx, a),
        Command::Volume(c) => volume::run(&ctx, c),
        Command::Network(c) => network::run(&ctx, c),
        Command::Port(a) => network::port(&ctx, a),
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => registry::pull(&ctx, a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => registry::push(&ctx, a),
        Command::Login(a) => registry::login(&ctx, a),
        Command::Logout(a) => registry::logout(&ctx, a),
        Command::Search(a) => registry::search(&ctx, a),
        Command::Serve(a) => serve::serve(&ctx, a),
        Command::Events(a) => serve::events(&ctx, a),
        Command::Containers(c) => container::run(&ctx, c),
        Command::Container(g) => container::run_group(&ctx, g),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            if !msg.is_empty() {
                eprintln!("Error: {msg}");
            }
            ExitCode::from(1)
        }
    }
}
