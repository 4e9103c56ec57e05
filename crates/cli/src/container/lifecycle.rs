//! start, stop, restart, kill, rm, wait, pause, unpause, rename, attach, prune.

use berth_engine::{Ended, Engine, StartOptions, StopOptions};
use clap::Args;

use super::{die, engine};
use crate::{CmdResult, Ctx, Failure};

#[derive(Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `f` on each container, printing its name as docker does; exit 1 if any failed.
pub fn each(
    ctx: &Ctx,
    a: NamesArgs,
    f: impl Fn(&Engine, &str) -> berth_engine::Result<()>,
) -> CmdResult {
    each_printing(ctx, &a.containers, |e, n| f(e, n).map(|()| n))
}

/// Runs `f` on each container and prints what it returns; the errors of all that failed are
/// reported together afterwards (exit 1), so one bad name does not stop the rest.
fn each_printing<'a, T: std::fmt::Display>(
    ctx: &Ctx,
    names: &'a [String],
    f: impl Fn(&Engine, &'a str) -> berth_engine::Result<T>,
) -> CmdResult {
    let e = engine(ctx)?;
    let mut errors = Vec::new();
    for n in names {
        match f(&e, n) {
            Ok(out) => println!("{out}"),
            Err(err) => errors.push(err.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure(errors.join("\nError: ")))
    }
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// --detach-keys, checked before anything starts (docker's daemon refuses bad ones).
fn detach_keys(spec: Option<&str>) -> Vec<u8> {
    spec.map(|k| berth_engine::flags::parse_detach_keys(k).unwrap_or_else(|e| die(e, 1)))
        .unwrap_or_default()
}

pub fn start(ctx: &Ctx, a: StartArgs) -> CmdResult {
    let e = engine(ctx)?;
    let keys = detach_keys(a.detach_keys.as_deref());
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            return Err(Failure(
                "you cannot start and attach multiple containers at once".into(),
            ));
        }
        if a.interactive {
            let c = e.get(&a.containers[0])?;
            super::run::check_tty(c.config.open_stdin, c.config.tty);
        }
        let att = match e.start(
            &a.containers[0],
            &StartOptions {
                attach: true,
                stdin: a.interactive,
            },
        ) {
            Ok(x) => x.expect("attached"),
            Err(err) => {
                let code = err.exit_code();
                die(err, if code == 125 { 1 } else { code })
            }
        };
        drop(e);
        match att
            .with_detach_keys(keys)
            .pump_stdio(true)
            .unwrap_or_else(|err| die(err, 1))
        {
            Ended::Exited(code) => std::process::exit(code),
            Ended::Detached => return Ok(()),
        }
    }
    each(
        ctx,
        NamesArgs {
            containers: a.containers,
        },
        |e, n| e.start(n, &StartOptions::default()).map(drop),
    )
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short, long, alias = "timeout")]
    time: Option<i64>,
    /// Signal to send to the container
    #[arg(short, long)]
    signal: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn stop(ctx: &Ctx, a: StopArgs, restart: bool) -> CmdResult {
    let o = StopOptions {
        timeout: a.time,
        signal: a.signal.clone(),
    };
    each(
        ctx,
        NamesArgs {
            containers: a.containers,
        },
        |e, n| {
            if restart {
                e.restart(n, &o)
            } else {
                e.stop(n, &o)
            }
        },
    )
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn kill(ctx: &Ctx, a: KillArgs) -> CmdResult {
    let sig = a.signal.clone();
    each(
        ctx,
        NamesArgs {
            containers: a.containers,
        },
        |e, n| e.kill(n, &sig),
    )
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn rm(ctx: &Ctx, a: RmArgs) -> CmdResult {
    let (force, volumes) = (a.force, a.volumes);
    each(
        ctx,
        NamesArgs {
            containers: a.containers,
        },
        |e, n| e.remove(n, force, volumes),
    )
}

pub fn wait(ctx: &Ctx, a: NamesArgs) -> CmdResult {
    each_printing(ctx, &a.containers, |e, n| e.wait(n))
}

#[derive(Args)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

pub fn rename(ctx: &Ctx, a: RenameArgs) -> CmdResult {
    Ok(engine(ctx)?.rename(&a.container, &a.new_name)?)
}

#[derive(Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    container: String,
}

pub fn attach(ctx: &Ctx, a: AttachArgs) -> CmdResult {
    let keys = detach_keys(a.detach_keys.as_deref());
    let e = engine(ctx)?;
    let att = e.attach(&a.container, !a.no_stdin)?;
    drop(e);
    super::run::check_tty(!a.no_stdin, att.tty());
    match att.with_detach_keys(keys).pump_stdio(a.sig_proxy)? {
        Ended::Exited(code) => std::process::exit(code),
        // docker attach reports the detach as its error (exit 1), without a prefix.
        Ended::Detached => {
            eprintln!("read escape sequence");
            std::process::exit(1)
        }
    }
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    filter: Vec<String>,
}

pub fn prune(ctx: &Ctx, a: PruneArgs) -> CmdResult {
    if !a.force {
        eprint!("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ");
        let mut l = String::new();
        let _ = std::io::stdin().read_line(&mut l);
        if !l.trim().eq_ignore_ascii_case("y") {
            return Ok(());
        }
    }
    let filters = berth_engine::filters::Filters::parse(&a.filter)?;
    let e = engine(ctx)?;
    let ids = e.prune_filtered(&filters)?;
    if !ids.is_empty() {
        println!("Deleted Containers:");
        for id in &ids {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: 0B");
    Ok(())
}
