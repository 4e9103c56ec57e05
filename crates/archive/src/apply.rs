//! Extraction of one layer tar into a directory, relative to directory fds.
//!
//! Safety: entry names are cleaned lexically (a leading `/` or `./` is stripped as tar does, a
//! `..` component is refused), and every parent directory is opened with openat2
//! RESOLVE_BENEATH: a parent that is, or passes through, a symlink leading out of `dest`
//! (absolute target, or `..` above it, chained or not) is refused as an escape instead of being
//! clamped. The last component is never followed: entries are created with O_EXCL/O_NOFOLLOW
//! and *at calls, and an existing entry is removed first. Symlinks are created as they are.

use crate::stream::ChunkReader;
use crate::sys;
use crate::{ApplyOptions, Error, Result, WhiteoutMode};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

const WH_PREFIX: &[u8] = b".wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
const BUF: usize = 1 << 20;
const BLOCK: usize = 4096;
const MAX_CACHED_DIRS: usize = 256;
/// Files up to this size are created by the worker threads, bigger ones on the tar thread.
const PARALLEL_MAX: u64 = 1 << 20;
const JOB_QUEUE: usize = 64;

struct Dir {
    fd: Arc<OwnedFd>,
    setgid: bool,
}

/// A regular file for a worker: creating inodes is what costs most (kernel CPU), so several
/// threads create files while the tar thread parses and makes directories.
struct Job {
    dir: Arc<OwnedFd>,
    name: Vec<u8>,
    base: Vec<u8>,
    data: Vec<u8>,
    meta: Meta,
    chown: bool,
    chmod: bool,
}

#[derive(Default)]
struct PoolState {
    pending: Mutex<usize>,
    idle: Condvar,
    error: Mutex<Option<Error>>,
}

struct Pool {
    tx: SyncSender<Job>,
    state: Arc<PoolState>,
}

impl Pool {
    fn dispatch(&self, job: Job) -> Result<()> {
        self.check()?;
        *self.state.pending.lock().unwrap() += 1;
        if self.tx.send(job).is_err() {
            *self.state.pending.lock().unwrap() -= 1;
        }
        Ok(())
    }

    /// Waits until every dispatched file exists; returns the first worker error.
    fn flush(&self) -> Result<()> {
        let mut p = self.state.pending.lock().unwrap();
        while *p > 0 {
            p = self.state.idle.wait(p).unwrap();
        }
        drop(p);
        self.check()
    }

    fn check(&self) -> Result<()> {
        match self.state.error.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn worker(rx: Arc<Mutex<Receiver<Job>>>, state: Arc<PoolState>) {
    loop {
        let job = rx.lock().unwrap().recv();
        let Ok(job) = job else { return };
        if let Err(e) = job.run() {
            let mut slot = state.error.lock().unwrap();
            if slot.is_none() {
                *slot = Some(e);
            }
        }
        let mut p = state.pending.lock().unwrap();
        *p -= 1;
        if *p == 0 {
            state.idle.notify_all();
        }
    }
}

impl Job {
    fn run(self) -> Result<()> {
        let name = &self.name;
        let fd = sys::create_file(self.dir.as_raw_fd(), &self.base, self.meta.mode & 0o777)
            .map_err(|e| io_err(name, "create", e))?;
        let end =
            write_sparse(fd.as_raw_fd(), &self.data, 0).map_err(|e| io_err(name, "write", e))?;
        if end < self.data.len() as u64 {
            sys::ftruncate(fd.as_raw_fd(), self.data.len() as u64)
                .map_err(|e| io_err(name, "truncate", e))?;
        }
        file_meta(fd.as_raw_fd(), name, &self.meta, self.chown, self.chmod)
    }
}

/// Owner, then xattrs (chown drops security.capability), then mode (chown drops setuid), then times.
fn file_meta(fd: RawFd, name: &[u8], meta: &Meta, chown: bool, chmod: bool) -> Result<()> {
    if chown {
        sys::fchown(fd, meta.uid, meta.gid).map_err(|e| io_err(name, "chown", e))?;
    }
    for (k, v) in &meta.xattrs {
        sys::fsetxattr(fd, k, v).map_err(|e| io_err(name, &format!("set xattr {}", show(k)), e))?;
    }
    if chmod {
        sys::fchmod(fd, meta.mode).map_err(|e| io_err(name, "chmod", e))?;
    }
    sys::futimens(fd, meta.mtime.0, meta.mtime.1).map_err(|e| io_err(name, "set times", e))
}

/// Metadata of one entry, gathered from the header and its PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub struct Extractor {
    root: Arc<OwnedFd>,
    pool: Option<Pool>,
    /// When dest started empty, only this layer's own entries can be in the way.
    dest_was_empty: bool,
    mode: WhiteoutMode,
    dirs: HashMap<Vec<u8>, Dir>,
    /// Dir fds dropped from the cache while an entry may still use them; closed at the next entry.
    stale: Vec<Dir>,
    root_setgid: bool,
    /// Paths this layer created or updated, and the parents of those (what whiteouts must keep).
    created: HashSet<Vec<u8>>,
    ancestors: HashSet<Vec<u8>>,
    /// Overlay mode: paths this layer whited out.
    whited: HashSet<Vec<u8>>,
    dir_times: Vec<(Vec<u8>, (i64, i64))>,
    umask: u32,
    euid: u32,
    egid: u32,
    buf: Vec<u8>,
    pub entries: u64,
}

fn io_err(entry: &[u8], what: &str, e: io::Error) -> Error {
    if e.raw_os_error() == Some(libc::EXDEV) {
        return Error::Escape { entry: show(entry) };
    }
    Error::Io {
        context: format!("layer entry {:?}: {what}", show(entry)),
        source: e,
    }
}

fn invalid(entry: &[u8], reason: impl Into<String>) -> Error {
    Error::Invalid {
        entry: show(entry),
        reason: reason.into(),
    }
}

pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Lexically cleans an entry name: strips leading `/` and `.` components; refuses `..`.
pub fn clean(raw: &[u8]) -> std::result::Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err(Error::Escape { entry: show(raw) }),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&c| c == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (b"", rel),
    }
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        v.extend_from_slice(parent);
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

fn is_zero(b: &[u8]) -> bool {
    // Quick reject on the first bytes, then a branch-free OR that the compiler vectorises.
    b[..16].iter().all(|&x| x == 0) && b.iter().fold(0u8, |a, &x| a | x) == 0
}

enum Kind {
    File,
    Dir,
    Symlink(Vec<u8>),
    Link(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

impl Extractor {
    pub fn new(dest: &std::path::Path, opts: &ApplyOptions) -> Result<Extractor> {
        let root = sys::open_dir(dest).map_err(|e| Error::Io {
            context: format!("open {}", dest.display()),
            source: e,
        })?;
        let st = sys::fstat(root.as_raw_fd()).map_err(|e| Error::Io {
            context: format!("stat {}", dest.display()),
            source: e,
        })?;
        let dest_was_empty = sys::list_dir(root.as_raw_fd())
            .map(|l| l.is_empty())
            .unwrap_or(false);
        Ok(Extractor {
            root: Arc::new(root),
            pool: None,
            dest_was_empty,
            mode: opts.whiteouts,
            dirs: HashMap::new(),
            stale: Vec::new(),
            root_setgid: st.st_mode & libc::S_ISGID != 0,
            created: HashSet::new(),
            ancestors: HashSet::new(),
            whited: HashSet::new(),
            dir_times: Vec::new(),
            umask: sys::umask(),
            euid: unsafe { libc::geteuid() },
            egid: unsafe { libc::getegid() },
            buf: vec![0u8; BUF],
            entries: 0,
        })
    }

    /// Extracts every entry, then restores directory mtimes.
    pub fn run(&mut self, input: &mut ChunkReader) -> Result<()> {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4);
        if workers < 2 {
            return self.run_entries(input).and_then(|()| self.finish());
        }
        std::thread::scope(|s| {
            let (tx, rx) = sync_channel::<Job>(JOB_QUEUE);
            let rx = Arc::new(Mutex::new(rx));
            let state = Arc::new(PoolState::default());
            for _ in 0..workers {
                let (rx, state) = (rx.clone(), state.clone());
                s.spawn(move || worker(rx, state));
            }
            self.pool = Some(Pool { tx, state });
            let res = self.run_entries(input);
            let flushed = self.flush();
            // Dropping the sender lets the workers exit before the scope joins them.
            self.pool = None;
            res.and(flushed)?;
            self.finish()
        })
    }

    fn flush(&self) -> Result<()> {
        match &self.pool {
            Some(p) => p.flush(),
            None => Ok(()),
        }
    }

    fn run_entries(&mut self, input: &mut ChunkReader) -> Result<()> {
        let mut archive = tar::Archive::new(&mut *input);
        let entries = archive.entries().map_err(|e| Error::Corrupt {
            what: "layer tar".into(),
            reason: e.to_string(),
        })?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::Corrupt {
                what: "layer tar".into(),
                reason: e.to_string(),
            })?;
            self.entries += 1;
            self.stale.clear();
            self.entry(&mut entry)?;
        }
        if input.eof {
            // The stream ended without the zero blocks that close a tar: it was cut short.
            return Err(Error::Corrupt {
                what: "layer tar".into(),
                reason: "truncated archive: no end-of-archive marker".into(),
            });
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<()> {
        let raw_name = entry.path_bytes().into_owned();
        let mut meta = Meta {
            mode: entry
                .header()
                .mode()
                .map_err(|e| invalid(&raw_name, format!("bad mode: {e}")))?
                & 0o7777,
            uid: entry
                .header()
                .uid()
                .map_err(|e| invalid(&raw_name, format!("bad uid: {e}")))? as u32,
            gid: entry
                .header()
                .gid()
                .map_err(|e| invalid(&raw_name, format!("bad gid: {e}")))? as u32,
            mtime: (entry.header().mtime().unwrap_or(0) as i64, 0),
            xattrs: Vec::new(),
        };
        let mut sparse_name = None;
        let mut sparse_v1 = None;
        let mut sparse_map = None;
        if let Some(pax) = entry
            .pax_extensions()
            .map_err(|e| invalid(&raw_name, format!("bad pax header: {e}")))?
        {
            for ext in pax {
                let ext = ext.map_err(|e| invalid(&raw_name, format!("bad pax record: {e}")))?;
                let key = ext.key_bytes();
                if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                    meta.xattrs.push((x.to_vec(), ext.value_bytes().to_vec()));
                } else if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        meta.mtime = t;
                    }
                } else if key == b"GNU.sparse.name" {
                    sparse_name = Some(ext.value_bytes().to_vec());
                } else if key == b"GNU.sparse.realsize" || key == b"GNU.sparse.size" {
                    sparse_v1 = std::str::from_utf8(ext.value_bytes())
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok());
                } else if key == b"GNU.sparse.map" {
                    sparse_map = Some(ext.value_bytes().to_vec());
                }
            }
        }
        let name = sparse_name.as_deref().unwrap_or(&raw_name).to_vec();
        let rel = clean(&name)?;
        let et = entry.header().entry_type();
        let kind = match et {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                Kind::File
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| invalid(&name, "link without a target"))?
                    .into_owned();
                if et == tar::EntryType::Symlink {
                    Kind::Symlink(target)
                } else {
                    Kind::Link(target)
                }
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                if et == tar::EntryType::Char {
                    Kind::Char(major, minor)
                } else {
                    Kind::Block(major, minor)
                }
            }
            tar::EntryType::Fifo => Kind::Fifo,
            // Global PAX headers and volume labels carry nothing to create.
            tar::EntryType::XGlobalHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => return Ok(()),
            other => {
                return Err(invalid(
                    &name,
                    format!("unsupported entry type {:?}", other.as_byte() as char),
                ))
            }
        };

        let (parent, base) = split(&rel);
        let marker = base.starts_with(WH_PREFIX);
        if rel.is_empty()
            || marker
            || matches!(kind, Kind::Link(_))
            || self.created.contains(&rel)
            || self.ancestors.contains(&rel)
        {
            // Whatever a worker is still creating may be in the way: let it land first.
            self.flush()?;
        }
        if rel.is_empty() {
            return match kind {
                Kind::Dir => self.root_meta(&name, &meta),
                _ => Err(invalid(&name, "the layer root must be a directory")),
            };
        }
        if base == WH_OPAQUE {
            return self.opaque(&name, parent);
        }
        if base.starts_with(b".wh..wh.") {
            // Other AUFS metadata (hard link dirs): nothing to create.
            return Ok(());
        }
        if let Some(hidden) = base.strip_prefix(WH_PREFIX) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(invalid(&name, "invalid whiteout name"));
            }
            return self.whiteout(&name, parent, hidden, &meta);
        }
        if self.mode == WhiteoutMode::Overlay && self.whited.contains(&rel) {
            return Err(invalid(
                &name,
                "entry conflicts with a whiteout of the same name in this layer",
            ));
        }

        let (pfd, psetgid) = self.parent(&name, parent, true)?.expect("parent created");
        let pfd = pfd.as_raw_fd();
        match kind {
            Kind::File
                if self.pool.is_some()
                    && sparse_name.is_none()
                    && entry.size() <= PARALLEL_MAX
                    && self.is_free(pfd, base, &rel) =>
            {
                let mut data = vec![0u8; entry.size() as usize];
                if read_full(entry, &mut data).map_err(|e| io_err(&name, "read data", e))?
                    != data.len()
                {
                    return Err(Error::Corrupt {
                        what: format!("layer entry {:?}", show(&name)),
                        reason: "unexpected end of archive".into(),
                    });
                }
                let job = Job {
                    dir: self
                        .parent(&name, parent, false)?
                        .expect("exists")
                        .0
                        .clone(),
                    base: base.to_vec(),
                    data,
                    chown: self.needs_chown(&meta, psetgid),
                    chmod: self.needs_chmod(&meta, false, psetgid),
                    meta,
                    name,
                };
                self.pool.as_ref().expect("pool").dispatch(job)?;
            }
            Kind::File => {
                let fd = self.create(&name, pfd, base, |n| {
                    sys::create_file(pfd, n, meta.mode & 0o777)
                })?;
                let size = entry.size();
                if let (Some(real), true) = (sparse_v1, sparse_name.is_some()) {
                    self.write_pax_sparse(&name, &fd, entry, real, sparse_map.as_deref())?;
                } else {
                    self.write_data(&name, &fd, entry, size)?;
                }
                file_meta(
                    fd.as_raw_fd(),
                    &name,
                    &meta,
                    self.needs_chown(&meta, psetgid),
                    self.needs_chmod(&meta, false, psetgid),
                )?;
            }
            Kind::Dir => {
                let fresh = match sys::mkdirat(pfd, base, meta.mode & 0o777) {
                    Ok(()) => true,
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        let st = sys::lstatat(pfd, base).map_err(|e| io_err(&name, "stat", e))?;
                        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                            false
                        } else {
                            self.remove(&name, pfd, base)?;
                            sys::mkdirat(pfd, base, meta.mode & 0o777)
                                .map_err(|e| io_err(&name, "mkdir", e))?;
                            true
                        }
                    }
                    Err(e) => return Err(io_err(&name, "mkdir", e)),
                };
                if !fresh || self.needs_chown(&meta, psetgid) {
                    sys::lchownat(pfd, base, meta.uid, meta.gid)
                        .map_err(|e| io_err(&name, "chown", e))?;
                }
                if !meta.xattrs.is_empty() {
                    let d = sys::open_subdir(pfd, base).map_err(|e| io_err(&name, "open", e))?;
                    for (k, v) in &meta.xattrs {
                        sys::fsetxattr(d.as_raw_fd(), k, v)
                            .map_err(|e| io_err(&name, &format!("set xattr {}", show(k)), e))?;
                    }
                }
                if !fresh || self.needs_chmod(&meta, true, psetgid) {
                    sys::fchmodat(pfd, base, meta.mode).map_err(|e| io_err(&name, "chmod", e))?;
                }
                if meta.mode & libc::S_ISGID != 0 {
                    // Cached children of this dir must learn about its setgid bit.
                    if let Some(d) = self.dirs.remove(rel.as_slice()) {
                        self.stale.push(d);
                    }
                }
                self.dir_times.push((rel.clone(), meta.mtime));
            }
            Kind::Symlink(target) => {
                self.create(&name, pfd, base, |n| sys::symlinkat(&target, pfd, n))?;
                self.node_meta(&name, pfd, base, &meta, psetgid, false)?;
            }
            Kind::Link(target) => {
                let trel = clean(&target).map_err(|_| Error::Escape { entry: show(&name) })?;
                let (tparent, tbase) = split(&trel);
                if tbase.is_empty() {
                    return Err(invalid(&name, "hard link to the layer root"));
                }
                let tdir = self
                    .parent(&name, tparent, false)?
                    .ok_or_else(|| {
                        invalid(
                            &name,
                            format!("hard link target {:?} not found", show(&target)),
                        )
                    })?
                    .0;
                let tfd = tdir.as_raw_fd();
                self.create(&name, pfd, base, |n| sys::linkat(tfd, tbase, pfd, n))?;
            }
            Kind::Char(ma, mi) => {
                self.create(&name, pfd, base, |n| {
                    sys::mknodat(pfd, n, libc::S_IFCHR | (meta.mode & 0o777), ma, mi)
                })?;
                self.node_meta(&name, pfd, base, &meta, psetgid, true)?;
            }
            Kind::Block(ma, mi) => {
                self.create(&name, pfd, base, |n| {
                    sys::mknodat(pfd, n, libc::S_IFBLK | (meta.mode & 0o777), ma, mi)
                })?;
                self.node_meta(&name, pfd, base, &meta, psetgid, true)?;
            }
            Kind::Fifo => {
                self.create(&name, pfd, base, |n| {
                    sys::mknodat(pfd, n, libc::S_IFIFO | (meta.mode & 0o777), 0, 0)
                })?;
                self.node_meta(&name, pfd, base, &meta, psetgid, true)?;
            }
        }
        self.mark_created(&rel);
        Ok(())
    }

    fn needs_chown(&self, m: &Meta, parent_setgid: bool) -> bool {
        m.uid != self.euid || m.gid != self.egid || parent_setgid
    }

    fn needs_chmod(&self, m: &Meta, is_dir: bool, parent_setgid: bool) -> bool {
        m.mode & 0o7000 != 0 || m.mode & self.umask != 0 || (is_dir && parent_setgid)
    }

    /// Owner, xattrs, mode and times of a symlink, device or fifo (addressed by name).
    fn node_meta(
        &self,
        name: &[u8],
        pfd: RawFd,
        base: &[u8],
        meta: &Meta,
        psetgid: bool,
        chmod: bool,
    ) -> Result<()> {
        if self.needs_chown(meta, psetgid) {
            sys::lchownat(pfd, base, meta.uid, meta.gid).map_err(|e| io_err(name, "chown", e))?;
        }
        for (k, v) in &meta.xattrs {
            sys::lsetxattrat(pfd, base, k, v)
                .map_err(|e| io_err(name, &format!("set xattr {}", show(k)), e))?;
        }
        if chmod && self.needs_chmod(meta, false, psetgid) {
            sys::fchmodat(pfd, base, meta.mode).map_err(|e| io_err(name, "chmod", e))?;
        }
        sys::lutimesat(pfd, base, meta.mtime.0, meta.mtime.1)
            .map_err(|e| io_err(name, "set times", e))
    }

    fn root_meta(&mut self, name: &[u8], meta: &Meta) -> Result<()> {
        let fd = self.root.as_raw_fd();
        sys::fchown(fd, meta.uid, meta.gid).map_err(|e| io_err(name, "chown", e))?;
        for (k, v) in &meta.xattrs {
            sys::fsetxattr(fd, k, v)
                .map_err(|e| io_err(name, &format!("set xattr {}", show(k)), e))?;
        }
        sys::fchmod(fd, meta.mode).map_err(|e| io_err(name, "chmod", e))?;
        self.root_setgid = meta.mode & libc::S_ISGID != 0;
        self.forget_dirs();
        self.dir_times.push((Vec::new(), meta.mtime));
        Ok(())
    }

    /// Runs `make` for `base`; when something is already there, removes it and retries once.
    fn create<T>(
        &mut self,
        name: &[u8],
        pfd: RawFd,
        base: &[u8],
        make: impl Fn(&[u8]) -> io::Result<T>,
    ) -> Result<T> {
        match make(base) {
            Ok(t) => Ok(t),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.remove(name, pfd, base)?;
                make(base).map_err(|e| io_err(name, "create", e))
            }
            Err(e) => Err(io_err(name, "create", e)),
        }
    }

    /// Whether nothing is at `base` yet, so a worker can create it without a conflict.
    fn is_free(&self, pfd: RawFd, base: &[u8], rel: &[u8]) -> bool {
        if self.created.contains(rel) || self.ancestors.contains(rel) {
            return false;
        }
        self.dest_was_empty
            || matches!(sys::lstatat(pfd, base), Err(e) if e.raw_os_error() == Some(libc::ENOENT))
    }

    fn remove(&mut self, name: &[u8], pfd: RawFd, base: &[u8]) -> Result<()> {
        self.flush()?;
        let fmt =
            sys::remove_all_at(pfd, base).map_err(|e| io_err(name, "remove existing entry", e))?;
        if fmt == libc::S_IFDIR || fmt == libc::S_IFLNK {
            // Cached dir fds below (or resolved through) what was removed are stale now.
            self.forget_dirs();
        }
        Ok(())
    }

    fn forget_dirs(&mut self) {
        self.stale.extend(self.dirs.drain().map(|(_, d)| d));
    }

    fn mark_created(&mut self, rel: &[u8]) {
        self.created.insert(rel.to_vec());
        let mut p = rel;
        while let Some(i) = p.iter().rposition(|&c| c == b'/') {
            p = &p[..i];
            if !self.ancestors.insert(p.to_vec()) {
                break;
            }
        }
    }

    /// The directory `rel` (resolved beneath the root), created with its missing parents when
    /// `create` is set; None when it does not exist and `create` is not set.
    fn parent(
        &mut self,
        name: &[u8],
        rel: &[u8],
        create: bool,
    ) -> Result<Option<(&Arc<OwnedFd>, bool)>> {
        if rel.is_empty() {
            return Ok(Some((&self.root, self.root_setgid)));
        }
        if !self.dirs.contains_key(rel) {
            let fd = match sys::open_dir_beneath(self.root.as_raw_fd(), rel) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    let (gp, base) = split(rel);
                    let gp = gp.to_vec();
                    let (gfd, _) = self.parent(name, &gp, true)?.expect("created");
                    let gfd = gfd.as_raw_fd();
                    match sys::mkdirat(gfd, base, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(io_err(name, "create parent directory", e)),
                    }
                    self.mark_created(rel);
                    sys::open_dir_beneath(self.root.as_raw_fd(), rel)
                        .map_err(|e| self.parent_err(name, e))?
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
                Err(e) if !create && e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
                Err(e) => return Err(self.parent_err(name, e)),
            };
            let st = sys::fstat(fd.as_raw_fd()).map_err(|e| io_err(name, "stat parent", e))?;
            if self.dirs.len() >= MAX_CACHED_DIRS {
                self.forget_dirs();
            }
            self.dirs.insert(
                rel.to_vec(),
                Dir {
                    fd: Arc::new(fd),
                    setgid: st.st_mode & libc::S_ISGID != 0,
                },
            );
        }
        let d = &self.dirs[rel];
        Ok(Some((&d.fd, d.setgid)))
    }

    fn parent_err(&self, name: &[u8], e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::EXDEV) | Some(libc::ELOOP) => Error::Escape { entry: show(name) },
            Some(libc::ENOTDIR) => invalid(name, "a parent is not a directory"),
            _ => io_err(name, "open parent directory", e),
        }
    }

    fn opaque(&mut self, name: &[u8], dir: &[u8]) -> Result<()> {
        let dir = dir.to_vec();
        let (fd, _) = self.parent(name, &dir, true)?.expect("created");
        let fd = fd.as_raw_fd();
        match self.mode {
            WhiteoutMode::Overlay => {
                sys::fsetxattr(fd, OPAQUE_XATTR, b"y")
                    .map_err(|e| io_err(name, "set opaque xattr", e))?;
            }
            WhiteoutMode::Direct => {
                let dup = sys::open_dir_beneath(fd, b".").map_err(|e| io_err(name, "open", e))?;
                self.remove_lower_children(name, dup.as_raw_fd(), &dir)?;
            }
        }
        if !dir.is_empty() {
            self.mark_created(&dir);
        }
        Ok(())
    }

    fn whiteout(&mut self, name: &[u8], parent: &[u8], hidden: &[u8], meta: &Meta) -> Result<()> {
        let rel = join(parent, hidden);
        match self.mode {
            WhiteoutMode::Overlay => {
                if self.created.contains(&rel) || self.ancestors.contains(&rel) {
                    return Err(invalid(
                        name,
                        "whiteout conflicts with an entry of the same name in this layer",
                    ));
                }
                let (pfd, _) = self.parent(name, parent, true)?.expect("created");
                let pfd = pfd.as_raw_fd();
                match sys::mknodat(pfd, hidden, libc::S_IFCHR, 0, 0) {
                    Ok(()) => {}
                    Err(e)
                        if e.raw_os_error() == Some(libc::EEXIST) && self.whited.contains(&rel) =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(io_err(name, "create whiteout", e)),
                }
                sys::lchownat(pfd, hidden, meta.uid, meta.gid)
                    .map_err(|e| io_err(name, "chown whiteout", e))?;
                self.whited.insert(rel);
            }
            WhiteoutMode::Direct => {
                let Some((pfd, _)) = self.parent(name, parent, false)? else {
                    return Ok(());
                };
                let dup = sys::open_dir_beneath(pfd.as_raw_fd(), b".")
                    .map_err(|e| io_err(name, "open", e))?;
                self.remove_lower(name, dup.as_raw_fd(), hidden, &rel)?;
            }
        }
        Ok(())
    }

    /// Removes what lower layers put at `rel` (entry `base` of `dir`), keeping anything this
    /// layer created, whatever order the markers came in.
    fn remove_lower(&mut self, name: &[u8], dir: RawFd, base: &[u8], rel: &[u8]) -> Result<()> {
        if self.created.contains(rel) || self.ancestors.contains(rel) {
            let st = match sys::lstatat(dir, base) {
                Ok(st) => st,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
                Err(e) => return Err(io_err(name, "stat", e)),
            };
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                let sub = sys::open_subdir(dir, base).map_err(|e| io_err(name, "open", e))?;
                self.remove_lower_children(name, sub.as_raw_fd(), rel)?;
            }
            return Ok(());
        }
        match sys::remove_all_at(dir, base) {
            Ok(fmt) => {
                if fmt == libc::S_IFDIR || fmt == libc::S_IFLNK {
                    self.forget_dirs();
                }
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(io_err(name, "remove whited-out entry", e)),
        }
    }

    fn remove_lower_children(&mut self, name: &[u8], dir: RawFd, rel: &[u8]) -> Result<()> {
        for child in sys::list_dir(dir).map_err(|e| io_err(name, "list directory", e))? {
            let crel = join(rel, &child);
            self.remove_lower(name, dir, &child, &crel)?;
        }
        Ok(())
    }

    /// Copies the entry's data, leaving 4 KiB blocks of zeros as holes.
    fn write_data<R: Read>(
        &mut self,
        name: &[u8],
        fd: &OwnedFd,
        entry: &mut R,
        size: u64,
    ) -> Result<()> {
        let end = self.copy_segment(name, fd, entry, 0, size)?;
        if end < size {
            sys::ftruncate(fd.as_raw_fd(), size).map_err(|e| io_err(name, "truncate", e))?;
        }
        Ok(())
    }

    /// Copies the next `len` bytes of `entry` to `off..off+len` of `fd`, leaving holes where the
    /// data is zero; returns the end of the last byte written (0 when all was holes).
    fn copy_segment<R: Read>(
        &mut self,
        name: &[u8],
        fd: &OwnedFd,
        entry: &mut R,
        mut off: u64,
        len: u64,
    ) -> Result<u64> {
        let mut end = 0u64;
        let mut left = len;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = read_full(entry, &mut self.buf[..want])
                .map_err(|e| io_err(name, "read data", e))?;
            if n < want {
                return Err(Error::Corrupt {
                    what: format!("layer entry {:?}", show(name)),
                    reason: "unexpected end of archive".into(),
                });
            }
            end = end.max(
                write_sparse(fd.as_raw_fd(), &self.buf[..n], off)
                    .map_err(|e| io_err(name, "write", e))?,
            );
            off += n as u64;
            left -= n as u64;
        }
        Ok(end)
    }

    /// PAX sparse files (GNU formats 1.0 and 0.1): a map of (offset, length) data segments,
    /// either in the PAX `GNU.sparse.map` record or at the start of the data.
    fn write_pax_sparse<R: Read>(
        &mut self,
        name: &[u8],
        fd: &OwnedFd,
        entry: &mut R,
        real: u64,
        map: Option<&[u8]>,
    ) -> Result<()> {
        let bad = |r: &str| invalid(name, format!("bad sparse map: {r}"));
        let numbers: Vec<u64> = match map {
            Some(m) => std::str::from_utf8(m)
                .map_err(|_| bad("not text"))?
                .split(',')
                .map(|s| s.trim().parse::<u64>().map_err(|_| bad("not a number")))
                .collect::<Result<_>>()?,
            None => {
                // Format 1.0: decimal lines (count, then offset/length pairs) padded to 512 bytes.
                let mut text = Vec::new();
                let mut nums = Vec::new();
                let mut block = [0u8; 512];
                let mut want: Option<u64> = None;
                loop {
                    if read_full(entry, &mut block)
                        .map_err(|e| io_err(name, "read sparse map", e))?
                        != 512
                    {
                        return Err(bad("truncated"));
                    }
                    text.extend_from_slice(&block);
                    while let Some(i) = text.iter().position(|&c| c == b'\n') {
                        let line: Vec<u8> = text.drain(..=i).collect();
                        let v = std::str::from_utf8(&line[..i])
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                            .ok_or_else(|| bad("not a number"))?;
                        if want.is_none() {
                            if v > 1 << 20 {
                                return Err(bad("too many segments"));
                            }
                            want = Some(v * 2);
                        } else {
                            nums.push(v);
                        }
                        if want == Some(nums.len() as u64) {
                            break;
                        }
                    }
                    if want == Some(nums.len() as u64) {
                        break;
                    }
                    if text.len() > 64 {
                        return Err(bad("line too long"));
                    }
                }
                nums
            }
        };
        if numbers.len() % 2 == 1 {
            return Err(bad("odd number of values"));
        }
        let mut end = 0u64;
        for pair in numbers.chunks(2) {
            let (off, len) = (pair[0], pair[1]);
            if off.checked_add(len).is_none_or(|e| e > real) {
                return Err(bad("segment beyond the file size"));
            }
            end = end.max(self.copy_segment(name, fd, entry, off, len)?);
        }
        if end < real {
            sys::ftruncate(fd.as_raw_fd(), real).map_err(|e| io_err(name, "truncate", e))?;
        }
        Ok(())
    }

    /// Directory mtimes, last: creating their children changed them.
    fn finish(&mut self) -> Result<()> {
        let times = std::mem::take(&mut self.dir_times);
        for (rel, (s, ns)) in times {
            if rel.is_empty() {
                sys::futimens(self.root.as_raw_fd(), s, ns)
                    .map_err(|e| io_err(b".", "set times", e))?;
                continue;
            }
            let (parent, base) = split(&rel);
            let Some((pfd, _)) = self.parent(&rel, parent, false)? else {
                continue;
            };
            match sys::lutimesat(pfd.as_raw_fd(), base, s, ns) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(io_err(&rel, "set times", e)),
            }
        }
        Ok(())
    }
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes `data` at `off`, skipping whole zero blocks; returns the end of the last write.
fn write_sparse(fd: RawFd, data: &[u8], off: u64) -> io::Result<u64> {
    let mut end = 0u64;
    let mut run_start: Option<usize> = None;
    let mut i = 0;
    while i < data.len() {
        let j = (i + BLOCK).min(data.len());
        let zero = j - i == BLOCK && is_zero(&data[i..j]);
        match (zero, run_start) {
            (true, Some(s)) => {
                sys::pwrite_all(fd, &data[s..i], off + s as u64)?;
                end = off + i as u64;
                run_start = None;
            }
            (false, None) => run_start = Some(i),
            _ => {}
        }
        i = j;
    }
    if let Some(s) = run_start {
        sys::pwrite_all(fd, &data[s..], off + s as u64)?;
        end = off + data.len() as u64;
    }
    Ok(end)
}

fn parse_pax_time(v: &[u8]) -> Option<(i64, i64)> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec = sec.parse::<i64>().ok()?;
    let mut ns = 0i64;
    for (i, c) in frac.bytes().take(9).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        ns += (c - b'0') as i64 * 10i64.pow(8 - i as u32);
    }
    if sec < 0 && ns > 0 {
        return Some((sec - 1, 1_000_000_000 - ns));
    }
    Some((sec, ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_root_and_dots_and_refuses_dotdot() {
        assert_eq!(clean(b"./etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(clean(b"/abs//x/./y/").unwrap(), b"abs/x/y");
        assert_eq!(clean(b"./").unwrap(), b"");
        assert_eq!(clean(b"a..b/..c").unwrap(), b"a..b/..c");
        for bad in [&b"../x"[..], b"a/../b", b"/..", b"a/.."] {
            assert_eq!(
                clean(bad).unwrap_err().kind(),
                crate::ErrorKind::Escape,
                "{}",
                show(bad)
            );
        }
    }

    #[test]
    fn pax_times_with_fractions() {
        assert_eq!(parse_pax_time(b"1234"), Some((1234, 0)));
        assert_eq!(parse_pax_time(b"1234.5"), Some((1234, 500_000_000)));
        assert_eq!(
            parse_pax_time(b"1234.123456789123"),
            Some((1234, 123_456_789))
        );
        assert_eq!(parse_pax_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_pax_time(b"x"), None);
    }

    #[test]
    fn sparse_writes_skip_zero_blocks() {
        let dir = berth_testkit::Scratch::new("archive-unit");
        let path = dir.join("f");
        let f = std::fs::File::create(&path).unwrap();
        let mut data = vec![0u8; 4 * BLOCK + 10];
        data[BLOCK + 1] = 1;
        data[4 * BLOCK + 9] = 2;
        let end = write_sparse(f.as_raw_fd(), &data, 0).unwrap();
        assert_eq!(end, data.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        // All zeros: nothing written, the caller truncates to size.
        let zeros = vec![0u8; 2 * BLOCK];
        assert_eq!(write_sparse(f.as_raw_fd(), &zeros, 1 << 20).unwrap(), 0);
    }
}
