//! Images that arrive blob by blob (a registry pull). Each blob streams into an ingest file in
//! the work dir while it is hashed and held to its descriptor's size; a layer starts unpacking
//! into its own directory from that file as it grows (overlay driver), so layers unpack in
//! parallel with their download. A blob that checked out is published in `blobs/sha256` at once
//! (containerd's content store does the same): a pull that fails or is killed later does not
//! fetch it again, and until an image refers to it it is garbage that `rmi`/`prune` collect.
//! Images are recorded only by [`Ingest::commit`], which installs everything in one step exactly
//! like a load; dropping an `Ingest` leaves no image, layer or partial blob behind.
//!
//! ```no_run
//! # fn main() -> berth_image::Result<()> {
//! # use std::io::Write;
//! # let store = berth_image::ImageStore::open(std::path::Path::new("/tmp/x"), &Default::default())?;
//! # let (digest, size, bytes, manifest, config) = (String::new(), 0u64, vec![], vec![], vec![]);
//! let ingest = store.ingest()?;
//! let mut w = ingest.blob_writer(&digest, size, true)?;   // a layer: unpacks as it arrives
//! w.write_all(&bytes).unwrap();                             // from any thread; resumable at w.written()
//! w.finish()?;                                              // digest and size checked
//! ingest.add_image(manifest, "application/vnd.oci.image.manifest.v1+json".into(), config,
//!                  vec![(digest, "application/vnd.oci.image.layer.v1.tar+gzip".into())], vec![])?;
//! let loaded = ingest.commit()?;
//! # let _ = loaded; Ok(()) }
//! ```

use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::digest::digest_hex;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, WorkDir};
use crate::install::{check_config, LoadedImage, Member, MemberData, NewImage, NewLayer};
use crate::reference::Reference;
use crate::speculate::Speculation;
use crate::store::{Driver, ImageStore, RootLock};

/// What the writers of one ingest share (they may run on other threads; the store may not).
struct Shared {
    members: Mutex<Vec<Member>>,
    work: PathBuf,
    /// `blobs/sha256`, where finished blobs are published.
    blobs: PathBuf,
    driver: Driver,
    next: AtomicUsize,
}

pub struct Ingest<'s> {
    store: &'s ImageStore,
    shared: Arc<Shared>,
    images: Mutex<Vec<NewImage>>,
    // Dropped after `shared`: unfinished unpacks stop before the work dir goes.
    work: WorkDir,
    _lock: RootLock,
}

impl ImageStore {
    /// Starts receiving images blob by blob (see the module docs).
    pub fn ingest(&self) -> Result<Ingest<'_>> {
        let lock = self.lock(false)?;
        let work = self.work_dir("pull")?;
        Ok(Ingest {
            store: self,
            shared: Arc::new(Shared {
                members: Mutex::new(Vec::new()),
                work: work.path().to_path_buf(),
                blobs: self.root.join("blobs/sha256"),
                driver: self.driver,
                next: AtomicUsize::new(0),
            }),
            images: Mutex::new(Vec::new()),
            work,
            _lock: lock,
        })
    }

    /// Whether `blobs/sha256/<hex>` holds this blob (it only gets there verified).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// The manifest digest of the image a normalised reference names, if any.
    pub fn manifest_of(&self, reference: &Reference) -> Result<Option<String>> {
        match self.resolve_id(&reference.full()) {
            Ok((id, _)) => Ok(Some(self.image(&id)?.manifest_digest)),
            Err(Error::NoSuchImage(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Ingest<'_> {
    /// A writer for one blob of `size` bytes that must hash to `digest`. `layer`: unpack it while
    /// it arrives (overlay only; otherwise it is unpacked at commit).
    pub fn blob_writer(&self, digest: &str, size: u64, layer: bool) -> Result<BlobWriter> {
        digest_hex(digest)?;
        let n = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let path = self.shared.work.join(format!("ingest-{n}"));
        let file = File::create(&path).ctx(|| format!("create {}", path.display()))?;
        let spec = if layer && self.shared.driver == Driver::Overlay {
            Some(
                Speculation::start(&path, self.shared.work.join(format!("unpack-{n}")))
                    .ctx(|| "start unpacking".to_string())?,
            )
        } else {
            None
        };
        Ok(BlobWriter {
            shared: self.shared.clone(),
            path,
            file,
            hasher: Sha256::new(),
            written: 0,
            digest: digest.to_string(),
            size,
            spec,
        })
    }

    /// Uses a blob the store already holds (a layer not fetched again).
    pub fn existing_blob(&self, digest: &str, size: u64) -> Result<()> {
        let path = self.store.blob_path(digest)?;
        let mut members = self.shared.members.lock().unwrap();
        if !members.iter().any(|m| m.digest == digest) {
            members.push(Member::new(
                digest.to_string(),
                size,
                MemberData::File(path),
            ));
        }
        Ok(())
    }

    /// An image whose layer blobs (`(digest, media type)`, bottom first) were all written or
    /// marked existing. `manifest` is kept byte for byte; its digest is the image's.
    pub fn add_image(
        &self,
        manifest: Vec<u8>,
        manifest_media_type: String,
        config: Vec<u8>,
        layers: Vec<(String, String)>,
        names: Vec<Reference>,
    ) -> Result<()> {
        let (diff_ids, _) = check_config(&config)?;
        if diff_ids.len() != layers.len() {
            return Err(Error::InvalidArchive(format!(
                "the manifest lists {} layers but the config {} diff ids",
                layers.len(),
                diff_ids.len()
            )));
        }
        let members = self.shared.members.lock().unwrap();
        let mut new_layers = Vec::new();
        for ((digest, media_type), diff_id) in layers.into_iter().zip(diff_ids) {
            let member = members
                .iter()
                .position(|m| m.digest == digest)
                .ok_or_else(|| {
                    Error::InvalidArchive(format!("layer blob {digest} was not received"))
                })?;
            new_layers.push(NewLayer {
                diff_id,
                member,
                media_type,
            });
        }
        self.images.lock().unwrap().push(NewImage {
            config,
            manifest,
            manifest_media_type,
            layers: new_layers,
            names,
        });
        Ok(())
    }

    /// Installs every added image at once (verify diff ids, finish unpacks, publish, record).
    pub fn commit(self) -> Result<Vec<LoadedImage>> {
        let images = std::mem::take(&mut *self.images.lock().unwrap());
        if images.is_empty() {
            return Err(Error::InvalidArchive("nothing to install".into()));
        }
        let members = std::mem::take(&mut *self.shared.members.lock().unwrap());
        let result = self.store.install(&self.work, &members, images);
        drop(members);
        result
    }
}

/// Receives one blob: hashed and size-checked while written; resumable at [`BlobWriter::written`].
pub struct BlobWriter {
    shared: Arc<Shared>,
    path: PathBuf,
    file: File,
    hasher: Sha256,
    written: u64,
    digest: String,
    size: u64,
    spec: Option<Speculation>,
}

impl BlobWriter {
    /// Bytes received so far (where a resumed download continues).
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Checks size and digest, publishes the blob in the store and hands it to the ingest. On
    /// error the blob is dropped.
    pub fn finish(mut self) -> Result<()> {
        if self.written != self.size {
            return Err(Error::InvalidArchive(format!(
                "blob {}: received {} bytes, the descriptor says {}",
                self.digest, self.written, self.size
            )));
        }
        let actual = format!(
            "sha256:{}",
            hex::encode(std::mem::take(&mut self.hasher).finalize())
        );
        if actual != self.digest {
            return Err(Error::DigestMismatch {
                digest: self.digest.clone(),
                actual,
            });
        }
        if let Some(s) = &self.spec {
            s.progress.finish();
        }
        let dest = self.shared.blobs.join(digest_hex(&self.digest)?);
        fsutil::publish(&self.file, &self.path, &dest)
            .ctx(|| format!("move blob into {}", dest.display()))?;
        let mut m = Member::new(self.digest.clone(), self.size, MemberData::File(dest));
        m.spec = Mutex::new(self.spec.take());
        let mut members = self.shared.members.lock().unwrap();
        if !members.iter().any(|x| x.digest == m.digest) {
            members.push(m);
        }
        Ok(())
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} is larger than its descriptor's {} bytes",
                    self.digest, self.size
                ),
            ));
        }
        self.file.write_all(buf)?;
        self.hasher.update(buf);
        self.written += buf.len() as u64;
        if let Some(s) = &self.spec {
            s.progress.wrote(buf.len() as u64);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // An unfinished blob: its unpack stops now; the files go with the work dir.
        if let Some(s) = &self.spec {
            s.progress.abort();
        }
    }
}
