//! `berth serve` (the Docker Engine API, crates/api) and `berth events` (the event log).
//! Only `serve` starts an async runtime; every other command stays synchronous.

use berth_engine::events::{self, Filter, ReadOptions};
use clap::Args;
use std::io::Write;
use std::time::Duration;

use crate::{CmdResult, Ctx, Failure};

#[derive(Args)]
pub struct ServeArgs {
    /// Where to listen: unix:///path, tcp://addr:port or fd:// (systemd socket activation; repeatable)
    #[arg(short = 'H', long = "host", default_value = berth_api::DEFAULT_SOCKET)]
    hosts: Vec<String>,
    /// Exit after this many seconds without a request or connection (0: never)
    #[arg(short, long, default_value_t = 0)]
    time: u64,
    /// Use TLS and verify the client's certificate
    #[arg(long)]
    tlsverify: bool,
    /// Trust certs signed only by this CA
    #[arg(long)]
    tlscacert: Option<std::path::PathBuf>,
    /// Path to TLS certificate file
    #[arg(long)]
    tlscert: Option<std::path::PathBuf>,
    /// Path to TLS key file
    #[arg(long)]
    tlskey: Option<std::path::PathBuf>,
    /// "none": containers created without a network get none (loopback only), as with
    /// `dockerd --bridge none`; by default they join berth's `bridge` network
    #[arg(short = 'b', long)]
    bridge: Option<String>,
}

pub fn serve(ctx: &Ctx, a: ServeArgs) -> CmdResult {
    let default_network = match a.bridge.as_deref() {
        None | Some("") => "bridge",
        Some("none") => "none",
        Some(other) => {
            return Err(Failure(format!(
                "--bridge {other}: only \"none\" is supported; containers otherwise join berth's \"bridge\" network"
            )))
        }
    };
    let driver = ctx
        .driver
        .as_deref()
        .map(berth_image::Driver::parse)
        .transpose()?;
    let tls = (a.tlsverify || a.tlscert.is_some() || a.tlskey.is_some() || a.tlscacert.is_some())
        .then(|| berth_api::TlsOptions {
            verify: a.tlsverify,
            ca: a.tlscacert,
            cert: a.tlscert,
            key: a.tlskey,
        });
    berth_api::serve(berth_api::ServeOptions {
        root: ctx.root.clone(),
        engine: berth_engine::EngineOptions { driver, exe: None },
        hosts: a.hosts,
        idle: (a.time > 0).then(|| Duration::from_secs(a.time)),
        tls,
        default_network: default_network.into(),
    })
    .map_err(Failure)
}

#[derive(Args)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output using a custom template ('json' or a Go-style template)
    #[arg(long)]
    format: Option<String>,
}

/// docker's default line: `TIME TYPE ACTION ID (k=v, ...)`.
fn line(e: &events::Event) -> String {
    let secs = e.time_nano.div_euclid(1_000_000_000);
    let nanos = e.time_nano.rem_euclid(1_000_000_000) as u32;
    let t = std::time::UNIX_EPOCH + Duration::new(secs as u64, nanos);
    let attrs: Vec<String> = e
        .actor
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut s = format!(
        "{} {} {} {}",
        berth_engine::timefmt::format(t),
        e.typ,
        e.action,
        e.actor.id
    );
    if !attrs.is_empty() {
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

pub fn events(ctx: &Ctx, a: EventsArgs) -> CmdResult {
    let mut filters = Vec::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| Failure(format!("bad format of filter (expected name=value): {f}")))?;
        filters.push((k.to_string(), v.to_string()));
    }
    let filter = Filter(filters);
    filter.validate().map_err(Failure)?;
    let since = a
        .since
        .as_deref()
        .map(events::parse_time_nanos)
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(events::parse_time_nanos)
        .transpose()?;
    let offset = if since.is_some() {
        0
    } else {
        events::end_offset(&ctx.root)
    };
    let tmpl = match a.format.as_deref() {
        None | Some("") => None,
        Some(f) => Some(f.to_string()),
    };
    let mut out = std::io::stdout().lock();
    let mut failed = None;
    events::read(
        &ctx.root,
        offset,
        &ReadOptions {
            since,
            until,
            follow: true,
            filter,
        },
        &mut |e| {
            if e.typ.is_empty() {
                return true;
            }
            let v = serde_json::to_value(e).expect("event");
            let text = match tmpl.as_deref() {
                None => line(e) + "\n",
                Some("json") => v.to_string() + "\n",
                Some(t) => match berth_format::render_inspect(Some(t), &[v]) {
                    Ok(s) => s,
                    Err(err) => {
                        failed = Some(err.to_string());
                        return false;
                    }
                },
            };
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .is_ok()
        },
    )?;
    match failed {
        Some(e) => Err(Failure(e)),
        None => Ok(()),
    }
}
