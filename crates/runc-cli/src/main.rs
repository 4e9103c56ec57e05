//! berth-runc: runc's command line over berth-runtime, so podman, conmon and containerd can call
//! it exactly as they call runc. Errors go to stderr as one line and to the --log file (runc's
//! text or JSON lines, which conmon and podman read back).

mod events;
mod exec;
mod list;
mod log;
mod ps;
mod signal;
mod update;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_runtime::{CreateOptions, ErrorKind, Runtime};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "berth-runc",
    version,
    about = "berth's OCI runtime, runc-compatible"
)]
struct Cli {
    /// Directory holding container state.
    #[arg(long, default_value = "/run/berth-runc")]
    root: PathBuf,
    /// Also write errors (and debug lines with --debug) to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    log_format: log::Format,
    #[arg(long)]
    debug: bool,
    /// Refused: only the cgroupfs driver is supported.
    #[arg(long)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility (true|false|auto); rootless mode follows the caller's uid.
    #[arg(long, value_parser = ["true", "false", "auto"])]
    rootless: Option<String>,
    /// Accepted for runc compatibility; checkpointing is not supported.
    #[arg(long)]
    criu: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container; its process waits until `start`.
    Create(CreateArgs),
    /// Start a created container's process.
    Start { id: String },
    /// Create and start a container; exits with its process's exit code unless detached.
    Run(RunArgs),
    /// Print a container's state as JSON.
    State { id: String },
    /// List containers.
    #[command(alias = "ls")]
    List(list::ListArgs),
    /// Send a signal to a container's init (or to all its processes with --all).
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete containers and their resources.
    Delete {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Run a new process inside a container.
    Exec(exec::ExecArgs),
    /// List the processes of a container.
    Ps(ps::PsArgs),
    /// Freeze all processes of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Print the features this runtime supports (OCI features.json).
    Features,
    /// Print container statistics: once with --stats, else every --interval.
    Events(events::EventsArgs),
    /// Change a running container's resource limits.
    Update(update::UpdateArgs),
}

#[derive(Args)]
struct CreateArgs {
    #[command(flatten)]
    common: CreateCommon,
    id: String,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: CreateCommon,
    #[arg(short, long)]
    detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    keep: bool,
    id: String,
}

#[derive(Args)]
struct CreateCommon {
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    no_pivot: bool,
    #[arg(long)]
    no_new_keyring: bool,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
}

impl CreateCommon {
    fn options(&self) -> Result<CreateOptions> {
        Ok(CreateOptions {
            bundle: absolute(&self.bundle)?,
            pid_file: self.pid_file.as_deref().map(absolute).transpose()?,
            console_socket: self.console_socket.as_deref().map(absolute).transpose()?,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
        })
    }
}

fn main() {
    let cli = Cli::parse();
    let logger = log::Logger::new(cli.log.clone(), cli.log_format, cli.debug);
    logger.debug(&format!(
        "berth-runc {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    ));
    if cli.log.is_some() {
        // runc's warnings go to its log when there is one: with conmon the runtime's stderr is
        // the container's, where they do not belong.
        let sink = log::Logger::new(cli.log.clone(), cli.log_format, false);
        berth_runtime::set_warning_sink(Box::new(move |m: &str| sink.warn(m)));
    }
    // runc exits 255 when exec itself fails (the process's own code otherwise), 1 elsewhere.
    let fail_code = if matches!(cli.command, Command::Exec(_)) {
        255
    } else {
        1
    };
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line, whatever the causes' messages hold: conmon shows the last line only.
            let msg = format!("{e:#}").replace('\n', " ");
            logger.error(&msg);
            eprintln!("berth-runc: {msg}");
            std::process::exit(fail_code);
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("the systemd cgroup driver is not supported: use the cgroupfs driver (drop --systemd-cgroup)");
    }
    let rt = Runtime::new(&cli.root);
    match cli.command {
        Command::Create(a) => rt.create(&a.id, &a.common.options()?)?,
        Command::Start { id } => rt.start(&id)?,
        Command::Run(a) => return Ok(rt.run(&a.id, &a.common.options()?, a.detach, a.keep)?),
        Command::State { id } => println!("{}", serde_json::to_string_pretty(&rt.state(&id)?)?),
        Command::List(a) => list::list(&rt, &a)?,
        Command::Kill { all, id, signal } => rt.kill(&id, signal::parse(&signal)?, all)?,
        Command::Delete { force, ids } => {
            for id in ids {
                match rt.delete(&id, force) {
                    // Like runc: a forced delete of what is already gone succeeds (cleanup paths rely on it).
                    Err(e) if force && e.kind() == ErrorKind::NotFound => {}
                    r => r?,
                }
            }
        }
        Command::Exec(a) => return exec::exec(&rt, a),
        Command::Ps(a) => ps::ps(&rt, &a)?,
        Command::Pause { id } => rt.pause(&id)?,
        Command::Resume { id } => rt.resume(&id)?,
        Command::Spec { bundle, rootless } => spec(&bundle, rootless)?,
        Command::Features => println!(
            "{}",
            serde_json::to_string_pretty(&berth_runtime::features())?
        ),
        Command::Events(a) => events::events(&rt, &a)?,
        Command::Update(a) => update::update(&rt, &a)?,
    }
    Ok(0)
}

/// Paths are taken relative to the caller's cwd, as runc does before it changes directory.
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolve {}", p.display()))
}

fn spec(bundle: &Path, rootless: bool) -> Result<()> {
    use std::io::Write;
    let path = bundle.join("config.json");
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{} exists: remove it first", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
    };
    let mut json = serde_json::to_vec_pretty(&berth_runtime::default_spec(rootless))?;
    json.push(b'\n');
    f.write_all(&json)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn runc_style_invocations_parse() {
        let cli = Cli::try_parse_from([
            "berth-runc",
            "--root",
            "/r",
            "--log",
            "/l",
            "--log-format",
            "json",
            "--rootless",
            "auto",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "p",
            "--no-pivot",
            "ctr",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Create(CreateArgs { ref id, .. }) if id == "ctr"));
        let cli = Cli::try_parse_from(["berth-runc", "spec", "--rootless"]).unwrap();
        assert!(matches!(cli.command, Command::Spec { rootless: true, .. }));
        let cli = Cli::try_parse_from(["berth-runc", "kill", "--all", "ctr", "KILL"]).unwrap();
        assert!(
            matches!(cli.command, Command::Kill { all: true, ref signal, .. } if signal == "KILL")
        );
        assert!(Cli::try_parse_from(["berth-runc", "--rootless", "maybe", "list"]).is_err());
    }
}
