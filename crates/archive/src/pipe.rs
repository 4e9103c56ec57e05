//! A tar written on one thread while another reads it, where a half tar never passes for a whole one.

use std::io::{self, PipeReader, PipeWriter, Read};
use std::sync::atomic::{AtomicU8, Ordering};

/// Runs `write` on a second thread into a pipe whose read end `read` consumes, and returns both
/// results. The reader gets an error instead of EOF when `write` failed (the outcome is recorded
/// before the write end closes), so a truncated tar is never taken for a whole one; the read end
/// is closed before joining, so an early reader error never leaves the writer blocked on a full
/// pipe. Fails only when the pipe cannot be made or the writer panicked.
pub fn piped<T, W: Send, E: Send>(
    write: impl FnOnce(&mut PipeWriter) -> Result<W, E> + Send,
    read: impl FnOnce(&mut dyn Read) -> T,
) -> io::Result<(T, Result<W, E>)> {
    let (r, mut w) = io::pipe()?;
    widen(&w);
    let status = AtomicU8::new(0);
    let st = &status;
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            let res = write(&mut w);
            st.store(if res.is_ok() { 1 } else { 2 }, Ordering::SeqCst);
            drop(w);
            res
        });
        let mut reader = Checked {
            inner: r,
            status: st,
        };
        let out = read(&mut reader);
        drop(reader);
        let written = writer
            .join()
            .map_err(|_| io::Error::other("the layer writer panicked"))?;
        Ok((out, written))
    })
}

/// Asks for a 1 MiB pipe buffer (the default 64 KiB makes the two threads hand over a layer's
/// bytes in 64 KiB turns, each a wake-up; on a busy machine each waits for a CPU). Best effort:
/// the kernel caps it at /proc/sys/fs/pipe-max-size.
fn widen(w: &PipeWriter) {
    use std::os::fd::AsRawFd;
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
}

/// The read end: EOF counts only when the writer finished without error.
struct Checked<'a> {
    inner: PipeReader,
    status: &'a AtomicU8,
}

impl Read for Checked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.status.load(Ordering::SeqCst) != 1 {
            return Err(io::Error::other("the layer writer failed"));
        }
        Ok(n)
    }
}
