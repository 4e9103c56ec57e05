//! berth's registry client: the OCI distribution protocol, shaped like containerd's
//! remotes/docker.
//!
//! - [`Client`] talks to one registry: scheme (HTTPS, or plain HTTP for the insecure list), TLS
//!   roots (system store plus `certs.d/<host>/`), redirects, and the [`auth`] authorizer that
//!   answers `WWW-Authenticate` challenges (basic, bearer tokens cached per scope).
//! - [`pull`] tries each reference a name stands for (the unqualified-search registries for a
//!   short name); it resolves one to a manifest (index → platform), then fetches the config and
//!   the layers concurrently, each verified by digest and size as it streams into the image
//!   store's ingest, where it unpacks while it arrives; an interrupted blob resumes with `Range`.
//! - [`push`] sends the stored blobs byte for byte: an existing blob is skipped, one that another
//!   repository on the registry holds is mounted, the rest are uploaded; then the manifest.
//! - [`listing`](search) lists tags and catalogs, and searches (`/v1/search`, else the catalog).
//!
//! The async runtime reqwest needs stays inside this crate (its blocking client); callers are
//! plain threads.

pub mod auth;
mod client;
pub mod config;
pub mod credentials;
mod error;
mod listing;
mod progress;
mod pull;
mod push;

pub use client::Client;
pub use config::{Config, Platform};
pub use error::{Error, Result};
pub use listing::{catalog, list_tags, search, SearchResult};
pub use progress::{LayerStatus, NoProgress, Progress, PullReport};
pub use pull::{pull, PullOptions, Pulled};
pub use push::{push, PushOptions, Pushed};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// Manifests and indexes larger than this are refused (containerd and docker use 4 MiB).
pub const MANIFEST_LIMIT: u64 = 4 << 20;
/// Image configs larger than this are refused.
pub const CONFIG_LIMIT: u64 = 16 << 20;
