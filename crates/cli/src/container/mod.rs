//! The container commands of `berth`, in docker's shape: run, create, start, stop, restart,
//! kill, rm, ps, logs, wait, inspect, top, stats, pause, unpause, rename, prune, attach, exec.

mod cgroup_flags;
mod lifecycle;
mod ps;
mod run;
mod show;

pub use show::InspectArgs;

use berth_engine::{Engine, EngineOptions};
use clap::Subcommand;

use crate::{CmdResult, Ctx, Failure};

/// The top-level container verbs (`berth run`, `berth ps`, ...).
#[derive(Subcommand)]
pub enum Commands {
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(run::RunArgs),
    /// Start one or more stopped containers
    Start(lifecycle::StartArgs),
    /// Stop one or more running containers
    Stop(lifecycle::StopArgs),
    /// Restart one or more containers
    Restart(lifecycle::StopArgs),
    /// Kill one or more running containers
    Kill(lifecycle::KillArgs),
    /// Remove one or more containers
    Rm(lifecycle::RmArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// Fetch the logs of a container
    Logs(show::LogsArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(lifecycle::NamesArgs),
    /// Display the running processes of a container
    Top(show::TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(show::StatsArgs),
    /// Pause all processes within one or more containers
    Pause(lifecycle::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(lifecycle::NamesArgs),
    /// Rename a container
    Rename(lifecycle::RenameArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(lifecycle::AttachArgs),
    /// Execute a command in a running container
    Exec(run::ExecArgs),
    /// Update configuration of one or more containers
    Update(cgroup_flags::UpdateArgs),
}

/// `berth container ...`.
#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Group {
    #[command(flatten)]
    Verbs(Commands),
    /// List containers
    #[command(name = "ls", visible_alias = "list")]
    Ls(ps::PsArgs),
    /// Remove all stopped containers
    Prune(lifecycle::PruneArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(crate::filesystem::DiffArgs),
    /// Create a new image from a container's changes
    Commit(crate::filesystem::CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(crate::filesystem::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(crate::filesystem::ExportArgs),
}

pub fn run(ctx: &Ctx, c: Commands) -> CmdResult {
    match c {
        Commands::Run(a) => run::run(ctx, a, true),
        Commands::Create(a) => run::run(ctx, a, false),
        Commands::Start(a) => lifecycle::start(ctx, a),
        Commands::Stop(a) => lifecycle::stop(ctx, a, false),
        Commands::Restart(a) => lifecycle::stop(ctx, a, true),
        Commands::Kill(a) => lifecycle::kill(ctx, a),
        Commands::Rm(a) => lifecycle::rm(ctx, a),
        Commands::Ps(a) => ps::run(ctx, a),
        Commands::Logs(a) => show::logs(ctx, a),
        Commands::Wait(a) => lifecycle::wait(ctx, a),
        Commands::Top(a) => show::top(ctx, a),
        Commands::Stats(a) => show::stats(ctx, a),
        Commands::Pause(a) => lifecycle::each(ctx, a, |e, n| e.pause(n)),
        Commands::Unpause(a) => lifecycle::each(ctx, a, |e, n| e.unpause(n)),
        Commands::Rename(a) => lifecycle::rename(ctx, a),
        Commands::Attach(a) => lifecycle::attach(ctx, a),
        Commands::Exec(a) => run::exec(ctx, a),
        Commands::Update(a) => cgroup_flags::update(ctx, a),
    }
}

pub fn run_group(ctx: &Ctx, g: Group) -> CmdResult {
    match g {
        Group::Verbs(c) => run(ctx, c),
        Group::Ls(a) => ps::run(ctx, a),
        Group::Prune(a) => lifecycle::prune(ctx, a),
        Group::Inspect(a) => show::inspect(ctx, a, true),
        Group::Diff(a) => crate::filesystem::diff(ctx, a),
        Group::Commit(a) => crate::filesystem::commit(ctx, a),
        Group::Cp(a) => crate::filesystem::cp(ctx, a),
        Group::Export(a) => crate::filesystem::export(ctx, a),
    }
}

/// `berth inspect`: containers, then images, then volumes, like docker.
pub fn inspect(ctx: &Ctx, a: InspectArgs) -> CmdResult {
    show::inspect(ctx, a, false)
}

pub(crate) fn engine(ctx: &Ctx) -> Result<Engine, Failure> {
    let driver = ctx
        .driver
        .as_deref()
        .map(berth_image::Driver::parse)
        .transpose()?;
    Ok(Engine::open(
        &ctx.root,
        &EngineOptions { driver, exe: None },
    )?)
}

/// Prints docker's error line and exits with `code` (125 for berth's own failures).
pub(crate) fn die(msg: impl std::fmt::Display, code: i32) -> ! {
    eprintln!("Error: {msg}");
    std::process::exit(code)
}

/// berth-monitor's helpers (monitor, DNS responder, port proxy, network reaper), which berth
/// still runs when asked (`berth __dns ...`): dispatched before clap.
pub fn helper_main() -> Option<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = berth_engine::monitor::helper_main(&args)?;
    Some(std::process::ExitCode::from(code as u8))
}
