//! Decompression and hashing on the calling thread, tar parsing and file creation on a second
//! one, joined by a bounded channel of byte chunks. The caller's reader never crosses threads,
//! so `apply_layer` needs no `Send` bound on it.

use crate::{Compression, Error, Result};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, Sender, SyncSender};

const CHUNK: usize = 256 * 1024;
const DEPTH: usize = 32;

enum Msg {
    Data(Vec<u8>),
    Failed(String),
}

/// The consuming side: a `Read` over the chunks the producer sends.
pub struct ChunkReader {
    rx: Receiver<Msg>,
    recycle: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    /// Set once the stream ended (the producer hung up).
    pub eof: bool,
    /// Bytes handed out so far.
    pub consumed: u64,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.eof {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Msg::Data(v)) => {
                    let old = std::mem::replace(&mut self.cur, v);
                    self.pos = 0;
                    if old.capacity() == CHUNK {
                        let _ = self.recycle.send(old);
                    }
                }
                Ok(Msg::Failed(e)) => return Err(io::Error::other(e)),
                Err(_) => {
                    self.eof = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        self.consumed += n as u64;
        Ok(n)
    }
}

/// What the producer saw: the digest and size of the uncompressed stream.
pub struct Hashed {
    pub diff_id: String,
    pub size: u64,
}

/// Reads `head` + `reader` as a compressed or plain stream, hashes the uncompressed bytes to EOF
/// and feeds them to `consume`, which runs on a scoped thread. A decompression error wins over
/// the consumer's error (the consumer only saw its symptom).
pub fn pipeline<R, T, F>(mut reader: R, consume: F) -> Result<(T, Hashed)>
where
    R: Read,
    T: Send,
    F: FnOnce(&mut ChunkReader) -> Result<T> + Send,
{
    let mut head = Vec::with_capacity(4);
    while head.len() < 4 {
        let mut b = [0u8; 4];
        let want = 4 - head.len();
        match reader.read(&mut b[..want]) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Io {
                    context: "read layer".into(),
                    source: e,
                })
            }
        }
    }
    let compression = Compression::detect(&head);
    let raw = io::Cursor::new(head).chain(reader);
    let mut source: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(CHUNK, raw),
        )),
        Compression::Zstd => {
            Box::new(
                zstd::stream::read::Decoder::new(raw).map_err(|e| Error::Corrupt {
                    what: "zstd stream".into(),
                    reason: e.to_string(),
                })?,
            )
        }
    };
    let what = match compression {
        Compression::None => "layer stream",
        Compression::Gzip => "gzip stream",
        Compression::Zstd => "zstd stream",
    };

    let (tx, rx) = sync_channel::<Msg>(DEPTH);
    let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let worker = s.spawn(move || {
            let mut r = ChunkReader {
                rx,
                recycle: recycle_tx,
                cur: Vec::new(),
                pos: 0,
                eof: false,
                consumed: 0,
            };
            let out = consume(&mut r)?;
            // Keep taking bytes so the producer hashes the whole stream, padding included.
            io::copy(&mut r, &mut io::sink()).map_err(|e| Error::Corrupt {
                what: "layer stream".into(),
                reason: e.to_string(),
            })?;
            Ok(out)
        });
        let produced = produce(&mut source, &tx, &recycle_rx, what);
        drop(tx);
        let consumed = worker.join().unwrap_or_else(|_| {
            Err(Error::Io {
                context: "extract".into(),
                source: io::Error::other("extraction thread panicked"),
            })
        });
        match produced {
            Err(e) => Err(e),
            Ok(hashed) => consumed.map(|t| (t, hashed)),
        }
    })
}

fn produce(
    source: &mut dyn Read,
    tx: &SyncSender<Msg>,
    recycle: &Receiver<Vec<u8>>,
    what: &str,
) -> Result<Hashed> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let mut buf = recycle
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        buf.resize(CHUNK, 0);
        let mut n = 0;
        while n < CHUNK {
            match source.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let err = Error::Corrupt {
                        what: what.into(),
                        reason: e.to_string(),
                    };
                    let _ = tx.send(Msg::Failed(err.to_string()));
                    return Err(err);
                }
            }
        }
        buf.truncate(n);
        hasher.update(&buf);
        size += n as u64;
        if n == 0 {
            break;
        }
        let last = n < CHUNK;
        if tx.send(Msg::Data(buf)).is_err() {
            // The consumer failed; its error is the one to report.
            break;
        }
        if last {
            break;
        }
    }
    Ok(Hashed {
        diff_id: format!("sha256:{}", hex::encode(hasher.finalize())),
        size,
    })
}
