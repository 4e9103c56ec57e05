//! /networks: docker's network objects over the engine's networks (crates/network).

use crate::http::{
    self, blocking, json_ok, json_status, parse_json, read_body, ApiError, ApiResult, Resp,
};
use crate::router::Req;
use crate::State;
use berth_engine::NetworkCreate;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn list(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let filters = r.query.filters()?;
    let v = blocking(move || {
        let e = st.engine()?;
        let mut out = Vec::new();
        for n in e.networks()?.list().map_err(berth_engine::Error::from)? {
            if berth_engine::network_matches(&n, &filters)? {
                out.push(e.network_inspect(&n));
            }
        }
        Ok(out)
    })
    .await?;
    Ok(json_ok(&Value::Array(v)))
}

pub async fn inspect(st: Arc<State>, key: &str) -> ApiResult<Resp> {
    let key = key.to_string();
    let v = blocking(move || {
        let e = st.engine()?;
        let n = e.networks()?.get(&key).map_err(berth_engine::Error::from)?;
        Ok(e.network_inspect(&n))
    })
    .await?;
    Ok(json_ok(&v))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
    gateway: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: String,
    config: Vec<IpamConfig>,
}

/// The body of `POST /networks/create` (docker's NetworkCreateRequest).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_only: bool,
    options: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

pub async fn create(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let body = read_body(r.req.into_body(), 1 << 20).await?;
    let b: CreateBody = parse_json(&body)?;
    if b.name.is_empty() {
        return Err(ApiError::bad("network name is required"));
    }
    if b.ingress || b.config_only {
        return Err(ApiError::unsupported("ingress and config-only networks"));
    }
    let _ = b.attachable;
    let ipam = b.ipam.unwrap_or_default();
    if !ipam.driver.is_empty() && ipam.driver != "default" {
        return Err(ApiError::unsupported(&format!(
            "IPAM driver {:?}",
            ipam.driver
        )));
    }
    // One IPAM config per family: an IPv6 one is known by the ':' of its subnet.
    let (v6, v4): (Vec<IpamConfig>, Vec<IpamConfig>) = ipam
        .config
        .into_iter()
        .partition(|c| c.subnet.contains(':'));
    if v4.len() > 1 || v6.len() > 1 {
        return Err(ApiError::bad(
            "berth networks take at most one IPv4 and one IPv6 IPAM config",
        ));
    }
    let cfg = v4.into_iter().next().unwrap_or_default();
    let cfg6 = v6.into_iter().next().unwrap_or_default();
    let some = |s: String| Some(s).filter(|s| !s.is_empty());
    let req = NetworkCreate {
        name: b.name,
        driver: some(b.driver),
        subnet: some(cfg.subnet),
        gateway: some(cfg.gateway),
        ip_range: some(cfg.ip_range),
        subnet6: some(cfg6.subnet),
        gateway6: some(cfg6.gateway),
        ip_range6: some(cfg6.ip_range),
        internal: b.internal,
        ipv6: b.enable_ipv6,
        labels: b.labels,
        options: b.options,
    };
    let id = blocking(move || {
        let n = st.engine()?.networks()?.create(&req);
        Ok(n.map_err(berth_engine::Error::from)?.id)
    })
    .await?;
    Ok(json_status(
        StatusCode::CREATED,
        &json!({"Id": id, "Warning": ""}),
    ))
}

pub async fn remove(st: Arc<State>, key: &str) -> ApiResult<Resp> {
    let key = key.to_string();
    blocking(move || Ok(st.engine()?.network_remove(&key).map(drop)?)).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn prune(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let filters = r.query.filters()?;
    let names = blocking(move || Ok(st.engine()?.network_prune(&filters)?)).await?;
    Ok(json_ok(&json!({ "NetworksDeleted": names })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointConfig {
    aliases: Vec<String>,
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<EndpointIpam>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EndpointIpam {
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    ipv6_address: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<EndpointConfig>,
    force: bool,
}

/// `POST /networks/{id}/connect` and `/disconnect`.
pub async fn connect(st: Arc<State>, key: &str, r: Req, connect: bool) -> ApiResult<Resp> {
    let body = read_body(r.req.into_body(), 1 << 20).await?;
    let b: ConnectBody = parse_json(&body)?;
    if b.container.is_empty() {
        return Err(ApiError::bad("a container is required"));
    }
    let _ = b.force;
    let key = key.to_string();
    blocking(move || {
        let e = st.engine()?;
        if connect {
            let ep = b.endpoint_config.unwrap_or_default();
            let ipam = ep.ipam_config.unwrap_or_default();
            let some = |s: String| Some(s).filter(|s| !s.is_empty());
            let (ip, ip6) = (some(ipam.ipv4_address), some(ipam.ipv6_address));
            e.network_connect(
                &key,
                &b.container,
                &ep.aliases,
                ip.as_deref(),
                ip6.as_deref(),
            )?;
        } else {
            e.network_disconnect(&key, &b.container)?;
        }
        Ok(())
    })
    .await?;
    Ok(http::empty(StatusCode::OK))
}
