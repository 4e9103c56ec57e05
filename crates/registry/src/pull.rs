//! Pull: resolve (tag → manifest, index → this platform's manifest), then fetch the config and
//! the layers the store lacks, a few at a time, each streamed into the store's ingest (hashed,
//! size-checked, unpacking as it arrives) and resumed with a Range request when a connection
//! drops. Each blob that checked out is kept in the store's content at once, so a pull that
//! fails or is killed later does not fetch it again; the image is recorded only when everything
//! checked out.

use berth_image::{BlobWriter, ImageStore, Reference};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::client::{error_text, pull_scope, read_limited, Client};
use crate::config::{Config, Platform};
use crate::error::{Error, Result};
use crate::progress::{short, LayerStatus, Progress, PullReport};

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to pick from an index (the host's when unset).
    pub platform: Option<Platform>,
    /// Layers downloaded at once (docker's default: 3).
    pub concurrency: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            concurrency: 3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pulled {
    /// Image id (hex).
    pub id: String,
    pub manifest_digest: String,
    /// The candidate of the name that was pulled.
    pub reference: Reference,
    /// True when the store already had this manifest under this name.
    pub up_to_date: bool,
}

impl Pulled {
    /// docker's closing line of a pull: "Status: Image is up to date for NAME" or
    /// "Status: Downloaded newer image for NAME", NAME familiar (by digest when pulled by one).
    fn status_line(&self) -> String {
        let r = &self.reference;
        let familiar = if r.tag.is_some() {
            r.familiar()
        } else {
            format!(
                "{}@{}",
                berth_image::familiar_repository(&r.repository()),
                self.manifest_digest
            )
        };
        let what = if self.up_to_date {
            "Image is up to date for"
        } else {
            "Downloaded newer image for"
        };
        format!("Status: {what} {familiar}")
    }
}

#[derive(Deserialize, Clone, Debug)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<PlatformField>,
}

#[derive(Deserialize, Clone, Debug)]
pub(crate) struct PlatformField {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
pub(crate) struct Manifest {
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

fn sha256(bytes: &[u8]) -> String {
    berth_image::sha256_digest(bytes)
}

/// Fetches a manifest or index by tag or digest: (bytes, media type), digest checked.
fn fetch_manifest(
    client: &Client,
    r: &Reference,
    reference: &str,
    scopes: &[String],
) -> Result<(Vec<u8>, String)> {
    let resp = client.manifest_request(Method::GET, &r.path, reference, scopes)?;
    let status = resp.status();
    if status == StatusCode::NOT_FOUND {
        return Err(Error::NotFound(format!(
            "manifest for {}/{}:{} not found: {}",
            r.domain,
            r.path,
            reference,
            error_text(resp)
        )));
    }
    if !status.is_success() {
        return Err(Error::Protocol(format!(
            "manifest {}/{}:{reference}: {}",
            r.domain,
            r.path,
            error_text(resp)
        )));
    }
    let ct = Client::content_type(&resp);
    let header_digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = read_limited(
        resp,
        crate::MANIFEST_LIMIT,
        &format!("manifest {}/{}:{reference}", r.domain, r.path),
    )?;
    let actual = sha256(&bytes);
    if reference.starts_with("sha256:") && actual != reference {
        return Err(Error::Protocol(format!(
            "manifest {reference}: content digest is {actual}"
        )));
    }
    if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:")) {
        if h != actual {
            return Err(Error::Protocol(format!(
                "manifest {}/{}:{reference}: the registry says its digest is {h}, its content's is {actual}",
                r.domain, r.path
            )));
        }
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Protocol(format!("manifest {}/{}:{reference}: {e}", r.domain, r.path))
    })?;
    let body_type = v
        .get("mediaType")
        .and_then(|m| m.as_str())
        .map(str::to_string);
    let schema1 = v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1)
        || ct.as_deref().is_some_and(|c| crate::SCHEMA1.contains(&c));
    if schema1 {
        return Err(Error::Protocol(format!(
            "{}/{}:{reference} has a Docker schema 1 manifest, which berth does not support (deprecated since 2017; push it again with a current tool)",
            r.domain, r.path
        )));
    }
    let media_type =
        match body_type.or(ct.filter(|c| c.contains("manifest") || c.contains("index"))) {
            Some(m) => m,
            None if v.get("manifests").is_some() => crate::OCI_INDEX.into(),
            None => crate::OCI_MANIFEST.into(),
        };
    Ok((bytes, media_type))
}

fn pick_platform(index: &Index, want: &Platform, what: &str) -> Result<Descriptor> {
    let matches = |p: &PlatformField| {
        p.os == want.os
            && p.architecture == want.architecture
            && (want.variant.is_none() || p.variant == want.variant)
    };
    if let Some(d) = index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(matches))
    {
        return Ok(d.clone());
    }
    let have: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    Err(Error::NotFound(format!(
        "{what}: no image for platform {want} (the index has: {})",
        if have.is_empty() {
            "none".into()
        } else {
            have.join(", ")
        }
    )))
}

/// Fetches a small blob (a config) into memory, checked against its descriptor.
fn fetch_small_blob(
    client: &Client,
    repo: &str,
    d: &Descriptor,
    scopes: &[String],
) -> Result<Vec<u8>> {
    if d.size > crate::CONFIG_LIMIT {
        return Err(Error::Protocol(format!(
            "config {} is too large ({} bytes)",
            d.digest, d.size
        )));
    }
    let url = client.url(&format!("/v2/{repo}/blobs/{}", d.digest))?;
    let resp = client.send(Method::GET, url, scopes, |r| r)?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(Error::NotFound(format!(
            "blob {} not found in {repo}: {}",
            d.digest,
            error_text(resp)
        )));
    }
    if !resp.status().is_success() {
        return Err(Error::Protocol(format!(
            "blob {}: {}",
            d.digest,
            error_text(resp)
        )));
    }
    let bytes = read_limited(resp, d.size, &format!("blob {}", d.digest))?;
    let actual = sha256(&bytes);
    if bytes.len() as u64 != d.size || actual != d.digest {
        return Err(Error::Store(berth_image::Error::DigestMismatch {
            digest: d.digest.clone(),
            actual,
        }));
    }
    Ok(bytes)
}

/// How many times a dropped download is resumed (each attempt must have made progress).
const RESUMES: usize = 5;

/// Streams one blob into `w`, resuming with Range where the last attempt stopped.
fn fetch_blob(
    client: &Client,
    repo: &str,
    digest: &str,
    scopes: &[String],
    w: &mut BlobWriter,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<()> {
    let id = short(digest).to_string();
    let total = w.size();
    let mut resumes = 0;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let start = w.written();
        let url = client.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let resp = client.send(Method::GET, url, scopes, |r| {
            if start > 0 {
                r.header(RANGE, format!("bytes={start}-"))
            } else {
                r
            }
        })?;
        match resp.status() {
            StatusCode::OK if start == 0 => {}
            StatusCode::PARTIAL_CONTENT if start > 0 => {
                let cr = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
                if !cr.starts_with(&format!("bytes {start}-")) {
                    return Err(Error::Protocol(format!("blob {digest}: asked for bytes from {start}, got range {cr:?}")));
                }
            }
            StatusCode::OK => {
                return Err(Error::Network(format!(
                    "blob {digest}: the connection dropped after {start} of {total} bytes and the registry cannot resume (it ignored the Range request)"
                )))
            }
            StatusCode::NOT_FOUND => return Err(Error::NotFound(format!("blob {digest} not found in {repo}: {}", error_text(resp)))),
            _ => return Err(Error::Protocol(format!("blob {digest}: {}", error_text(resp)))),
        }
        let mut resp = resp;
        let mut interrupted: Option<std::io::Error> = None;
        let mut last_report = start;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Network("cancelled".into()));
            }
            match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    w.write_all(&buf[..n]).map_err(|e| match e.kind() {
                        std::io::ErrorKind::InvalidData => Error::Protocol(e.to_string()),
                        _ => Error::io(format!("write blob {digest}"), e),
                    })?;
                    if w.written() - last_report >= 1 << 20 || w.written() == total {
                        last_report = w.written();
                        progress.layer(
                            &id,
                            LayerStatus::Downloading {
                                current: w.written(),
                                total,
                            },
                        );
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    interrupted = Some(e);
                    break;
                }
            }
        }
        if w.written() == total {
            return Ok(());
        }
        if w.written() > start && resumes < RESUMES {
            resumes += 1;
            progress.layer(&id, LayerStatus::Retrying { at: w.written() });
            continue;
        }
        return Err(Error::Network(format!(
            "blob {digest}: the connection closed after {} of {total} bytes{}",
            w.written(),
            interrupted.map(|e| format!(" ({e})")).unwrap_or_default()
        )));
    }
}

/// Pulls `name` into the store: each candidate its name stands for (a short name in each
/// unqualified-search registry) in turn, until one pulls; `client` connects to a registry host.
/// An image is resolved to its manifest before anything is reported about it, so a missing one
/// fails with nothing said (docker answers it with an HTTP error before streaming).
pub fn pull(
    store: &ImageStore,
    cfg: &Config,
    name: &str,
    opts: &PullOptions,
    client: &dyn Fn(&str) -> Result<Client>,
    report: &dyn PullReport,
) -> Result<Pulled> {
    let mut last_err = None;
    for r in cfg.candidates(name)? {
        let res = client(&r.domain).and_then(|c| {
            let resolved = resolve(&c, &r, opts)?;
            let tag = r
                .digest
                .as_ref()
                .or(r.tag.as_ref())
                .cloned()
                .unwrap_or_default();
            let repo = berth_image::familiar_repository(&r.repository());
            let repo = repo.trim_start_matches(&format!("{}/", r.domain));
            report.status(Some(&tag), &format!("Pulling from {repo}"));
            fetch(store, &c, &r, resolved, opts, report)
        });
        report.attempt_done();
        match res {
            Ok(p) => {
                report.status(None, &format!("Digest: {}", p.manifest_digest));
                report.status(None, &p.status_line());
                return Ok(p);
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| Error::Config(format!("no registry to pull {name} from"))))
}

/// A reference resolved on its registry to the image manifest for the wanted platform.
struct Resolved {
    bytes: Vec<u8>,
    media_type: String,
    manifest: Manifest,
    digest: String,
}

/// Tag or digest → manifest, an index → the platform's manifest.
fn resolve(client: &Client, r: &Reference, opts: &PullOptions) -> Result<Resolved> {
    let scopes = vec![pull_scope(&r.path)];
    let reference = r
        .digest
        .clone()
        .or_else(|| r.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let what = format!("{}/{}:{reference}", r.domain, r.path);
    let (mut bytes, mut media_type) = fetch_manifest(client, r, &reference, &scopes)?;
    let want = opts.platform.clone().unwrap_or_else(Platform::host);
    for _ in 0..4 {
        if media_type != crate::OCI_INDEX && media_type != crate::DOCKER_LIST {
            break;
        }
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Protocol(format!("index of {what}: {e}")))?;
        let d = pick_platform(&index, &want, &what)?;
        if d.size > crate::MANIFEST_LIMIT {
            return Err(Error::Protocol(format!(
                "manifest {} is too large ({} bytes)",
                d.digest, d.size
            )));
        }
        (bytes, media_type) = fetch_manifest(client, r, &d.digest, &scopes)?;
    }
    if media_type != crate::OCI_MANIFEST && media_type != crate::DOCKER_MANIFEST {
        return Err(Error::Protocol(format!(
            "{what}: unsupported manifest type {media_type:?}"
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Protocol(format!("manifest of {what}: {e}")))?;
    if manifest.schema_version != 2 {
        return Err(Error::Protocol(format!(
            "manifest of {what}: schemaVersion {}",
            manifest.schema_version
        )));
    }
    let _ = &manifest.media_type;
    Ok(Resolved {
        digest: sha256(&bytes),
        bytes,
        media_type,
        manifest,
    })
}

/// Fetches what the store lacks of a resolved image and records it (under `r`'s tag).
fn fetch(
    store: &ImageStore,
    client: &Client,
    r: &Reference,
    resolved: Resolved,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Pulled> {
    let scopes = vec![pull_scope(&r.path)];
    let Resolved {
        bytes,
        media_type,
        manifest,
        digest: manifest_digest,
    } = resolved;
    let names: Vec<Reference> = match &r.tag {
        Some(_) => vec![Reference {
            digest: None,
            ..r.clone()
        }],
        None => vec![],
    };
    if r.tag.is_some() && store.manifest_of(&names[0])?.as_deref() == Some(manifest_digest.as_str())
    {
        let (id, _) = store.resolve_id(&names[0].full())?;
        return Ok(Pulled {
            id,
            manifest_digest,
            reference: r.clone(),
            up_to_date: true,
        });
    }

    let config = if store.has_blob(&manifest.config.digest) {
        store.read_blob(&manifest.config.digest)?
    } else {
        fetch_small_blob(client, &r.path, &manifest.config, &scopes)?
    };
    if sha256(&config) != manifest.config.digest {
        return Err(Error::Store(berth_image::Error::DigestMismatch {
            digest: manifest.config.digest.clone(),
            actual: sha256(&config),
        }));
    }

    let ingest = store.ingest()?;
    let mut queue: Vec<(Descriptor, BlobWriter)> = Vec::new();
    let mut seen = HashSet::new();
    for l in &manifest.layers {
        if !seen.insert(l.digest.clone()) {
            continue;
        }
        if store.has_blob(&l.digest) {
            ingest.existing_blob(&l.digest, l.size)?;
            progress.layer(short(&l.digest), LayerStatus::AlreadyExists);
        } else {
            queue.push((l.clone(), ingest.blob_writer(&l.digest, l.size, true)?));
            progress.layer(short(&l.digest), LayerStatus::Waiting);
        }
    }
    let fetched: Vec<String> = queue.iter().map(|(d, _)| d.digest.clone()).collect();
    download_all(
        client,
        &r.path,
        &scopes,
        queue,
        opts.concurrency.max(1),
        progress,
    )?;

    let layers = manifest
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.media_type.clone()))
        .collect();
    ingest.add_image(bytes, media_type, config, layers, names)?;
    let loaded = ingest.commit()?;
    for d in &fetched {
        progress.layer(short(d), LayerStatus::PullComplete);
    }
    Ok(Pulled {
        id: loaded[0].id.clone(),
        manifest_digest,
        reference: r.clone(),
        up_to_date: false,
    })
}

/// Downloads the queued blobs on `concurrency` threads; the first error stops the rest.
fn download_all(
    client: &Client,
    repo: &str,
    scopes: &[String],
    queue: Vec<(Descriptor, BlobWriter)>,
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<()> {
    let threads = concurrency.min(queue.len());
    let queue = Mutex::new(queue.into_iter());
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Some((d, mut w)) = queue.lock().unwrap().next() else {
                    return;
                };
                let res = fetch_blob(client, repo, &d.digest, scopes, &mut w, progress, &stop)
                    .and_then(|()| w.finish().map_err(Error::from));
                match res {
                    Ok(()) => progress.layer(short(&d.digest), LayerStatus::DownloadComplete),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        first_error.lock().unwrap().get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
