//! Credentials in docker's config.json: `{"auths": {"host": {"auth": base64("user:pass")}}}`,
//! or a credential helper (`credHelpers` per host, `credsStore` for all) run as
//! `docker-credential-<name> get|store|erase`, so berth, docker and podman share logins.

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// docker's `identitytoken`: an OAuth2 refresh token a token server issued at login, kept
    /// instead of the password (a credential helper returns it with the username `<token>`).
    pub identity_token: Option<String>,
}

/// The username credential helpers use for an identity token.
const TOKEN_USERNAME: &str = "<token>";

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// `$BERTH_AUTH_FILE`, else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_auth_file() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_AUTH_FILE") {
        return PathBuf::from(p);
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return PathBuf::from(d).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker/config.json")
}

/// The key docker files a registry under ("https://index.docker.io/v1/" for Docker Hub).
pub fn server_key(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".into()
        }
        h => h.to_string(),
    }
}

fn read(file: &Path) -> Result<Value> {
    match std::fs::read(file) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::Config(format!("{}: {e}", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(Error::io(format!("read {}", file.display()), e)),
    }
}

fn write(file: &Path, v: &Value) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = file.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(format!("create {}", d.display()), e))?;
    }
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
    let mut bytes = serde_json::to_vec_pretty(v).expect("json");
    bytes.push(b'\n');
    f.write_all(&bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, file).map_err(|e| Error::io(format!("rename to {}", file.display()), e))
}

/// The credential helper for a host, if config.json names one.
fn helper(cfg: &Value, key: &str) -> Option<String> {
    cfg.get("credHelpers")
        .and_then(|h| h.get(key))
        .or_else(|| cfg.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn run_helper(name: &str, action: &str, input: &str) -> Result<String> {
    let prog = format!("docker-credential-{name}");
    let mut child = Command::new(&prog)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Config(format!("credential helper {prog}: {e}")))?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .ok();
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Config(format!("credential helper {prog}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        if stdout.contains("credentials not found") {
            return Ok(String::new());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Error::Config(format!(
            "credential helper {prog} {action}: {}",
            if stderr.is_empty() { stdout } else { stderr }
        )));
    }
    Ok(stdout)
}

/// The credentials stored for `host`, if any.
pub fn get(file: &Path, host: &str) -> Result<Option<Credentials>> {
    let cfg = read(file)?;
    let key = server_key(host);
    if let Some(h) = helper(&cfg, &key) {
        let out = run_helper(&h, "get", &key)?;
        if out.is_empty() {
            return Ok(None);
        }
        let v: Value = serde_json::from_str(&out)
            .map_err(|e| Error::Config(format!("credential helper {h}: {e}")))?;
        let user = v
            .get("Username")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let secret = v.get("Secret").and_then(Value::as_str).unwrap_or_default();
        if user == TOKEN_USERNAME {
            return Ok(Some(Credentials {
                username: String::new(),
                password: String::new(),
                identity_token: Some(secret.into()),
            }));
        }
        return Ok(Some(Credentials {
            username: user.into(),
            password: secret.into(),
            identity_token: None,
        }));
    }
    let auths = cfg.get("auths").and_then(Value::as_object);
    let entry = auths.and_then(|a| {
        a.get(&key)
            .or_else(|| a.get(&format!("https://{host}")))
            .or_else(|| a.get(&format!("http://{host}")))
            .or_else(|| a.get(host))
    });
    let identity_token = entry
        .and_then(|e| e.get("identitytoken"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let Some(auth) = entry.and_then(|e| e.get("auth")).and_then(Value::as_str) else {
        return Ok(identity_token.map(|t| Credentials {
            username: String::new(),
            password: String::new(),
            identity_token: Some(t),
        }));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| Error::Config(format!("{}: auth for {key}: {e}", file.display())))?;
    let s = String::from_utf8_lossy(&decoded);
    let (u, p) = s.split_once(':').ok_or_else(|| {
        Error::Config(format!(
            "{}: auth for {key} is not user:password",
            file.display()
        ))
    })?;
    Ok(Some(Credentials {
        username: u.into(),
        password: p.into(),
        identity_token,
    }))
}

/// Saves credentials (in the helper when config.json names one, else base64 in `auths`).
pub fn store(file: &Path, host: &str, c: &Credentials) -> Result<()> {
    let mut cfg = read(file)?;
    let key = server_key(host);
    if let Some(h) = helper(&cfg, &key) {
        let input = match &c.identity_token {
            Some(t) => json!({"ServerURL": key, "Username": TOKEN_USERNAME, "Secret": t}),
            None => json!({"ServerURL": key, "Username": c.username, "Secret": c.password}),
        }
        .to_string();
        run_helper(&h, "store", &input)?;
        return Ok(());
    }
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password));
    let mut entry = json!({ "auth": auth });
    if let Some(t) = &c.identity_token {
        entry["identitytoken"] = json!(t);
    }
    if !cfg.is_object() {
        cfg = json!({});
    }
    let auths = cfg
        .as_object_mut()
        .expect("object")
        .entry("auths")
        .or_insert_with(|| json!({}));
    if !auths.is_object() {
        *auths = json!({});
    }
    auths.as_object_mut().expect("object").insert(key, entry);
    write(file, &cfg)
}

/// Forgets the credentials for `host`; false when there were none.
pub fn erase(file: &Path, host: &str) -> Result<bool> {
    let mut cfg = read(file)?;
    let key = server_key(host);
    if let Some(h) = helper(&cfg, &key) {
        run_helper(&h, "erase", &key)?;
        return Ok(true);
    }
    let removed = cfg
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .map(|a| a.remove(&key).is_some())
        .unwrap_or(false);
    if removed {
        write(file, &cfg)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_get_erase_in_docker_format() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("config.json");
        std::fs::write(
            &f,
            r#"{"auths": {"other:1": {"auth": "eDp5"}}, "psFormat": "x"}"#,
        )
        .unwrap();
        let c = Credentials {
            username: "u".into(),
            password: "p:w".into(),
            identity_token: None,
        };
        store(&f, "127.0.0.1:5000", &c).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "dTpwOnc=");
        assert_eq!(v["psFormat"], "x");
        assert_eq!(get(&f, "127.0.0.1:5000").unwrap(), Some(c));
        assert_eq!(get(&f, "other:1").unwrap().unwrap().username, "x");
        assert!(erase(&f, "127.0.0.1:5000").unwrap());
        assert!(!erase(&f, "127.0.0.1:5000").unwrap());
        assert_eq!(get(&f, "127.0.0.1:5000").unwrap(), None);
        assert_eq!(server_key("docker.io"), "https://index.docker.io/v1/");
        // A login that got a refresh token keeps it instead of the password, as docker does.
        let t = Credentials {
            username: "u".into(),
            password: String::new(),
            identity_token: Some("refresh-1".into()),
        };
        store(&f, "127.0.0.1:5000", &t).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "dTo=");
        assert_eq!(v["auths"]["127.0.0.1:5000"]["identitytoken"], "refresh-1");
        assert_eq!(get(&f, "127.0.0.1:5000").unwrap(), Some(t));
    }
}
