//! `exec`: a new process in a running container, from --process FILE or from the container's own
//! process spec with the command line and flags applied on top (as runc does).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_runtime::{ExecOptions, Runtime};
use clap::Args;
use oci_spec::runtime::Process;
use serde_json::{json, Value};

use crate::absolute;

#[derive(Args)]
pub struct ExecArgs {
    /// A process.json to run; the other process flags are then ignored.
    #[arg(short, long)]
    process: Option<PathBuf>,
    #[arg(short, long)]
    tty: bool,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<String>,
    #[arg(short, long)]
    env: Vec<String>,
    /// UID[:GID]
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short = 'g', long)]
    additional_gids: Vec<u32>,
    #[arg(short, long)]
    cap: Vec<String>,
    #[arg(long)]
    no_new_privs: bool,
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long)]
    process_label: Option<String>,
    /// Exec into a paused container too; the process runs once the container is resumed.
    #[arg(long)]
    ignore_paused: bool,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn exec(rt: &Runtime, a: ExecArgs) -> Result<i32> {
    let process = match &a.process {
        Some(path) => {
            let data =
                std::fs::read(path).with_context(|| format!("read process {}", path.display()))?;
            serde_json::from_slice(&data)
                .with_context(|| format!("parse process {}", path.display()))?
        }
        None => {
            let config = rt.state(&a.id)?.bundle.join("config.json");
            let data =
                std::fs::read(&config).with_context(|| format!("read {}", config.display()))?;
            let spec: Value = serde_json::from_slice(&data)
                .with_context(|| format!("parse {}", config.display()))?;
            process_from_flags(spec["process"].clone(), &a)?
        }
    };
    let opts = ExecOptions {
        process,
        console_socket: a.console_socket.as_deref().map(absolute).transpose()?,
        detach: a.detach,
        pid_file: a.pid_file.as_deref().map(absolute).transpose()?,
        preserve_fds: a.preserve_fds,
        detach_keys: None,
        ignore_paused: a.ignore_paused,
    };
    Ok(rt.exec(&a.id, &opts)?)
}

/// The container's process with runc's exec flags applied.
fn process_from_flags(mut p: Value, a: &ExecArgs) -> Result<Process> {
    if a.command.is_empty() {
        bail!(
            "exec {}: no command given (pass args after the id, or --process)",
            a.id
        );
    }
    if !p.is_object() {
        p = json!({ "cwd": "/", "user": { "uid": 0, "gid": 0 } });
    }
    p["args"] = json!(a.command);
    p["terminal"] = json!(a.tty);
    if let Some(cwd) = &a.cwd {
        p["cwd"] = json!(cwd);
    }
    if let Some(ap) = &a.apparmor {
        p["apparmorProfile"] = json!(ap);
    }
    if let Some(label) = &a.process_label {
        p["selinuxLabel"] = json!(label);
    }
    if a.no_new_privs {
        p["noNewPrivileges"] = json!(true);
    }
    if !a.env.is_empty() {
        // A variable given with -e replaces the spec's one of the same name (one entry each).
        let mut env = p["env"].as_array().cloned().unwrap_or_default();
        for e in &a.env {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            env.retain(|old| {
                old.as_str()
                    .is_none_or(|o| o.split_once('=').map_or(o, |(k, _)| k) != key)
            });
            env.push(json!(e));
        }
        p["env"] = Value::Array(env);
    }
    // Never inheritable or ambient: an exec'd process must not pass capabilities on (CVE-2022-24769).
    for cap in &a.cap {
        let name = cap.to_ascii_uppercase();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        for set in ["bounding", "effective", "permitted"] {
            let list = &mut p["capabilities"][set];
            if !list.is_array() {
                *list = json!([]);
            }
            list.as_array_mut().unwrap().push(json!(name));
        }
    }
    if let Some(user) = &a.user {
        let (uid, gid) = parse_user(user)?;
        p["user"]["uid"] = json!(uid);
        if let Some(gid) = gid {
            p["user"]["gid"] = json!(gid);
        }
    }
    if !a.additional_gids.is_empty() {
        p["user"]["additionalGids"] = json!(a.additional_gids);
    }
    serde_json::from_value(p).context("build the exec process")
}

fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u
        .parse()
        .with_context(|| format!("invalid --user {s:?}: want UID[:GID]"))?;
    let gid = g
        .map(|g| g.parse())
        .transpose()
        .with_context(|| format!("invalid --user {s:?}: want UID[:GID]"))?;
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ExecArgs,
    }

    fn build(args: &[&str]) -> Value {
        let t = T::parse_from(std::iter::once("exec").chain(args.iter().copied()));
        let base = json!({ "args": ["sh"], "cwd": "/", "env": ["PATH=/bin"], "user": { "uid": 0, "gid": 0 },
                           "capabilities": { "bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"],
                                             "permitted": ["CAP_CHOWN"] } });
        serde_json::to_value(process_from_flags(base, &t.a).unwrap()).unwrap()
    }

    #[test]
    fn flags_apply_on_top_of_the_container_process() {
        let p = build(&[
            "-e",
            "A=1",
            "-e",
            "PATH=/sbin",
            "-u",
            "1000:100",
            "-g",
            "5",
            "-g",
            "6",
            "--cwd",
            "/tmp",
            "-c",
            "sys_admin",
            "--no-new-privs",
            "ctr",
            "sh",
            "-c",
            "id -u",
        ]);
        assert_eq!(p["args"], json!(["sh", "-c", "id -u"]));
        assert_eq!(p["env"], json!(["A=1", "PATH=/sbin"]));
        assert_eq!(p["user"]["uid"], 1000);
        assert_eq!(p["user"]["gid"], 100);
        assert_eq!(p["user"]["additionalGids"], json!([5, 6]));
        assert_eq!(p["cwd"], "/tmp");
        assert_eq!(p["noNewPrivileges"], true);
        let mut bounding: Vec<&str> = p["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        bounding.sort();
        assert_eq!(bounding, ["CAP_CHOWN", "CAP_SYS_ADMIN"]);
        assert!(p["capabilities"]["inheritable"]
            .as_array()
            .is_none_or(|a| a.is_empty()));
        assert_eq!(p["terminal"], false);
    }

    #[test]
    fn bad_user_is_refused() {
        assert!(parse_user("root").is_err());
        assert_eq!(parse_user("5").unwrap(), (5, None));
    }
}
