//! Named and anonymous volumes, docker's "local" driver: `<root>/volumes/<name>/_data`, with
//! their metadata and users in `<root>/volumes.db` (WAL; every read-check-write in one
//! IMMEDIATE transaction, so concurrent berth processes cannot remove a volume a container is
//! just starting to use).
//!
//! Anonymous volumes (a `-v /dst` without a name, an image's VOLUME) get a 64-hex name and
//! docker's `com.docker.volume.anonymous` label; `rm -v` and `--rm` remove them with their
//! container, `volume prune` removes only them unless `-a`. A volume new to a container is
//! filled from the image's content at its mount point when it is empty (docker's copy-up).

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Container, HostConfig, Mount};
use crate::snapshot::Snapshot;
use crate::{timefmt, Engine};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// docker ≥ 23 marks anonymous volumes with this label.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// `docker volume inspect`'s shape.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub created_at: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub mountpoint: String,
    pub name: String,
    pub options: BTreeMap<String, String>,
    pub scope: String,
    /// Containers using it (not part of docker's inspect output).
    #[serde(skip)]
    pub users: Vec<String>,
}

impl Volume {
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

#[derive(Debug, Clone, Default)]
pub struct VolumeCreate {
    /// None: an anonymous volume with a random 64-hex name.
    pub name: Option<String>,
    /// Only "local".
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// `volume ls --filter`.
#[derive(Debug, Clone, Default)]
pub struct VolumeFilter {
    pub dangling: Option<bool>,
    /// Substrings of the name (any matches).
    pub names: Vec<String>,
    /// "k" or "k=v" (all must match).
    pub labels: Vec<String>,
    /// `label!=`: "k" or "k=v" (none may match).
    pub not_labels: Vec<String>,
    pub drivers: Vec<String>,
}

impl VolumeFilter {
    pub fn matches(&self, v: &Volume) -> bool {
        if let Some(d) = self.dangling {
            if v.users.is_empty() != d {
                return false;
            }
        }
        if !self.names.is_empty() && !self.names.iter().any(|n| v.name.contains(n.as_str())) {
            return false;
        }
        if !self.drivers.is_empty() && !self.drivers.iter().any(|d| *d == v.driver) {
            return false;
        }
        let has = |l: &String| match l.split_once('=') {
            Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
            None => v.labels.contains_key(l.as_str()),
        };
        self.labels.iter().all(has) && !self.not_labels.iter().any(has)
    }
}

pub struct VolumeStore {
    conn: Connection,
    dir: PathBuf,
    containers: PathBuf,
}

fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn is_anonymous_name(n: &str) -> bool {
    n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())
}

impl VolumeStore {
    /// Opens `<root>/volumes.db` (created on first use) and `<root>/volumes/`.
    pub fn open(root: &Path) -> Result<VolumeStore> {
        let dir = root.join("volumes");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let conn = crate::db::connect(
            &root.join("volumes.db"),
            "CREATE TABLE IF NOT EXISTS volumes (
                 name TEXT PRIMARY KEY,
                 driver TEXT NOT NULL,
                 created TEXT NOT NULL,
                 labels TEXT NOT NULL,
                 options TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS volume_users (
                 name TEXT NOT NULL,
                 container TEXT NOT NULL,
                 PRIMARY KEY (name, container)
             );",
        )?;
        Ok(VolumeStore {
            conn,
            dir,
            containers: root.join("containers"),
        })
    }

    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// `volume create`: an existing volume of that name is returned as it is (docker's habit).
    pub fn create(&mut self, req: &VolumeCreate) -> Result<Volume> {
        let driver = req.driver.clone().unwrap_or_else(|| "local".into());
        if driver != "local" {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("plugin \"{driver}\" not found"),
            ));
        }
        validate_options(&req.options)?;
        let mut labels = req.labels.clone();
        let name = match &req.name {
            Some(n) => {
                if !valid_name(n) {
                    return Err(Error::invalid(format!(
                        "create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
                    )));
                }
                n.clone()
            }
            None => {
                labels.insert(ANONYMOUS_LABEL.into(), String::new());
                crate::sys::random_id()
            }
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_volume(&tx, &name, &driver, &labels, &req.options)?;
        mkdir(&self.dir.join(&name).join("_data"))?;
        tx.commit()?;
        self.event("create", &name, &driver);
        self.inspect(&name)
    }

    pub fn inspect(&self, name: &str) -> Result<Volume> {
        self.get(name)?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("get {name}: no such volume")))
    }

    fn get(&self, name: &str) -> Result<Option<Volume>> {
        let row = self
            .conn
            .query_row(
                "SELECT name, driver, created, labels, options FROM volumes WHERE name = ?1",
                [name],
                row_tuple,
            )
            .optional()?;
        row.map(|r| self.volume(r)).transpose()
    }

    fn volume(&self, (name, driver, created, labels, options): Row) -> Result<Volume> {
        let users = self.users(&name)?;
        Ok(Volume {
            created_at: created,
            driver,
            labels: serde_json::from_str(&labels).unwrap_or_default(),
            mountpoint: self.data_dir(&name).to_string_lossy().into_owned(),
            name,
            options: serde_json::from_str(&options).unwrap_or_default(),
            scope: "local".into(),
            users,
        })
    }

    /// Containers using `name`; rows of containers that no longer exist are ignored.
    fn users(&self, name: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT container FROM volume_users WHERE name = ?1 ORDER BY container")?;
        let v: Vec<String> = stmt
            .query_map([name], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v.into_iter()
            .filter(|c| self.containers.join(c).exists())
            .collect())
    }

    /// Every volume, sorted by name.
    pub fn list(&self, filter: &VolumeFilter) -> Result<Vec<Volume>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, driver, created, labels, options FROM volumes ORDER BY name")?;
        let rows: Vec<Row> = stmt
            .query_map([], row_tuple)?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for r in rows {
            let v = self.volume(r)?;
            if filter.matches(&v) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// `volume rm`: refused while a container uses it; `force` ignores a missing volume.
    pub fn remove(&mut self, name: &str, force: bool) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<String> = tx
            .query_row("SELECT name FROM volumes WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_none() {
            if force {
                return Ok(());
            }
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("get {name}: no such volume"),
            ));
        }
        let users = {
            let mut stmt = tx
                .prepare("SELECT container FROM volume_users WHERE name = ?1 ORDER BY container")?;
            let v: Vec<String> = stmt
                .query_map([name], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            v
        };
        let live: Vec<String> = users
            .iter()
            .filter(|c| self.containers.join(c).exists())
            .cloned()
            .collect();
        if !live.is_empty() {
            return Err(Error::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                live.join(", ")
            )));
        }
        tx.execute("DELETE FROM volume_users WHERE name = ?1", [name])?;
        tx.execute("DELETE FROM volumes WHERE name = ?1", [name])?;
        // A device volume's mount goes first: its content is not the volume's to delete.
        crate::sys::umount(&self.dir.join(name).join("_data"))?;
        // Renamed away inside the transaction: a concurrent create of the same name starts empty.
        let trash = self
            .dir
            .join(format!(".removing-{}", crate::sys::random_id()));
        let moved = std::fs::rename(self.dir.join(name), &trash);
        tx.commit()?;
        self.event("destroy", name, "local");
        if moved.is_ok() {
            std::fs::remove_dir_all(&trash)
                .map_err(|e| Error::io(format!("remove volume {name}"), e))?;
        }
        Ok(())
    }

    fn event(&self, action: &str, name: &str, driver: &str) {
        if let Some(root) = self.dir.parent() {
            crate::events::record(root, "volume", action, name, &[("driver", driver)]);
        }
    }

    /// `volume prune`: unused anonymous volumes (all unused ones with `all`); returns the
    /// removed names and the bytes reclaimed.
    pub fn prune(&mut self, all: bool, filter: &VolumeFilter) -> Result<(Vec<String>, u64)> {
        let mut names = Vec::new();
        let mut bytes = 0;
        for v in self.list(filter)? {
            if !v.users.is_empty() || (!all && !v.anonymous()) {
                continue;
            }
            let size = dir_size(&self.dir.join(&v.name));
            match self.remove(&v.name, true) {
                Ok(()) => {
                    names.push(v.name);
                    bytes += size;
                }
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        Ok((names, bytes))
    }

    /// Creates the volumes `mounts` name (anonymous when the name is 64 hex) and records
    /// `container` as their user, in one transaction. Returns the names it created.
    pub fn attach(&mut self, container: &str, mounts: &[Mount]) -> Result<Vec<String>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut created = Vec::new();
        for m in mounts.iter().filter(|m| m.typ == "volume") {
            let exists: Option<String> = tx
                .query_row(
                    "SELECT name FROM volumes WHERE name = ?1",
                    [&m.source],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                if !valid_name(&m.source) {
                    return Err(Error::invalid(format!(
                        "create {0}: \"{0}\" includes invalid characters for a local volume name",
                        m.source
                    )));
                }
                let mut labels = BTreeMap::new();
                if is_anonymous_name(&m.source) {
                    labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
                }
                insert_volume(&tx, &m.source, "local", &labels, &BTreeMap::new())?;
                created.push(m.source.clone());
            }
            mkdir(&self.dir.join(&m.source).join("_data"))?;
            tx.execute(
                "INSERT OR IGNORE INTO volume_users (name, container) VALUES (?1, ?2)",
                params![m.source, container],
            )?;
        }
        tx.commit()?;
        Ok(created)
    }

    /// Forgets `container` as a user; with `remove_anonymous`, its anonymous volumes that nobody
    /// else uses go too (`rm -v`, `--rm`).
    pub fn release(
        &mut self,
        container: &str,
        mounts: &[Mount],
        remove_anonymous: bool,
    ) -> Result<()> {
        self.conn
            .execute("DELETE FROM volume_users WHERE container = ?1", [container])?;
        for m in mounts.iter().filter(|m| m.typ == "volume") {
            self.unmount_unused(&m.source)?;
        }
        if !remove_anonymous {
            return Ok(());
        }
        for m in mounts.iter().filter(|m| m.typ == "volume") {
            if let Some(v) = self.get(&m.source)? {
                if v.anonymous() && v.users.is_empty() {
                    match self.remove(&v.name, true) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::Conflict => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }
}

type Row = (String, String, String, String, String);

fn row_tuple(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn insert_volume(
    tx: &rusqlite::Transaction,
    name: &str,
    driver: &str,
    labels: &BTreeMap<String, String>,
    options: &BTreeMap<String, String>,
) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO volumes (name, driver, created, labels, options) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            name,
            driver,
            timefmt::now(),
            serde_json::to_string(labels).expect("labels"),
            serde_json::to_string(options).expect("options")
        ],
    )?;
    Ok(())
}

/// docker's local driver options: `type`, `device` and `o` (mount options), each of `type`
/// and `device` needing the other, `o` needing both.
fn validate_options(o: &BTreeMap<String, String>) -> Result<()> {
    for k in o.keys() {
        if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
            return Err(Error::invalid(format!("invalid option: {k:?}")));
        }
    }
    for (opt, needs) in [
        ("device", &["type"][..]),
        ("type", &["device"][..]),
        ("o", &["device", "type"][..]),
    ] {
        if o.contains_key(opt) {
            if let Some(missing) = needs.iter().find(|n| !o.contains_key(**n)) {
                return Err(Error::invalid(format!(
                    "missing required option: {missing:?}"
                )));
            }
        }
    }
    // docker's `size` is an xfs project quota on the volumes dir; berth has none.
    if o.contains_key("size") {
        return Err(Error::invalid("quota size requested but no quota support"));
    }
    Ok(())
}

/// `mount -o` text as mount(2) flags and the data the filesystem gets (moby's mount.Mount).
fn mount_flags(o: &str) -> (libc::c_ulong, String) {
    let mut flags = 0;
    let mut data = Vec::new();
    for opt in o.split(',').filter(|x| !x.is_empty()) {
        match opt {
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => flags &= !libc::MS_RDONLY,
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            "nosuid" => flags |= libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            "sync" => flags |= libc::MS_SYNCHRONOUS,
            "noatime" => flags |= libc::MS_NOATIME,
            "nodiratime" => flags |= libc::MS_NODIRATIME,
            "relatime" => flags |= libc::MS_RELATIME,
            "strictatime" => flags |= libc::MS_STRICTATIME,
            "suid" | "dev" | "exec" | "async" | "atime" | "defaults" => {}
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

impl VolumeStore {
    /// Mounts the `device` of a volume created with `type`/`device` options on its data dir,
    /// as docker's local driver does when a container first uses it (kept until its last
    /// user is removed, or the volume is).
    pub(crate) fn mount_device(&self, name: &str) -> Result<()> {
        let v = self.inspect(name)?;
        let (Some(typ), Some(device)) = (v.options.get("type"), v.options.get("device")) else {
            return Ok(());
        };
        let data_dir = self.data_dir(name);
        if crate::sys::is_mountpoint(&data_dir) {
            return Ok(());
        }
        let (flags, data) = mount_flags(v.options.get("o").map_or("", String::as_str));
        let fstype = (typ != "none").then_some(typ.as_str());
        let bind = flags & libc::MS_BIND != 0;
        let first = if bind {
            flags & !libc::MS_RDONLY
        } else {
            flags
        };
        crate::sys::mount(
            device,
            &data_dir,
            fstype,
            first,
            (!data.is_empty()).then_some(data.as_str()),
        )
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "error while mounting volume '{}': failed to mount local volume: {e}",
                    v.mountpoint
                ),
            )
        })?;
        // A read-only bind needs a remount: MS_RDONLY is ignored on the first bind.
        if bind && flags & libc::MS_RDONLY != 0 {
            crate::sys::mount(
                "",
                &data_dir,
                None,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                None,
            )?;
        }
        Ok(())
    }

    /// Unmounts a device volume's data dir when no container uses it any more.
    fn unmount_unused(&self, name: &str) -> Result<()> {
        let Some(v) = self.get(name)? else {
            return Ok(());
        };
        if v.options.contains_key("device") && v.users.is_empty() {
            crate::sys::umount(&self.data_dir(name))?;
        }
        Ok(())
    }
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io(format!("create {}", p.display()), e))
}

fn dir_size(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !md.is_dir() {
        return md.blocks() * 512;
    }
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            n += dir_size(&e.path());
        }
    }
    n
}

/// The image's VOLUMEs become anonymous volume mounts, unless a mount of the flags already
/// covers that destination.
pub(crate) fn add_image_volumes(image_volumes: Option<&Vec<String>>, hc: &mut HostConfig) {
    let Some(vols) = image_volumes else { return };
    let mounts = hc.mounts.get_or_insert_with(Vec::new);
    let tmpfs: Vec<String> = hc.tmpfs.iter().flatten().map(|(d, _)| d.clone()).collect();
    for dest in vols {
        let clean = clean_dest(dest);
        if mounts.iter().any(|m| clean_dest(&m.target) == clean)
            || tmpfs.iter().any(|t| clean_dest(t) == clean)
        {
            continue;
        }
        mounts.push(Mount {
            typ: "volume".into(),
            source: crate::sys::random_id(),
            target: clean,
            ..Default::default()
        });
    }
}

fn clean_dest(d: &str) -> String {
    let parts: Vec<&str> = d
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// At create: records the container's volumes and copies the image's files at each mount point
/// into the volumes that are still empty (mounting the snapshot for the copy).
pub(crate) fn attach_container(
    engine: &Engine,
    c: &Container,
    snap: &Snapshot,
    vfs: bool,
) -> Result<()> {
    let mounts: Vec<Mount> = c.host_config.mounts.clone().unwrap_or_default();
    if !mounts.iter().any(|m| m.typ == "volume") {
        return Ok(());
    }
    let mut store = VolumeStore::open(engine.root())?;
    store.attach(&c.id, &mounts)?;
    // Device volumes (type/device options) are mounted at start; their content is the device's.
    let empty: Vec<(&Mount, PathBuf)> = mounts
        .iter()
        .filter(|m| m.typ == "volume")
        .filter(|m| {
            store
                .inspect(&m.source)
                .is_ok_and(|v| !v.options.contains_key("device"))
        })
        .map(|m| (m, store.data_dir(&m.source)))
        .filter(|(_, d)| {
            std::fs::read_dir(d)
                .map(|mut r| r.next().is_none())
                .unwrap_or(false)
        })
        .collect();
    if empty.is_empty() {
        return Ok(());
    }
    let was_mounted = snap.is_mounted();
    snap.mount(vfs)?;
    let r = (|| {
        for (m, data) in &empty {
            crate::commit::copy_up(&snap.merged(), &m.target, data)?;
        }
        Ok(())
    })();
    if !was_mounted {
        let _ = snap.unmount();
    }
    r
}

/// At start: mounts the container's device volumes (see [`VolumeStore::mount_device`]).
pub(crate) fn mount_devices(engine: &Engine, c: &Container) -> Result<()> {
    let mounts: Vec<Mount> = c.host_config.mounts.clone().unwrap_or_default();
    if !mounts.iter().any(|m| m.typ == "volume") {
        return Ok(());
    }
    let store = VolumeStore::open(engine.root())?;
    for m in mounts.iter().filter(|m| m.typ == "volume") {
        store.mount_device(&m.source)?;
    }
    Ok(())
}

/// At removal: see [`VolumeStore::release`].
pub(crate) fn release_container(
    engine: &Engine,
    c: &Container,
    remove_anonymous: bool,
) -> Result<()> {
    let mounts: Vec<Mount> = c.host_config.mounts.clone().unwrap_or_default();
    if !mounts.iter().any(|m| m.typ == "volume") {
        return Ok(());
    }
    VolumeStore::open(engine.root())?.release(&c.id, &mounts, remove_anonymous)
}

impl Engine {
    /// The volume store of this root.
    pub fn volumes(&self) -> Result<VolumeStore> {
        VolumeStore::open(self.root())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_filters() {
        assert!(
            valid_name("data")
                && valid_name("a.b-c_d")
                && !valid_name("x")
                && !valid_name("-x")
                && !valid_name("a/b")
        );
        assert!(is_anonymous_name(&"a".repeat(64)) && !is_anonymous_name("abc"));
        let v = Volume {
            created_at: String::new(),
            driver: "local".into(),
            labels: [("k".to_string(), "v".to_string())].into_iter().collect(),
            mountpoint: String::new(),
            name: "mydata".into(),
            options: BTreeMap::new(),
            scope: "local".into(),
            users: vec![],
        };
        let f = |d: Option<bool>, n: &[&str], l: &[&str]| VolumeFilter {
            dangling: d,
            names: n.iter().map(|s| s.to_string()).collect(),
            labels: l.iter().map(|s| s.to_string()).collect(),
            not_labels: vec![],
            drivers: vec![],
        };
        assert!(f(Some(true), &["data"], &["k", "k=v"]).matches(&v));
        assert!(!f(Some(false), &[], &[]).matches(&v));
        assert!(!f(None, &["other"], &[]).matches(&v));
        assert!(!f(None, &[], &["k=w"]).matches(&v));
    }

    #[test]
    fn image_volumes_skip_covered_destinations() {
        let mut hc = HostConfig {
            mounts: Some(vec![Mount {
                typ: "bind".into(),
                source: "/x".into(),
                target: "/data/".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        add_image_volumes(Some(&vec!["/data".into(), "/logs".into()]), &mut hc);
        let m = hc.mounts.unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[1].typ.as_str(), m[1].target.as_str(), m[1].source.len()),
            ("volume", "/logs", 64)
        );
    }

    #[test]
    fn store_refuses_removal_in_use_and_prunes_anonymous() {
        let t = berth_testkit::Scratch::new("vol-store");
        std::fs::create_dir_all(t.path().join("containers/c1")).unwrap();
        let mut s = VolumeStore::open(t.path()).unwrap();
        let named = s
            .create(&VolumeCreate {
                name: Some("named".into()),
                ..Default::default()
            })
            .unwrap();
        assert!(Path::new(&named.mountpoint).is_dir());
        let anon = "b".repeat(64);
        let m = |src: &str| Mount {
            typ: "volume".into(),
            source: src.into(),
            target: "/d".into(),
            ..Default::default()
        };
        assert_eq!(
            s.attach("c1", &[m("named"), m(&anon)]).unwrap(),
            vec![anon.clone()]
        );
        let e = s.remove("named", false).unwrap_err();
        assert_eq!(e.to_string(), "remove named: volume is in use - [c1]");
        assert!(s.inspect(&anon).unwrap().anonymous());
        s.release("c1", &[m("named"), m(&anon)], false).unwrap();
        let (gone, _) = s.prune(false, &VolumeFilter::default()).unwrap();
        assert_eq!(gone, vec![anon.clone()]);
        assert!(s.inspect("named").is_ok());
        s.remove("named", false).unwrap();
        assert_eq!(s.inspect("named").unwrap_err().kind(), ErrorKind::NotFound);
        assert!(!t.path().join("volumes/named").exists());
    }
}
