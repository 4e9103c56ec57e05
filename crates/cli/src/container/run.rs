//! `berth run`, `berth create` and `berth exec`.

use berth_engine::{flags, model::HostConfig, CreateOptions, Ended, ExecOptions, StartOptions};
use clap::{ArgAction, Args};
use std::collections::BTreeMap;

use super::{die, engine};
use crate::{CmdResult, Ctx};

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print usage
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long)]
    env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Bind mount a volume
    #[arg(short, long)]
    volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long)]
    mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Memory limit
    #[arg(short, long)]
    memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short, long)]
    cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Ulimit options
    #[arg(long)]
    ulimit: Vec<String>,
    /// Add Linux capabilities
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
    /// Security Options
    #[arg(long)]
    security_opt: Vec<String>,
    /// Add a host device to the container
    #[arg(long)]
    device: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
    /// Signal to stop the container
    #[arg(long)]
    stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long, allow_hyphen_values = true)]
    stop_timeout: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    restart: String,
    /// Set meta data on a container
    #[arg(short, long)]
    label: Vec<String>,
    /// Connect a container to a network (bridge, none, host, container:NAME or a network's name)
    #[arg(long, alias = "net", default_value = "bridge")]
    network: String,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    ip6: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long)]
    mac_address: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    expose: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long)]
    dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long)]
    add_host: Vec<String>,
    /// Disable OOM Killer
    #[arg(long)]
    oom_kill_disable: bool,
    #[command(flatten)]
    cgroup: super::cgroup_flags::CgroupArgs,
    /// Size of /dev/shm
    #[arg(long)]
    shm_size: Option<String>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short, long)]
    attach: Vec<String>,
    /// Proxy received signals to the process
    #[arg(long, default_value = "true", action = ArgAction::Set)]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pull: String,
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// The image, then the command and its arguments (options end at the image, as with docker)
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    args: Vec<String>,
}

fn or_die<T>(r: berth_engine::Result<T>) -> T {
    r.unwrap_or_else(|e| die(e, 125))
}

fn env_list(env: &[String], files: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).unwrap_or_else(|e| die(format!("open {f}: {e}"), 125));
        out.extend(flags::parse_env_file(&text));
    }
    out.extend(env.iter().filter_map(|e| flags::expand_env(e)));
    out
}

fn create_options(a: &RunArgs) -> CreateOptions {
    let mut hc = HostConfig {
        auto_remove: a.rm,
        privileged: a.privileged,
        readonly_rootfs: a.read_only,
        network_mode: a.network.clone(),
        restart_policy: or_die(flags::parse_restart(&a.restart)),
        publish_all_ports: a.publish_all,
        dns: a.dns.clone(),
        dns_search: a.dns_search.clone(),
        dns_options: a.dns_option.clone(),
        ..Default::default()
    };
    for p in &a.publish {
        or_die(berth_engine::parse_publish(p, &mut hc.port_bindings));
    }
    if !a.add_host.is_empty() {
        hc.extra_hosts = Some(a.add_host.clone());
    }
    if !a.cap_add.is_empty() {
        hc.cap_add = Some(a.cap_add.clone());
    }
    if !a.cap_drop.is_empty() {
        hc.cap_drop = Some(a.cap_drop.clone());
    }
    if !a.security_opt.is_empty() {
        hc.security_opt = Some(a.security_opt.clone());
    }
    if let Some(m) = &a.memory {
        hc.memory = or_die(flags::parse_bytes(m));
    }
    if let Some(m) = &a.memory_swap {
        hc.memory_swap = if m == "-1" {
            -1
        } else {
            or_die(flags::parse_bytes(m))
        };
    }
    if let Some(c) = &a.cpus {
        hc.nano_cpus = or_die(flags::parse_cpus(c));
    }
    hc.cpu_shares = a.cpu_shares.unwrap_or(0);
    hc.cpuset_cpus = a.cpuset_cpus.clone().unwrap_or_default();
    hc.pids_limit = a.pids_limit;
    if let Some(s) = &a.shm_size {
        hc.shm_size = or_die(flags::parse_bytes(s));
    }
    if a.oom_kill_disable {
        hc.oom_kill_disable = Some(true);
    }
    if a.init {
        hc.init = Some(true);
    }
    a.cgroup.apply(&mut hc);
    let ulimits: Vec<_> = a
        .ulimit
        .iter()
        .map(|u| or_die(flags::parse_ulimit(u)))
        .collect();
    if !ulimits.is_empty() {
        hc.ulimits = Some(ulimits);
    }
    hc.devices = a
        .device
        .iter()
        .map(|d| or_die(flags::parse_device(d)))
        .collect();
    let mut mounts = Vec::new();
    let mut binds = Vec::new();
    for v in &a.volume {
        mounts.push(or_die(flags::parse_volume(v)));
        binds.push(v.clone());
    }
    for m in &a.mount {
        mounts.push(or_die(flags::parse_mount(m)));
    }
    if !mounts.is_empty() {
        hc.mounts = Some(mounts);
    }
    if !binds.is_empty() {
        hc.binds = Some(binds);
    }
    let mut tmpfs = BTreeMap::new();
    for t in &a.tmpfs {
        let (d, o) = or_die(flags::parse_tmpfs(t));
        tmpfs.insert(d, o);
    }
    if !tmpfs.is_empty() {
        hc.tmpfs = Some(tmpfs);
    }
    let mut labels = BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let attached = !a.detach;
    let want = |s: &str| {
        attached && (a.attach.is_empty() || a.attach.iter().any(|x| x.eq_ignore_ascii_case(s)))
    };
    CreateOptions {
        image: a.args[0].clone(),
        name: a.name.clone(),
        cmd: a.args[1..].to_vec(),
        entrypoint: a.entrypoint.clone(),
        env: env_list(&a.env, &a.env_file),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        tty: a.tty,
        open_stdin: a.interactive,
        attach_stdin: a.interactive && want("stdin"),
        attach_stdout: want("stdout"),
        attach_stderr: want("stderr"),
        labels,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        network_aliases: a.network_alias.clone(),
        ip: a.ip.clone(),
        ip6: a.ip6.clone(),
        mac_address: a.mac_address.clone(),
        expose: a.expose.clone(),
        host_config: hc,
    }
}

/// `run` (start = true) and `create`.
pub fn run(ctx: &Ctx, a: RunArgs, start: bool) -> CmdResult {
    let opts = create_options(&a);
    let detach_keys = a
        .detach_keys
        .as_deref()
        .map(|k| or_die(flags::parse_detach_keys(k)))
        .unwrap_or_default();
    if start && !a.detach {
        check_tty(opts.attach_stdin, opts.tty);
    }
    super::cgroup_flags::CgroupArgs::warn(&opts.host_config);
    if !matches!(a.pull.as_str(), "missing" | "always" | "never") {
        die(
            format!("invalid pull policy {:?}: missing, always or never", a.pull),
            125,
        );
    }
    if a.pull == "always" {
        crate::registry::pull_for_run(ctx, &a.args[0], a.platform.as_deref(), false)
            .unwrap_or_else(|f| die(f.0, 125));
    }
    let e = engine(ctx).unwrap_or_else(|f| die(f.0, 125));
    // A missing image is pulled only after create found it missing: no registry work (not even
    // a store lookup) on the common path.
    let c = match e.create(&opts) {
        Err(err)
            if a.pull == "missing"
                && err.kind() == berth_engine::ErrorKind::NotFound
                && err.to_string().contains("unable to find image") =>
        {
            crate::registry::pull_for_run(ctx, &a.args[0], a.platform.as_deref(), true)
                .unwrap_or_else(|f| die(f.0, 125));
            e.create(&opts)
        }
        other => other,
    }
    // docker create reports the daemon's refusal (bad or taken name, ...) with exit 1; run with 125.
    .unwrap_or_else(|err| die(err, if start { 125 } else { 1 }));
    if !start {
        println!("{}", c.id);
        return Ok(());
    }
    if a.detach {
        if let Err(err) = e.start(&c.id, &StartOptions::default()) {
            {
                let code = err.exit_code();
                die(err, code)
            };
        }
        println!("{}", c.id);
        return Ok(());
    }
    let attach = match e.start(
        &c.id,
        &StartOptions {
            attach: true,
            stdin: a.interactive,
        },
    ) {
        Ok(a) => a.expect("attached"),
        Err(err) => {
            let code = err.exit_code();
            die(err, code)
        }
    };
    drop(e);
    match attach
        .with_detach_keys(detach_keys)
        .pump_stdio(a.sig_proxy)
        .unwrap_or_else(|err| die(err, 125))
    {
        Ended::Exited(code) => std::process::exit(code),
        // docker run: detaching is a success; the container runs on.
        Ended::Detached => Ok(()),
    }
}

#[derive(Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long)]
    env_file: Vec<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    /// The container, then the command and its arguments
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, value_name = "CONTAINER COMMAND [ARG...]")]
    args: Vec<String>,
}

/// docker's CheckTty: a tty with our stdin attached needs stdin to be a terminal; refused
/// before anything is created (otherwise the container waits on a terminal that never comes).
pub(crate) fn check_tty(attach_stdin: bool, tty: bool) {
    if tty && attach_stdin && unsafe { libc::isatty(0) } != 1 {
        eprintln!("the input device is not a TTY");
        std::process::exit(1);
    }
}

pub fn exec(ctx: &Ctx, a: ExecArgs) -> CmdResult {
    if !a.detach {
        check_tty(a.interactive, a.tty);
    }
    let e = engine(ctx).unwrap_or_else(|f| die(f.0, 125));
    let o = ExecOptions {
        cmd: a.args[1..].to_vec(),
        env: env_list(&a.env, &a.env_file),
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
        privileged: a.privileged,
        detach_keys: a
            .detach_keys
            .as_deref()
            .map(|k| flags::parse_detach_keys(k).unwrap_or_else(|e| die(e, 1)))
            .unwrap_or_default(),
    };
    if !a.interactive {
        // docker exec without -i: the process gets no stdin.
        if let Ok(f) = std::fs::File::open("/dev/null") {
            use std::os::fd::AsRawFd;
            unsafe { libc::dup2(f.as_raw_fd(), 0) };
        }
    }
    match e.exec(&a.args[0], &o) {
        Ok(Ended::Exited(code)) => std::process::exit(code),
        // docker exec reports the detach as its error (exit 1), without a prefix.
        Ok(Ended::Detached) => {
            eprintln!("read escape sequence");
            std::process::exit(1)
        }
        Err(err) => {
            // docker exec: a command that cannot be run (missing or not executable) is 126.
            let code = match err.exit_code() {
                125 => 1,
                _ => 126,
            };
            die(err, code)
        }
    }
}
