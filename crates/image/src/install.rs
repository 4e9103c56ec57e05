//! Installing images into the store, shared by load and commit: verify, unpack the layers the
//! store lacks (in parallel, into the caller's work dir), move blobs and layer dirs into place
//! after one syncfs, then record everything in one transaction.

use rusqlite::params;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use berth_archive::{ApplyOptions, WhiteoutMode};

use crate::digest::{decompressed, digest_hex, sha256_digest, HashingReader};
use crate::error::{DbContext, Error, IoContext, Result};
use crate::fsutil::{self, WorkDir};
use crate::reference::Reference;
use crate::store::{Driver, ImageStore};

/// A blob received from an archive or a commit, not yet in the store.
pub(crate) struct Member {
    pub digest: String,
    pub size: u64,
    pub data: MemberData,
    /// An unpack started while the archive was read (see speculate.rs).
    pub spec: Mutex<Option<crate::speculate::Speculation>>,
}

pub(crate) enum MemberData {
    Mem(Vec<u8>),
    File(PathBuf),
    /// No blob file: a layer dir holding `diff` and the tar-split its tar is rebuilt from.
    Split(PathBuf),
}

impl Member {
    pub fn new(digest: String, size: u64, data: MemberData) -> Member {
        Member {
            digest,
            size,
            data,
            spec: Mutex::new(None),
        }
    }

    pub fn reader(&self) -> Result<Box<dyn io::BufRead + Send + '_>> {
        Ok(match &self.data {
            MemberData::Mem(v) => Box::new(Cursor::new(v.as_slice())),
            MemberData::File(p) => Box::new(BufReader::with_capacity(
                1 << 20,
                File::open(p).ctx(|| format!("open {}", p.display()))?,
            )),
            MemberData::Split(dir) => crate::unpacked::rebuilt_tar(dir)?,
        })
    }

    pub fn bytes(&self, limit: u64) -> Result<Vec<u8>> {
        if self.size > limit {
            return Err(Error::InvalidArchive(format!(
                "{} is too large ({} bytes) for a manifest or config",
                self.digest, self.size
            )));
        }
        match &self.data {
            MemberData::Mem(v) => Ok(v.clone()),
            MemberData::File(p) => fs::read(p).ctx(|| format!("read {}", p.display())),
            MemberData::Split(_) => {
                let mut v = Vec::new();
                self.reader()?
                    .read_to_end(&mut v)
                    .ctx(|| format!("read {}", self.digest))?;
                Ok(v)
            }
        }
    }

    pub fn head(&self) -> Result<Vec<u8>> {
        let mut r = self.reader()?;
        let mut buf = vec![0u8; 8];
        let mut n = 0;
        while n < buf.len() {
            let k = r
                .read(&mut buf[n..])
                .ctx(|| format!("read {}", self.digest))?;
            if k == 0 {
                break;
            }
            n += k;
        }
        buf.truncate(n);
        Ok(buf)
    }
}

pub(crate) struct NewLayer {
    pub diff_id: String,
    /// Index into the members list.
    pub member: usize,
    pub media_type: String,
}

pub(crate) struct NewImage {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub manifest_media_type: String,
    pub layers: Vec<NewLayer>,
    pub names: Vec<Reference>,
}

#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// Hex id.
    pub id: String,
    pub names: Vec<Reference>,
}

/// Up to how many files and dirs a committed layer is flushed file by file rather than by syncfs.
const SMALL_TREE: usize = 256;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

pub(crate) fn layer_media_type(head: &[u8]) -> &'static str {
    match berth_archive::Compression::detect(head) {
        berth_archive::Compression::None => "application/vnd.oci.image.layer.v1.tar",
        berth_archive::Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        berth_archive::Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// An OCI manifest for layers we hold (docker-archive loads and commits have none of their own).
pub(crate) fn make_manifest(config: &[u8], layers: &[(String, u64, String)]) -> Vec<u8> {
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": config.len()},
        "layers": layers.iter().map(|(d, s, m)| serde_json::json!({"mediaType": m, "digest": d, "size": s})).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&v).expect("json")
}

/// Checks a config blob and returns its diff ids and creation time.
pub(crate) fn check_config(config: &[u8]) -> Result<(Vec<String>, i64)> {
    let id = sha256_digest(config);
    let c: oci_spec::image::ImageConfiguration =
        serde_json::from_slice(config).map_err(|e| Error::InvalidConfig {
            id: id.clone(),
            reason: e.to_string(),
        })?;
    let diff_ids = c.rootfs().diff_ids().clone();
    for d in &diff_ids {
        digest_hex(d).map_err(|_| Error::InvalidConfig {
            id: id.clone(),
            reason: format!("bad diff id {d:?}"),
        })?;
    }
    let created = c
        .created()
        .as_deref()
        .and_then(crate::timefmt::parse_rfc3339)
        .unwrap_or(0);
    Ok((diff_ids, created))
}

struct Job {
    chain_id: String,
    parent: Option<String>,
    diff_id: String,
    member: usize,
}

impl ImageStore {
    pub(crate) fn install(
        &self,
        work: &WorkDir,
        members: &[Member],
        images: Vec<NewImage>,
    ) -> Result<Vec<LoadedImage>> {
        // Plan: which chains are new, which existing ones need their blob checked against the diff id.
        let mut jobs: Vec<Job> = Vec::new();
        let mut planned: HashSet<String> = HashSet::new();
        let mut verified: Vec<(String, String)> = Vec::new();
        // Existing layers a kept-unpacked member also describes: they get its tar-split if
        // they have no way yet to give that tar back.
        let mut adopt_split: Vec<(usize, String)> = Vec::new();
        let mut chains_of: Vec<Vec<String>> = Vec::new();
        for img in &images {
            let diff_ids: Vec<String> = img.layers.iter().map(|l| l.diff_id.clone()).collect();
            let chains = crate::digest::chain_ids(&diff_ids);
            for (i, l) in img.layers.iter().enumerate() {
                let c = &chains[i];
                let m = &members[l.member];
                if planned.contains(c) {
                    continue;
                }
                if self.layer_exists(c)? {
                    if matches!(m.data, MemberData::Split(_)) {
                        adopt_split.push((l.member, c.clone()));
                    }
                    if !self.blob_matches(m, &l.diff_id)? {
                        return Err(Error::Layer {
                            diff_id: l.diff_id.clone(),
                            source: berth_archive::Error::DigestMismatch {
                                expected: l.diff_id.clone(),
                                actual: format!("a different layer in blob {}", m.digest),
                            },
                        });
                    }
                } else {
                    planned.insert(c.clone());
                    jobs.push(Job {
                        chain_id: c.clone(),
                        parent: i.checked_sub(1).map(|p| chains[p].clone()),
                        diff_id: l.diff_id.clone(),
                        member: l.member,
                    });
                }
                verified.push((m.digest.clone(), l.diff_id.clone()));
            }
            chains_of.push(chains);
        }

        let sizes = self.unpack(work.path(), members, &jobs)?;

        // Blobs: configs, manifests and layers, each written once.
        let mut n = 0usize;
        let mut big_blob = false;
        let mut put_bytes = |bytes: &[u8]| -> Result<()> {
            let dest = self.blob_path(&sha256_digest(bytes))?;
            if dest.exists() {
                return Ok(());
            }
            n += 1;
            let tmp = work.path().join(format!("blob-{n}"));
            fs::write(&tmp, bytes).ctx(|| format!("write {}", tmp.display()))?;
            place(&tmp, &dest)
        };
        for img in &images {
            put_bytes(&img.config)?;
            put_bytes(&img.manifest)?;
        }
        let mut placed: HashSet<usize> = HashSet::new();
        for img in &images {
            for l in &img.layers {
                if !placed.insert(l.member) {
                    continue;
                }
                let m = &members[l.member];
                let dest = self.blob_path(&m.digest)?;
                if dest.exists() {
                    continue;
                }
                match &m.data {
                    // Kept unpacked: the layer dir (moved below) is its only copy.
                    MemberData::Split(_) => {}
                    MemberData::File(p) => {
                        big_blob = true;
                        place(p, &dest)?
                    }
                    MemberData::Mem(v) => {
                        big_blob = true;
                        put_bytes(v)?
                    }
                }
            }
        }

        // One flush for everything written above, then the renames that publish it. An image
        // that only adds a config and a manifest (a build's metadata step) flushes just those:
        // syncfs would also wait for every other writer on a shared filesystem.
        // A commit's layer, unpacked as it was written, with few files: those files and dirs
        // are flushed alone (the bytes of a big file are written once and flushed once).
        let committed_only = !big_blob
            && adopt_split.is_empty()
            && jobs
                .iter()
                .all(|j| matches!(members[j.member].data, MemberData::Split(_)));
        let small_committed = || -> Result<bool> {
            for j in &jobs {
                let dir = work.path().join(digest_hex(&j.chain_id)?);
                if !fsutil::fsync_small_tree(&dir, SMALL_TREE)
                    .ctx(|| format!("fsync {}", dir.display()))?
                {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        if jobs.is_empty() && !big_blob && adopt_split.is_empty() {
            self.fsync_blobs(&images)?;
        } else if committed_only && small_committed()? {
            self.fsync_blobs(&images)?;
        } else {
            let root = File::open(&self.root).ctx(|| format!("open {}", self.root.display()))?;
            fsutil::syncfs(&root).ctx(|| format!("syncfs {}", self.root.display()))?;
        }
        for (member, chain) in &adopt_split {
            let MemberData::Split(dir) = &members[*member].data else {
                continue;
            };
            let (src, dest) = (
                dir.join(crate::unpacked::TAR_SPLIT),
                self.layer_path(chain)?.join(crate::unpacked::TAR_SPLIT),
            );
            if src.is_file() && !self.blob_path(&members[*member].digest)?.is_file() {
                place(&src, &dest)?;
            }
        }
        for j in &jobs {
            let src = work.path().join(digest_hex(&j.chain_id)?);
            let dest = self.layer_path(&j.chain_id)?;
            match fsutil::rename_noreplace(&src, &dest) {
                Ok(()) => {}
                // Another load of the same layer won the race: keep theirs, ours goes with the work dir.
                Err(e) if fsutil::already_exists(&e) => {}
                Err(e) => return Err(e).ctx(|| format!("move layer into {}", dest.display())),
            }
        }

        let now = crate::timefmt::now_unix();
        self.with_tx(|tx| {
            for j in &jobs {
                tx.execute(
                    "INSERT OR IGNORE INTO layers (chain_id, diff_id, parent, size) VALUES (?1, ?2, ?3, ?4)",
                    params![j.chain_id, j.diff_id, j.parent, sizes[&j.chain_id] as i64],
                )
                .db("insert layer")?;
            }
            for (b, d) in &verified {
                tx.execute("INSERT OR REPLACE INTO verified_blobs (blob_digest, diff_id) VALUES (?1, ?2)", params![b, d]).db("insert verified")?;
            }
            let mut out = Vec::new();
            for (img, chains) in images.iter().zip(&chains_of) {
                let id = digest_hex(&sha256_digest(&img.config))?.to_string();
                let (_, created) = check_config(&img.config)?;
                // A layer that existed before this load still needs its row (a crash may have lost it).
                for (i, l) in img.layers.iter().enumerate() {
                    let exists: bool = tx.query_row("SELECT 1 FROM layers WHERE chain_id = ?1", [&chains[i]], |_| Ok(())).is_ok();
                    if !exists {
                        let size = self.measure_layer(&members[l.member])?;
                        tx.execute(
                            "INSERT OR IGNORE INTO layers (chain_id, diff_id, parent, size) VALUES (?1, ?2, ?3, ?4)",
                            params![chains[i], l.diff_id, i.checked_sub(1).map(|p| chains[p].clone()), size as i64],
                        )
                        .db("insert layer")?;
                    }
                }
                let size: i64 = chains
                    .iter()
                    .map(|c| tx.query_row("SELECT size FROM layers WHERE chain_id = ?1", [c], |r| r.get::<_, i64>(0)))
                    .sum::<rusqlite::Result<i64>>()
                    .db("layer sizes")?;
                // An image already present keeps its manifest and blobs; only its names change.
                let inserted = tx
                    .execute(
                        "INSERT INTO images (id, manifest_digest, manifest_media_type, created, size, added) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT(id) DO NOTHING",
                        params![id, sha256_digest(&img.manifest), img.manifest_media_type, created, size, now],
                    )
                    .db("insert image")?
                    == 1;
                for (i, l) in img.layers.iter().enumerate().filter(|_| inserted) {
                    let m = &members[l.member];
                    tx.execute(
                        "INSERT INTO image_layers (image_id, idx, chain_id, diff_id, blob_digest, blob_media_type, blob_size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![id, i as i64, chains[i], l.diff_id, m.digest, l.media_type, m.size as i64],
                    )
                    .db("image layers")?;
                }
                for r in &img.names {
                    crate::store::set_tag(tx, r, &id)?;
                }
                out.push(LoadedImage { id, names: img.names.clone() });
            }
            Ok(out)
        })
    }

    /// fsync of the images' config and manifest blobs and of the blob directory.
    fn fsync_blobs(&self, images: &[NewImage]) -> Result<()> {
        for img in images {
            for bytes in [&img.config, &img.manifest] {
                let p = self.blob_path(&sha256_digest(bytes))?;
                File::open(&p)
                    .and_then(|f| f.sync_all())
                    .ctx(|| format!("fsync {}", p.display()))?;
            }
        }
        let dir = self.root.join("blobs/sha256");
        File::open(&dir)
            .and_then(|f| f.sync_all())
            .ctx(|| format!("fsync {}", dir.display()))
    }

    /// Whether a layer blob's uncompressed content is `diff_id` (remembered once checked).
    fn blob_matches(&self, m: &Member, diff_id: &str) -> Result<bool> {
        if m.digest == diff_id {
            return Ok(true);
        }
        let known: Option<String> = self
            .conn
            .query_row(
                "SELECT diff_id FROM verified_blobs WHERE blob_digest = ?1",
                [&m.digest],
                |r| r.get(0),
            )
            .ok();
        if let Some(k) = known {
            return Ok(k == diff_id);
        }
        let mut h = HashingReader::new(
            decompressed(m.reader()?).ctx(|| format!("decompress {}", m.digest))?,
        );
        io::copy(&mut h, &mut io::sink()).ctx(|| format!("decompress {}", m.digest))?;
        Ok(h.finish().0 == diff_id)
    }

    fn measure_layer(&self, m: &Member) -> Result<u64> {
        let mut r = decompressed(m.reader()?).ctx(|| format!("decompress {}", m.digest))?;
        io::copy(&mut r, &mut io::sink()).ctx(|| format!("decompress {}", m.digest))
    }

    /// Unpacks each job into `<work>/<chain-hex>/diff`; returns uncompressed sizes by chain id.
    fn unpack(
        &self,
        work: &Path,
        members: &[Member],
        jobs: &[Job],
    ) -> Result<HashMap<String, u64>> {
        let sizes = Mutex::new(HashMap::new());
        // Threads get plain data, not the (single-threaded) database handle.
        let (driver, layers_root) = (self.driver, self.root.join("layers"));
        let apply = |j: &Job| -> Result<()> {
            let dir = work.join(digest_hex(&j.chain_id)?);
            let diff = dir.join("diff");
            let m = &members[j.member];
            let spec = m.spec.lock().unwrap().take();
            if let Some(spec) = spec {
                let spec_dir = spec.dir.clone();
                match spec.finish() {
                    Some(applied) if applied.diff_id == j.diff_id => {
                        fs::rename(&spec_dir, &dir)
                            .ctx(|| format!("move {}", spec_dir.display()))?;
                        sizes
                            .lock()
                            .unwrap()
                            .insert(j.chain_id.clone(), applied.size);
                        return Ok(());
                    }
                    Some(applied) => {
                        return Err(Error::Layer {
                            diff_id: j.diff_id.clone(),
                            source: berth_archive::Error::DigestMismatch {
                                expected: j.diff_id.clone(),
                                actual: applied.diff_id,
                            },
                        })
                    }
                    // Failed or cut short: unpack again below, which reports any real error.
                    None => fsutil::remove_any(&spec_dir)
                        .ctx(|| format!("remove {}", spec_dir.display()))?,
                }
            }
            fs::create_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
            let mode = match driver {
                Driver::Overlay => {
                    fs::create_dir(&diff).ctx(|| format!("create {}", diff.display()))?;
                    WhiteoutMode::Overlay
                }
                Driver::Vfs => {
                    match &j.parent {
                        Some(p) => {
                            let ours = work.join(digest_hex(p)?).join("diff");
                            let src = if ours.is_dir() {
                                ours
                            } else {
                                layers_root.join(digest_hex(p)?).join("diff")
                            };
                            fsutil::copy_tree(&src, &diff)
                                .ctx(|| format!("copy {} to {}", src.display(), diff.display()))?;
                        }
                        None => {
                            fs::create_dir(&diff).ctx(|| format!("create {}", diff.display()))?
                        }
                    }
                    WhiteoutMode::Direct
                }
            };
            let opts = ApplyOptions {
                whiteouts: mode,
                expected_diff_id: Some(j.diff_id.clone()),
            };
            let applied =
                berth_archive::apply_layer(m.reader()?, &diff, &opts).map_err(|source| {
                    Error::Layer {
                        diff_id: j.diff_id.clone(),
                        source,
                    }
                })?;
            sizes
                .lock()
                .unwrap()
                .insert(j.chain_id.clone(), applied.size);
            Ok(())
        };
        match self.driver {
            // vfs copies each layer's parent, so a chain unpacks in order.
            Driver::Vfs => jobs.iter().try_for_each(apply)?,
            Driver::Overlay => {
                let threads = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
                    .min(jobs.len().max(1));
                let next = AtomicUsize::new(0);
                let failed: Mutex<Option<Error>> = Mutex::new(None);
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= jobs.len() || failed.lock().unwrap().is_some() {
                                return;
                            }
                            if let Err(e) = apply(&jobs[i]) {
                                failed.lock().unwrap().get_or_insert(e);
                            }
                        });
                    }
                });
                if let Some(e) = failed.into_inner().unwrap() {
                    return Err(e);
                }
            }
        }
        Ok(sizes.into_inner().unwrap())
    }
}

/// Moves a finished blob into place; an identical blob already there wins.
fn place(tmp: &Path, dest: &Path) -> Result<()> {
    match fsutil::rename_noreplace(tmp, dest) {
        Ok(()) => Ok(()),
        Err(e) if fsutil::already_exists(&e) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("move blob into {}", dest.display())),
    }
}
