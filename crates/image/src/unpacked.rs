//! Layers stored only unpacked (commit's and the builder's): the layer tar is applied into the
//! store as it is written, beside its tar-split, and no tar blob is kept. `save` and `push` read
//! the tar back through [`ImageStore::layer_tar`], rebuilt byte for byte, so the diff id holds.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use berth_archive::{ApplyOptions, WhiteoutMode};

use crate::derive::StagedLayer;
use crate::digest::HashingReader;
use crate::error::{DbContext, Error, IoContext, Result};
use crate::fsutil::WorkDir;
use crate::store::{Driver, ImageStore};

/// Writes a layer tar to its first argument and the tar's tar-split to its second
/// (`berth_archive::write_layer_split`, or a tar builder over a `berth_archive::Recorder`).
pub type LayerWriter<'a> =
    &'a (dyn Fn(&mut dyn Write, Box<dyn Write + Send>) -> berth_archive::Result<()> + Sync);

/// The tar-split's name in a layer's dir (beside `diff`).
pub(crate) const TAR_SPLIT: &str = "tar-split";

/// The tar of the unpacked layer in `dir` (`dir/diff` and `dir/tar-split`).
pub(crate) fn rebuilt_tar(dir: &Path) -> Result<Box<dyn io::BufRead + Send>> {
    let split = dir.join(TAR_SPLIT);
    let f = File::open(&split).ctx(|| format!("open {}", split.display()))?;
    let r = berth_archive::rebuild(BufReader::with_capacity(1 << 16, f), &dir.join("diff"))
        .ctx(|| format!("read {}", split.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, r)))
}

/// Fails a read with a digest mismatch at EOF when the bytes read were not `diff_id`.
struct Verified<R: Read> {
    inner: Option<HashingReader<R>>,
    diff_id: String,
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let n = inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let (got, _) = self.inner.take().expect("reader").finish();
            if got != self.diff_id {
                return Err(io::Error::other(format!(
                    "layer {} was rebuilt as {got}: its unpacked files changed",
                    self.diff_id
                )));
            }
        }
        Ok(n)
    }
}

impl ImageStore {
    /// Applies the tar `write` produces straight into `<work>/unpacked/diff`, its tar-split
    /// beside it: the layer's bytes are written once. vfs unpacks each layer over a copy of its
    /// parent, so there the tar is staged as a file as before.
    pub(crate) fn stage_unpacked(&self, work: &WorkDir, write: LayerWriter) -> Result<StagedLayer> {
        if self.driver == Driver::Vfs {
            let (staged, written) = berth_archive::piped(
                |w| write(w, Box::new(io::sink())),
                |r| self.stage_layer(work, r),
            )
            .ctx(|| "the layer pipe".to_string())?;
            written.map_err(layer_err)?;
            return staged;
        }
        let dir = work.path().join("unpacked");
        let diff = dir.join("diff");
        fs::create_dir_all(&diff).ctx(|| format!("create {}", diff.display()))?;
        let split_path = dir.join(TAR_SPLIT);
        let split = File::create(&split_path).ctx(|| format!("create {}", split_path.display()))?;
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Overlay,
            expected_diff_id: None,
        };
        let (applied, written) = berth_archive::piped(
            |w| write(w, Box::new(BufWriter::with_capacity(1 << 16, split))),
            |r| berth_archive::apply_layer(r, &diff, &opts),
        )
        .ctx(|| "the layer pipe".to_string())?;
        // The writer's error says why; the reader's is only its echo (the pipe never passes a
        // half tar for a whole one, so the unpacked layer is all of what was written).
        written.map_err(layer_err)?;
        let applied = applied.map_err(layer_err)?;
        Ok(StagedLayer {
            path: dir,
            diff_id: applied.diff_id.clone(),
            size: applied.size,
            unpacked: Some(applied),
        })
    }

    /// The dir of a layer whose tar `diff_id` is kept as a tar-split (no blob file).
    pub(crate) fn split_layer_dir(&self, diff_id: &str) -> Result<Option<PathBuf>> {
        let chains: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT chain_id FROM layers WHERE diff_id = ?1")
                .db("find layer")?;
            let v = stmt
                .query_map([diff_id], |r| r.get(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .db("find layer")?;
            v
        };
        for c in chains {
            let dir = self.layer_path(&c)?;
            if dir.join(TAR_SPLIT).is_file() {
                return Ok(Some(dir));
            }
        }
        Ok(None)
    }

    /// The uncompressed tar of layer `diff_id` whose blob digest is the diff id: the blob when
    /// stored, else rebuilt from the unpacked layer (checked against the diff id at its end).
    pub fn layer_tar(&self, diff_id: &str) -> Result<Box<dyn Read + Send>> {
        let blob = self.blob_path(diff_id)?;
        if blob.is_file() {
            let f = File::open(&blob).ctx(|| format!("open {}", blob.display()))?;
            return Ok(Box::new(BufReader::with_capacity(1 << 20, f)));
        }
        let dir = self.split_layer_dir(diff_id)?.ok_or_else(|| Error::Io {
            context: format!("layer blob {diff_id}"),
            source: io::ErrorKind::NotFound.into(),
        })?;
        Ok(Box::new(Verified {
            inner: Some(HashingReader::new(rebuilt_tar(&dir)?)),
            diff_id: diff_id.to_string(),
        }))
    }
}

fn layer_err(e: berth_archive::Error) -> Error {
    Error::Io {
        context: "write the layer".into(),
        source: io::Error::other(e.to_string()),
    }
}
