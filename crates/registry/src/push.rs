//! Push: every blob of the stored image goes up byte for byte. A blob the repository has is
//! skipped (HEAD), one another repository of the registry has is mounted, the rest are uploaded
//! (monolithic PUT, or PATCH chunks then PUT for big ones); the manifest goes last, as stored.

use berth_image::{Image, ImageStore, LayerCompression, Reference};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::client::{error_text, pull_scope, push_scope, Client};
use crate::error::{Error, Result};
use crate::progress::{short, LayerStatus, Progress};
use crate::pull::Manifest;

#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Blobs uploaded at once (docker's default: 5).
    pub concurrency: usize,
    /// Blobs larger than this go up in PATCH chunks of this size; smaller ones in one PUT.
    pub chunk_size: u64,
    /// For layers stored uncompressed (commit, import): compressed on first push, then kept.
    pub compression: LayerCompression,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            concurrency: 5,
            chunk_size: 32 << 20,
            compression: LayerCompression::Gzip,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub size: u64,
}

struct Blob {
    digest: String,
    size: u64,
    /// Layers are reported to the progress display; the config is not (docker does the same).
    layer: bool,
}

fn with_query(mut url: Url, key: &str, value: &str) -> Url {
    url.query_pairs_mut().append_pair(key, value);
    url
}

/// Pushes `image` as `target` (its tag, "latest" when none).
pub fn push(
    store: &ImageStore,
    client: &Client,
    image: &Image,
    target: &Reference,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<Pushed> {
    let manifest_bytes = with_compressed_layers(
        store,
        store.read_blob(&image.manifest_digest)?,
        opts.compression,
    )?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| Error::Protocol(format!("stored manifest {}: {e}", image.manifest_digest)))?;
    let repo = target.path.clone();
    // Other repositories of this registry holding the image: candidates for a cross-repo mount.
    let mut mount_from: Vec<String> = image
        .names
        .iter()
        .filter(|n| n.domain == target.domain && n.path != target.path)
        .map(|n| n.path.clone())
        .collect();
    mount_from.dedup();

    let mut blobs: Vec<Blob> = Vec::new();
    for l in &manifest.layers {
        if !blobs.iter().any(|b| b.digest == l.digest) {
            blobs.push(Blob {
                digest: l.digest.clone(),
                size: l.size,
                layer: true,
            });
        }
    }
    blobs.push(Blob {
        digest: manifest.config.digest.clone(),
        size: manifest.config.size,
        layer: false,
    });
    for b in &blobs {
        if b.layer {
            progress.layer(short(&b.digest), LayerStatus::Preparing);
        }
    }

    // Paths resolved here: the store itself stays on this thread.
    let blobs: Vec<(Blob, std::path::PathBuf)> = blobs
        .into_iter()
        .map(|b| store.blob_path(&b.digest).map(|p| (b, p)))
        .collect::<std::result::Result<_, _>>()?;
    let threads = opts.concurrency.max(1).min(blobs.len());
    let queue = Mutex::new(blobs.iter());
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Some((b, path)) = queue.lock().unwrap().next() else {
                    return;
                };
                let res = push_blob(client, &repo, &mount_from, b, path, opts, progress);
                match res {
                    Ok(status) => {
                        if b.layer {
                            progress.layer(short(&b.digest), status)
                        }
                    }
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        first_error.lock().unwrap().get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }

    let tag = target.tag.clone().unwrap_or_else(|| "latest".into());
    let url = client.url(&format!("/v2/{repo}/manifests/{tag}"))?;
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| image.manifest_media_type.clone());
    let resp = client.send(Method::PUT, url, &[push_scope(&repo)], |r| {
        r.header(CONTENT_TYPE, media_type.clone())
            .body(manifest_bytes.clone())
    })?;
    if !resp.status().is_success() {
        return Err(Error::Protocol(format!(
            "manifest upload to {}/{repo}:{tag}: {}",
            target.domain,
            error_text(resp)
        )));
    }
    Ok(Pushed {
        digest: berth_image::sha256_digest(&manifest_bytes),
        size: manifest_bytes.len() as u64,
    })
}

fn push_blob(
    client: &Client,
    repo: &str,
    mount_from: &[String],
    b: &Blob,
    path: &Path,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<LayerStatus> {
    let scopes = vec![push_scope(repo)];
    let url = client.url(&format!("/v2/{repo}/blobs/{}", b.digest))?;
    let resp = client.send(Method::HEAD, url, &scopes, |r| r)?;
    if resp.status().is_success() {
        return Ok(LayerStatus::LayerExists);
    }
    let mut session: Option<Url> = None;
    for from in mount_from {
        let url = with_query(
            with_query(
                client.url(&format!("/v2/{repo}/blobs/uploads/"))?,
                "mount",
                &b.digest,
            ),
            "from",
            from,
        );
        let resp = client.send(
            Method::POST,
            url,
            &[push_scope(repo), pull_scope(from)],
            |r| r.header(CONTENT_LENGTH, "0"),
        )?;
        match resp.status() {
            StatusCode::CREATED => return Ok(LayerStatus::Mounted { from: from.clone() }),
            // Not mountable: the registry opened an ordinary upload instead.
            StatusCode::ACCEPTED => {
                session = Some(client.location(resp.headers())?);
                break;
            }
            _ => {}
        }
    }
    let mut location = match session {
        Some(l) => l,
        None => {
            let url = client.url(&format!("/v2/{repo}/blobs/uploads/"))?;
            let resp = client.send(Method::POST, url, &scopes, |r| {
                r.header(CONTENT_LENGTH, "0")
            })?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(Error::Protocol(format!(
                    "starting an upload to {repo}: {}",
                    error_text(resp)
                )));
            }
            client.location(resp.headers())?
        }
    };
    let id = short(&b.digest).to_string();
    if b.size > opts.chunk_size {
        let mut start = 0u64;
        while start < b.size {
            let len = opts.chunk_size.min(b.size - start);
            let mut f = std::fs::File::open(path)
                .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
            f.seek(SeekFrom::Start(start))
                .map_err(|e| Error::io(format!("seek {}", path.display()), e))?;
            let body = reqwest::blocking::Body::sized(f.take(len), len);
            let range = format!("{}-{}", start, start + len - 1);
            let body = std::sync::Mutex::new(Some(body));
            let resp = client.send(Method::PATCH, location.clone(), &scopes, |r| {
                let r = r
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_RANGE, range.clone());
                match body.lock().unwrap().take() {
                    Some(b) => r.body(b),
                    None => r,
                }
            })?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(Error::Protocol(format!(
                    "uploading {} (bytes {range}): {}",
                    b.digest,
                    error_text(resp)
                )));
            }
            location = client.location(resp.headers())?;
            start += len;
            if b.layer {
                progress.layer(
                    &id,
                    LayerStatus::Pushing {
                        current: start,
                        total: b.size,
                    },
                );
            }
        }
        let url = with_query(location, "digest", &b.digest);
        let resp = client.send(Method::PUT, url, &scopes, |r| r.header(CONTENT_LENGTH, "0"))?;
        if resp.status() != StatusCode::CREATED {
            return Err(Error::Protocol(format!(
                "finishing the upload of {}: {}",
                b.digest,
                error_text(resp)
            )));
        }
    } else {
        let url = with_query(location, "digest", &b.digest);
        let body = std::sync::Mutex::new(Some(Client::file_body(path, b.size)?));
        let resp = client.send(Method::PUT, url, &scopes, |r| {
            let r = r.header(CONTENT_TYPE, "application/octet-stream");
            match body.lock().unwrap().take() {
                Some(b) => r.body(b),
                None => r,
            }
        })?;
        if resp.status() != StatusCode::CREATED {
            return Err(Error::Protocol(format!(
                "uploading {}: {}",
                b.digest,
                error_text(resp)
            )));
        }
        if b.layer {
            progress.layer(
                &id,
                LayerStatus::Pushing {
                    current: b.size,
                    total: b.size,
                },
            );
        }
    }
    Ok(LayerStatus::Pushed)
}

/// Media types of uncompressed layers.
const PLAIN_LAYERS: [&str; 2] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
];

/// The stored manifest, with each uncompressed layer replaced by its compressed blob (made once
/// and kept by the store). Unchanged bytes when every layer is compressed already.
fn with_compressed_layers(
    store: &ImageStore,
    manifest: Vec<u8>,
    c: LayerCompression,
) -> Result<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(&manifest)
        .map_err(|e| Error::Protocol(format!("stored manifest: {e}")))?;
    let mut changed = false;
    if let Some(layers) = v.get_mut("layers").and_then(|l| l.as_array_mut()) {
        for l in layers {
            let mt = l.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
            if !PLAIN_LAYERS.contains(&mt) {
                continue;
            }
            let digest = l
                .get("digest")
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .to_string();
            let info = store.compressed_layer(&digest, c)?;
            l["digest"] = serde_json::json!(info.digest);
            l["size"] = serde_json::json!(info.size);
            l["mediaType"] = serde_json::json!(info.media_type);
            changed = true;
        }
    }
    Ok(if changed {
        serde_json::to_vec(&v).expect("json")
    } else {
        manifest
    })
}
