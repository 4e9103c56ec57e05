//! `berth load`: docker-archive (manifest.json) and oci-archive (oci-layout + index.json), told
//! apart by content. The archive is read once, front to back; every file is hashed while it is
//! copied into the work dir (small ones stay in memory), then the images are planned and installed.

use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path};

use crate::digest::{digest_hex, is_hex64, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::install::{
    check_config, layer_media_type, make_manifest, LoadedImage, Member, MemberData, NewImage,
    NewLayer, OCI_MANIFEST,
};
use crate::reference::Reference;
use crate::speculate::{looks_like_layer, Speculation};
use crate::store::Driver;
use crate::store::ImageStore;

/// Files up to this size stay in memory (manifests, configs, small layers).
const IN_MEMORY: u64 = 1 << 20;
const JSON_LIMIT: u64 = 64 << 20;

struct Archive {
    members: Vec<Member>,
    /// Normalised path in the archive → member index (symlinks and hard links resolved).
    by_path: HashMap<String, usize>,
}

impl Archive {
    fn get(&self, path: &str) -> Option<usize> {
        self.by_path.get(&normalize(Path::new(path))?).copied()
    }
    fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let i = self
            .get(path)
            .ok_or_else(|| Error::InvalidArchive(format!("{path} is missing")))?;
        let b = self.members[i].bytes(JSON_LIMIT)?;
        serde_json::from_slice(&b).map_err(|e| Error::InvalidArchive(format!("{path}: {e}")))
    }
}

impl ImageStore {
    /// Loads every image of a docker-archive or oci-archive stream. Nothing is recorded unless
    /// the whole archive checks out.
    pub fn load<R: Read>(&self, input: R) -> Result<Vec<LoadedImage>> {
        let loaded = self.load_archive(input)?;
        for img in &loaded {
            let id = format!("sha256:{}", img.id);
            if img.names.is_empty() {
                self.event("load", &id, "");
            }
            for n in &img.names {
                self.event("load", &id, &n.familiar());
            }
        }
        Ok(loaded)
    }

    fn load_archive<R: Read>(&self, input: R) -> Result<Vec<LoadedImage>> {
        let _lock = self.lock(false)?;
        let work = self.work_dir("load")?;
        // Declared after `work`: dropped first, so unfinished unpacks stop before the dir goes.
        let archive = read_archive(input, work.path(), &|key: &str, started: usize| {
            self.may_speculate(key, started)
        })?;
        let images = if archive.get("manifest.json").is_some() {
            docker_images(&archive)?
        } else if archive.get("index.json").is_some() {
            oci_images(&archive)?
        } else {
            return Err(Error::InvalidArchive(
                "neither manifest.json (docker-archive) nor index.json (oci-archive) found".into(),
            ));
        };
        if images.is_empty() {
            return Err(Error::InvalidArchive("the archive holds no image".into()));
        }
        self.install(&work, &archive.members, images)
    }
}

impl ImageStore {
    /// Unpack a blob while reading? Only for overlay (vfs needs the parent first), a few at a
    /// time, and not when the store already has it (by the digest in its name).
    fn may_speculate(&self, key: &str, started: usize) -> bool {
        if self.driver != Driver::Overlay
            || started
                >= std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
        {
            return false;
        }
        let name = key.rsplit('/').next().unwrap_or(key);
        let hex = name.strip_suffix(".tar").unwrap_or(name);
        !(is_hex64(hex)
            && (self.root.join("blobs/sha256").join(hex).exists()
                || self.root.join("layers").join(hex).exists()))
    }
}

fn bad_tar(e: io::Error) -> Error {
    Error::InvalidArchive(format!("reading the archive: {e}"))
}

fn read_archive<R: Read>(
    input: R,
    work: &Path,
    may_speculate: &dyn Fn(&str, usize) -> bool,
) -> Result<Archive> {
    let mut started = 0usize;
    let mut tar = tar::Archive::new(input);
    let mut members = Vec::new();
    let mut by_path = HashMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    for entry in tar.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let path = entry.path().map_err(bad_tar)?.into_owned();
        let Some(key) = normalize(&path) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(bad_tar)?
                .unwrap_or_default()
                .into_owned();
            // Symlink targets are relative to the link's dir; hard link names to the archive root.
            let full = if kind.is_symlink() {
                path.parent().unwrap_or(Path::new("")).join(&target)
            } else {
                target
            };
            if let Some(t) = normalize(&full) {
                links.push((key, t));
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        let (data, digest) = if size <= IN_MEMORY {
            let mut v = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut v).map_err(bad_tar)?;
            if v.len() as u64 != size {
                return Err(Error::InvalidArchive(format!("{key}: truncated")));
            }
            let digest = crate::digest::sha256_digest(&v);
            (MemberData::Mem(v), digest)
        } else {
            let p = work.join(format!("in-{}", members.len()));
            let f = File::create(&p).ctx(|| format!("create {}", p.display()))?;
            let mut w = HashingWriter::new(f);
            let mut buf = vec![0u8; 1 << 20];
            let mut spec: Option<Speculation> = None;
            let mut n = 0u64;
            loop {
                let k = read_chunk(&mut entry, &mut buf).map_err(bad_tar)?;
                if k == 0 {
                    break;
                }
                w.write_all(&buf[..k])
                    .ctx(|| format!("write {}", p.display()))?;
                if n == 0 && looks_like_layer(&buf[..k]) && may_speculate(&key, started) {
                    spec =
                        Speculation::start(&p, work.join(format!("spec-{}", members.len()))).ok();
                    started += spec.is_some() as usize;
                }
                n += k as u64;
                if let Some(s) = &spec {
                    s.progress.wrote(k as u64);
                }
            }
            if n != size {
                return Err(Error::InvalidArchive(format!("{key}: truncated")));
            }
            if let Some(s) = &spec {
                s.progress.finish();
            }
            let (_, digest, _) = w.finish();
            members.push(Member::new(digest, size, MemberData::File(p)));
            *members.last().unwrap().spec.lock().unwrap() = spec;
            by_path.insert(key, members.len() - 1);
            continue;
        };
        members.push(Member::new(digest, size, data));
        by_path.insert(key, members.len() - 1);
    }
    // Resolve links (a few rounds for links to links).
    for _ in 0..8 {
        for (from, to) in &links {
            if let Some(&i) = by_path.get(to) {
                by_path.entry(from.clone()).or_insert(i);
            }
        }
    }
    Ok(Archive { members, by_path })
}

/// Fills `buf` as far as the reader goes; 0 only at the end.
fn read_chunk(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

/// "./a/b/" → "a/b"; paths leaving the archive root are dropped.
fn normalize(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

#[derive(Deserialize)]
struct DockerManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn docker_images(a: &Archive) -> Result<Vec<NewImage>> {
    let items: Vec<DockerManifestItem> = a.json("manifest.json")?;
    let mut out = Vec::new();
    for item in items {
        let ci = a
            .get(&item.config)
            .ok_or_else(|| Error::InvalidArchive(format!("config {} is missing", item.config)))?;
        let config = a.members[ci].bytes(JSON_LIMIT)?;
        let (diff_ids, _) = check_config(&config)?;
        if diff_ids.len() != item.layers.len() {
            return Err(Error::InvalidArchive(format!(
                "{}: {} layers in manifest.json but {} diff ids in the config",
                item.config,
                item.layers.len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        let mut descs = Vec::new();
        for (path, diff_id) in item.layers.iter().zip(diff_ids) {
            let member = a
                .get(path)
                .ok_or_else(|| Error::InvalidArchive(format!("layer {path} is missing")))?;
            let m = &a.members[member];
            let media_type = layer_media_type(&m.head()?).to_string();
            descs.push((m.digest.clone(), m.size, media_type.clone()));
            layers.push(NewLayer {
                diff_id,
                member,
                media_type,
            });
        }
        let names = item
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>>>()?;
        let manifest = make_manifest(&config, &descs);
        out.push(NewImage {
            config,
            manifest,
            manifest_media_type: OCI_MANIFEST.into(),
            layers,
            names,
        });
    }
    Ok(out)
}

#[derive(Deserialize, Clone)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize, Clone)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The member holding a blob, checked against the descriptor's digest and size.
fn blob(a: &Archive, d: &Descriptor) -> Result<usize> {
    let hex = digest_hex(&d.digest)?;
    let i = a
        .get(&format!("blobs/sha256/{hex}"))
        .ok_or_else(|| Error::InvalidArchive(format!("blob {} is missing", d.digest)))?;
    let m = &a.members[i];
    if m.digest != d.digest {
        return Err(Error::DigestMismatch {
            digest: d.digest.clone(),
            actual: m.digest.clone(),
        });
    }
    if m.size != d.size {
        return Err(Error::InvalidArchive(format!(
            "blob {}: size is {}, the descriptor says {}",
            d.digest, m.size, d.size
        )));
    }
    Ok(i)
}

fn host_arch() -> &'static str {
    crate::host_arch()
}

fn oci_images(a: &Archive) -> Result<Vec<NewImage>> {
    let index: Index = a.json("index.json")?;
    let mut out = Vec::new();
    for d in &index.manifests {
        let names = oci_names(d)?;
        let mut desc = d.clone();
        // Nested indexes: pick this host's platform.
        for _ in 0..4 {
            if !INDEX_TYPES.contains(&desc.media_type.as_str()) {
                break;
            }
            let mut nested: Index =
                serde_json::from_slice(&a.members[blob(a, &desc)?].bytes(JSON_LIMIT)?)
                    .map_err(|e| Error::InvalidArchive(format!("index {}: {e}", desc.digest)))?;
            let pick = nested
                .manifests
                .iter()
                .position(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
                })
                .or(if nested.manifests.is_empty() {
                    None
                } else {
                    Some(0)
                })
                .ok_or_else(|| {
                    Error::InvalidArchive(format!("index {} lists no manifest", desc.digest))
                })?;
            desc = nested.manifests.swap_remove(pick);
        }
        let manifest_bytes = a.members[blob(a, &desc)?].bytes(JSON_LIMIT)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| Error::InvalidArchive(format!("manifest {}: {e}", desc.digest)))?;
        let config = a.members[blob(a, &manifest.config)?].bytes(JSON_LIMIT)?;
        let (diff_ids, _) = check_config(&config)?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::InvalidArchive(format!(
                "manifest {}: {} layers but {} diff ids in the config",
                desc.digest,
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (l, diff_id) in manifest.layers.iter().zip(diff_ids) {
            let member = blob(a, l)?;
            layers.push(NewLayer {
                diff_id,
                member,
                media_type: l.media_type.clone(),
            });
        }
        let media = manifest.media_type.clone().unwrap_or_else(|| {
            if desc.media_type.is_empty() {
                OCI_MANIFEST.into()
            } else {
                desc.media_type.clone()
            }
        });
        out.push(NewImage {
            config,
            manifest: manifest_bytes,
            manifest_media_type: media,
            layers,
            names,
        });
    }
    Ok(out)
}

/// Names from an index entry: podman writes the full name in `org.opencontainers.image.ref.name`,
/// docker a bare tag there plus the name in `io.containerd.image.name`.
fn oci_names(d: &Descriptor) -> Result<Vec<Reference>> {
    if let Some(n) = d.annotations.get("io.containerd.image.name") {
        return Ok(vec![Reference::parse(n)?]);
    }
    match d.annotations.get("org.opencontainers.image.ref.name") {
        Some(n) if n.contains('/') || n.contains(':') => Ok(vec![Reference::parse(n)?]),
        _ => Ok(vec![]),
    }
}
