//! What a registry lists: the tags of a repository (`pull --all-tags`), its catalog, and
//! `search`, which asks the index's `/v1/search` as docker does (Docker Hub and some registries
//! serve it) and falls back to filtering `/v2/_catalog` where it is not served (podman's way for
//! plain distribution registries).

use berth_image::Reference;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use crate::client::{error_text, pull_scope, read_limited, Client};
use crate::error::{Error, Result};

/// Pages followed at most when a listing is paginated (`Link: <next>; rel="next"`).
const PAGES: usize = 1000;

/// GETs `url` and the pages its `Link` headers name, collecting the strings under `key`.
/// `what` names the listing in errors; a 404 is `not_found`'s error.
fn paged(
    client: &Client,
    mut url: Url,
    scopes: &[String],
    key: &str,
    what: &str,
    not_found: impl Fn(String) -> Error,
) -> Result<Vec<String>> {
    let mut items = Vec::new();
    for _ in 0..PAGES {
        let resp = client.send(Method::GET, url.clone(), scopes, |r| r)?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(not_found(error_text(resp)));
        }
        if !resp.status().is_success() {
            return Err(Error::Protocol(format!("{what}: {}", error_text(resp))));
        }
        let next = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| {
                l.split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(u, _)| u.to_string())
            });
        let body = read_limited(resp, 16 << 20, what)?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("{what}: {e}")))?;
        if let Some(a) = v.get(key).and_then(|t| t.as_array()) {
            items.extend(a.iter().filter_map(|t| t.as_str()).map(str::to_string));
        }
        match next {
            Some(n) => url = client.url(&n)?,
            None => return Ok(items),
        }
    }
    Ok(items)
}

/// The tags of a repository.
pub fn list_tags(client: &Client, r: &Reference) -> Result<Vec<String>> {
    let url = client.url(&format!("/v2/{}/tags/list", r.path))?;
    paged(
        client,
        url,
        &[pull_scope(&r.path)],
        "tags",
        &format!("tags of {}/{}", r.domain, r.path),
        |text| {
            Error::NotFound(format!(
                "repository {}/{} not found: {text}",
                r.domain, r.path
            ))
        },
    )
}

/// The repositories a registry lists (`/v2/_catalog`).
pub fn catalog(client: &Client) -> Result<Vec<String>> {
    let url = client.url("/v2/_catalog?n=1000")?;
    let host = client.host.clone();
    paged(
        client,
        url,
        &["registry:catalog:*".to_string()],
        "repositories",
        &format!("{host} does not list its repositories"),
        |text| Error::NotFound(format!("{host} does not list its repositories: {text}")),
    )
}

/// One result as docker's `/v1/search` gives it.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    #[serde(default)]
    pub is_official: bool,
}

#[derive(Deserialize)]
struct SearchResults {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// Repositories matching `term`, at most `limit`: the index's `/v1/search`, or where the
/// registry does not serve it (404, 405, 501: plain distribution registries), the repositories
/// of its catalog whose name contains `term`, named `host/repository` so they can be pulled.
pub fn search(client: &Client, term: &str, limit: usize) -> Result<Vec<SearchResult>> {
    let mut url = match client.host.as_str() {
        // Docker Hub's search lives on the index, not on the registry API host.
        "docker.io" => Url::parse("https://index.docker.io/v1/search").expect("url"),
        _ => client.url("/v1/search")?,
    };
    url.query_pairs_mut()
        .append_pair("q", term)
        .append_pair("n", &limit.to_string());
    let resp = client.send(Method::GET, url, &[], |r| r)?;
    match resp.status() {
        s if s.is_success() => {
            let body = read_limited(resp, 16 << 20, "search results")?;
            let v: SearchResults = serde_json::from_slice(&body).map_err(|e| {
                Error::Protocol(format!("search results from {}: {e}", client.host))
            })?;
            Ok(v.results.into_iter().take(limit).collect())
        }
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
            Ok(catalog(client)?
                .into_iter()
                .filter(|r| r.contains(term))
                .take(limit)
                .map(|r| SearchResult {
                    name: format!("{}/{r}", client.host),
                    description: String::new(),
                    star_count: 0,
                    is_official: false,
                })
                .collect())
        }
        _ => Err(Error::Protocol(format!(
            "search {}: {}",
            client.host,
            error_text(resp)
        ))),
    }
}
