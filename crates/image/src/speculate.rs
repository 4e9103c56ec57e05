//! Unpacking a layer while the archive is still being read. Which blobs are layers (and their
//! diff ids) is only known once the manifest and config arrive, often after the layers, so a
//! blob that looks like a layer is unpacked right away from the ingest file as it grows; the
//! install step then adopts the result if the computed diff id is the one the config names, and
//! unpacks normally otherwise.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use berth_archive::{Applied, ApplyOptions, WhiteoutMode};

#[derive(Default)]
struct State {
    written: u64,
    done: bool,
    aborted: bool,
}

/// Shared between the archive reader (writing the ingest file) and the unpacking thread.
#[derive(Default)]
pub(crate) struct Progress {
    state: Mutex<State>,
    cond: Condvar,
}

impl Progress {
    pub fn wrote(&self, n: u64) {
        self.state.lock().unwrap().written += n;
        self.cond.notify_all();
    }
    pub fn finish(&self) {
        self.state.lock().unwrap().done = true;
        self.cond.notify_all();
    }
    pub fn abort(&self) {
        self.state.lock().unwrap().aborted = true;
        self.cond.notify_all();
    }
}

/// Reads a file that another thread is still appending to, until it says it is done.
struct FollowReader {
    file: File,
    pos: u64,
    progress: Arc<Progress>,
}

impl Read for FollowReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut st = self.progress.state.lock().unwrap();
                loop {
                    if st.aborted {
                        return Err(io::Error::other("load aborted"));
                    }
                    if st.written > self.pos {
                        break;
                    }
                    if st.done {
                        return Ok(0);
                    }
                    st = self.progress.cond.wait(st).unwrap();
                }
            }
            let n = self.file.read(buf)?;
            if n > 0 {
                self.pos += n as u64;
                return Ok(n);
            }
        }
    }
}

pub(crate) struct Speculation {
    pub dir: PathBuf,
    pub progress: Arc<Progress>,
    handle: Option<JoinHandle<berth_archive::Result<Applied>>>,
    /// An unpack that already ended (a commit unpacks its layer as it writes it).
    applied: Option<Applied>,
}

impl Speculation {
    /// Starts unpacking `file` (being written) into `<dir>/diff` for the overlay driver.
    pub fn start(file: &Path, dir: PathBuf) -> io::Result<Speculation> {
        fs::create_dir_all(dir.join("diff"))?;
        let progress = Arc::new(Progress::default());
        let reader = FollowReader {
            file: File::open(file)?,
            pos: 0,
            progress: progress.clone(),
        };
        let dest = dir.join("diff");
        let handle = std::thread::spawn(move || {
            let opts = ApplyOptions {
                whiteouts: WhiteoutMode::Overlay,
                expected_diff_id: None,
            };
            berth_archive::apply_layer(io::BufReader::with_capacity(1 << 20, reader), &dest, &opts)
        });
        Ok(Speculation {
            dir,
            progress,
            handle: Some(handle),
            applied: None,
        })
    }

    /// A layer already unpacked into `<dir>/diff`, for install to adopt like a finished one.
    pub fn done(dir: PathBuf, applied: Applied) -> Speculation {
        Speculation {
            dir,
            progress: Arc::default(),
            handle: None,
            applied: Some(applied),
        }
    }

    /// Waits for the unpack; `None` when it failed (the caller unpacks the normal way).
    pub fn finish(mut self) -> Option<Applied> {
        if let Some(a) = self.applied.take() {
            return Some(a);
        }
        self.handle.take()?.join().ok()?.ok()
    }
}

impl Drop for Speculation {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.progress.abort();
            let _ = h.join();
        }
    }
}

/// Whether a blob's first bytes look like a layer: gzip, zstd, or a tar header.
pub(crate) fn looks_like_layer(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.get(257..262) == Some(b"ustar")
}
