//! Images made from a parent image, an optional new layer and a config the caller wrote whole
//! (the Dockerfile builder: each step is one image; metadata steps add no layer).

use serde_json::{json, Value};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::PathBuf;

use crate::digest::{decompressed, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::WorkDir;
use crate::install::{make_manifest, Member, MemberData, NewImage, NewLayer, OCI_MANIFEST};
use crate::reference::Reference;
use crate::speculate::Speculation;
use crate::store::{Image, ImageStore};
use crate::unpacked::LayerWriter;

/// A new layer in a work dir: its diff id (sha256 of the tar) and size, and either the tar
/// (`path` is the file) or, when `unpacked`, the layer already applied (`path` is the dir
/// holding `diff` and the tar-split).
pub(crate) struct StagedLayer {
    pub path: PathBuf,
    pub diff_id: String,
    pub size: u64,
    pub unpacked: Option<berth_archive::Applied>,
}

impl ImageStore {
    /// Copies `layer` (a tar, plain or compressed) uncompressed into `work`, hashing it.
    pub(crate) fn stage_layer<R: Read>(&self, work: &WorkDir, layer: R) -> Result<StagedLayer> {
        let path = work.path().join("layer.tar");
        let mut input = decompressed(BufReader::with_capacity(1 << 20, layer))
            .ctx(|| "read the layer".to_string())?;
        let mut w = HashingWriter::new(BufWriter::with_capacity(
            1 << 20,
            File::create(&path).ctx(|| format!("create {}", path.display()))?,
        ));
        io::copy(&mut input, &mut w)
            .map_err(|e| Error::InvalidArchive(format!("reading the layer: {e}")))?;
        let (bw, diff_id, size) = w.finish();
        bw.into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("write {}", path.display()))?;
        Ok(StagedLayer {
            path,
            diff_id,
            size,
            unpacked: None,
        })
    }

    /// Installs an image: `parent`'s layers, then `layer` if any, with `config` as given except
    /// `rootfs`, which is set from the layers. Returns the new image's id (hex).
    pub(crate) fn install_derived(
        &self,
        work: &WorkDir,
        parent: Option<&Image>,
        layer: Option<StagedLayer>,
        mut config: Value,
        names: Vec<Reference>,
    ) -> Result<String> {
        let mut members = Vec::new();
        let mut layers = Vec::new();
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for l in parent.map(|p| p.layers.as_slice()).unwrap_or_default() {
            let path = self.blob_path(&l.blob_digest)?;
            let data = match self.split_layer_dir(&l.blob_digest)? {
                Some(dir) if !path.is_file() => MemberData::Split(dir),
                _ => MemberData::File(path),
            };
            members.push(Member::new(l.blob_digest.clone(), l.blob_size, data));
            layers.push(NewLayer {
                diff_id: l.diff_id.clone(),
                member: members.len() - 1,
                media_type: l.blob_media_type.clone(),
            });
            descs.push((
                l.blob_digest.clone(),
                l.blob_size,
                l.blob_media_type.clone(),
            ));
            diff_ids.push(l.diff_id.clone());
        }
        if let Some(l) = layer {
            let media_type = "application/vnd.oci.image.layer.v1.tar".to_string();
            let m = match l.unpacked {
                Some(applied) => {
                    let m =
                        Member::new(l.diff_id.clone(), l.size, MemberData::Split(l.path.clone()));
                    *m.spec.lock().unwrap() = Some(Speculation::done(l.path, applied));
                    m
                }
                None => Member::new(l.diff_id.clone(), l.size, MemberData::File(l.path)),
            };
            members.push(m);
            layers.push(NewLayer {
                diff_id: l.diff_id.clone(),
                member: members.len() - 1,
                media_type: media_type.clone(),
            });
            descs.push((l.diff_id.clone(), l.size, media_type));
            diff_ids.push(l.diff_id);
        }
        let obj = config.as_object_mut().ok_or_else(|| Error::InvalidConfig {
            id: "new".into(),
            reason: "not an object".into(),
        })?;
        obj.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        let config = serde_json::to_vec(&config).expect("json");
        crate::install::check_config(&config)?;
        let manifest = make_manifest(&config, &descs);
        let image = NewImage {
            config,
            manifest,
            manifest_media_type: OCI_MANIFEST.into(),
            layers,
            names,
        };
        let loaded = self.install(work, &members, vec![image])?;
        let id = loaded[0].id.clone();
        if let Some(p) = parent {
            // docker's Parent: what history and `images -a` follow to local base images.
            self.set_parent(&id, &p.id)?;
        }
        Ok(id)
    }

    /// A new image from `parent` (an image id or name; none: from scratch), an optional layer
    /// tar on top, and `config`: the whole image config (history included) except `rootfs`.
    /// An image with the same config and layers is the same image (same id), stored once.
    pub fn derive<R: Read>(
        &self,
        parent: Option<&str>,
        layer: Option<R>,
        config: Value,
    ) -> Result<String> {
        self.derive_with(parent, config, |store, work| {
            layer.map(|l| store.stage_layer(work, l)).transpose()
        })
    }

    /// [`ImageStore::derive`] with a layer that `write` writes: it is unpacked as it is written
    /// and kept only unpacked (with its tar-split), so its bytes are written once.
    pub fn derive_from(
        &self,
        parent: Option<&str>,
        write: LayerWriter,
        config: Value,
    ) -> Result<String> {
        self.derive_with(parent, config, |store, work| {
            store.stage_unpacked(work, write).map(Some)
        })
    }

    fn derive_with(
        &self,
        parent: Option<&str>,
        config: Value,
        stage: impl FnOnce(&ImageStore, &WorkDir) -> Result<Option<StagedLayer>>,
    ) -> Result<String> {
        let _lock = self.lock(false)?;
        let parent = parent.map(|p| self.resolve(p)).transpose()?;
        let work = self.work_dir("derive")?;
        let staged = stage(self, &work)?;
        self.install_derived(&work, parent.as_ref(), staged, config, Vec::new())
    }
}
