//! `berth pull`, `push`, `login`, `logout`, `search`, and the pull that `run`/`create` do for a
//! missing image. The protocol lives in berth-registry; this file is flags and docker's output.

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::{self, IsTerminal, Read, Write};
use std::sync::Mutex;

use crate::{CmdResult, Ctx, Failure};
use berth_format::Headers;
use berth_image::{ImageStore, Reference};
use berth_registry::{
    credentials, Client, Config, LayerStatus, Platform, Progress, PullOptions, PullReport,
    PushOptions,
};

#[derive(Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short, long)]
    all_tags: bool,
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// Require HTTPS and verify certificates (false: also plain HTTP)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

#[derive(Args)]
pub struct PushArgs {
    /// Compression for layers stored uncompressed (made by commit or import): gzip or zstd
    #[arg(long, default_value = "gzip")]
    compression_format: String,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// Require HTTPS and verify certificates (false: also plain HTTP)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// NAME[:TAG]
    name: String,
}

#[derive(Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    username: Option<String>,
    /// Password
    #[arg(short, long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    password_stdin: bool,
    /// Require HTTPS and verify certificates (false: also plain HTTP)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// Registry host (Docker Hub when omitted)
    server: Option<String>,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry host (Docker Hub when omitted)
    server: Option<String>,
}

#[derive(Args)]
pub struct SearchArgs {
    /// Filter output based on conditions provided (stars=N, is-official=BOOL, is-automated=BOOL)
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or 'TEMPLATE'
    #[arg(long)]
    format: Option<String>,
    /// Max number of search results
    #[arg(long, default_value = "25", allow_negative_numbers = true)]
    limit: i64,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Require HTTPS and verify certificates (false: also plain HTTP)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// TERM, or REGISTRY/TERM to search another registry than Docker Hub
    term: String,
}

/// Per-layer progress: bars on a terminal, docker's plain status lines otherwise.
struct Display {
    out: Out,
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
    last: Mutex<HashMap<String, String>>,
}

#[derive(Clone, Copy)]
enum Out {
    Stdout,
    Stderr,
    Quiet,
}

impl Display {
    fn new(out: Out) -> Display {
        let tty = match out {
            Out::Stdout => io::stdout().is_terminal(),
            Out::Stderr => io::stderr().is_terminal(),
            Out::Quiet => false,
        };
        Display {
            out,
            bars: tty.then(|| (MultiProgress::new(), Mutex::new(HashMap::new()))),
            last: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, s: &str) {
        match self.out {
            Out::Stdout => println!("{s}"),
            Out::Stderr => eprintln!("{s}"),
            Out::Quiet => {}
        }
    }

    fn finish(&self) {
        if let Some((m, bars)) = &self.bars {
            for (_, b) in bars.lock().unwrap().drain() {
                b.abandon();
            }
            let _ = m.clear();
        }
        self.last.lock().unwrap().clear();
    }
}

impl PullReport for Display {
    fn status(&self, id: Option<&str>, text: &str) {
        match id {
            Some(id) => self.line(&format!("{id}: {text}")),
            None => self.line(text),
        }
    }
    fn attempt_done(&self) {
        self.finish();
    }
}

impl Progress for Display {
    fn layer(&self, id: &str, status: LayerStatus) {
        let text = match &status {
            LayerStatus::Waiting => "Pulling fs layer".to_string(),
            s => s.text(),
        };
        if let Some((m, bars)) = &self.bars {
            let mut bars = bars.lock().unwrap();
            let bar = bars.entry(id.to_string()).or_insert_with(|| {
                let b = m.add(ProgressBar::new(0));
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix}: {msg} {wide_bar} {bytes}/{total_bytes}",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                );
                b.set_prefix(id.to_string());
                b
            });
            match status {
                LayerStatus::Downloading { current, total }
                | LayerStatus::Pushing { current, total } => {
                    bar.set_length(total);
                    bar.set_position(current);
                    bar.set_message(text);
                }
                _ => {
                    bar.set_style(
                        ProgressStyle::with_template("{prefix}: {msg}").expect("template"),
                    );
                    bar.set_message(text);
                }
            }
            return;
        }
        // Plain output: one line per change of state, like docker without a terminal.
        let mut last = self.last.lock().unwrap();
        if last.get(id) == Some(&text) {
            return;
        }
        last.insert(id.to_string(), text.clone());
        self.line(&format!("{id}: {text}"));
    }
}

fn config() -> Result<Config, Failure> {
    Ok(Config::load()?)
}

fn client(cfg: &Config, host: &str, tls_verify: Option<bool>) -> Result<Client, Failure> {
    Ok(Client::new(host, cfg, tls_verify)?)
}

/// Pulls `name` (trying each unqualified-search registry for a short name) and prints docker's
/// lines. Returns the reference that was pulled.
fn pull_one(
    store: &ImageStore,
    cfg: &Config,
    name: &str,
    opts: &PullOptions,
    tls_verify: Option<bool>,
    out: Out,
) -> Result<Reference, Failure> {
    let display = Display::new(out);
    let client = |host: &str| Client::new(host, cfg, tls_verify);
    Ok(berth_registry::pull(store, cfg, name, opts, &client, &display)?.reference)
}

fn pull_options(platform: Option<&str>) -> Result<PullOptions, Failure> {
    Ok(PullOptions {
        platform: platform.map(Platform::parse).transpose()?,
        ..Default::default()
    })
}

pub fn pull(ctx: &Ctx, a: PullArgs) -> CmdResult {
    let store = ctx.store()?;
    let cfg = config()?;
    let opts = pull_options(a.platform.as_deref())?;
    let out = if a.quiet { Out::Quiet } else { Out::Stdout };
    if a.all_tags {
        let r = cfg.candidates(&a.name)?.remove(0);
        if r.digest.is_some() || a.name.rsplit('/').next().is_some_and(|l| l.contains(':')) {
            return Err(Failure("tag can't be used with --all-tags/-a".into()));
        }
        let c = client(&cfg, &r.domain, a.tls_verify)?;
        let tags = berth_registry::list_tags(&c, &r)?;
        for t in tags {
            let name = format!("{}:{t}", r.repository());
            let pulled = pull_one(&store, &cfg, &name, &opts, a.tls_verify, out)?;
            if a.quiet {
                println!("{}", pulled.full());
            }
        }
        return Ok(());
    }
    if !a.quiet
        && !a.name.contains('@')
        && !a.name.rsplit('/').next().is_some_and(|l| l.contains(':'))
    {
        println!("Using default tag: latest");
    }
    let r = pull_one(&store, &cfg, &a.name, &opts, a.tls_verify, out)?;
    println!("{}", r.full());
    Ok(())
}

/// For `run`/`create`: pulls the image (docker's --pull always, or missing once create found
/// it missing), progress on stderr.
pub fn pull_for_run(
    ctx: &Ctx,
    image: &str,
    platform: Option<&str>,
    missing: bool,
) -> Result<(), Failure> {
    if missing {
        eprintln!("Unable to find image '{image}' locally");
    }
    let store = ctx.store()?;
    let cfg = config()?;
    pull_one(
        &store,
        &cfg,
        image,
        &pull_options(platform)?,
        None,
        Out::Stderr,
    )?;
    Ok(())
}

pub fn push(ctx: &Ctx, a: PushArgs) -> CmdResult {
    let store = ctx.store()?;
    let cfg = config()?;
    let image = store.resolve(&a.name)?;
    let target = if berth_registry::config::is_qualified(&a.name) {
        Reference::parse(&a.name)?
    } else {
        cfg.candidates(&a.name)?.remove(0)
    };
    if target.digest.is_some() {
        return Err(Failure(format!(
            "cannot push a digest reference: {}",
            a.name
        )));
    }
    let out = if a.quiet { Out::Quiet } else { Out::Stdout };
    let display = Display::new(out);
    display.line(&format!(
        "The push refers to repository [{}]",
        target.repository()
    ));
    let c = client(&cfg, &target.domain, a.tls_verify)?;
    let mut opts = PushOptions {
        compression: berth_image::LayerCompression::parse(&a.compression_format)?,
        ..Default::default()
    };
    // Blobs above this size go up in PATCH chunks of it (tuning for proxies with body limits).
    if let Some(v) = std::env::var_os("BERTH_PUSH_CHUNK_SIZE") {
        opts.chunk_size = v
            .to_str()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                Failure(format!(
                    "BERTH_PUSH_CHUNK_SIZE={v:?}: expected a byte count"
                ))
            })?;
    }
    let res = berth_registry::push(&store, &c, &image, &target, &opts, &display);
    display.finish();
    let pushed = res?;
    let tag = target.tag.clone().unwrap_or_else(|| "latest".into());
    if a.quiet {
        println!("{}", target.full());
    } else {
        println!("{tag}: digest: {} size: {}", pushed.digest, pushed.size);
    }
    Ok(())
}

fn server_host(server: Option<&str>) -> String {
    let s = server.unwrap_or("docker.io");
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let s = s.split('/').next().unwrap_or(s);
    match s {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        s => s.to_string(),
    }
}

pub fn login(_ctx: &Ctx, a: LoginArgs) -> CmdResult {
    let cfg = config()?;
    let host = server_host(a.server.as_deref());
    let username = match a.username {
        Some(u) => u,
        None => {
            if a.password_stdin || !io::stdin().is_terminal() {
                return Err(Failure(
                    "Must provide --username with --password-stdin".into(),
                ));
            }
            eprint!("Username: ");
            io::stderr().flush().ok();
            let mut u = String::new();
            io::stdin().read_line(&mut u)?;
            u.trim().to_string()
        }
    };
    let password = if a.password_stdin {
        if a.password.is_some() {
            return Err(Failure(
                "--password and --password-stdin are mutually exclusive".into(),
            ));
        }
        let mut p = String::new();
        io::stdin().read_to_string(&mut p)?;
        p.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        return Err(Failure(
            "a password is needed: --password-stdin (or -p)".into(),
        ));
    };
    if username.is_empty() || password.is_empty() {
        return Err(Failure("username and password must not be empty".into()));
    }
    let creds = credentials::Credentials {
        username,
        password,
        identity_token: None,
    };
    let c = Client::with_credentials(&host, &cfg, a.tls_verify, Some(creds.clone()))?;
    c.login()?;
    let kept = match c.refresh_token() {
        Some(t) => credentials::Credentials {
            password: String::new(),
            identity_token: Some(t),
            ..creds
        },
        None => creds,
    };
    credentials::store(&cfg.auth_file, &host, &kept)?;
    println!("Login Succeeded");
    Ok(())
}

pub fn logout(_ctx: &Ctx, a: LogoutArgs) -> CmdResult {
    let cfg = config()?;
    let host = server_host(a.server.as_deref());
    if credentials::erase(&cfg.auth_file, &host)? {
        println!(
            "Removing login credentials for {}",
            credentials::server_key(&host)
        );
    } else {
        println!("Not logged in to {}", credentials::server_key(&host));
    }
    Ok(())
}

const SEARCH_TABLE: &str = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}";
const SEARCH_HEADERS: Headers = Headers(&[
    ("Name", "NAME"),
    ("Description", "DESCRIPTION"),
    ("StarCount", "STARS"),
    ("IsOfficial", "OFFICIAL"),
]);

/// docker's search filters: the least stars, and whether the image is official.
#[derive(Default)]
struct SearchFilter {
    stars: u64,
    official: Option<bool>,
    automated: bool,
}

/// Go's strconv.ParseBool, which docker's filters use.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn search_filter(filters: &[String]) -> Result<SearchFilter, Failure> {
    let mut f = SearchFilter::default();
    for it in filters {
        let (k, v) = it
            .split_once('=')
            .ok_or_else(|| Failure(format!("bad format of filter (expected name=value): {it}")))?;
        let bad = || Failure(format!("invalid filter '{k}={v}'"));
        match k {
            "stars" => f.stars = f.stars.max(v.parse().map_err(|_| bad())?),
            "is-official" => f.official = Some(go_bool(v).ok_or_else(bad)?),
            // Deprecated by docker: Docker Hub's value is meaningless, so `true` matches nothing.
            "is-automated" => f.automated = go_bool(v).ok_or_else(bad)?,
            _ => return Err(Failure(format!("invalid filter '{k}'"))),
        }
    }
    Ok(f)
}

/// `docker search [REGISTRY/]TERM`: Docker Hub unless the term names a registry (docker's
/// rule); a registry without `/v1/search` is searched through its catalog.
pub fn search(_ctx: &Ctx, a: SearchArgs) -> CmdResult {
    if !(1..=100).contains(&a.limit) {
        return Err(Failure(format!(
            "limit {} is outside the range of [1, 100]",
            a.limit
        )));
    }
    let filter = search_filter(&a.filter)?;
    if a.term.contains("://") {
        return Err(Failure(format!(
            "invalid repository name: repository name ({}) should not have a scheme",
            a.term
        )));
    }
    let (host, term) = match a.term.split_once('/') {
        Some((h, t)) if berth_registry::config::is_qualified(&a.term) => (h.to_string(), t),
        _ => (
            "docker.io".to_string(),
            a.term.strip_prefix("library/").unwrap_or(&a.term),
        ),
    };
    let cfg = config()?;
    let c = client(&cfg, &host, a.tls_verify)?;
    let results = berth_registry::search(&c, term, a.limit as usize)?;
    let json = a.format.as_deref() == Some("json");
    let official = |v: bool| match (v, json) {
        (true, true) => "true",
        (false, true) => "false",
        (true, false) => "[OK]",
        (false, false) => "",
    };
    let rows: Vec<serde_json::Value> = results
        .iter()
        .filter(|_| !filter.automated)
        .filter(|r| {
            filter.official.is_none_or(|o| o == r.is_official) && r.star_count >= filter.stars
        })
        .map(|r| {
            let desc = r.description.replace(['\n', '\r'], " ");
            let desc = if a.no_trunc {
                desc
            } else {
                crate::output::ellipsis(&desc, 45)
            };
            serde_json::json!({
                "Name": r.name,
                "Description": desc,
                "StarCount": r.star_count.to_string(),
                "IsOfficial": official(r.is_official),
            })
        })
        .collect();
    crate::output::print_list(a.format.as_deref(), SEARCH_TABLE, &SEARCH_HEADERS, &rows)
}
