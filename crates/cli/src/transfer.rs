//! `berth load`, `berth save`, `berth import`.

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;

use crate::{CmdResult, Ctx, Failure};
use berth_image::{ArchiveFormat, CommitOptions};

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// docker-archive (default) or oci-archive
    #[arg(long, default_value = "docker-archive")]
    format: String,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Set platform if server is multi-platform capable (os/arch)
    #[arg(long)]
    platform: Option<String>,
    /// A tarball (plain, gzip or zstd), or - for STDIN
    file: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

/// A byte-count bar on stderr when it is a terminal; nothing otherwise.
pub(crate) fn progress(len: Option<u64>, quiet: bool, what: &str) -> ProgressBar {
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = match len {
        Some(l) => ProgressBar::new(l),
        None => ProgressBar::new_spinner(),
    };
    let style = match len {
        Some(_) => {
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
        }
        None => ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}"),
    };
    pb.set_style(style.expect("template").progress_chars("=> "));
    pb.set_message(what.to_string());
    pb
}

fn open_input(
    path: &str,
    quiet: bool,
    what: &str,
) -> Result<(Box<dyn Read>, ProgressBar), Failure> {
    if path == "-" {
        if io::stdin().is_terminal() {
            return Err(Failure(
                "requested load from stdin, but stdin is empty".into(),
            ));
        }
        let pb = progress(None, quiet, what);
        return Ok((Box::new(pb.wrap_read(io::stdin().lock())), pb));
    }
    let f = File::open(path).map_err(|e| Failure(format!("open {path}: {e}")))?;
    let len = f.metadata().ok().map(|m| m.len());
    let pb = progress(len, quiet, what);
    Ok((Box::new(pb.wrap_read(f)), pb))
}

pub fn load(ctx: &Ctx, a: LoadArgs) -> CmdResult {
    let store = ctx.store()?;
    let src = a
        .input
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "-".into());
    let (input, pb) = open_input(&src, a.quiet, "Loading")?;
    let loaded = store.load(input);
    pb.finish_and_clear();
    for img in loaded? {
        if img.names.is_empty() {
            println!("Loaded image ID: sha256:{}", img.id);
        }
        for n in &img.names {
            println!("Loaded image: {}", n.familiar());
        }
    }
    Ok(())
}

pub fn save(ctx: &Ctx, a: SaveArgs) -> CmdResult {
    let format = ArchiveFormat::parse(&a.format)?;
    let store = ctx.store()?;
    match &a.output {
        Some(path) => {
            // Written beside the target and renamed, so a failed save leaves no half file.
            let tmp = path.with_file_name(format!(
                ".{}.berth-tmp",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
            let f = File::create(&tmp)
                .map_err(|e| Failure(format!("create {}: {e}", tmp.display())))?;
            // The layer blobs are most of the archive: a bar towards their total.
            let pb = progress(Some(save_estimate(&store, &a.images)), false, "Saving");
            let res = store.save(
                &a.images,
                format,
                pb.wrap_write(io::BufWriter::with_capacity(1 << 20, f)),
            );
            pb.finish_and_clear();
            if let Err(e) = res {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
            std::fs::rename(&tmp, path)
                .map_err(|e| Failure(format!("rename to {}: {e}", path.display())))?;
        }
        None => {
            if io::stdout().is_terminal() {
                return Err(Failure(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
                ));
            }
            let out = io::stdout().lock();
            store.save(
                &a.images,
                format,
                io::BufWriter::with_capacity(1 << 20, out),
            )?;
            io::stdout().flush()?;
        }
    }
    Ok(())
}

/// The bytes of the distinct layer blobs of `images` (what dominates a saved archive).
fn save_estimate(store: &berth_image::ImageStore, images: &[String]) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for name in images {
        if let Ok(img) = store.resolve(name) {
            for l in &img.layers {
                if seen.insert(l.blob_digest.clone()) {
                    total += l.blob_size;
                }
            }
        }
    }
    total
}

pub fn import(ctx: &Ctx, a: ImportArgs) -> CmdResult {
    let store = ctx.store()?;
    let (input, pb) = open_input(&a.file, false, "Importing")?;
    let opts = CommitOptions {
        changes: a.change.clone(),
        comment: Some(
            a.message
                .clone()
                .unwrap_or_else(|| format!("Imported from {}", a.file)),
        ),
        reference: a.reference.clone(),
        platform: a.platform.clone(),
        ..Default::default()
    };
    let id = store.commit(input, &opts);
    pb.finish_and_clear();
    println!("sha256:{}", id?);
    Ok(())
}
