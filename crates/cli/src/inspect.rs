//! `berth image inspect` / `berth inspect`: Docker's JSON shape.

use clap::Args;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::output::{indented_json, print_inspect};
use crate::{CmdResult, Ctx, Failure};
use berth_image::{Driver, Image, ImageStore};

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template ('json' or a Go-style template)
    #[arg(short, long)]
    format: Option<String>,
    /// Images to inspect
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn run(ctx: &Ctx, a: InspectArgs) -> CmdResult {
    let store = ctx.store()?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in &a.images {
        match store.resolve(name) {
            Ok(img) => out.push(inspect_json(&store, &img)),
            Err(e) => missing.push(e.to_string()),
        }
    }
    print_inspect(a.format.as_deref(), &out, docker_order)?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure(missing.join("\nError: ")))
    }
}

pub fn inspect_json(store: &ImageStore, img: &Image) -> Value {
    let c = img.config_json.get("config").cloned().unwrap_or(Value::Null);
    let get = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
    let string = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut config = Map::new();
    config.insert("Hostname".into(), json!(""));
    config.insert("Domainname".into(), json!(""));
    config.insert("User".into(), json!(string("User")));
    config.insert("AttachStdin".into(), json!(false));
    config.insert("AttachStdout".into(), json!(false));
    config.insert("AttachStderr".into(), json!(false));
    if let Some(p) = c.get("ExposedPorts").filter(|v| !v.is_null()) {
        config.insert("ExposedPorts".into(), p.clone());
    }
    config.insert("Tty".into(), json!(false));
    config.insert("OpenStdin".into(), json!(false));
    config.insert("StdinOnce".into(), json!(false));
    config.insert("Env".into(), get("Env"));
    config.insert("Cmd".into(), get("Cmd"));
    config.insert("Image".into(), json!(""));
    config.insert("Volumes".into(), get("Volumes"));
    config.insert("WorkingDir".into(), json!(string("WorkingDir")));
    config.insert("Entrypoint".into(), get("Entrypoint"));
    config.insert("OnBuild".into(), get("OnBuild"));
    config.insert("Labels".into(), get("Labels"));
    if let Some(s) = c.get("StopSignal").filter(|v| !v.is_null()) {
        config.insert("StopSignal".into(), s.clone());
    }
    let top = |k: &str| img.config_json.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let dirs: Vec<String> = img.layer_dirs().iter().map(|d| d.display().to_string()).collect();
    let graph = match store.driver() {
        Driver::Overlay => {
            let mut data = Map::new();
            if dirs.len() > 1 {
                let lowers: Vec<&str> = dirs[..dirs.len() - 1].iter().rev().map(String::as_str).collect();
                data.insert("LowerDir".into(), json!(lowers.join(":")));
            }
            if let Some(top) = dirs.last() {
                data.insert("UpperDir".into(), json!(top));
            }
            json!({"Name": "overlay", "Data": data})
        }
        Driver::Vfs => json!({"Name": "vfs", "Data": {"Dir": dirs.last()}}),
    };
    let mut v = Map::new();
    v.insert("Id".into(), json!(format!("sha256:{}", img.id)));
    v.insert("RepoTags".into(), json!(img.names.iter().map(|n| n.familiar()).collect::<Vec<_>>()));
    v.insert(
        "RepoDigests".into(),
        json!(img
            .repo_digests()
            .iter()
            .map(|d| berth_image::familiar_repository(d))
            .collect::<Vec<_>>()),
    );
    v.insert("Parent".into(), json!(""));
    v.insert("Comment".into(), json!(top("comment")));
    v.insert("Created".into(), json!(top("created")));
    v.insert("DockerVersion".into(), json!(top("docker_version")));
    v.insert("Author".into(), json!(top("author")));
    v.insert("Config".into(), Value::Object(config));
    v.insert("Architecture".into(), json!(top("architecture")));
    if let Some(var) = img.config_json.get("variant").filter(|x| !x.is_null()) {
        v.insert("Variant".into(), var.clone());
    }
    v.insert("Os".into(), json!(top("os")));
    v.insert("Size".into(), json!(img.size));
    v.insert("GraphDriver".into(), graph);
    v.insert("RootFS".into(), json!({"Type": "layers", "Layers": img.diff_ids()}));
    v.insert(
        "Metadata".into(),
        json!({"LastTagTime": img.last_tag_time.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into())}),
    );
    Value::Object(v)
}

/// The default `inspect` output in docker's key order: images through [`Ordered`], other
/// objects (containers, already sorted like the rest of berth's JSON) as they are.
pub fn docker_order(objects: &[Value]) -> String {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Shown<'a> {
        Image(Box<Ordered>),
        Other(&'a Value),
    }
    let shown: Vec<Shown> = objects
        .iter()
        .map(|o| match o.get("RootFS").is_some() && o.get("RepoTags").is_some() {
            true => Shown::Image(Box::new(Ordered::from(o))),
            false => Shown::Other(o),
        })
        .collect();
    indented_json(&shown)
}

/// Docker's key order for printing (a serde_json map would sort the keys).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Ordered {
    id: Value,
    repo_tags: Value,
    repo_digests: Value,
    parent: Value,
    comment: Value,
    created: Value,
    docker_version: Value,
    author: Value,
    config: OrderedConfig,
    architecture: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    variant: Value,
    os: Value,
    size: Value,
    graph_driver: Value,
    #[serde(rename = "RootFS")]
    root_fs: Value,
    metadata: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct OrderedConfig {
    hostname: Value,
    domainname: Value,
    user: Value,
    attach_stdin: Value,
    attach_stdout: Value,
    attach_stderr: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    exposed_ports: Value,
    tty: Value,
    open_stdin: Value,
    stdin_once: Value,
    env: Value,
    cmd: Value,
    image: Value,
    volumes: Value,
    working_dir: Value,
    entrypoint: Value,
    on_build: Value,
    labels: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    stop_signal: Value,
}

impl From<&Value> for Ordered {
    fn from(v: &Value) -> Ordered {
        let g = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
        let c = g("Config");
        let cg = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
        Ordered {
            id: g("Id"),
            repo_tags: g("RepoTags"),
            repo_digests: g("RepoDigests"),
            parent: g("Parent"),
            comment: g("Comment"),
            created: g("Created"),
            docker_version: g("DockerVersion"),
            author: g("Author"),
            config: OrderedConfig {
                hostname: cg("Hostname"),
                domainname: cg("Domainname"),
                user: cg("User"),
                attach_stdin: cg("AttachStdin"),
                attach_stdout: cg("AttachStdout"),
                attach_stderr: cg("AttachStderr"),
                exposed_ports: cg("ExposedPorts"),
                tty: cg("Tty"),
                open_stdin: cg("OpenStdin"),
                stdin_once: cg("StdinOnce"),
                env: cg("Env"),
                cmd: cg("Cmd"),
                image: cg("Image"),
                volumes: cg("Volumes"),
                working_dir: cg("WorkingDir"),
                entrypoint: cg("Entrypoint"),
                on_build: cg("OnBuild"),
                labels: cg("Labels"),
                stop_signal: cg("StopSignal"),
            },
            architecture: g("Architecture"),
            variant: g("Variant"),
            os: g("Os"),
            size: g("Size"),
            graph_driver: g("GraphDriver"),
            root_fs: g("RootFS"),
            metadata: g("Metadata"),
        }
    }
}
