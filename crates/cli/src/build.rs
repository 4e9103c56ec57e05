//! `berth build`: docker's and podman's flags, in front of the berth-build crate.

use clap::Args;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{CmdResult, Ctx, Failure};

#[derive(Args)]
pub struct BuildArgs {
    /// Name of the Dockerfile (default: CONTEXT/Containerfile or CONTEXT/Dockerfile; "-" reads it from stdin)
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Name and optionally a tag (NAME:TAG) for the image
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use the cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Pull policy for base images: missing, always, never
    #[arg(long, num_args = 0..=1, default_missing_value = "always", default_value = "missing", require_equals = true)]
    pull: String,
    /// Suppress the build output and print the image ID on success
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Set metadata for an image (KEY=VALUE)
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Networking mode for the RUN instructions: none, host (default: none until bridge networking exists)
    #[arg(long, default_value = "default")]
    network: String,
    /// Set the target platform (only the host's)
    #[arg(long)]
    platform: Option<String>,
    /// Build context: a directory, or "-" for a tar archive or a Dockerfile on stdin
    context: String,
}

/// Removes a temporary context dir when the build ends.
struct TmpDir(Option<PathBuf>);

impl Drop for TmpDir {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn find_dockerfile(context: &Path) -> Option<PathBuf> {
    ["Containerfile", "Dockerfile"]
        .iter()
        .map(|n| context.join(n))
        .find(|p| p.is_file())
}

pub fn run(ctx: &Ctx, a: BuildArgs) -> CmdResult {
    let driver = ctx
        .driver
        .as_deref()
        .map(berth_image::Driver::parse)
        .transpose()?;
    let eo = berth_engine::EngineOptions { driver, exe: None };
    let mut tmp = TmpDir(None);
    let mut stdin_dockerfile = None;
    let context = if a.context == "-" {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| Failure(format!("read the context from stdin: {e}")))?;
        std::fs::create_dir_all(ctx.root.join("build")).map_err(|e| Failure(e.to_string()))?;
        let dir = ctx
            .root
            .join("build")
            .join(format!("context-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure(format!("create {}: {e}", dir.display())))?;
        tmp.0 = Some(dir.clone());
        let gz = data.starts_with(&[0x1f, 0x8b]);
        let is_tar = gz || (data.len() >= 262 && &data[257..262] == b"ustar");
        if is_tar {
            let r: Box<dyn Read> = if gz {
                Box::new(flate2::read::GzDecoder::new(&data[..]))
            } else {
                Box::new(&data[..])
            };
            let mut ar = tar::Archive::new(r);
            ar.set_preserve_permissions(true);
            ar.unpack(&dir)
                .map_err(|e| Failure(format!("unpack the context from stdin: {e}")))?;
        } else {
            stdin_dockerfile = Some(
                String::from_utf8(data)
                    .map_err(|_| Failure("the Dockerfile on stdin is not UTF-8 text".into()))?,
            );
        }
        dir
    } else {
        PathBuf::from(&a.context)
    };
    if !context.is_dir() {
        return Err(Failure(format!(
            "unable to prepare context: path {:?} not found",
            a.context
        )));
    }
    let (dockerfile, path) = match (&a.file, stdin_dockerfile) {
        (Some(f), _) if f == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Failure(format!("read the Dockerfile from stdin: {e}")))?;
            (s, None)
        }
        (Some(f), _) => {
            let p = PathBuf::from(f);
            // Relative to the current dir, else to the context (as podman also allows); with a
            // context tar on stdin, inside it (docker's `-f` names a file of the tar).
            let p = if p.is_absolute() || (a.context != "-" && p.is_file()) {
                p
            } else {
                context.join(f)
            };
            (
                std::fs::read_to_string(&p)
                    .map_err(|e| Failure(format!("read {}: {e}", p.display())))?,
                Some(p),
            )
        }
        (None, Some(s)) => (s, None),
        (None, None) => {
            let p = find_dockerfile(&context).ok_or_else(|| {
                Failure(format!(
                    "no Containerfile or Dockerfile found in {}",
                    context.display()
                ))
            })?;
            (
                std::fs::read_to_string(&p)
                    .map_err(|e| Failure(format!("read {}: {e}", p.display())))?,
                Some(p),
            )
        }
    };
    let mut build_args = BTreeMap::new();
    for b in &a.build_args {
        match b.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(b) {
                    build_args.insert(b.clone(), v);
                }
            }
        }
    }
    let mut labels = BTreeMap::new();
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    for t in &a.tags {
        berth_image::Reference::parse(t).map_err(|e| Failure(format!("invalid tag {t:?}: {e}")))?;
    }
    let opts = berth_build::BuildOptions {
        context,
        dockerfile,
        dockerfile_path: path,
        tags: a.tags.clone(),
        build_args,
        target: a.target.clone(),
        no_cache: a.no_cache,
        pull: a.pull.clone(),
        quiet: a.quiet,
        labels,
        network: a.network.clone(),
        platform: a.platform.clone(),
        jobs: 0,
        puller: Some(puller(ctx)),
    };
    match berth_build::build(&ctx.root, &eo, &opts) {
        Ok(id) => {
            if let Some(f) = &a.iidfile {
                std::fs::write(f, format!("sha256:{id}"))
                    .map_err(|e| Failure(format!("write {}: {e}", f.display())))?;
            }
            println!("{id}");
            Ok(())
        }
        Err(berth_build::Error::Interrupted) => {
            drop(tmp);
            eprintln!("Error: build interrupted");
            std::process::exit(130);
        }
        Err(e) => Err(Failure(e.to_string())),
    }
}

/// `berth pull`'s code for FROM and `--from` images the store lacks (progress on stderr).
fn puller(ctx: &Ctx) -> berth_build::Puller {
    let ctx = Ctx {
        root: ctx.root.clone(),
        driver: ctx.driver.clone(),
    };
    berth_build::Puller(std::sync::Arc::new(move |image, platform, missing| {
        crate::registry::pull_for_run(&ctx, image, platform, missing).map_err(|f| f.0)
    }))
}
