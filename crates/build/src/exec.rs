//! The step executor: stages in waves (independent stages on their own threads, each with its
//! own engine handle), steps in order, each step looked up in the cache first.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use berth_engine::{CreateOptions, Engine, EngineOptions, HostConfig, StartOptions};
use berth_image::ImageStore;

use crate::cache::{self, Cache};
use crate::context::Context;
use crate::copy::{self, Data, Item, Perms, Plan};
use crate::layers::{components, Layers};
use crate::lex::{expand, expand_words, Vars};
use crate::mounts::{MountKind, RunMount};
use crate::parser::{self, Command, Dockerfile, Inst, Instruction};
use crate::{plan, BuildOptions, Error, Result};

/// Args every build knows without an ARG line (not recorded in history or the cache).
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Set by the signal thread: stop at the next step, kill the RUN container now.
static CANCELLED: AtomicBool = AtomicBool::new(false);

struct Shared<'a> {
    root: PathBuf,
    eo: EngineOptions,
    opts: &'a BuildOptions,
    df: Dockerfile,
    ctx: Context,
    cache: Cache,
    /// Image id of each finished stage.
    results: Mutex<Vec<Option<String>>>,
    /// FROM images pulled by this build: parallel stages pull a base once.
    pulled: Mutex<BTreeSet<String>>,
    /// Number of the first step of each stage, and the total.
    first_step: Vec<usize>,
    total: usize,
    global: Vars,
    used_args: Mutex<BTreeSet<String>>,
    /// RUN containers alive now (the signal thread kills them).
    running: Arc<Mutex<Vec<String>>>,
    out: Mutex<()>,
}

/// One stage being built.
struct State {
    /// The current image (None: scratch with nothing made yet).
    image: Option<String>,
    /// The whole image config JSON.
    config: Value,
    /// ARGs declared in this stage, with their values (None: declared without a value).
    args: BTreeMap<String, Option<String>>,
    /// A CMD was given in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
}

fn host_platform() -> String {
    format!("linux/{}", berth_image::host_arch())
}

fn now() -> String {
    berth_image::timefmt::now_rfc3339()
}

/// Builds `opts` with the engine rooted at `root`; returns the final image id (hex).
pub fn build(root: &Path, eo: &EngineOptions, opts: &BuildOptions) -> Result<String> {
    let df = parser::parse(&opts.dockerfile)?;
    if let Some(p) = &opts.platform {
        if *p != host_platform() && p.trim_start_matches("linux/") != berth_image::host_arch() {
            return Err(Error::msg(format!(
                "--platform {p}: only {} can be built on this host",
                host_platform()
            )));
        }
    }
    if !matches!(
        opts.pull.as_str(),
        "" | "missing" | "never" | "false" | "always" | "true" | "newer"
    ) {
        return Err(Error::msg(format!(
            "invalid --pull policy {:?}: missing, always or never",
            opts.pull
        )));
    }
    let target = plan::target(&df, opts.target.as_deref())?;
    let waves = plan::waves(&df, target);
    let ctx = Context::open(&opts.context, opts.dockerfile_path.as_deref())?;
    let engine = Engine::open(root, eo)?;
    let root = engine.root().to_path_buf();
    let cache = Cache::open(&root).map_err(|e| Error::msg(format!("open the build cache: {e}")))?;

    // Global args (before the first FROM): usable in FROM lines and redeclared in stages.
    let mut global: Vars = BTreeMap::new();
    let plat = host_platform();
    let arch = berth_image::host_arch().to_string();
    for (k, v) in [
        ("TARGETPLATFORM", plat.clone()),
        ("TARGETOS", "linux".into()),
        ("TARGETARCH", arch.clone()),
        ("TARGETVARIANT", String::new()),
        ("BUILDPLATFORM", plat),
        ("BUILDOS", "linux".into()),
        ("BUILDARCH", arch),
        ("BUILDVARIANT", String::new()),
    ] {
        global.insert(k.to_string(), v);
    }
    let mut used = BTreeSet::new();
    for ins in &df.global_args {
        if let Inst::Arg(list) = &ins.inst {
            for (k, d) in list {
                let v = match opts.build_args.get(k) {
                    Some(v) => {
                        used.insert(k.clone());
                        Some(v.clone())
                    }
                    None => d
                        .as_ref()
                        .map(|d| expand(d, &global, df.directives.escape))
                        .transpose()
                        .map_err(|e| step_err(ins, &e))?,
                };
                if let Some(v) = v {
                    global.insert(k.clone(), v);
                }
            }
        }
    }
    let needed: Vec<usize> = waves.iter().flatten().copied().collect();
    let mut first_step = vec![0; df.stages.len()];
    let mut total = 0;
    for &i in &needed {
        first_step[i] = total + 1;
        total += 1 + df.stages[i].steps.len();
    }
    let running: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    watch_signals(&root, eo, running.clone());
    let sh = Shared {
        root: root.clone(),
        eo: eo.clone(),
        opts,
        results: Mutex::new(vec![None; df.stages.len()]),
        pulled: Mutex::new(BTreeSet::new()),
        df,
        ctx,
        cache,
        first_step,
        total,
        global,
        used_args: Mutex::new(used),
        running,
        out: Mutex::new(()),
    };
    for wave in &waves {
        if wave.len() == 1 {
            sh.build_stage(&engine, wave[0])?;
        } else {
            let results: Vec<Result<()>> = std::thread::scope(|s| {
                let hs: Vec<_> = wave
                    .iter()
                    .map(|&i| {
                        let sh = &sh;
                        s.spawn(move || -> Result<()> {
                            let e = Engine::open(&sh.root, &sh.eo)?;
                            sh.build_stage(&e, i)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(Error::msg("a stage's thread panicked")))
                    })
                    .collect()
            });
            for r in results {
                r?;
            }
        }
    }
    let mut id = sh.results.lock().unwrap()[target]
        .clone()
        .ok_or_else(|| Error::msg("the target stage made no image"))?;
    let store = engine.store()?;
    if !opts.labels.is_empty() {
        let img = store.image(&id)?;
        let mut config = img.config_json.clone();
        let labels = obj(&mut config, "config")
            .entry("Labels")
            .or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        for (k, v) in &opts.labels {
            labels.as_object_mut().expect("labels")[k] = json!(v);
        }
        id = store.derive(Some(&id), None::<&[u8]>, config)?;
    }
    let unused: Vec<&String> = opts
        .build_args
        .keys()
        .filter(|k| !sh.used_args.lock().unwrap().contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .collect();
    if !unused.is_empty() && !opts.quiet {
        eprintln!(
            "[Warning] one or more build args were not consumed: {}",
            unused
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for t in &opts.tags {
        let r = store.tag(&id, t)?;
        sh.say(&format!("Successfully tagged {}", r.full()));
    }
    Ok(id)
}

fn step_err(ins: &Instruction, e: &str) -> Error {
    Error::msg(format!("Dockerfile:{}: {}: {e}", ins.line, ins.keyword()))
}

fn obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let o = v.as_object_mut().expect("config object");
    let e = o.entry(key).or_insert_with(|| json!({}));
    if !e.is_object() {
        *e = json!({});
    }
    e.as_object_mut().expect("object")
}

fn env_map(config: &Value) -> Vars {
    let mut m = BTreeMap::new();
    for e in config["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        m.insert(k.to_string(), v.to_string());
    }
    m
}

fn set_env(config: &mut Value, k: &str, v: &str) {
    let c = obj(config, "config");
    let env = c.entry("Env").or_insert_with(|| json!([]));
    if !env.is_array() {
        *env = json!([]);
    }
    let list = env.as_array_mut().expect("array");
    let item = json!(format!("{k}={v}"));
    match list.iter().position(|e| {
        e.as_str()
            .and_then(|s| s.split_once('='))
            .map(|(ek, _)| ek == k)
            .unwrap_or(false)
            || e.as_str() == Some(k)
    }) {
        Some(i) => list[i] = item,
        None => list.push(item),
    }
}

fn shell_of(config: &Value) -> Vec<String> {
    config["config"]["Shell"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// Go's %q-ish rendering docker uses in history lines: ["a" "b"].
fn go_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|s| serde_json::to_string(s).expect("json"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// A RUN's output on its way to ours in whole lines, so that lines of its two streams (and of
/// parallel stages) never cut into each other where they meet in one pipe (the API's build);
/// an unfinished last line is ended when the RUN ends.
struct RunOutput<'s, 'o> {
    sh: &'s Shared<'o>,
    /// The unfinished line of stdout and of stderr.
    pending: [Vec<u8>; 2],
}

/// A line longer than this goes out in pieces (docker's line scanner stops there too).
const LONGEST_LINE: usize = 64 << 10;

impl RunOutput<'_, '_> {
    fn write(&mut self, stderr: bool, payload: &[u8]) {
        let p = &mut self.pending[stderr as usize];
        p.extend_from_slice(payload);
        let end = match p.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if p.len() > LONGEST_LINE => p.len(),
            None => return,
        };
        let whole: Vec<u8> = p.drain(..end).collect();
        self.sh.run_output(stderr, &whole);
    }
}

impl Drop for RunOutput<'_, '_> {
    fn drop(&mut self) {
        for stderr in [false, true] {
            let mut rest = std::mem::take(&mut self.pending[stderr as usize]);
            if !rest.is_empty() {
                rest.push(b'\n');
                self.sh.run_output(stderr, &rest);
            }
        }
    }
}

impl Shared<'_> {
    fn say(&self, line: &str) {
        if !self.opts.quiet {
            let _g = self.out.lock().unwrap();
            let mut o = io::stdout().lock();
            let _ = writeln!(o, "{line}");
            let _ = o.flush();
        }
    }

    fn esc(&self) -> char {
        self.df.directives.escape
    }

    fn check_cancel(&self) -> Result<()> {
        if CANCELLED.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        Ok(())
    }

    /// Variables for expansion: args in scope, then ENV (which wins, as in docker).
    fn vars(&self, st: &State) -> Vars {
        let mut v: Vars = st
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        v.extend(env_map(&st.config));
        v
    }

    fn build_stage(&self, engine: &Engine, i: usize) -> Result<()> {
        let stage = &self.df.stages[i];
        let mut n = self.first_step[i];
        self.check_cancel()?;
        self.say(&format!("STEP {n}/{}: {}", self.total, stage.from.original));
        let mut st = self.from(engine, i)?;
        // ONBUILD triggers of the base run first, and the new image doesn't inherit them.
        let triggers: Vec<String> = st.config["config"]["OnBuild"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        if !triggers.is_empty() {
            obj(&mut st.config, "config").insert("OnBuild".into(), Value::Null);
            for t in triggers {
                let ins = parser::parse_line(stage.from.line, &t, self.esc())?;
                self.say(&format!("--> ONBUILD {t}"));
                self.step(engine, &mut st, &ins)?;
            }
        }
        for ins in &stage.steps {
            n += 1;
            self.check_cancel()?;
            self.say(&format!("STEP {n}/{}: {}", self.total, ins.original));
            self.step(engine, &mut st, ins)?;
        }
        let id = match st.image.clone() {
            Some(id) => id,
            // FROM scratch and nothing else: an image with no layers.
            None => {
                let config = st.config.clone();
                engine.store()?.derive(None, None::<&[u8]>, config)?
            }
        };
        if stage.steps.is_empty() {
            self.say(&format!("--> {}", &id[..12]));
        }
        self.results.lock().unwrap()[i] = Some(id);
        Ok(())
    }

    fn from(&self, engine: &Engine, i: usize) -> Result<State> {
        let stage = &self.df.stages[i];
        let base = expand(stage.base(), &self.global, self.esc())
            .map_err(|e| step_err(&stage.from, &e))?;
        let store = engine.store()?;
        let (image, config) = if base.eq_ignore_ascii_case("scratch") {
            let config = json!({"architecture": berth_image::host_arch(), "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []});
            (None, config)
        } else {
            let id = match plan::stage_ref(&self.df, &base, i).filter(|_| {
                self.df.stages[..i]
                    .iter()
                    .any(|s| s.name() == Some(base.to_ascii_lowercase().as_str()))
            }) {
                Some(d) => self.results.lock().unwrap()[d]
                    .clone()
                    .ok_or_else(|| Error::msg(format!("stage {base} was not built")))?,
                None => self.base_image(&store, &stage.from, &base)?,
            };
            let img = store.image(&id)?;
            (Some(id), img.config_json)
        };
        Ok(State {
            image,
            config,
            args: BTreeMap::new(),
            cmd_set: false,
        })
    }

    /// The image a `--from=` names (COPY, RUN --mount): an earlier stage's result, else an image
    /// (pulled as for FROM).
    fn from_ref(&self, store: &ImageStore, ins: &Instruction, from: &str) -> Result<String> {
        let here = self
            .df
            .stages
            .iter()
            .position(|s| s.steps.iter().any(|i| std::ptr::eq(i, ins)))
            .unwrap_or(self.df.stages.len());
        match plan::stage_ref(&self.df, from, here) {
            Some(d) => self.results.lock().unwrap()[d]
                .clone()
                .ok_or_else(|| step_err(ins, &format!("stage {from} was not built"))),
            None => self.base_image(store, ins, from),
        }
    }

    /// The id of a FROM image, pulled as `--pull` says: always, or when missing (not never).
    fn base_image(&self, store: &ImageStore, from: &Instruction, base: &str) -> Result<String> {
        let always = matches!(self.opts.pull.as_str(), "always" | "true" | "newer");
        let never = matches!(self.opts.pull.as_str(), "never" | "false");
        let mut pulled = self.pulled.lock().unwrap();
        if !always || pulled.contains(base) {
            match store.resolve(base) {
                Ok(img) => return Ok(img.id),
                Err(e) if e.kind() == berth_image::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        let puller = match &self.opts.puller {
            Some(p) if !never => p,
            _ => {
                return Err(step_err(
                    from,
                    &format!(
                        "image {base:?} is not in the store and --pull=never forbids pulling it"
                    ),
                ))
            }
        };
        (puller.0)(base, self.opts.platform.as_deref(), !always)
            .map_err(|e| step_err(from, &format!("pull {base}: {e}")))?;
        pulled.insert(base.to_string());
        Ok(store.resolve(base)?.id)
    }

    /// The ARG values RUN sees as environment (not overriding ENV), proxies included.
    fn run_env(&self, st: &State) -> Vec<(String, String)> {
        let env = env_map(&st.config);
        let mut v: Vec<(String, String)> = st
            .args
            .iter()
            .filter_map(|(k, val)| val.clone().map(|val| (k.clone(), val)))
            .filter(|(k, _)| !env.contains_key(k))
            .collect();
        for p in PROXY_ARGS {
            if let Some(val) = self.opts.build_args.get(*p) {
                if !st.args.contains_key(*p) && !env.contains_key(*p) {
                    v.push((p.to_string(), val.clone()));
                }
            }
        }
        v
    }

    fn parent_key(st: &State) -> String {
        st.image
            .clone()
            .unwrap_or_else(|| format!("scratch:{}", st.config))
    }

    /// Looks `key` up; on a hit the state moves to the cached image.
    fn cached(&self, engine: &Engine, st: &mut State, key: &str) -> Result<bool> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let Some(id) = self.cache.get(key) else {
            return Ok(false);
        };
        let Ok(img) = engine.store()?.image(&id) else {
            return Ok(false);
        };
        // The layers must still be there (a prune may have taken them).
        if !img.layer_dirs().iter().all(|d| d.is_dir()) {
            return Ok(false);
        }
        st.config = img.config_json;
        st.image = Some(id.clone());
        self.say(&format!("--> Using cache {id}"));
        Ok(true)
    }

    fn made(&self, st: &mut State, key: &str, id: String, config: Value) {
        let _ = self.cache.put(key, &id);
        self.say(&format!("--> {}", &id[..12]));
        st.image = Some(id);
        st.config = config;
    }

    fn history(config: &mut Value, created_by: &str, empty: bool) {
        let t = now();
        let o = config.as_object_mut().expect("config object");
        o.insert("created".into(), json!(t));
        let mut e = Map::new();
        e.insert("created".into(), json!(t));
        e.insert("created_by".into(), json!(created_by));
        if empty {
            e.insert("empty_layer".into(), json!(true));
        }
        match o.get_mut("history").and_then(Value::as_array_mut) {
            Some(h) => h.push(Value::Object(e)),
            None => {
                o.insert("history".into(), json!([e]));
            }
        }
    }

    /// A metadata step: `change` edits a copy of the config; one config-only image.
    fn meta(
        &self,
        engine: &Engine,
        st: &mut State,
        desc: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<()> {
        let key = cache::key(&["meta", &Self::parent_key(st), desc]);
        if self.cached(engine, st, &key)? {
            return Ok(());
        }
        let mut config = st.config.clone();
        change(&mut config);
        Self::history(&mut config, &format!("/bin/sh -c #(nop)  {desc}"), true);
        let id = engine
            .store()?
            .derive(st.image.as_deref(), None::<&[u8]>, config.clone())?;
        self.made(st, &key, id, config);
        Ok(())
    }

    fn step(&self, engine: &Engine, st: &mut State, ins: &Instruction) -> Result<()> {
        let esc = self.esc();
        let vars = self.vars(st);
        let x = |s: &str| expand(s, &vars, esc).map_err(|e| step_err(ins, &e));
        let xw = |s: &str| expand_words(s, &vars, esc).map_err(|e| step_err(ins, &e));
        match &ins.inst {
            Inst::From { .. } => unreachable!("FROM starts a stage"),
            Inst::Arg(list) => {
                for (k, d) in list {
                    let v = if let Some(v) = self.opts.build_args.get(k) {
                        self.used_args.lock().unwrap().insert(k.clone());
                        Some(v.clone())
                    } else if let Some(d) = d {
                        Some(x(d)?)
                    } else {
                        self.global.get(k).cloned()
                    };
                    st.args.insert(k.clone(), v);
                }
                Ok(())
            }
            Inst::Env(pairs) => {
                let mut set = Vec::new();
                for (k, v) in pairs {
                    set.push((x(k)?, x(v)?));
                }
                let desc = format!(
                    "ENV {}",
                    set.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                self.meta(engine, st, &desc, |c| {
                    for (k, v) in &set {
                        set_env(c, k, v);
                    }
                })
            }
            Inst::Label(pairs) => {
                let mut set = Vec::new();
                for (k, v) in pairs {
                    set.push((x(k)?, x(v)?));
                }
                let desc = format!(
                    "LABEL {}",
                    set.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                self.meta(engine, st, &desc, |c| {
                    let l = obj(c, "config")
                        .entry("Labels")
                        .or_insert_with(|| json!({}));
                    if !l.is_object() {
                        *l = json!({});
                    }
                    for (k, v) in &set {
                        l[k] = json!(v);
                    }
                })
            }
            Inst::Workdir(p) => {
                let p = x(p)?;
                let cur = st.config["config"]["WorkingDir"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let joined = if p.starts_with('/') {
                    p
                } else {
                    format!("{}/{p}", if cur.is_empty() { "/" } else { &cur })
                };
                let clean = format!("/{}", components(&joined).join("/"));
                self.meta(engine, st, &format!("WORKDIR {clean}"), |c| {
                    obj(c, "config").insert("WorkingDir".into(), json!(clean));
                })
            }
            Inst::User(u) => {
                let u = x(u)?;
                self.meta(engine, st, &format!("USER {u}"), |c| {
                    obj(c, "config").insert("User".into(), json!(u));
                })
            }
            Inst::StopSignal(s) => {
                let s = x(s)?;
                let upper = s.to_ascii_uppercase();
                let known = s.parse::<u32>().is_ok_and(|n| (1..=64).contains(&n))
                    || upper
                        .trim_start_matches("SIG")
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-');
                if !known || s.is_empty() {
                    return Err(step_err(ins, &format!("invalid signal {s:?}")));
                }
                self.meta(engine, st, &format!("STOPSIGNAL {s}"), |c| {
                    obj(c, "config").insert("StopSignal".into(), json!(s));
                })
            }
            Inst::Maintainer(m) => {
                let m = x(m)?;
                self.meta(engine, st, &format!("MAINTAINER {m}"), |c| {
                    c["author"] = json!(m);
                })
            }
            Inst::Cmd(cmd) | Inst::Entrypoint(cmd) => {
                let is_cmd = matches!(ins.inst, Inst::Cmd(_));
                let v: Vec<String> = match cmd {
                    Command::Exec(v) => v.clone(),
                    Command::Shell(s) if s.is_empty() => Vec::new(),
                    Command::Shell(s) => {
                        let mut v = shell_of(&st.config);
                        v.push(s.clone());
                        v
                    }
                };
                let field = if is_cmd { "Cmd" } else { "Entrypoint" };
                let reset_cmd = !is_cmd && !st.cmd_set;
                if is_cmd {
                    st.cmd_set = true;
                }
                self.meta(
                    engine,
                    st,
                    &format!("{} {}", field.to_ascii_uppercase(), go_list(&v)),
                    |c| {
                        let o = obj(c, "config");
                        o.insert(
                            field.into(),
                            if v.is_empty() && !is_cmd {
                                Value::Null
                            } else {
                                json!(v)
                            },
                        );
                        // docker: an ENTRYPOINT resets a CMD inherited from the base image.
                        if reset_cmd {
                            o.insert("Cmd".into(), Value::Null);
                        }
                    },
                )
            }
            Inst::Expose(ports) => {
                let mut list = Vec::new();
                for p in ports {
                    for w in xw(p)? {
                        let (num, proto) = w.split_once('/').unwrap_or((&w, "tcp"));
                        let proto = proto.to_ascii_lowercase();
                        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                            return Err(step_err(ins, &format!("invalid proto {proto:?}")));
                        }
                        let (a, b) = num.split_once('-').unwrap_or((num, num));
                        let (a, b) = match (a.parse::<u16>(), b.parse::<u16>()) {
                            (Ok(a), Ok(b)) if a <= b => (a, b),
                            _ => return Err(step_err(ins, &format!("invalid port {w:?}"))),
                        };
                        for port in a..=b {
                            list.push(format!("{port}/{proto}"));
                        }
                    }
                }
                self.meta(engine, st, &format!("EXPOSE {}", list.join(" ")), |c| {
                    let o = obj(c, "config")
                        .entry("ExposedPorts")
                        .or_insert_with(|| json!({}));
                    if !o.is_object() {
                        *o = json!({});
                    }
                    for p in &list {
                        o[p] = json!({});
                    }
                })
            }
            Inst::Volume(vols) => {
                let mut list = Vec::new();
                for v in vols {
                    list.push(x(v)?);
                }
                self.meta(engine, st, &format!("VOLUME {}", go_list(&list)), |c| {
                    let o = obj(c, "config")
                        .entry("Volumes")
                        .or_insert_with(|| json!({}));
                    if !o.is_object() {
                        *o = json!({});
                    }
                    for p in &list {
                        o[p] = json!({});
                    }
                })
            }
            Inst::Shell(v) => {
                let v = v.clone();
                self.meta(engine, st, &format!("SHELL {}", go_list(&v)), |c| {
                    obj(c, "config").insert("Shell".into(), json!(v));
                })
            }
            Inst::Healthcheck(h) => {
                let mut hc = Map::new();
                let test: Vec<String> = match &h.test {
                    None => vec!["NONE".into()],
                    Some(Command::Exec(v)) => {
                        let mut t = vec!["CMD".to_string()];
                        t.extend(v.iter().cloned());
                        t
                    }
                    Some(Command::Shell(s)) => vec!["CMD-SHELL".into(), s.clone()],
                };
                hc.insert("Test".into(), json!(test));
                for (flag, field) in [
                    ("interval", "Interval"),
                    ("timeout", "Timeout"),
                    ("start-period", "StartPeriod"),
                    ("start-interval", "StartInterval"),
                ] {
                    if let Some(d) = h.flags.get(flag) {
                        let ns = crate::lex::duration_ns(d).map_err(|e| step_err(ins, &e))?;
                        if ns != 0 {
                            hc.insert(field.into(), json!(ns));
                        }
                    }
                }
                if let Some(r) = h.flags.get("retries") {
                    hc.insert("Retries".into(), json!(r.parse::<u32>().unwrap_or(0)));
                }
                let hc = Value::Object(hc);
                self.meta(engine, st, &format!("HEALTHCHECK {hc}"), |c| {
                    obj(c, "config").insert("Healthcheck".into(), hc.clone());
                })
            }
            Inst::Onbuild(inner) => {
                let trigger = inner.original.clone();
                self.meta(engine, st, &format!("ONBUILD {trigger}"), |c| {
                    let o = obj(c, "config")
                        .entry("OnBuild")
                        .or_insert_with(|| json!([]));
                    if !o.is_array() {
                        *o = json!([]);
                    }
                    o.as_array_mut().expect("array").push(json!(trigger));
                })
            }
            Inst::Run { cmd, heredocs } => self.run(engine, st, ins, cmd, heredocs),
            Inst::Copy {
                add,
                srcs,
                dest,
                heredocs,
            } => self.copy(engine, st, ins, *add, srcs, dest, heredocs),
        }
    }

    // ---- RUN -------------------------------------------------------------------------------

    fn run(
        &self,
        engine: &Engine,
        st: &mut State,
        ins: &Instruction,
        cmd: &Command,
        heredocs: &[parser::Heredoc],
    ) -> Result<()> {
        let argv: Vec<String> = match cmd {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = shell_of(&st.config);
                let bare = heredocs.len() == 1 && {
                    let t = s.trim();
                    t.starts_with("<<")
                        && t.trim_start_matches('<')
                            .trim_start_matches('-')
                            .trim_matches(|c| c == '"' || c == '\'')
                            == heredocs[0].name
                };
                if bare {
                    // RUN <<EOF alone: the heredoc is the script.
                    let body = &heredocs[0].content;
                    if body.starts_with("#!") {
                        let interp: Vec<String> = body.lines().next().unwrap_or("")[2..]
                            .split_whitespace()
                            .map(str::to_string)
                            .collect();
                        v = interp;
                        v.push("-c".into());
                    }
                    v.push(body.clone());
                } else {
                    // The shell reads the heredocs itself.
                    let mut text = s.clone();
                    for h in heredocs {
                        text.push('\n');
                        text.push_str(&h.content);
                        text.push_str(&h.name);
                    }
                    v.push(text);
                }
                v
            }
        };
        let env = self.run_env(st);
        let mut mounts = Vec::new();
        for m in ins.flags.all("mount") {
            mounts.push(RunMount::parse(m).map_err(|e| step_err(ins, &e))?);
        }
        let network = match ins.flags.get("network") {
            Some("default") | None => self.opts.network.clone(),
            Some(n) => n.to_string(),
        };
        let shown_args: Vec<String> = env
            .iter()
            .filter(|(k, _)| !PROXY_ARGS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let created_by = if shown_args.is_empty() {
            argv.join(" ")
        } else {
            format!(
                "|{} {} {}",
                shown_args.len(),
                shown_args.join(" "),
                argv.join(" ")
            )
        };
        // A bind from a stage or image: its content (the image id) is part of the key.
        let store = engine.store()?;
        let mut from_ids = Vec::new();
        for m in mounts.iter().filter(|m| m.kind == MountKind::Bind) {
            if let Some(f) = &m.from {
                from_ids.push(self.from_ref(&store, ins, f)?);
            }
        }
        let key = cache::key(&[
            "run",
            &Self::parent_key(st),
            &json!(argv).to_string(),
            &shown_args.join("\n"),
            &format!("{mounts:?}"),
            &network,
            &from_ids.join(","),
        ]);
        if self.cached(engine, st, &key)? {
            return Ok(());
        }
        let Some(parent) = st.image.clone() else {
            return Err(step_err(
                ins,
                "RUN needs a base image with a shell (this stage is FROM scratch)",
            ));
        };
        let mut hc = HostConfig {
            network_mode: network,
            ..Default::default()
        };
        let mut bind_mounts = Vec::new();
        // Copies of what binds from stages or images show, removed when the step ends.
        let mut bind_copies: Vec<TempPath> = Vec::new();
        let mut tmpfs = BTreeMap::new();
        for m in &mounts {
            match m.kind {
                MountKind::Tmpfs => {
                    tmpfs.insert(
                        m.target.clone(),
                        m.size
                            .as_ref()
                            .map(|s| format!("size={s}"))
                            .unwrap_or_default(),
                    );
                }
                MountKind::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| m.target.clone());
                    let dir = self
                        .root
                        .join("build/cache-mounts")
                        .join(cache::key(&[&id]));
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir).map_err(|e| {
                            Error::msg(format!("create cache mount {}: {e}", dir.display()))
                        })?;
                        let c =
                            std::ffi::CString::new(dir.as_os_str().to_string_lossy().as_bytes())
                                .expect("path");
                        unsafe {
                            libc::chmod(c.as_ptr(), m.mode.unwrap_or(0o755));
                            libc::chown(c.as_ptr(), m.uid.unwrap_or(0), m.gid.unwrap_or(0));
                        }
                    }
                    bind_mounts.push(berth_engine::model::Mount {
                        typ: "bind".into(),
                        source: dir.to_string_lossy().into_owned(),
                        target: m.target.clone(),
                        read_only: m.read_only,
                        ..Default::default()
                    });
                }
                MountKind::Bind if m.from.is_some() => {
                    let id = from_ids.remove(0);
                    let copy = self
                        .bind_from_image(&store, &id, m)
                        .map_err(|e| step_err(ins, &e))?;
                    bind_mounts.push(berth_engine::model::Mount {
                        typ: "bind".into(),
                        source: copy.join("m").to_string_lossy().into_owned(),
                        target: m.target.clone(),
                        read_only: m.read_only,
                        ..Default::default()
                    });
                    bind_copies.push(copy);
                }
                MountKind::Bind => {
                    let rel = components(m.source.as_deref().unwrap_or(".")).join("/");
                    let src = self.ctx.root.join(&rel);
                    if !src.exists() {
                        return Err(step_err(
                            ins,
                            &format!("--mount source {rel:?} not found in the build context"),
                        ));
                    }
                    bind_mounts.push(berth_engine::model::Mount {
                        typ: "bind".into(),
                        source: src.to_string_lossy().into_owned(),
                        target: m.target.clone(),
                        read_only: m.read_only,
                        ..Default::default()
                    });
                }
            }
        }
        if !bind_mounts.is_empty() {
            hc.mounts = Some(bind_mounts);
        }
        if !tmpfs.is_empty() {
            hc.tmpfs = Some(tmpfs);
        }
        let workdir = st.config["config"]["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .map(str::to_string);
        let co = CreateOptions {
            image: parent.clone(),
            cmd: argv.clone(),
            entrypoint: Some(String::new()),
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            workdir,
            attach_stdout: true,
            attach_stderr: true,
            host_config: hc,
            ..Default::default()
        };
        let c = engine
            .create(&co)
            .map_err(|e| step_err(ins, &e.to_string()))?;
        let guard = ContainerGuard {
            engine,
            id: c.id.clone(),
            running: self.running.clone(),
        };
        self.running.lock().unwrap().push(c.id.clone());
        let attach = engine
            .start(
                &c.id,
                &StartOptions {
                    attach: true,
                    stdin: false,
                },
            )
            .map_err(|e| step_err(ins, &e.to_string()))?;
        let code = match attach {
            Some(a) => self.pump(engine, &c.id, a)?,
            None => engine.wait(&c.id)?,
        };
        if CANCELLED.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        if code != 0 {
            return Err(Error::StepFailed(format!(
                "building at STEP \"{}\" (Dockerfile:{}): process \"{}\" did not complete successfully: exit code: {code}",
                ins.original.lines().next().unwrap_or(""),
                ins.line,
                argv.join(" ")
            )));
        }
        let mut config = st.config.clone();
        let store = engine.store()?;
        let mut with_layer = config.clone();
        Self::history(&mut with_layer, &created_by, false);
        let made = engine.layer(&c.id, |w| {
            Ok(store.derive_from(Some(&parent), w, with_layer.clone())?)
        })?;
        let id = match made {
            Some(id) => {
                config = with_layer;
                id
            }
            None => {
                Self::history(&mut config, &created_by, true);
                store.derive(Some(&parent), None::<&[u8]>, config.clone())?
            }
        };
        drop(guard);
        self.made(st, &key, id, config);
        Ok(())
    }

    /// Streams the RUN container's output until it exits; returns its exit code.
    fn pump(&self, engine: &Engine, id: &str, a: berth_engine::Attach) -> Result<i32> {
        use berth_engine::attach::{take_frame, EXIT, STDERR, STDOUT};
        let fd = a.fd();
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 32 * 1024];
        let mut killed = false;
        let mut out = RunOutput {
            sh: self,
            pending: [Vec::new(), Vec::new()],
        };
        loop {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let r = unsafe { libc::poll(&mut p, 1, 200) };
            if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(Error::msg(format!("poll: {}", io::Error::last_os_error())));
            }
            if r <= 0 {
                // A signal that came before this container was registered: kill it here.
                if CANCELLED.load(Ordering::SeqCst) && !killed {
                    killed = true;
                    let _ = engine.kill(id, "KILL");
                }
                continue;
            }
            let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(Error::msg(
                    "lost the connection to the RUN container's monitor",
                ));
            }
            buf.extend_from_slice(&chunk[..n as usize]);
            while let Some((kind, payload)) = take_frame(&mut buf) {
                match kind {
                    STDOUT | STDERR if !self.opts.quiet => out.write(kind == STDERR, &payload),
                    EXIT if payload.len() >= 4 => {
                        return Ok(i32::from_le_bytes([
                            payload[0], payload[1], payload[2], payload[3],
                        ]))
                    }
                    _ => {}
                }
            }
        }
    }

    /// Writes a RUN's output to ours: stdout, or stderr.
    fn run_output(&self, stderr: bool, bytes: &[u8]) {
        let _g = self.out.lock().unwrap();
        if stderr {
            let _ = io::stderr().lock().write_all(bytes);
        } else {
            let mut o = io::stdout().lock();
            let _ = o.write_all(bytes);
            let _ = o.flush();
        }
    }

    // ---- COPY / ADD ------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &self,
        engine: &Engine,
        st: &mut State,
        ins: &Instruction,
        add: bool,
        srcs: &[String],
        dest: &str,
        heredocs: &[parser::Heredoc],
    ) -> Result<()> {
        let vars = self.vars(st);
        let esc = self.esc();
        let x = |s: &str| expand(s, &vars, esc).map_err(|e| step_err(ins, &e));
        let kw = ins.keyword();
        let store = engine.store()?;
        let parent_img = st.image.as_deref().map(|i| store.image(i)).transpose()?;
        let image = Layers::new(match &parent_img {
            Some(i) if store.driver() == berth_image::Driver::Vfs => {
                i.layer_dirs().last().cloned().into_iter().collect()
            }
            Some(i) => i.layer_dirs(),
            None => Vec::new(),
        });
        // Destination: relative to WORKDIR; a trailing slash means a directory.
        let dest = x(dest)?;
        let workdir = st.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{}/{dest}", if workdir.is_empty() { "" } else { &workdir })
        };
        let dest_slash = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
        // --link (BuildKit): the layer is made without looking at the image below it, so it is
        // the same on any base: no symlink or directory of the parent shapes the destination,
        // and every parent directory of the destination is in the layer (root, 0755).
        let link = ins.flags.get("link").is_some_and(|v| v != "false");
        let unlinked = Layers::new(Vec::new());
        let below = if link { &unlinked } else { &image };
        let (dparts, dentry) = below.resolve(&abs, true);
        let dest_is_dir = dest_slash || dentry.as_ref().is_some_and(|e| e.meta.is_dir());
        let dest_path = dparts.join("/");
        let perms = Perms {
            owner: ins
                .flags
                .get("chown")
                .map(|c| x(c).and_then(|c| self.owner(&image, &c).map_err(|e| step_err(ins, &e))))
                .transpose()?,
            chmod: ins
                .flags
                .get("chmod")
                .map(|m| {
                    u32::from_str_radix(m, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| {
                            step_err(
                                ins,
                                &format!("invalid --chmod {m:?}: an octal mode is expected"),
                            )
                        })
                })
                .transpose()?,
        };
        let join = |dir: &str, name: &str| {
            if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            }
        };
        let mut plan = Plan::default();
        let mut from_desc = String::new();
        let mtime_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (uid, gid) = perms.owner.unwrap_or((0, 0));
        let mut count = 0;
        let mut tmp_files: Vec<tempfile_path::TempPath> = Vec::new();

        // Heredoc sources: files named after the delimiter.
        let mut rest: Vec<String> = Vec::new();
        for s in srcs {
            if let Some(h) = s
                .strip_prefix("<<")
                .map(|n| {
                    n.trim_start_matches('-')
                        .trim_matches(|c| c == '"' || c == '\'')
                })
                .and_then(|n| heredocs.iter().find(|h| h.name == n))
            {
                let content = if h.expand {
                    x(&h.content)?
                } else {
                    h.content.clone()
                };
                let target = if dest_is_dir || srcs.len() > 1 {
                    join(&dest_path, &h.name)
                } else {
                    dest_path.clone()
                };
                plan.items.push(Item {
                    dest: target,
                    data: Data::Bytes(content.into_bytes()),
                    mode: perms.chmod.unwrap_or(0o644),
                    uid,
                    gid,
                    mtime: mtime_now,
                });
                count += 1;
            } else {
                rest.push(x(s)?);
            }
        }
        if let Some(from) = ins.flags.get("from") {
            let from = x(from)?;
            let id = self.from_ref(&store, ins, &from)?;
            let src = image_layers(&store, &id)?;
            from_desc = id.clone();
            let mut sources = Vec::new();
            for s in &rest {
                if !crate::ignore::has_glob(s) {
                    sources.push(s.clone());
                    continue;
                }
                let found = src.glob(s);
                if found.is_empty() {
                    return Err(step_err(
                        ins,
                        &format!(
                            "no source files were specified: \"{s}\" matches nothing in {from}"
                        ),
                    ));
                }
                sources.extend(found);
            }
            for s in &sources {
                let (parts, e) = src.resolve(s, true);
                let e = e.ok_or_else(|| step_err(ins, &format!("\"{s}\": not found in {from}")))?;
                count += 1;
                if e.meta.is_dir() {
                    if dentry.is_none() {
                        plan.items.push(Item {
                            dest: dest_path.clone(),
                            data: Data::Dir,
                            mode: 0o755,
                            uid,
                            gid,
                            mtime: e.meta.mtime().max(0) as u64,
                        });
                    }
                    copy::add_from_image(&mut plan, &src, &parts, &dest_path, perms, true)
                        .map_err(|e| step_err(ins, &e.to_string()))?;
                } else {
                    let name = parts.last().cloned().unwrap_or_default();
                    let target = if dest_is_dir {
                        join(&dest_path, &name)
                    } else {
                        dest_path.clone()
                    };
                    copy::add_from_image(&mut plan, &src, &parts, &target, perms, false)
                        .map_err(|e| step_err(ins, &e.to_string()))?;
                }
            }
        } else {
            for s in &rest {
                if add && (s.starts_with("http://") || s.starts_with("https://")) {
                    let path =
                        crate::context::fetch(s, &self.root).map_err(|e| step_err(ins, &e))?;
                    if let Some(sum) = ins.flags.get("checksum") {
                        verify_checksum(&path, sum).map_err(|e| step_err(ins, &e))?;
                    }
                    let name = s
                        .trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or("download")
                        .split(['?', '#'])
                        .next()
                        .unwrap_or("download")
                        .to_string();
                    let target = if dest_is_dir {
                        join(&dest_path, &name)
                    } else {
                        dest_path.clone()
                    };
                    plan.items.push(Item {
                        dest: target,
                        data: Data::File(path.to_path_buf()),
                        mode: perms.chmod.unwrap_or(0o600),
                        uid,
                        gid,
                        mtime: mtime_now,
                    });
                    tmp_files.push(path);
                    count += 1;
                    continue;
                }
                let found = self
                    .ctx
                    .sources(s)
                    .map_err(|e| step_err(ins, &e.to_string()))?;
                let skip = |r: &str| self.ctx.excluded(r);
                for (host, rel) in found {
                    count += 1;
                    let m = std::fs::symlink_metadata(&host)
                        .map_err(|e| step_err(ins, &e.to_string()))?;
                    if m.is_dir() {
                        let before = plan.items.len();
                        copy::add_host(&mut plan, &host, &rel, &dest_path, perms, &skip)
                            .map_err(|e| step_err(ins, &e.to_string()))?;
                        // The directory's contents go into DEST; DEST itself is made only when missing.
                        if dentry.is_some() {
                            plan.items.remove(before);
                        } else {
                            plan.items[before].mode = 0o755;
                        }
                        continue;
                    }
                    if add
                        && m.is_file()
                        && add_checksum_ok(ins, &host)?
                        && copy::open_archive(&host).ok().flatten().is_some()
                    {
                        plan.items.push(Item {
                            dest: dest_path.clone(),
                            data: Data::Archive(host.clone()),
                            mode: 0o755,
                            uid,
                            gid,
                            mtime: mtime_now,
                        });
                        continue;
                    }
                    let name = rel.rsplit('/').next().unwrap_or(&rel).to_string();
                    let target = if dest_is_dir {
                        join(&dest_path, &name)
                    } else {
                        dest_path.clone()
                    };
                    copy::add_host(&mut plan, &host, &rel, &target, perms, &skip)
                        .map_err(|e| step_err(ins, &e.to_string()))?;
                }
            }
        }
        if count > 1 && !dest_is_dir {
            return Err(step_err(ins, &format!("when using {kw} with more than one source file, the destination must be a directory and end with a /")));
        }
        let digest = plan
            .digest()
            .map_err(|e| step_err(ins, &format!("read sources: {e}")))?;
        let flags = format!("{:?}", perms);
        let key = cache::key(&[
            "copy",
            kw,
            &Self::parent_key(st),
            &dest_path,
            &flags,
            &from_desc,
            &digest,
            if link { "link" } else { "" },
        ]);
        if self.cached(engine, st, &key)? {
            return Ok(());
        }
        let kind = if from_desc.is_empty() {
            if count == 1 && plan.items.len() == 1 {
                "file"
            } else {
                "dir"
            }
        } else {
            "multi"
        };
        let mut config = st.config.clone();
        Self::history(
            &mut config,
            &format!("/bin/sh -c #(nop) {kw} {kind}:{digest} in /{dest_path} "),
            false,
        );
        // Unpacked into the store as it is written, kept with its tar-split: written once.
        let write = |w: &mut dyn Write, split: Box<dyn Write + Send>| {
            plan.write(below, io::BufWriter::with_capacity(1 << 20, w), split)
                .map_err(|e| berth_archive::Error::Io {
                    context: "write the layer".into(),
                    source: e,
                })
        };
        let id = store
            .derive_from(st.image.as_deref(), &write, config.clone())
            .map_err(|e| step_err(ins, &e.to_string()))?;
        drop(tmp_files);
        self.made(st, &key, id, config);
        Ok(())
    }

    /// What `RUN --mount=type=bind,from=IMAGE,source=S` shows: S of that image (symlinks
    /// resolved inside it), copied out as `m` into a temp dir below the build root (returned). A copy rather than
    /// a mount of the image's layers, so a `rw` bind's writes are discarded with it and the
    /// image's layers are never exposed writable.
    fn bind_from_image(
        &self,
        store: &ImageStore,
        id: &str,
        m: &RunMount,
    ) -> std::result::Result<TempPath, String> {
        let src = image_layers(store, id).map_err(|e| e.to_string())?;
        let source = m.source.as_deref().unwrap_or("/");
        let (parts, e) = src.resolve(source, true);
        let e = e.ok_or_else(|| format!("--mount source {source:?} not found in {id:.12}"))?;
        let dir = self.root.join("build/mounts").join(format!(
            "{}-{}",
            std::process::id(),
            cache::key(&[id, source, &m.target])
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let tmp = TempPath(dir);
        let mut plan = Plan::default();
        let perms = Perms::default();
        if e.meta.is_dir() {
            plan.items.push(Item {
                dest: "m".into(),
                data: Data::Dir,
                mode: e.meta.mode() & 0o7777,
                uid: e.meta.uid(),
                gid: e.meta.gid(),
                mtime: e.meta.mtime().max(0) as u64,
            });
        }
        copy::add_from_image(&mut plan, &src, &parts, "m", perms, e.meta.is_dir())
            .map_err(|e| e.to_string())?;
        let opts = berth_archive::ApplyOptions {
            whiteouts: berth_archive::WhiteoutMode::Direct,
            expected_diff_id: None,
        };
        write_through(&plan, &src, |r| {
            berth_archive::apply_layer(r, &tmp, &opts).map_err(|e| Error::msg(e.to_string()))
        })
        .map_err(|e| e.to_string())?;
        Ok(tmp)
    }

    /// `--chown=user[:group]` resolved against the image's /etc/passwd and /etc/group.
    fn owner(&self, image: &Layers, spec: &str) -> std::result::Result<(u32, u32), String> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let lookup = |file: &str, name: &str| -> std::result::Result<(u32, u32), String> {
            let e = image
                .resolve(file, true)
                .1
                .ok_or_else(|| format!("unable to find {name:?}: no {file} in the image"))?;
            let text = std::fs::read_to_string(&e.host).unwrap_or_default();
            for l in text.lines() {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() >= 4 && f[0] == name {
                    let id = f[2]
                        .parse()
                        .map_err(|_| format!("bad {file} entry for {name}"))?;
                    let gid = f[3].parse().unwrap_or(id);
                    return Ok((id, gid));
                }
            }
            Err(format!("unable to find user or group {name:?} in {file}"))
        };
        let (uid, primary) = match u.parse::<u32>() {
            Ok(n) => (n, n),
            Err(_) => lookup("/etc/passwd", u)?,
        };
        let gid = match g {
            None => {
                if u.parse::<u32>().is_ok() {
                    uid
                } else {
                    primary
                }
            }
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => lookup("/etc/group", g)?.0,
            },
        };
        Ok((uid, gid))
    }
}

/// The layer dirs COPY --from and bind mounts read an image through (vfs: the top one holds all).
fn image_layers(store: &ImageStore, id: &str) -> Result<Layers> {
    let img = store.image(id)?;
    Ok(Layers::new(if store.driver() == berth_image::Driver::Vfs {
        img.layer_dirs().last().cloned().into_iter().collect()
    } else {
        img.layer_dirs()
    }))
}

fn add_checksum_ok(ins: &Instruction, host: &Path) -> Result<bool> {
    if let Some(sum) = ins.flags.get("checksum") {
        verify_checksum(host, sum).map_err(|e| step_err(ins, &e))?;
    }
    Ok(true)
}

fn verify_checksum(p: &Path, want: &str) -> std::result::Result<(), String> {
    use sha2::Digest;
    let Some(hexwant) = want.strip_prefix("sha256:") else {
        return Err(format!(
            "unsupported checksum {want:?}: sha256:<hex> is expected"
        ));
    };
    let mut f = std::fs::File::open(p).map_err(|e| e.to_string())?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let got = hex::encode(h.finalize());
    if got != hexwant {
        return Err(format!(
            "checksum mismatch: expected sha256:{hexwant}, got sha256:{got}"
        ));
    }
    Ok(())
}

/// Writes `plan`'s tar through a pipe into `sink`; the reader fails instead of ending early
/// when writing failed, so a half tar never becomes a layer.
fn write_through<T>(
    plan: &Plan,
    image: &Layers,
    sink: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<T> {
    let (out, written) = berth_archive::piped(
        |w| {
            plan.write(
                image,
                io::BufWriter::with_capacity(1 << 20, w),
                Box::new(io::sink()),
            )
        },
        sink,
    )
    .map_err(|e| Error::msg(format!("write the layer: {e}")))?;
    // The writer's own error says why; the reader's is only its echo.
    written.map_err(|e| Error::msg(format!("write the layer: {e}")))?;
    out
}

/// Removes a RUN container (and its anonymous volumes) whatever way the step ends.
struct ContainerGuard<'a> {
    engine: &'a Engine,
    id: String,
    running: Arc<Mutex<Vec<String>>>,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        let _ = self.engine.remove(&self.id, true, true);
        self.running.lock().unwrap().retain(|i| *i != self.id);
    }
}

/// SIGINT/SIGTERM/SIGHUP stop the build: a thread waits for them (blocked everywhere else),
/// marks the build cancelled and kills the RUN containers, whose steps then clean up.
fn watch_signals(root: &Path, eo: &EngineOptions, running: Arc<Mutex<Vec<String>>>) {
    let fd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        // An inherited SIG_IGN would discard them before the signalfd sees them (docker's Go
        // CLI un-ignores them the same way through signal.Notify).
        for s in [libc::SIGINT, libc::SIGTERM] {
            libc::signal(s, libc::SIG_DFL);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return;
        }
        OwnedFd::from_raw_fd(fd)
    };
    let root = root.to_path_buf();
    let eo = eo.clone();
    std::thread::spawn(move || {
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                std::mem::size_of_val(&info),
            )
        };
        if n <= 0 {
            return;
        }
        CANCELLED.store(true, Ordering::SeqCst);
        if let Ok(e) = Engine::open(&root, &eo) {
            for id in running.lock().unwrap().clone() {
                let _ = e.kill(&id, "KILL");
            }
        }
    });
}

/// Temp files and dirs that go away when dropped (downloads of ADD, copies bind-mounted by RUN).
mod tempfile_path {
    use std::path::{Path, PathBuf};

    pub struct TempPath(pub PathBuf);

    impl TempPath {
        pub fn to_path_buf(&self) -> PathBuf {
            self.0.clone()
        }
    }

    impl std::ops::Deref for TempPath {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            if self.0.is_dir() {
                let _ = std::fs::remove_dir_all(&self.0);
            } else {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }
}

pub(crate) use tempfile_path::TempPath;
