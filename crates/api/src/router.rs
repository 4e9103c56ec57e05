//! Paths to handlers: an optional `/v1.NN` prefix (1.24 to 1.47), then docker's routes.

use crate::http::{ApiError, ApiResult, Query, Resp};
use crate::{
    build, containers, exec, images, networks, registry, system, State, API_VERSION,
    MIN_API_VERSION,
};
use hyper::body::Incoming;
use hyper::{Method, Request};
use std::sync::Arc;

/// What a handler gets: the request's parts, its query and its body.
pub struct Req {
    pub method: Method,
    pub query: Query,
    pub req: Request<Incoming>,
}

fn version_number(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Splits `/v1.45/containers/json` into ("1.45", ["containers", "json"]).
fn split_path(path: &str) -> ApiResult<Vec<String>> {
    let mut segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    if let Some(v) = segs
        .first()
        .and_then(|s| s.strip_prefix('v'))
        .map(str::to_string)
    {
        if let Some(n) = version_number(&v) {
            let max = version_number(API_VERSION).expect("version");
            let min = version_number(MIN_API_VERSION).expect("version");
            if n > max {
                return Err(ApiError::bad(format!(
                    "client version {v} is too new. Maximum supported API version is {API_VERSION}"
                )));
            }
            if n < min {
                return Err(ApiError::bad(format!(
                    "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                )));
            }
            segs.remove(0);
        }
    }
    Ok(segs)
}

fn percent_decode(s: &str) -> String {
    let q = Query::parse(Some(&format!("x={}", s.replace('+', "%2B"))));
    q.get("x").unwrap_or(s).to_string()
}

pub async fn route(st: Arc<State>, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let head = method == Method::HEAD;
    let segs = match split_path(req.uri().path()) {
        Ok(s) => s,
        Err(e) => return e.response(),
    };
    let query = Query::parse(req.uri().query());
    let r = Req {
        method: method.clone(),
        query,
        req,
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let res = dispatch(st, r, &s, head).await;
    let mut resp = match res {
        Ok(r) => r,
        Err(e) => e.response(),
    };
    let h = resp.headers_mut();
    h.insert("api-version", API_VERSION.parse().expect("header"));
    h.insert(
        "server",
        format!("berth/{} (linux)", env!("CARGO_PKG_VERSION"))
            .parse()
            .expect("header"),
    );
    h.insert("ostype", "linux".parse().expect("header"));
    resp
}

async fn dispatch(st: Arc<State>, r: Req, s: &[&str], head: bool) -> ApiResult<Resp> {
    use Method as M;
    let m = r.method.clone();
    match (&m, s) {
        (&M::GET | &M::HEAD, ["_ping"]) => Ok(system::ping(head)),
        (&M::GET, ["version"]) => system::version(st).await,
        (&M::GET, ["info"]) => system::info(st).await,
        (&M::GET, ["events"]) => system::events(st, r).await,
        (&M::GET, ["system", "df"]) => system::df(st).await,

        (&M::POST, ["containers", "create"]) => containers::create(st, r).await,
        (&M::GET, ["containers", "json"]) => containers::list(st, r).await,
        (&M::POST, ["containers", "prune"]) => containers::prune(st, r).await,
        (&M::GET, ["containers", id, "json"]) => containers::inspect(st, id).await,
        (&M::POST, ["containers", id, "start"]) => containers::start(st, id).await,
        (&M::POST, ["containers", id, "stop"]) => containers::stop(st, id, r, false).await,
        (&M::POST, ["containers", id, "restart"]) => containers::stop(st, id, r, true).await,
        (&M::POST, ["containers", id, "kill"]) => containers::kill(st, id, r).await,
        (&M::POST, ["containers", id, "pause"]) => containers::pause(st, id, true).await,
        (&M::POST, ["containers", id, "unpause"]) => containers::pause(st, id, false).await,
        (&M::POST, ["containers", id, "wait"]) => containers::wait(st, id, r).await,
        (&M::POST, ["containers", id, "rename"]) => containers::rename(st, id, r).await,
        (&M::POST, ["containers", id, "resize"]) => containers::resize(st, id, r).await,
        (&M::POST, ["containers", id, "attach"]) => streams::attach(st, id, r).await,
        (&M::GET, ["containers", id, "logs"]) => containers::logs(st, id, r).await,
        (&M::GET, ["containers", id, "top"]) => containers::top(st, id, r).await,
        (&M::GET, ["containers", id, "stats"]) => containers::stats(st, id, r).await,
        (&M::GET, ["containers", id, "changes"]) => containers::changes(st, id).await,
        (&M::GET, ["containers", id, "export"]) => containers::export(st, id).await,
        (&M::GET | &M::HEAD, ["containers", id, "archive"]) => {
            containers::archive_get(st, id, r, head).await
        }
        (&M::PUT, ["containers", id, "archive"]) => containers::archive_put(st, id, r).await,
        (&M::DELETE, ["containers", id]) => containers::remove(st, id, r).await,
        (&M::POST, ["containers", id, "exec"]) => exec::create(st, id, r).await,
        (&M::POST, ["containers", _, "update"]) => {
            Err(ApiError::unsupported("updating a container's resources"))
        }
        (&M::GET, ["containers", _, "attach", "ws"]) => {
            Err(ApiError::unsupported("attach over websocket"))
        }

        (&M::POST, ["exec", id, "start"]) => exec::start(st, id, r).await,
        (&M::POST, ["exec", id, "resize"]) => exec::resize(st, id, r).await,
        (&M::GET, ["exec", id, "json"]) => exec::inspect(st, id).await,

        (&M::GET, ["images", "json"]) => images::list(st, r).await,
        (&M::POST, ["images", "load"]) => images::load(st, r).await,
        (&M::GET, ["images", "get"]) => images::save(st, r.query.all("names")).await,
        (&M::POST, ["images", "create"]) => images::create(st, r).await,
        (&M::POST, ["images", "prune"]) => images::prune(st, r).await,
        (&M::GET, ["images", "search"]) => registry::search(st, r).await,
        (&M::POST, ["build"]) => build::build(st, r).await,
        // The build cache holds only keys of images `image prune` already counts.
        (&M::POST, ["build", "prune"]) => Ok(crate::http::json_ok(
            &serde_json::json!({"CachesDeleted": [], "SpaceReclaimed": 0}),
        )),
        (&M::POST, ["commit"]) => images::commit(st, r).await,
        (&M::POST, ["auth"]) => registry::auth(st, r).await,
        // Image names hold slashes: everything between /images/ and the verb is the name.
        (&M::GET, ["images", name @ .., "json"]) if !name.is_empty() => {
            images::inspect(st, &name.join("/")).await
        }
        (&M::GET, ["images", name @ .., "history"]) if !name.is_empty() => {
            images::history(st, &name.join("/")).await
        }
        (&M::GET, ["images", name @ .., "get"]) if !name.is_empty() => {
            images::save(st, vec![name.join("/")]).await
        }
        (&M::POST, ["images", name @ .., "tag"]) if !name.is_empty() => {
            images::tag(st, &name.join("/"), r).await
        }
        (&M::POST, ["images", name @ .., "push"]) if !name.is_empty() => {
            registry::push(st, &name.join("/"), r).await
        }
        (&M::DELETE, ["images", name @ ..]) if !name.is_empty() => {
            images::remove(st, &name.join("/"), r).await
        }

        (&M::GET, ["volumes"]) => system::volumes_list(st, r).await,
        (&M::POST, ["volumes", "create"]) => system::volume_create(st, r).await,
        (&M::POST, ["volumes", "prune"]) => system::volumes_prune(st, r).await,
        (&M::GET, ["volumes", name]) => system::volume_inspect(st, name).await,
        (&M::DELETE, ["volumes", name]) => system::volume_remove(st, name, r).await,

        (&M::GET, ["networks"]) => networks::list(st, r).await,
        (&M::POST, ["networks", "create"]) => networks::create(st, r).await,
        (&M::POST, ["networks", "prune"]) => networks::prune(st, r).await,
        (&M::GET, ["networks", id]) => networks::inspect(st, id).await,
        (&M::DELETE, ["networks", id]) => networks::remove(st, id).await,
        (&M::POST, ["networks", id, "connect"]) => networks::connect(st, id, r, true).await,
        (&M::POST, ["networks", id, "disconnect"]) => networks::connect(st, id, r, false).await,
        (
            _,
            ["swarm", ..]
            | ["nodes", ..]
            | ["services", ..]
            | ["tasks", ..]
            | ["secrets", ..]
            | ["configs", ..],
        ) => Err(ApiError::new(
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            "This node is not a swarm manager. berth has no swarm mode.",
        )),
        (_, ["plugins", ..]) => Err(ApiError::unsupported("plugins")),
        (_, ["session"]) => Err(ApiError::unsupported("build sessions")),
        (_, ["distribution", ..]) => Err(ApiError::unsupported("registry distribution")),
        _ => Err(ApiError::not_found("page not found")),
    }
}

use crate::streams;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            split_path("/v1.47/containers/json").unwrap(),
            ["containers", "json"]
        );
        assert_eq!(split_path("/v1.24/_ping").unwrap(), ["_ping"]);
        assert_eq!(split_path("/info").unwrap(), ["info"]);
        assert!(split_path("/v1.48/info")
            .unwrap_err()
            .message
            .contains("too new"));
        assert!(split_path("/v1.12/info")
            .unwrap_err()
            .message
            .contains("too old"));
        assert_eq!(
            split_path("/images/localhost%3A5000%2Fa/json").unwrap(),
            ["images", "localhost:5000/a", "json"]
        );
    }
}
