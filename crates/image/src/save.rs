//! `berth save`: docker-archive (podman's layout: `<diff-id>.tar`, `<config-id>.json`,
//! manifest.json) or oci-archive (oci-layout, index.json, blobs). OCI saves carry the blobs
//! exactly as they were received, so every digest survives; docker-archive layers are the
//! uncompressed tars whose digests are the diff ids.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};

use crate::digest::{decompressed, digest_hex, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;
use crate::store::{Image, ImageStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    DockerArchive,
    OciArchive,
}

impl ArchiveFormat {
    pub fn parse(s: &str) -> Result<ArchiveFormat> {
        match s {
            "docker-archive" | "docker" => Ok(ArchiveFormat::DockerArchive),
            "oci-archive" | "oci" => Ok(ArchiveFormat::OciArchive),
            other => Err(Error::InvalidArchive(format!(
                "unknown format {other:?}: docker-archive or oci-archive"
            ))),
        }
    }
}

impl ImageStore {
    /// Writes the named images (a name saves that tag; an id saves the image without names, like docker).
    pub fn save<W: Write>(&self, names: &[String], format: ArchiveFormat, out: W) -> Result<()> {
        let _lock = self.lock(false)?;
        let mut images: Vec<(Image, Vec<Reference>)> = Vec::new();
        for n in names {
            let (id, r) = self.resolve_id(n)?;
            let pos = match images.iter().position(|(i, _)| i.id == id) {
                Some(p) => p,
                None => {
                    images.push((self.image(&id)?, vec![]));
                    images.len() - 1
                }
            };
            if let Some(r) = r {
                if !images[pos].1.contains(&r) {
                    images[pos].1.push(r);
                }
            }
        }
        let mut tar = tar::Builder::new(out);
        match format {
            ArchiveFormat::DockerArchive => self.write_docker(&mut tar, &images)?,
            ArchiveFormat::OciArchive => self.write_oci(&mut tar, &images)?,
        }
        tar.into_inner()
            .ctx(|| "finish the archive".to_string())?
            .flush()
            .ctx(|| "flush the archive".to_string())
    }

    fn write_docker<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        images: &[(Image, Vec<Reference>)],
    ) -> Result<()> {
        let mut written = HashSet::new();
        let mut manifest = Vec::new();
        for (img, names) in images {
            let mut layer_names = Vec::new();
            for l in &img.layers {
                let name = format!("{}.tar", digest_hex(&l.diff_id)?);
                if written.insert(name.clone()) {
                    self.append_uncompressed(tar, &name, l)?;
                }
                layer_names.push(name);
            }
            let config_name = format!("{}.json", img.id);
            if written.insert(config_name.clone()) {
                append_bytes(
                    tar,
                    &config_name,
                    &self.read_blob(&format!("sha256:{}", img.id))?,
                )?;
            }
            manifest.push(serde_json::json!({
                "Config": config_name,
                // Fully qualified: podman would put a familiar "me/app" under localhost/.
                "RepoTags": names.iter().map(|n| n.full()).collect::<Vec<_>>(),
                "Layers": layer_names,
            }));
        }
        append_bytes(
            tar,
            "manifest.json",
            &serde_json::to_vec(&manifest).expect("json"),
        )
    }

    /// A layer as its uncompressed tar; a compressed blob is expanded into a work file first
    /// (a tar header needs the size before the data).
    fn append_uncompressed<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        name: &str,
        l: &crate::store::ImageLayer,
    ) -> Result<()> {
        let path = self.blob_path(&l.blob_digest)?;
        if l.blob_digest == l.diff_id {
            return self.append_layer_tar(tar, name, &l.diff_id, l.blob_size);
        }
        let work = self.work_dir("save")?;
        let tmp = work.path().join("layer.tar");
        let src = BufReader::with_capacity(
            1 << 20,
            File::open(&path).ctx(|| format!("open {}", path.display()))?,
        );
        let mut r = decompressed(src).ctx(|| format!("decompress {}", path.display()))?;
        let mut w = HashingWriter::new(io::BufWriter::new(
            File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?,
        ));
        io::copy(&mut r, &mut w).ctx(|| format!("decompress {}", path.display()))?;
        let (bw, digest, _) = w.finish();
        bw.into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("write {}", tmp.display()))?;
        if digest != l.diff_id {
            return Err(Error::DigestMismatch {
                digest: l.diff_id.clone(),
                actual: digest,
            });
        }
        append_file(tar, name, &tmp)
    }

    /// An uncompressed layer blob: stored, or rebuilt from its unpacked layer (see unpacked.rs).
    fn append_layer_tar<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        name: &str,
        diff_id: &str,
        size: u64,
    ) -> Result<()> {
        let mut h = header(size, tar::EntryType::Regular, 0o644);
        tar.append_data(&mut h, name, self.layer_tar(diff_id)?.take(size))
            .ctx(|| format!("write {name} to the archive"))
    }

    fn write_oci<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        images: &[(Image, Vec<Reference>)],
    ) -> Result<()> {
        append_dir(tar, "blobs/")?;
        append_dir(tar, "blobs/sha256/")?;
        let mut written = HashSet::new();
        let mut manifests = Vec::new();
        for (img, names) in images {
            let blobs = [img.manifest_digest.clone(), format!("sha256:{}", img.id)];
            for b in blobs {
                if written.insert(b.clone()) {
                    append_file(
                        tar,
                        &format!("blobs/sha256/{}", digest_hex(&b)?),
                        &self.blob_path(&b)?,
                    )?;
                }
            }
            for l in &img.layers {
                if !written.insert(l.blob_digest.clone()) {
                    continue;
                }
                let name = format!("blobs/sha256/{}", digest_hex(&l.blob_digest)?);
                if l.blob_digest == l.diff_id {
                    self.append_layer_tar(tar, &name, &l.diff_id, l.blob_size)?;
                } else {
                    append_file(tar, &name, &self.blob_path(&l.blob_digest)?)?;
                }
            }
            let size = std::fs::metadata(self.blob_path(&img.manifest_digest)?)
                .ctx(|| format!("stat {}", img.manifest_digest))?
                .len();
            let desc = |annotations: Option<serde_json::Value>| {
                let mut d = serde_json::json!({"mediaType": img.manifest_media_type, "digest": img.manifest_digest, "size": size});
                if let Some(a) = annotations {
                    d["annotations"] = a;
                }
                d
            };
            if names.is_empty() {
                manifests.push(desc(None));
            }
            for n in names {
                manifests.push(desc(Some(serde_json::json!({
                    "org.opencontainers.image.ref.name": n.full(),
                    "io.containerd.image.name": n.full(),
                }))));
            }
        }
        append_bytes(tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        append_bytes(
            tar,
            "index.json",
            &serde_json::to_vec(&index).expect("json"),
        )
    }
}

fn header(size: u64, kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> Result<()> {
    let mut h = header(data.len() as u64, tar::EntryType::Regular, 0o644);
    tar.append_data(&mut h, name, data)
        .ctx(|| format!("write {name} to the archive"))
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut h = header(0, tar::EntryType::Directory, 0o755);
    tar.append_data(&mut h, name, io::empty())
        .ctx(|| format!("write {name} to the archive"))
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    path: &std::path::Path,
) -> Result<()> {
    let f = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let len = f
        .metadata()
        .ctx(|| format!("stat {}", path.display()))?
        .len();
    let mut h = header(len, tar::EntryType::Regular, 0o644);
    // take(): the header promised `len` bytes, never more.
    tar.append_data(&mut h, name, BufReader::with_capacity(1 << 20, f).take(len))
        .ctx(|| format!("write {name} to the archive"))
}
