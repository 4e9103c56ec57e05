//! One registry: its base URL (HTTPS, or plain HTTP for an insecure host that has no TLS), an
//! HTTP client with the system roots plus `certs.d/<host>/`, and authorized requests: a 401
//! teaches the authorizer the challenge and the request is sent once more.

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::auth::Authorizer;
use crate::config::Config;
use crate::credentials::{self, Credentials};
use crate::error::{network, Error, Result};

pub struct Client {
    /// As written in references ("docker.io", "127.0.0.1:5000").
    pub host: String,
    base: Url,
    pub(crate) http: Http,
    auth: Authorizer,
}

/// Reads at most `limit` bytes of a response body; more is an error naming `what`.
pub(crate) fn read_limited(resp: Response, limit: u64, what: &str) -> Result<Vec<u8>> {
    if let Some(n) = resp.content_length() {
        if n > limit {
            return Err(Error::Protocol(format!(
                "{what} is too large ({n} bytes, the limit is {limit})"
            )));
        }
    }
    let mut v = Vec::new();
    resp.take(limit + 1)
        .read_to_end(&mut v)
        .map_err(|e| Error::Network(format!("reading {what}: {e}")))?;
    if v.len() as u64 > limit {
        return Err(Error::Protocol(format!(
            "{what} is too large (more than {limit} bytes)"
        )));
    }
    Ok(v)
}

/// The message of a registry's error body (`{"errors":[{"code":..,"message":..}]}`), else the status.
pub(crate) fn error_text(resp: Response) -> String {
    let status = resp.status();
    let body = read_limited(resp, 64 << 10, "error body").unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let msgs: Vec<String> = v
        .get("errors")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    e.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    if msgs.is_empty() {
        status.to_string()
    } else {
        msgs.join("; ")
    }
}

fn api_host(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        h => h,
    }
}

fn build_http(cfg: &Config, host: &str, insecure: bool) -> Result<Http> {
    let mut b = Http::builder()
        .use_rustls_tls()
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // Applies to each read as well: a registry that stalls fails instead of hanging.
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::limited(10))
        .danger_accept_invalid_certs(insecure);
    for dir in &cfg.certs_dirs {
        let d = dir.join(host);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut names: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in &names {
            if p.extension().is_some_and(|e| e == "crt") {
                let pem =
                    std::fs::read(p).map_err(|e| Error::io(format!("read {}", p.display()), e))?;
                for c in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?
                {
                    b = b.add_root_certificate(c);
                }
            }
        }
        let (cert, key) = (d.join("client.cert"), d.join("client.key"));
        if cert.is_file() && key.is_file() {
            let mut pem = std::fs::read(&cert)
                .map_err(|e| Error::io(format!("read {}", cert.display()), e))?;
            pem.extend(
                std::fs::read(&key).map_err(|e| Error::io(format!("read {}", key.display()), e))?,
            );
            b = b.identity(
                reqwest::Identity::from_pem(&pem)
                    .map_err(|e| Error::Config(format!("{}: {e}", d.display())))?,
            );
        }
    }
    b.build().map_err(|e| network("build the HTTP client", e))
}

impl Client {
    /// A client for `host` with the credentials stored for it. `tls_verify: Some(false)` treats
    /// the host as insecure (podman's --tls-verify=false).
    pub fn new(host: &str, cfg: &Config, tls_verify: Option<bool>) -> Result<Client> {
        let creds = credentials::get(&cfg.auth_file, host)?;
        Client::with_credentials(host, cfg, tls_verify, creds)
    }

    pub fn with_credentials(
        host: &str,
        cfg: &Config,
        tls_verify: Option<bool>,
        creds: Option<Credentials>,
    ) -> Result<Client> {
        let insecure = match tls_verify {
            Some(v) => !v,
            None => cfg.is_insecure(host),
        };
        let http = build_http(cfg, host, insecure)?;
        let auth = Authorizer::new(creds);
        let https = Url::parse(&format!("https://{}/", api_host(host)))
            .map_err(|e| Error::Config(format!("registry {host:?}: {e}")))?;
        let mut client = Client {
            host: host.to_string(),
            base: https,
            http,
            auth,
        };
        // Docker's order for an insecure registry: HTTPS first, plain HTTP when TLS is not there.
        match client.ping() {
            Ok(()) => {}
            Err(Error::Network(_)) if insecure => {
                client.base = Url::parse(&format!("http://{}/", api_host(host))).expect("url");
                client.ping()?;
            }
            Err(e) => return Err(e),
        }
        Ok(client)
    }

    /// GET /v2/: checks the registry speaks the protocol and learns its auth challenge.
    fn ping(&self) -> Result<()> {
        let url = self.url("/v2/")?;
        let resp = self
            .http
            .get(url.clone())
            .send()
            .map_err(|e| network(&format!("pinging {url}"), e))?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                let h = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                self.auth.challenged(h.as_deref())?;
                Ok(())
            }
            // Not a registry (or v2 disabled): requests will tell what is wrong.
            _ => Ok(()),
        }
    }

    /// `docker login`: proves the credentials work (a token for no scope, or /v2/ with basic).
    pub fn login(&self) -> Result<()> {
        let resp = self.send(Method::GET, self.url("/v2/")?, &[], |r| r)?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(Error::Unauthorized(format!(
            "login to {}: {}",
            self.host,
            error_text(resp)
        )))
    }

    /// The refresh token the token server issued at login, if it did (OAuth2 with
    /// `access_type=offline`): docker keeps it as the identity token instead of the password.
    pub fn refresh_token(&self) -> Option<String> {
        self.auth.refresh_token()
    }

    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .map_err(|e| Error::Protocol(format!("bad URL path {path:?}: {e}")))
    }

    /// A Location header, which may be relative to the registry.
    pub(crate) fn location(&self, headers: &HeaderMap) -> Result<Url> {
        let l = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Protocol("upload response has no Location".into()))?;
        self.base
            .join(l)
            .map_err(|e| Error::Protocol(format!("bad Location {l:?}: {e}")))
    }

    /// Sends a request with authorization for `scopes`; on a 401 the challenge is answered and the
    /// request built again once. Statuses other than 401 are the caller's to judge.
    pub(crate) fn send(
        &self,
        method: Method,
        url: Url,
        scopes: &[String],
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        for attempt in 0..2 {
            let mut req = build(self.http.request(method.clone(), url.clone()));
            if let Some(h) = self.auth.header(&self.http, scopes)? {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = req
                .send()
                .map_err(|e| network(&format!("{method} {url}"), e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let h = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if attempt == 1 || !self.auth.challenged(h.as_deref())? {
                let text = error_text(resp);
                return Err(Error::Unauthorized(if self.auth.has_credentials() {
                    format!("unauthorized: {text} (wrong username or password?)")
                } else {
                    format!(
                        "unauthorized: {text}: authentication required (berth login {})",
                        self.host
                    )
                }));
            }
        }
        unreachable!("two attempts")
    }

    /// GET or HEAD a manifest; returns the response for the caller to check.
    pub(crate) fn manifest_request(
        &self,
        method: Method,
        repo: &str,
        reference: &str,
        scopes: &[String],
    ) -> Result<Response> {
        let accept = [
            crate::OCI_MANIFEST,
            crate::DOCKER_MANIFEST,
            crate::OCI_INDEX,
            crate::DOCKER_LIST,
            crate::SCHEMA1[1],
            crate::SCHEMA1[0],
        ]
        .join(", ");
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        self.send(method, url, scopes, |r| r.header(ACCEPT, accept.clone()))
    }

    pub(crate) fn content_type(resp: &Response) -> Option<String> {
        resp.headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
    }

    /// Whether a path is a file we can stream as an upload body.
    pub(crate) fn file_body(path: &Path, len: u64) -> Result<reqwest::blocking::Body> {
        let f = std::fs::File::open(path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        Ok(reqwest::blocking::Body::sized(f, len))
    }
}

pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

pub(crate) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}
