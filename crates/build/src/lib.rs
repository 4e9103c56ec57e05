//! `berth build`: Dockerfiles and Containerfiles to images, each step one image and each step
//! that changes files one layer, as Docker's builder makes them.
//!
//! - `parser`: directives, continuations, heredocs, instructions checked before anything runs.
//! - `lex`: variable expansion per step, with Docker's quoting rules.
//! - `plan`: the stages the target needs, and which can build at the same time.
//! - `exec`: the step executor. RUN runs a real container through the engine (create, start,
//!   attach, then the engine's layer of its upper dir); COPY/ADD write their layer tar
//!   directly from the context (no container); metadata steps make a config-only image.
//! - `cache`: `<root>/build/cache/<key>` names the image a step made. A key covers the parent
//!   image, the instruction with its variables expanded, the build args in scope and the
//!   digest of what a COPY/ADD copies, so a repeat build makes no layer and runs no container.
//!
//! Intermediate images are untagged images in the store (like docker's classic builder);
//! `berth image prune` removes them and the cache then misses.

#[cfg(feature = "exec")]
pub mod cache;
#[cfg(feature = "exec")]
pub mod context;
#[cfg(feature = "exec")]
pub mod copy;
#[cfg(feature = "exec")]
mod exec;
pub mod ignore;
#[cfg(feature = "exec")]
pub mod layers;
pub mod lex;
pub mod mounts;
pub mod parser;
pub mod plan;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[cfg(feature = "exec")]
pub use exec::build;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Parse(#[from] parser::ParseError),
    #[cfg(feature = "exec")]
    #[error("{0}")]
    Engine(#[from] berth_engine::Error),
    #[cfg(feature = "exec")]
    #[error("{0}")]
    Image(#[from] berth_image::Error),
    #[error("{0}")]
    Msg(String),
    /// A RUN step's command failed.
    #[error("{0}")]
    StepFailed(String),
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn msg(s: impl Into<String>) -> Error {
        Error::Msg(s.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory (for `-`, an extracted tar or an empty dir).
    pub context: PathBuf,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// Where the Dockerfile was found (for the `<name>.dockerignore` lookup); None from stdin.
    pub dockerfile_path: Option<PathBuf>,
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// "missing" (default), "always", "never".
    pub pull: String,
    pub quiet: bool,
    pub labels: BTreeMap<String, String>,
    /// "none", "host" (and "bridge"/"default", refused until bridge networking exists).
    pub network: String,
    pub platform: Option<String>,
    /// Up to how many stages build at once (0: one per independent stage).
    pub jobs: usize,
    /// Pulls a FROM image (missing, or every one with `--pull=always`); none: FROM needs the
    /// image in the store.
    pub puller: Option<Puller>,
}

/// Pulls an image into the store: (name, platform, whether it was found missing) → an error
/// text. The CLI gives `berth pull`'s code (the registry crate) here.
#[derive(Clone)]
pub struct Puller(
    pub Arc<dyn Fn(&str, Option<&str>, bool) -> std::result::Result<(), String> + Send + Sync>,
);

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Puller")
    }
}
