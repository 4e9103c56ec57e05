//! `berth version` and `berth info` (also `system info`): docker's fields, default text and
//! `--format`, so tools that probe `docker info` or `docker version` see an engine.

use clap::Args;
use serde_json::{json, Map, Value};
use std::fmt::Write;

use crate::container::engine;
use crate::output::print_inspect;
use crate::units::go_g;
use crate::{CmdResult, Ctx, Failure};

#[derive(Args)]
pub struct FormatArgs {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short, long)]
    format: Option<String>,
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Go's GOARCH for this build (docker prints "amd64", not "x86_64").
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// docker's `json` format is `{{json .}}`: one line.
fn template_of(format: Option<&str>) -> Option<&str> {
    match format {
        Some("json") => Some("{{json .}}"),
        f => f,
    }
}

/// Go templates see Go field names; docker's JSON uses other names for a few of them.
fn add_go_names(o: &mut Map<String, Value>, names: &[(&str, &str)], json: bool) {
    for (json_name, go_name) in names {
        if let Some(v) = o.get(*json_name).cloned() {
            if !json {
                o.remove(*json_name);
            }
            o.entry(go_name.to_string()).or_insert(v);
            if json {
                o.remove(*go_name);
            }
        }
    }
}

fn client_version() -> Value {
    json!({
        "Platform": {"Name": ""}, "Version": VERSION, "ApiVersion": "", "DefaultAPIVersion": "",
        "GitCommit": "", "GoVersion": "", "Os": "linux", "Arch": go_arch(), "BuildTime": "", "Context": "default",
    })
}

/// `berth version`.
pub fn version(ctx: &Ctx, a: FormatArgs) -> CmdResult {
    let kernel = berth_engine::info::kernel_version();
    let _ = ctx;
    let details = json!({
        "ApiVersion": "", "Arch": go_arch(), "BuildTime": "", "Experimental": "false", "GitCommit": "",
        "GoVersion": "", "KernelVersion": kernel, "MinAPIVersion": "", "Os": "linux",
    });
    let json_out = a.format.as_deref() == Some("json");
    let mut client = client_version();
    let mut server = json!({
        "Platform": {"Name": "berth"},
        "Components": [{"Name": "Engine", "Version": VERSION, "Details": details}],
        "Version": VERSION, "ApiVersion": "", "MinAPIVersion": "", "GitCommit": "", "GoVersion": "",
        "Os": "linux", "Arch": go_arch(), "KernelVersion": kernel, "Experimental": false, "BuildTime": "",
    });
    for o in [&mut client, &mut server] {
        add_go_names(
            o.as_object_mut().expect("object"),
            &[("ApiVersion", "APIVersion")],
            json_out,
        );
    }
    if a.format.as_deref().is_some_and(|f| !f.is_empty()) {
        let data = json!({"Client": client, "Server": server});
        return print_inspect(template_of(a.format.as_deref()), &[data], |_| String::new());
    }
    // docker's default template through a tabwriter (minwidth 20, padding 1).
    let mut out = String::from("Client:\n");
    out += &aligned(&[
        (" Version:", VERSION.to_string()),
        (" API version:", String::new()),
        (" Go version:", String::new()),
        (" Git commit:", String::new()),
        (" Built:", String::new()),
        (" OS/Arch:", format!("linux/{}", go_arch())),
        (" Context:", "default".into()),
    ]);
    out += "\nServer: berth\n Engine:\n";
    out += &aligned(&[
        ("  Version:", VERSION.to_string()),
        ("  API version:", " (minimum version )".into()),
        ("  Go version:", String::new()),
        ("  Git commit:", String::new()),
        ("  Built:", String::new()),
        ("  OS/Arch:", format!("linux/{}", go_arch())),
        ("  Experimental:", "false".into()),
    ]);
    print!("{out}");
    Ok(())
}

/// Lines "label\tvalue" as Go's tabwriter (minwidth 20, padding 1) prints one block.
fn aligned(rows: &[(&str, String)]) -> String {
    let w = rows
        .iter()
        .map(|(l, _)| l.chars().count() + 1)
        .max()
        .unwrap_or(0)
        .max(20);
    let mut s = String::new();
    // A tab-terminated cell is padded even when the value after it is empty, as in Go.
    for (l, v) in rows {
        let _ = writeln!(s, "{l:<w$}{v}");
    }
    s
}

/// go-units BytesSize: binary units, 4 significant digits ("23.47GiB").
fn bytes_size(b: u64) -> String {
    const U: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut s = b as f64;
    let mut i = 0;
    while s >= 1024.0 && i < U.len() - 1 {
        s /= 1024.0;
        i += 1;
    }
    format!("{}{}", go_g(s, 4), U[i])
}

/// `berth info` / `berth system info`.
pub fn info(ctx: &Ctx, a: FormatArgs) -> CmdResult {
    let e = engine(ctx)?;
    let info = e.info()?;
    if a.format.as_deref().is_some_and(|f| !f.is_empty()) {
        let json_out = a.format.as_deref() == Some("json");
        let mut v = serde_json::to_value(&info).map_err(|e| Failure(e.to_string()))?;
        let o = v.as_object_mut().expect("object");
        add_go_names(
            o,
            &[
                ("CpuCfsPeriod", "CPUCfsPeriod"),
                ("CpuCfsQuota", "CPUCfsQuota"),
                ("HttpProxy", "HTTPProxy"),
                ("HttpsProxy", "HTTPSProxy"),
            ],
            json_out,
        );
        let mut client = client_version();
        let c = client.as_object_mut().expect("object");
        c.insert("Debug".into(), json!(false));
        c.insert("Plugins".into(), json!([]));
        c.insert("Warnings".into(), json!([]));
        add_go_names(c, &[("ApiVersion", "APIVersion")], json_out);
        o.insert("ClientInfo".into(), client);
        return print_inspect(template_of(a.format.as_deref()), &[v], |_| String::new());
    }
    let mut s = String::new();
    let mut l = |line: String| {
        s.push_str(&line);
        s.push('\n');
    };
    l("Client:".into());
    l(format!(" Version:    {VERSION}"));
    l(" Context:    default".into());
    l(" Debug Mode: false".into());
    l(String::new());
    l("Server:".into());
    l(format!(" Containers: {}", info.containers));
    l(format!("  Running: {}", info.containers_running));
    l(format!("  Paused: {}", info.containers_paused));
    l(format!("  Stopped: {}", info.containers_stopped));
    l(format!(" Images: {}", info.images));
    l(format!(" Server Version: {}", info.server_version));
    l(format!(" Storage Driver: {}", info.driver));
    for [k, v] in &info.driver_status {
        l(format!("  {k}: {v}"));
    }
    l(format!(" Logging Driver: {}", info.logging_driver));
    l(format!(" Cgroup Driver: {}", info.cgroup_driver));
    l(format!(" Cgroup Version: {}", info.cgroup_version));
    l(" Plugins:".into());
    l(format!("  Volume: {}", info.plugins.volume.join(" ")));
    l(format!("  Network: {}", info.plugins.network.join(" ")));
    l(format!("  Log: {}", info.plugins.log.join(" ")));
    l(" Swarm: inactive".into());
    l(format!(
        " Runtimes: {}",
        info.runtimes.keys().cloned().collect::<Vec<_>>().join(" ")
    ));
    l(format!(" Default Runtime: {}", info.default_runtime));
    l(format!(" Init Binary: {}", info.init_binary));
    l(" containerd version: ".into());
    l(" runc version: ".into());
    l(" init version: ".into());
    l(" Security Options:".into());
    for opt in &info.security_options {
        let mut name = "";
        let mut profile = None;
        for kv in opt.split(',') {
            match kv.split_once('=') {
                Some(("name", n)) => name = n,
                Some(("profile", p)) => profile = Some(p),
                _ => {}
            }
        }
        l(format!("  {name}"));
        if let Some(p) = profile {
            l(format!("   Profile: {p}"));
        }
    }
    l(format!(" Kernel Version: {}", info.kernel_version));
    if !info.operating_system.is_empty() {
        l(format!(" Operating System: {}", info.operating_system));
    }
    l(format!(" OSType: {}", info.os_type));
    l(format!(" Architecture: {}", info.architecture));
    l(format!(" CPUs: {}", info.ncpu));
    l(format!(" Total Memory: {}", bytes_size(info.mem_total)));
    l(format!(" Name: {}", info.name));
    l(format!(" ID: {}", info.id));
    l(format!(" Docker Root Dir: {}", info.docker_root_dir));
    // berth's own line: everything it keeps is under the root (--root or BERTH_ROOT); the
    // only file it reads there is an optional config.json naming the storage driver.
    let cfg = std::path::Path::new(&info.docker_root_dir).join("config.json");
    let state = if cfg.exists() {
        "present"
    } else {
        "absent, not needed"
    };
    l(format!(" Configuration: {} ({state})", cfg.display()));
    l(" Debug Mode: false".into());
    for (k, v) in [
        (" HTTP Proxy:", &info.http_proxy),
        (" HTTPS Proxy:", &info.https_proxy),
        (" No Proxy:", &info.no_proxy),
    ] {
        if !v.is_empty() {
            l(format!("{k} {v}"));
        }
    }
    l(" Experimental: false".into());
    l(" Insecure Registries:".into());
    l("  ::1/128".into());
    l("  127.0.0.0/8".into());
    l(format!(
        " Live Restore Enabled: {}",
        info.live_restore_enabled
    ));
    l(String::new());
    print!("{s}");
    Ok(())
}
