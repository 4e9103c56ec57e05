//! `berth diff`, `commit`, `cp` and `export`: a container's filesystem out and in.

use berth_engine::commit::{extract_at, write_path_tar};
use berth_engine::{CommitOptions, Engine, EngineOptions, Placement};
use clap::{ArgAction, Args};
use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::{CmdResult, Ctx, Failure};

#[derive(Args)]
pub struct DiffArgs {
    container: String,
}

#[derive(Args)]
pub struct CommitArgs {
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    change: Vec<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    container: String,
    reference: Option<String>,
}

#[derive(Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short, long)]
    quiet: bool,
    src: String,
    dest: String,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    container: String,
}

fn engine(ctx: &Ctx) -> Result<Engine, Failure> {
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

/// The layer and tar pipes must report a closed reader as an error, not kill us.
fn ignore_sigpipe() {
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

pub fn diff(ctx: &Ctx, a: DiffArgs) -> CmdResult {
    let changes = engine(ctx)?.diff(&a.container)?;
    let mut out = std::io::stdout().lock();
    for c in changes {
        let k = match c.kind {
            berth_engine::ChangeKind::Added => 'A',
            berth_engine::ChangeKind::Changed => 'C',
            berth_engine::ChangeKind::Deleted => 'D',
        };
        writeln!(out, "{k} {}", c.path.display())?;
    }
    Ok(())
}

pub fn commit(ctx: &Ctx, a: CommitArgs) -> CmdResult {
    ignore_sigpipe();
    let o = CommitOptions {
        reference: a.reference,
        comment: a.message,
        author: a.author,
        changes: a.change,
        pause: a.pause,
    };
    // A bar of the layer's bytes on stderr when it is a terminal; nothing otherwise.
    let pb = crate::transfer::progress(None, false, "Committing");
    let id = engine(ctx)?.commit_with_progress(&a.container, &o, &|n| pb.inc(n));
    pb.finish_and_clear();
    println!("sha256:{}", id?);
    Ok(())
}

pub fn export(ctx: &Ctx, a: ExportArgs) -> CmdResult {
    let e = engine(ctx)?;
    // Before creating the output file: an unknown container leaves nothing behind.
    e.get(&a.container)?;
    match a.output.as_deref() {
        Some(path) if path != "-" => {
            let f = std::fs::File::create(path)
                .map_err(|e| Failure(format!("failed to export container: create {path}: {e}")))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            e.export(&a.container, &mut w)?;
            w.flush()
                .map_err(|e| Failure(format!("failed to export container: write {path}: {e}")))?;
        }
        _ => {
            if std::io::stdout().is_terminal() {
                return Err(Failure(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
                ));
            }
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            e.export(&a.container, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}

/// "CONTAINER:PATH" → (container, path); a path that starts with "/" or "." is local (docker's rule).
fn split_arg(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    s.split_once(':').filter(|(c, _)| !c.is_empty())
}

fn absolute(p: &str) -> Result<String, Failure> {
    if p.starts_with('/') {
        return Ok(p.to_string());
    }
    let cwd = std::env::current_dir()?;
    let mut s = cwd.join(p).to_string_lossy().into_owned();
    // Keep docker's meaning of a trailing "/." or "/".
    if p.ends_with("/.") || p == "." {
        s = format!("{}/.", s.trim_end_matches("/."));
    } else if p.ends_with('/') && !s.ends_with('/') {
        s.push('/');
    }
    Ok(s)
}

fn placement(src: &str) -> Placement {
    if src.ends_with("/.") || src == "." {
        Placement::ContentsAs
    } else {
        Placement::As
    }
}

pub fn cp(ctx: &Ctx, a: CpArgs) -> CmdResult {
    let e = engine(ctx)?;
    match (split_arg(&a.src), split_arg(&a.dest)) {
        (Some(_), Some(_)) => Err(Failure(
            "copying between containers is not supported".into(),
        )),
        (None, None) => Err(Failure("must specify at least one container source".into())),
        (Some((c, src)), None) => {
            let src = if src.starts_with('/') {
                src.to_string()
            } else {
                format!("/{src}")
            };
            if a.dest == "-" {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                e.copy_from(c, &src, a.follow_link, &mut w)?;
                w.flush()?;
                return Ok(());
            }
            ignore_sigpipe();
            let dest = absolute(&a.dest)?;
            let owner = if a.archive {
                None
            } else {
                Some(unsafe { (libc::getuid(), libc::getgid()) })
            };
            let (r, w) = std::io::pipe()?;
            let place = placement(&src);
            std::thread::scope(|s| {
                let ex = s.spawn(move || extract_at(Path::new("/"), &dest, r, place, owner));
                let sent = e.copy_from(c, &src, a.follow_link, w);
                let got = ex
                    .join()
                    .map_err(|_| Failure("copy: extraction panicked".into()))?;
                got?;
                sent?;
                Ok(())
            })
        }
        (None, Some((c, dest))) => {
            let dest = if dest.starts_with('/') {
                dest.to_string()
            } else {
                format!("/{dest}")
            };
            if a.src == "-" {
                e.copy_to(
                    c,
                    &dest,
                    std::io::stdin().lock(),
                    Placement::Into,
                    a.archive,
                )?;
                return Ok(());
            }
            ignore_sigpipe();
            let src = absolute(&a.src)?;
            if std::fs::symlink_metadata(src.trim_end_matches("/.")).is_err() {
                return Err(Failure(format!(
                    "could not find the file {} in the host",
                    a.src
                )));
            }
            let (r, w) = std::io::pipe()?;
            let place = placement(&src);
            let follow = a.follow_link;
            std::thread::scope(|s| {
                let src2 = src.clone();
                let tx = s.spawn(move || write_path_tar(Path::new("/"), &src2, follow, w));
                let got = e.copy_to(c, &dest, r, place, a.archive);
                let sent = tx
                    .join()
                    .map_err(|_| Failure("copy: archiving panicked".into()))?;
                // A refused destination closes the pipe under the archiver: its broken pipe is
                // only an echo of the refusal, which is the error to report.
                match (got, sent) {
                    (Err(g), Err(s)) if s.to_string().contains("broken pipe") => Err(g.into()),
                    (_, Err(s)) => Err(s.into()),
                    (Err(g), Ok(())) => Err(g.into()),
                    (Ok(()), Ok(())) => Ok(()),
                }
            })
        }
    }
}
