//! berth's image store: content-addressed blobs, unpacked layers shared between images,
//! and metadata in SQLite, safe for many berth processes at once.
//!
//! Layout of a root (default /var/lib/berth, `BERTH_ROOT`):
//! ```text
//! berth.db              SQLite (WAL): images, image_layers, layers, tags, image_users, verified_blobs
//! config.json           optional {"storage-driver": "vfs"}
//! blobs/sha256/<hex>    manifests, configs, layers exactly as received
//! layers/<chain>/diff   one unpacked layer per chain id (overlay: its diff; vfs: the full tree)
//! layers/<chain>/tar-split  a committed layer's tar without file contents: its only copy of the tar
//! tmp/                  work dirs, each flocked by its owner; removed when their owner is gone
//! lock                  flock: shared for loads/commits, exclusive for deletions
//! ```
//!
//! The API the engine uses:
//! ```no_run
//! use berth_image::{ImageStore, StoreOptions, CommitOptions};
//! # fn main() -> berth_image::Result<()> {
//! let store = ImageStore::open(&ImageStore::default_root(), &StoreOptions::default())?;
//! let image = store.resolve("busybox")?;          // name, name:tag, name@digest, id or id prefix
//! let lowers = image.layer_dirs();                 // bottom → top, for overlay's lowerdir
//! let cmd = image.config.config().as_ref().and_then(|c| c.cmd().clone());
//! store.add_user(&image.id, "container-id")?;      // rmi refuses it now (unless forced)
//! let layer = std::fs::File::open("diff.tar").unwrap();
//! let new_id = store.commit(layer, &CommitOptions {
//!     parent: Some(image.id.clone()),
//!     changes: vec![r#"CMD ["/bin/sh"]"#.into()],
//!     reference: Some("me/app:1".into()),
//!     ..Default::default()
//! })?;
//! store.remove_user(&image.id, "container-id")?;
//! # let _ = (lowers, cmd, new_id); Ok(()) }
//! ```
//! Pulling: [`ImageStore::ingest`] receives blobs one by one, unpacking layers as they arrive.
//! Loading and saving: [`ImageStore::load`] (docker-archive or oci-archive, by content) and
//! [`ImageStore::save`]. Names: [`ImageStore::tag`], [`ImageStore::remove`] (docker's rmi rules),
//! [`ImageStore::prune`].
//!
//! Writes are atomic: blobs and layers are written below `tmp/`, flushed with one syncfs, renamed
//! into place (a racing process's identical layer wins, ours is dropped), then recorded in one
//! transaction. A process killed at any point leaves only unreferenced files, which the next
//! deletion or prune collects, and work dirs, which the next open removes.

mod commit;
mod compress;
mod db;
mod derive;
mod digest;
mod error;
mod fsutil;
mod ingest;
mod inspect;
mod install;
mod load;
mod reference;
mod save;
mod speculate;
mod store;
pub mod timefmt;
mod unpacked;

pub use commit::{apply_changes, CommitOptions};
pub use compress::{BlobInfo, LayerCompression};
pub use digest::{chain_ids, sha256_digest};
pub use error::{Error, ErrorKind, Result};
pub use ingest::{BlobWriter, Ingest};
pub use inspect::inspect_json;
pub use install::LoadedImage;
pub use reference::{familiar_repository, Reference};
pub use save::ArchiveFormat;
pub use store::{
    DiskUsage, Driver, Image, ImageLayer, ImageStore, PruneReport, RemoveEvent, StoreOptions,
    DEFAULT_ROOT,
};
pub use unpacked::LayerWriter;

/// The host's architecture in Go's names (image configs use them).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
