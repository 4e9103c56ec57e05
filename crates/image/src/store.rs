//! The store itself: directories, driver choice, locking, and the image table (resolve, list,
//! tag, remove, prune, users, disk usage).

use oci_spec::image::ImageConfiguration;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::digest::{digest_hex, is_hex64};
use crate::error::{DbContext, Error, IoContext, Result};
use crate::fsutil::{self, WorkDir};
use crate::reference::Reference;

pub const DEFAULT_ROOT: &str = "/var/lib/berth";

/// How layer directories are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Each layer dir holds only its own diff (overlay whiteouts); a container stacks them.
    Overlay,
    /// Each layer dir is a full copy of the image up to that layer.
    Vfs,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay => "overlay",
            Driver::Vfs => "vfs",
        }
    }
    pub fn parse(s: &str) -> Result<Driver> {
        match s {
            "overlay" | "overlay2" => Ok(Driver::Overlay),
            "vfs" => Ok(Driver::Vfs),
            other => Err(Error::UnknownDriver(other.to_string())),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// `--storage-driver`; must agree with the driver the store was created with.
    pub driver: Option<Driver>,
}

/// One layer of an image, bottom first.
#[derive(Debug, Clone)]
pub struct ImageLayer {
    pub chain_id: String,
    pub diff_id: String,
    /// The blob as received (possibly compressed), in `blobs/sha256/`.
    pub blob_digest: String,
    pub blob_media_type: String,
    pub blob_size: u64,
    /// Uncompressed size of the layer tar.
    pub size: u64,
    /// The unpacked layer: its diff (overlay) or the full tree up to it (vfs).
    pub dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Image {
    /// Hex sha256 of the config blob (docker's image id, without "sha256:").
    pub id: String,
    pub config: ImageConfiguration,
    /// The config blob as JSON, with fields oci-spec does not model.
    pub config_json: serde_json::Value,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    /// Tags, normalised ("docker.io/library/busybox:latest"), sorted.
    pub names: Vec<Reference>,
    /// Unix seconds from the config's `created` (0 when absent).
    pub created: i64,
    /// Sum of the uncompressed layer sizes.
    pub size: u64,
    pub last_tag_time: Option<String>,
    pub layers: Vec<ImageLayer>,
    /// Ids of containers (or other users) registered with `add_user`.
    pub users: Vec<String>,
}

impl Image {
    /// Layer directories bottom → top.
    pub fn layer_dirs(&self) -> Vec<PathBuf> {
        self.layers.iter().map(|l| l.dir.clone()).collect()
    }
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
    /// `repo@manifest-digest` for every repository the image is tagged in (podman's RepoDigests).
    pub fn repo_digests(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .names
            .iter()
            .map(|n| format!("{}@{}", n.repository(), self.manifest_digest))
            .collect();
        v.dedup();
        v
    }
}

/// What `remove`/`prune` did, in docker's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveEvent {
    /// A familiar name ("busybox:latest").
    Untagged(String),
    /// "sha256:<hex>" of an image or a layer (chain id).
    Deleted(String),
}

#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    pub events: Vec<RemoveEvent>,
    pub reclaimed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    pub images: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
}

/// A handle on one berth root. Cheap to open; many processes may hold one at once.
pub struct ImageStore {
    pub(crate) root: PathBuf,
    pub(crate) driver: Driver,
    pub(crate) conn: Connection,
}

/// Held for the duration of an operation: shared for loads and commits, exclusive for deletions.
pub(crate) struct RootLock(#[allow(dead_code)] File);

impl ImageStore {
    /// The root from `BERTH_ROOT`, else /var/lib/berth.
    pub fn default_root() -> PathBuf {
        std::env::var_os("BERTH_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
    }

    pub fn open(root: &Path, opts: &StoreOptions) -> Result<ImageStore> {
        for d in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
        }
        let root = fs::canonicalize(root).ctx(|| format!("resolve {}", root.display()))?;
        // Leftovers of processes that died mid-operation (their locks are gone).
        fsutil::clean_stale(&root.join("tmp"));
        let conn = crate::db::open(&root.join("berth.db"))?;
        let driver = choose_driver(&root, &conn, opts)?;
        Ok(ImageStore { root, driver, conn })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn work_dir(&self, what: &str) -> Result<WorkDir> {
        WorkDir::create(&self.tmp_dir(), what)
    }

    pub(crate) fn lock(&self, exclusive: bool) -> Result<RootLock> {
        let p = self.root.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(|| format!("open {}", p.display()))?;
        fsutil::flock(&f, exclusive, true).ctx(|| format!("lock {}", p.display()))?;
        Ok(RootLock(f))
    }

    /// `blobs/sha256/<hex>` of a digest.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        fs::read(&p).ctx(|| format!("read blob {}", p.display()))
    }

    /// `layers/<chain-hex>` (the layer's own dir; its tree is in `diff`).
    pub fn layer_path(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers").join(digest_hex(chain_id)?))
    }

    pub(crate) fn layer_exists(&self, chain_id: &str) -> Result<bool> {
        Ok(self.layer_path(chain_id)?.join("diff").is_dir())
    }

    /// Finds an image by name (`busybox`, `localhost/x:1`, `repo@sha256:...`), full id or unique id prefix.
    pub fn resolve(&self, name: &str) -> Result<Image> {
        let (id, _) = self.resolve_id(name)?;
        self.image(&id)
    }

    /// The image id and, when `name` was a tag, the normalised reference it matched.
    pub fn resolve_id(&self, name: &str) -> Result<(String, Option<Reference>)> {
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if is_hex64(hex) && self.image_exists(hex)? {
            return Ok((hex.to_string(), None));
        }
        if let Ok(r) = Reference::parse(name) {
            if let Some(d) = &r.digest {
                let id: Option<String> = self
                    .conn
                    .query_row(
                        "SELECT id FROM images WHERE manifest_digest = ?1 ORDER BY added LIMIT 1",
                        [d],
                        |r| r.get(0),
                    )
                    .optional()
                    .db("find digest")?;
                if let Some(id) = id {
                    return Ok((id, None));
                }
            } else {
                let mut candidates = vec![r.clone()];
                // Podman's short names: `busybox` also finds `localhost/busybox`.
                if r.domain == crate::reference::DEFAULT_DOMAIN && !name.starts_with("docker.io/") {
                    if let Some(rest) = r.path.strip_prefix("library/") {
                        candidates.push(Reference {
                            domain: "localhost".into(),
                            path: rest.into(),
                            tag: r.tag.clone(),
                            digest: None,
                        });
                    }
                }
                for c in candidates {
                    if let Some(id) = self.tagged(&c)? {
                        return Ok((id, Some(c)));
                    }
                }
            }
        }
        if !hex.is_empty()
            && hex.len() < 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM images WHERE substr(id, 1, ?1) = ?2 LIMIT 2")
                .db("prefix")?;
            let ids: Vec<String> = stmt
                .query_map(params![hex.len() as i64, hex], |r| r.get(0))
                .db("prefix")?
                .collect::<rusqlite::Result<_>>()
                .db("prefix")?;
            match ids.len() {
                1 => return Ok((ids[0].clone(), None)),
                0 => {}
                _ => return Err(Error::Ambiguous(name.to_string())),
            }
        }
        Err(Error::NoSuchImage(name.to_string()))
    }

    fn tagged(&self, r: &Reference) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT image_id FROM tags WHERE repo = ?1 AND tag = ?2",
                params![r.repository(), r.tag.as_deref().unwrap_or("latest")],
                |r| r.get(0),
            )
            .optional()
            .db("find tag")
    }

    fn image_exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM images WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .db("find image")?
            .is_some())
    }

    /// docker's Parent of an image made here by `commit` (hex id), if that image still exists.
    /// Kept as `parent:<id>` rows of the meta table (docker's image store keeps it beside
    /// the config too: it is not part of the content-addressed image).
    pub fn parent(&self, id: &str) -> Result<Option<String>> {
        let p: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [format!("parent:{id}")],
                |r| r.get(0),
            )
            .optional()
            .db("find parent")?;
        match p {
            Some(p) if self.image_exists(&p)? => Ok(Some(p)),
            _ => Ok(None),
        }
    }

    pub(crate) fn set_parent(&self, id: &str, parent: &str) -> Result<()> {
        self.with_tx(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [format!("parent:{id}"), parent.to_string()],
            )
            .db("set parent")?;
            Ok(())
        })
    }

    /// An image by its full id (hex).
    pub fn image(&self, id: &str) -> Result<Image> {
        let row = self
            .conn
            .query_row(
                "SELECT manifest_digest, manifest_media_type, created, size, last_tag_time FROM images WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()
            .db("read image")?;
        let Some((manifest_digest, manifest_media_type, created, size, last_tag_time)) = row else {
            return Err(Error::NoSuchImage(id.to_string()));
        };
        let raw = self.read_blob(&format!("sha256:{id}"))?;
        let config_json: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| Error::InvalidConfig {
                id: id.to_string(),
                reason: e.to_string(),
            })?;
        let config: ImageConfiguration =
            serde_json::from_slice(&raw).map_err(|e| Error::InvalidConfig {
                id: id.to_string(),
                reason: e.to_string(),
            })?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT il.chain_id, il.diff_id, il.blob_digest, il.blob_media_type, il.blob_size, l.size
                 FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id WHERE il.image_id = ?1 ORDER BY il.idx",
            )
            .db("read layers")?;
        let layers = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .db("read layers")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db("read layers")?
            .into_iter()
            .map(
                |(chain_id, diff_id, blob_digest, blob_media_type, blob_size, size)| {
                    let dir = self.layer_path(&chain_id)?.join("diff");
                    Ok(ImageLayer {
                        chain_id,
                        diff_id,
                        blob_digest,
                        blob_media_type,
                        blob_size: blob_size as u64,
                        size: size as u64,
                        dir,
                    })
                },
            )
            .collect::<Result<Vec<_>>>()?;
        Ok(Image {
            id: id.to_string(),
            config,
            config_json,
            manifest_digest,
            manifest_media_type,
            names: self.names_of(id)?,
            created,
            size: size as u64,
            last_tag_time,
            layers,
            users: self.users(id)?,
        })
    }

    fn names_of(&self, id: &str) -> Result<Vec<Reference>> {
        let mut stmt = self
            .conn
            .prepare("SELECT repo, tag FROM tags WHERE image_id = ?1 ORDER BY repo, tag")
            .db("read tags")?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .db("read tags")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db("read tags")?;
        Ok(rows
            .into_iter()
            .filter_map(|(repo, tag)| Reference::parse(&format!("{repo}:{tag}")).ok())
            .collect())
    }

    /// Every image, newest first (like `docker images`).
    pub fn list(&self) -> Result<Vec<Image>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM images ORDER BY created DESC, added DESC, id")
            .db("list")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .db("list")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db("list")?;
        ids.iter().map(|id| self.image(id)).collect()
    }

    /// `docker tag SOURCE TARGET`: the name moves to this image if another one had it.
    /// `tag`, recorded in the event log.
    pub fn tag(&self, source: &str, target: &str) -> Result<Reference> {
        let r = self.tag_image(source, target)?;
        if let Ok((id, _)) = self.resolve_id(&r.full()) {
            self.event("tag", &format!("sha256:{id}"), &r.familiar());
        }
        Ok(r)
    }

    /// Appends an image event to the root's event log (crates/events).
    pub(crate) fn event(&self, action: &str, id: &str, name: &str) {
        berth_events::record(&self.root, "image", action, id, &[("name", name)]);
    }

    /// Records what a remove or prune did: untag and delete, as docker reports them.
    fn remove_events(&self, events: &[RemoveEvent]) {
        for e in events {
            match e {
                RemoveEvent::Untagged(n) => self.event("untag", n, n),
                RemoveEvent::Deleted(d) => self.event("delete", d, ""),
            }
        }
    }

    fn tag_image(&self, source: &str, target: &str) -> Result<Reference> {
        let (id, _) = self.resolve_id(source)?;
        let r = Reference::parse(target)?;
        if r.digest.is_some() {
            return Err(Error::InvalidReference(format!(
                "{target} (a digest cannot be a tag)"
            )));
        }
        self.with_tx(|tx| set_tag(tx, &r, &id))?;
        Ok(r)
    }

    pub(crate) fn with_tx<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN IMMEDIATE").db("begin")?;
        match f(&self.conn) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT").db("commit")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Records that `user` (a container id) uses image `id`: `remove` refuses it unless forced.
    /// Fails with NotFound when the image is gone (a concurrent rmi won the race).
    pub fn add_user(&self, image_id: &str, user: &str) -> Result<()> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO image_users (image_id, user_id)
                 SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM images WHERE id = ?1)",
                params![image_id, user],
            )
            .db("add user")?;
        if n == 0 && !self.image_exists(image_id)? {
            return Err(Error::NoSuchImage(image_id.to_string()));
        }
        Ok(())
    }

    pub fn remove_user(&self, image_id: &str, user: &str) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM image_users WHERE image_id = ?1 AND user_id = ?2",
                params![image_id, user],
            )
            .db("remove user")?;
        Ok(())
    }

    pub fn users(&self, image_id: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT user_id FROM image_users WHERE image_id = ?1 ORDER BY user_id")
            .db("users")?;
        let v = stmt
            .query_map([image_id], |r| r.get(0))
            .db("users")?
            .collect::<rusqlite::Result<Vec<String>>>()
            .db("users")?;
        Ok(v)
    }

    /// `docker rmi NAME`: removing one of several names only untags; the last name (or the id)
    /// deletes the image and the layers and blobs no other image uses. An image in use is refused
    /// unless `force`, which then drops its names but keeps it (dangling) until its users are gone.
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<RemoveEvent>> {
        let events = self.remove_image(name, force)?;
        self.remove_events(&events);
        Ok(events)
    }

    fn remove_image(&self, name: &str, force: bool) -> Result<Vec<RemoveEvent>> {
        let _lock = self.lock(true)?;
        let (id, by_ref) = self.resolve_id(name)?;
        let image = self.image(&id)?;
        let short = &id[..12];
        let mut events = Vec::new();
        if let Some(r) = by_ref {
            if image.names.len() > 1 {
                self.with_tx(|tx| remove_tag(tx, &r))?;
                return Ok(vec![RemoveEvent::Untagged(r.familiar())]);
            }
            if let Some(u) = image.users.first() {
                if !force {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to remove repository reference {:?} (must force) - container {} is using its referenced image {short}",
                        name,
                        &u[..u.len().min(12)]
                    )));
                }
            }
        } else if image.names.len() > 1 && !force {
            return Err(Error::Conflict(format!(
                "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
            )));
        } else if let Some(u) = image.users.first() {
            if !force {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {short} (must be forced) - image is being used by container {}",
                    &u[..u.len().min(12)]
                )));
            }
        }
        for n in &image.names {
            events.push(RemoveEvent::Untagged(n.familiar()));
        }
        if !image.users.is_empty() {
            self.with_tx(|tx| {
                tx.execute("DELETE FROM tags WHERE image_id = ?1", [&id])
                    .db("untag")?;
                Ok(())
            })?;
            return Ok(events);
        }
        self.with_tx(|tx| delete_image(tx, &id))?;
        events.push(RemoveEvent::Deleted(format!("sha256:{id}")));
        let (layers, _) = self.collect_garbage()?;
        events.extend(layers.into_iter().map(RemoveEvent::Deleted));
        Ok(events)
    }

    /// `docker image prune`: dangling images (no names), or with `all` every image no container uses.
    pub fn prune(&self, all: bool) -> Result<PruneReport> {
        self.prune_matching(all, &|_| true)
    }

    /// [`ImageStore::prune`] limited to the images `select` accepts (`--filter`).
    pub fn prune_matching(
        &self,
        all: bool,
        select: &dyn Fn(&Image) -> bool,
    ) -> Result<PruneReport> {
        let report = self.prune_images(all, select)?;
        self.remove_events(&report.events);
        Ok(report)
    }

    fn prune_images(&self, all: bool, select: &dyn Fn(&Image) -> bool) -> Result<PruneReport> {
        let _lock = self.lock(true)?;
        let mut report = PruneReport::default();
        for image in self.list()? {
            if !image.users.is_empty() || (!all && !image.names.is_empty()) || !select(&image) {
                continue;
            }
            match self.with_tx(|tx| delete_image(tx, &image.id)) {
                // Taken by a container since we looked: not unused any more.
                Err(Error::Conflict(_)) => continue,
                other => other?,
            }
            report.events.extend(
                image
                    .names
                    .iter()
                    .map(|n| RemoveEvent::Untagged(n.familiar())),
            );
            report
                .events
                .push(RemoveEvent::Deleted(format!("sha256:{}", image.id)));
        }
        let (layers, bytes) = self.collect_garbage()?;
        report
            .events
            .extend(layers.into_iter().map(RemoveEvent::Deleted));
        report.reclaimed = bytes;
        Ok(report)
    }

    /// Removes layers and blobs no image refers to (also those left by interrupted loads).
    /// Caller holds the exclusive root lock. Returns deleted layer chain ids and their bytes.
    fn collect_garbage(&self) -> Result<(Vec<String>, u64)> {
        let work = self.work_dir("gc")?;
        let mut deleted = Vec::new();
        let mut bytes = 0u64;
        let unused: Vec<(String, i64)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT chain_id, size FROM layers WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)")
                .db("gc")?;
            let v = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .db("gc")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db("gc")?;
            v
        };
        self.with_tx(|tx| {
            for (c, _) in &unused {
                tx.execute("DELETE FROM layers WHERE chain_id = ?1", [c])
                    .db("gc layer")?;
            }
            Ok(())
        })?;
        self.conn
            .execute("DELETE FROM compressed_blobs WHERE diff_id NOT IN (SELECT diff_id FROM image_layers)", [])
            .db("gc compressed")?;
        // Deleted from the db first: a crash from here on leaves only unreferenced dirs, removed next time.
        for (c, size) in unused {
            deleted.push(c.clone());
            bytes += size as u64;
        }
        let known: HashSet<String> = {
            let mut stmt = self.conn.prepare("SELECT chain_id FROM layers").db("gc")?;
            let v = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .db("gc")?
                .collect::<rusqlite::Result<HashSet<_>>>()
                .db("gc")?;
            v.into_iter()
                .filter_map(|c| c.strip_prefix("sha256:").map(str::to_string))
                .collect()
        };
        let layers_dir = self.root.join("layers");
        for e in fs::read_dir(&layers_dir)
            .ctx(|| format!("read {}", layers_dir.display()))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                // Renamed out first so the layer vanishes at once, then removed at leisure.
                let dest = work.path().join(&name);
                fs::rename(e.path(), &dest).ctx(|| format!("move {}", e.path().display()))?;
                fsutil::remove_any(&dest).ctx(|| format!("remove {}", dest.display()))?;
            }
        }
        let referenced: HashSet<String> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT manifest_digest FROM images UNION SELECT 'sha256:' || id FROM images UNION SELECT blob_digest FROM image_layers
                     UNION SELECT blob_digest FROM compressed_blobs WHERE diff_id IN (SELECT diff_id FROM image_layers)",
                )
                .db("gc")?;
            let v = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .db("gc")?
                .collect::<rusqlite::Result<HashSet<_>>>()
                .db("gc")?;
            v
        };
        let blobs_dir = self.root.join("blobs/sha256");
        for e in fs::read_dir(&blobs_dir)
            .ctx(|| format!("read {}", blobs_dir.display()))?
            .flatten()
        {
            let d = format!("sha256:{}", e.file_name().to_string_lossy());
            if !referenced.contains(&d) {
                fsutil::remove_any(&e.path()).ctx(|| format!("remove {}", e.path().display()))?;
                self.conn
                    .execute("DELETE FROM verified_blobs WHERE blob_digest = ?1", [&d])
                    .db("gc")?;
            }
        }
        Ok((deleted, bytes))
    }

    /// `docker system df`'s Images row.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let q = |sql: &str| -> Result<i64> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
                .db("df")
                .map(|v| v.unwrap_or(0))
        };
        let images = q("SELECT COUNT(*) FROM images")? as usize;
        let active = q("SELECT COUNT(DISTINCT image_id) FROM image_users WHERE image_id IN (SELECT id FROM images)")? as usize;
        let size = q(
            "SELECT SUM(size) FROM layers WHERE chain_id IN (SELECT chain_id FROM image_layers)",
        )? as u64;
        let used = q("SELECT SUM(size) FROM layers WHERE chain_id IN
                      (SELECT chain_id FROM image_layers WHERE image_id IN (SELECT image_id FROM image_users))")? as u64;
        Ok(DiskUsage {
            images,
            active,
            size,
            reclaimable: size.saturating_sub(used),
        })
    }

    /// Sizes each layer of `image` contributes only to it (not shared with another image).
    pub fn unique_size(&self, image_id: &str) -> Result<u64> {
        let v: Option<i64> = self
            .conn
            .query_row(
                "SELECT SUM(l.size) FROM layers l WHERE l.chain_id IN (SELECT chain_id FROM image_layers WHERE image_id = ?1)
                 AND l.chain_id NOT IN (SELECT chain_id FROM image_layers WHERE image_id != ?1)",
                [image_id],
                |r| r.get(0),
            )
            .db("unique size")?;
        Ok(v.unwrap_or(0) as u64)
    }
}

pub(crate) fn set_tag(tx: &Connection, r: &Reference, id: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO tags (repo, tag, image_id) VALUES (?1, ?2, ?3) ON CONFLICT(repo, tag) DO UPDATE SET image_id = excluded.image_id",
        params![r.repository(), r.tag.as_deref().unwrap_or("latest"), id],
    )
    .db("tag")?;
    tx.execute(
        "UPDATE images SET last_tag_time = ?1 WHERE id = ?2",
        params![crate::timefmt::now_rfc3339(), id],
    )
    .db("tag time")?;
    Ok(())
}

fn remove_tag(tx: &Connection, r: &Reference) -> Result<()> {
    tx.execute(
        "DELETE FROM tags WHERE repo = ?1 AND tag = ?2",
        params![r.repository(), r.tag.as_deref().unwrap_or("latest")],
    )
    .db("untag")?;
    Ok(())
}

fn delete_image(tx: &Connection, id: &str) -> Result<()> {
    // Checked again inside the write transaction: a user may have been added since the caller looked.
    let users: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM image_users WHERE image_id = ?1",
            [id],
            |r| r.get(0),
        )
        .db("users")?;
    if users > 0 {
        return Err(Error::Conflict(format!(
            "conflict: unable to delete {} (must be forced) - image is being used by a container",
            &id[..12]
        )));
    }
    tx.execute("DELETE FROM tags WHERE image_id = ?1", [id])
        .db("delete tags")?;
    tx.execute("DELETE FROM image_layers WHERE image_id = ?1", [id])
        .db("delete image layers")?;
    tx.execute("DELETE FROM images WHERE id = ?1", [id])
        .db("delete image")?;
    tx.execute("DELETE FROM meta WHERE key = ?1", [format!("parent:{id}")])
        .db("delete parent")?;
    Ok(())
}

/// The store keeps the driver it was created with; a flag or config.json saying otherwise is an error.
fn choose_driver(root: &Path, conn: &Connection, opts: &StoreOptions) -> Result<Driver> {
    let cfg_path = root.join("config.json");
    let from_config = match fs::read(&cfg_path) {
        Ok(b) => {
            let v: serde_json::Value = serde_json::from_slice(&b).map_err(|e| Error::Io {
                context: format!("parse {}", cfg_path.display()),
                source: std::io::Error::other(e),
            })?;
            v.get("storage-driver")
                .and_then(|d| d.as_str())
                .map(Driver::parse)
                .transpose()?
        }
        Err(_) => None,
    };
    let existing: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'storage-driver'",
            [],
            |r| r.get(0),
        )
        .optional()
        .db("read driver")?;
    let wanted = opts.driver.or(from_config);
    match existing {
        Some(e) => {
            let e = Driver::parse(&e)?;
            match wanted {
                Some(w) if w != e => Err(Error::DriverConflict {
                    requested: w.name().into(),
                    existing: e.name().into(),
                    root: root.to_path_buf(),
                }),
                _ => Ok(e),
            }
        }
        None => {
            let d = wanted.unwrap_or(Driver::Overlay);
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('storage-driver', ?1)",
                [d.name()],
            )
            .db("set driver")?;
            // Another process may have created the store first with another driver.
            let stored: String = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = 'storage-driver'",
                    [],
                    |r| r.get(0),
                )
                .db("read driver")?;
            let stored = Driver::parse(&stored)?;
            if stored != d && wanted.is_some() {
                return Err(Error::DriverConflict {
                    requested: d.name().into(),
                    existing: stored.name().into(),
                    root: root.to_path_buf(),
                });
            }
            Ok(stored)
        }
    }
}
