//! Compressed copies of uncompressed layer blobs (layers made by commit or import are stored
//! as plain tars: their blob digest is their diff id). A push compresses such a layer once and
//! the store keeps that blob and its digest, so the next push sends the same bytes.

use rusqlite::{params, OptionalExtension};
use std::fs::File;
use std::io::{self, BufWriter};

use crate::digest::HashingWriter;
use crate::error::{DbContext, Error, IoContext, Result};
use crate::fsutil;
use crate::store::ImageStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    Gzip,
    Zstd,
}

impl LayerCompression {
    pub fn parse(s: &str) -> Result<LayerCompression> {
        match s {
            "gzip" => Ok(LayerCompression::Gzip),
            "zstd" => Ok(LayerCompression::Zstd),
            other => Err(Error::InvalidArchive(format!(
                "unknown compression format {other:?}: gzip or zstd"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "gzip",
            LayerCompression::Zstd => "zstd",
        }
    }
    pub fn media_type(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            LayerCompression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// A stored blob: digest, size, media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

impl ImageStore {
    /// The compressed blob of the uncompressed layer blob `diff_id`: made (and kept) on first use.
    pub fn compressed_layer(&self, diff_id: &str, c: LayerCompression) -> Result<BlobInfo> {
        let known = self
            .conn
            .query_row(
                "SELECT blob_digest, blob_size, media_type FROM compressed_blobs WHERE diff_id = ?1 AND compression = ?2",
                params![diff_id, c.name()],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)),
            )
            .optional()
            .db("find compressed blob")?;
        if let Some((digest, size, media_type)) = known {
            if self.has_blob(&digest) {
                return Ok(BlobInfo {
                    digest,
                    size: size as u64,
                    media_type,
                });
            }
        }
        let _lock = self.lock(false)?;
        let work = self.work_dir("compress")?;
        let tmp = work.path().join("blob");
        let out = HashingWriter::new(BufWriter::with_capacity(
            1 << 20,
            File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?,
        ));
        let mut input = self.layer_tar(diff_id)?;
        let out = match c {
            LayerCompression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
                io::copy(&mut input, &mut e).ctx(|| format!("compress {diff_id}"))?;
                e.finish().ctx(|| format!("compress {diff_id}"))?
            }
            LayerCompression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, 3).ctx(|| "zstd".to_string())?;
                io::copy(&mut input, &mut e).ctx(|| format!("compress {diff_id}"))?;
                e.finish().ctx(|| format!("compress {diff_id}"))?
            }
        };
        let (bw, digest, size) = out.finish();
        let f = bw
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("write {}", tmp.display()))?;
        let dest = self.blob_path(&digest)?;
        fsutil::publish(&f, &tmp, &dest).ctx(|| format!("move blob into {}", dest.display()))?;
        let info = BlobInfo {
            digest,
            size,
            media_type: c.media_type().to_string(),
        };
        self.with_tx(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO compressed_blobs (diff_id, compression, blob_digest, blob_size, media_type) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![diff_id, c.name(), info.digest, info.size as i64, info.media_type],
            )
            .db("record compressed blob")?;
            tx.execute("INSERT OR REPLACE INTO verified_blobs (blob_digest, diff_id) VALUES (?1, ?2)", params![info.digest, diff_id])
                .db("record verified blob")?;
            Ok(())
        })?;
        Ok(info)
    }
}
