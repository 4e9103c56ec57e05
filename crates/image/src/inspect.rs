//! `docker image inspect`'s JSON object for an image (the CLI and the API print the same).

use crate::{Driver, Image, ImageStore};
use serde_json::{json, Map, Value};

/// Docker's `ImageInspect` shape: every field present, in docker's order.
pub fn inspect_json(store: &ImageStore, img: &Image) -> Value {
    let c = img
        .config_json
        .get("config")
        .cloned()
        .unwrap_or(Value::Null);
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
    let top = |k: &str| {
        img.config_json
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let dirs: Vec<String> = img
        .layer_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let graph = match store.driver() {
        Driver::Overlay => {
            let mut data = Map::new();
            if dirs.len() > 1 {
                let lowers: Vec<&str> = dirs[..dirs.len() - 1]
                    .iter()
                    .rev()
                    .map(String::as_str)
                    .collect();
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
    v.insert(
        "RepoTags".into(),
        json!(img.names.iter().map(|n| n.familiar()).collect::<Vec<_>>()),
    );
    v.insert(
        "RepoDigests".into(),
        json!(img
            .repo_digests()
            .iter()
            .map(|d| crate::familiar_repository(d))
            .collect::<Vec<_>>()),
    );
    let parent = store
        .parent(&img.id)
        .ok()
        .flatten()
        .map(|p| format!("sha256:{p}"))
        .unwrap_or_default();
    v.insert("Parent".into(), json!(parent));
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
    v.insert(
        "RootFS".into(),
        json!({"Type": "layers", "Layers": img.diff_ids()}),
    );
    v.insert(
        "Metadata".into(),
        json!({"LastTagTime": img.last_tag_time.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into())}),
    );
    Value::Object(v)
}
