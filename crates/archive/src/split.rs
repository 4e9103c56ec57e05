//! tar-split (containers/storage's idea): a layer stored only unpacked, plus every byte of its
//! tar that is not a regular file's contents (headers, PAX records, padding, the end blocks) and,
//! in their place, the file's path and size. The exact tar, and so its diff id, is rebuilt from
//! that record and the unpacked tree, so a committed layer's bytes are written to disk once.
//!
//! Record format: the magic line, then records: `R` u32-le length and that many raw bytes, or
//! `F` u64-le size, u32-le path length and the path (relative to the layer's tree).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::sys;

const MAGIC: &[u8] = b"berth-tar-split/1\n";
const RAW_CHUNK: usize = 64 * 1024;

enum State {
    Raw,
    /// A regular file's contents: not recorded.
    Data {
        left: u64,
    },
}

/// A file whose contents the tar writer is about to write: (path, size).
type Pending = Arc<Mutex<Option<(Vec<u8>, u64)>>>;

/// Passes a tar stream through to `inner` (it must sit right below the tar builder) and writes
/// its tar-split to `split`. The tar writer gives the builder each regular file's reader
/// wrapped by [`Recorder::marker`].
pub struct Recorder<W: Write> {
    inner: W,
    split: Box<dyn Write + Send>,
    raw: Vec<u8>,
    state: State,
    pending: Pending,
}

/// A regular file's contents for the tar builder: its first read tells the recorder that what
/// is written next (after the headers, which the builder wrote before reading) is this file.
pub struct Marked<R> {
    inner: R,
    mark: Option<(Vec<u8>, u64)>,
    pending: Pending,
}

impl<R: Read> Read for Marked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(m) = self.mark.take() {
            *self.pending.lock().unwrap() = Some(m);
        }
        self.inner.read(buf)
    }
}

/// Makes [`Marked`] readers for a recorder already owned by a tar builder.
#[derive(Clone)]
pub struct Marker(Pending);

impl Marker {
    /// `inner` holds the `size` bytes of `path` (relative to the layer's tree). A size of 0
    /// marks nothing: the bytes stay in the tar-split (for contents the layer overwrites later).
    pub fn mark<R: Read>(&self, inner: R, path: &[u8], size: u64) -> Marked<R> {
        Marked {
            inner,
            mark: (size > 0).then(|| (path.to_vec(), size)),
            pending: self.0.clone(),
        }
    }
}

impl<W: Write> Recorder<W> {
    pub fn new(inner: W, mut split: Box<dyn Write + Send>) -> io::Result<Recorder<W>> {
        split.write_all(MAGIC)?;
        Ok(Recorder {
            inner,
            split,
            raw: Vec::with_capacity(RAW_CHUNK),
            state: State::Raw,
            pending: Pending::default(),
        })
    }

    /// What wraps file readers for this recorder once a tar builder owns it.
    pub fn marker(&self) -> Marker {
        Marker(self.pending.clone())
    }

    fn contents(&mut self, path: &[u8], size: u64) -> io::Result<()> {
        self.flush_raw()?;
        self.split.write_all(b"F")?;
        self.split.write_all(&size.to_le_bytes())?;
        self.split.write_all(&(path.len() as u32).to_le_bytes())?;
        self.split.write_all(path)?;
        if size > 0 {
            self.state = State::Data { left: size };
        }
        Ok(())
    }

    fn flush_raw(&mut self) -> io::Result<()> {
        if !self.raw.is_empty() {
            self.split.write_all(b"R")?;
            self.split
                .write_all(&(self.raw.len() as u32).to_le_bytes())?;
            self.split.write_all(&self.raw)?;
            self.raw.clear();
        }
        Ok(())
    }

    fn record(&mut self, mut b: &[u8]) -> io::Result<()> {
        while !b.is_empty() {
            match &mut self.state {
                State::Raw => {
                    let k = b.len().min(RAW_CHUNK - self.raw.len());
                    self.raw.extend_from_slice(&b[..k]);
                    b = &b[k..];
                    if self.raw.len() == RAW_CHUNK {
                        self.flush_raw()?;
                    }
                }
                State::Data { left } => {
                    let k = (b.len() as u64).min(*left);
                    b = &b[k as usize..];
                    *left -= k;
                    if *left == 0 {
                        self.state = State::Raw;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes what is still buffered; returns the tar's writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_raw()?;
        self.split.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Recorder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let marked = self.pending.lock().unwrap().take();
        if let Some((path, size)) = marked {
            self.contents(&path, size)?;
        }
        let n = self.inner.write(buf)?;
        self.record(&buf[..n])?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Cur {
    Raw(Vec<u8>, usize),
    File {
        file: File,
        left: u64,
        path: Vec<u8>,
    },
    Next,
    Done,
}

/// The tar rebuilt from a tar-split and the unpacked tree it describes (see [`rebuild`]).
pub struct Rebuilt<R: Read> {
    split: R,
    root: OwnedFd,
    cur: Cur,
}

/// Rebuilds the layer tar described by `split` from the tree at `root`. A file that is missing
/// or shorter than recorded is an error, never a silently different tar; callers that need the
/// diff id check it over what they read.
pub fn rebuild<R: Read>(mut split: R, root: &Path) -> io::Result<Rebuilt<R>> {
    let mut magic = [0u8; MAGIC.len()];
    split.read_exact(&mut magic)?;
    if magic != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a berth tar-split record",
        ));
    }
    Ok(Rebuilt {
        split,
        root: sys::open_dir(root)?,
        cur: Cur::Next,
    })
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("tar-split record: {what}"),
    )
}

impl<R: Read> Rebuilt<R> {
    fn next(&mut self) -> io::Result<Cur> {
        let mut tag = [0u8; 1];
        if self.split.read(&mut tag)? == 0 {
            return Ok(Cur::Done);
        }
        let mut n4 = [0u8; 4];
        match tag[0] {
            b'R' => {
                self.split.read_exact(&mut n4)?;
                let mut raw = vec![0u8; u32::from_le_bytes(n4) as usize];
                self.split.read_exact(&mut raw)?;
                Ok(Cur::Raw(raw, 0))
            }
            b'F' => {
                let mut n8 = [0u8; 8];
                self.split.read_exact(&mut n8)?;
                self.split.read_exact(&mut n4)?;
                let len = u32::from_le_bytes(n4) as usize;
                if len > 1 << 20 {
                    return Err(bad("path too long"));
                }
                let mut path = vec![0u8; len];
                self.split.read_exact(&mut path)?;
                let left = u64::from_le_bytes(n8);
                if left == 0 {
                    return Ok(Cur::Next);
                }
                let fd = sys::open_file_beneath(self.root.as_raw_fd(), &path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("open layer file {:?}: {e}", String::from_utf8_lossy(&path)),
                    )
                })?;
                Ok(Cur::File {
                    file: File::from(fd),
                    left,
                    path,
                })
            }
            _ => Err(bad("unknown record")),
        }
    }
}

impl<R: Read> Read for Rebuilt<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.cur {
                Cur::Done => return Ok(0),
                Cur::Next => self.cur = self.next()?,
                Cur::Raw(raw, pos) => {
                    if *pos == raw.len() {
                        self.cur = Cur::Next;
                        continue;
                    }
                    let n = out.len().min(raw.len() - *pos);
                    out[..n].copy_from_slice(&raw[*pos..*pos + n]);
                    *pos += n;
                    return Ok(n);
                }
                Cur::File { file, left, path } => {
                    if *left == 0 {
                        self.cur = Cur::Next;
                        continue;
                    }
                    let want = out.len().min(*left as usize);
                    let n = file.read(&mut out[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "layer file {:?} is shorter than its tar entry",
                                String::from_utf8_lossy(path)
                            ),
                        ));
                    }
                    *left -= n as u64;
                    return Ok(n);
                }
            }
        }
    }
}
