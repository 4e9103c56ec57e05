//! The event log (its own crate so the image store, the engine and its monitors all write it): `<root>/events.log`, one docker event (JSON) per line, appended by every
//! berth process (CLI, monitors, `berth serve`) with one O_APPEND write per event, so lines from
//! concurrent writers never interleave. `berth events` and the API's `/events` read it; a
//! follower polls the file's size, so no daemon has to fan events out.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const LOG_FILE: &str = "events.log";

/// docker's `events.Message` (the API's and `docker events --format json`'s shape).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Event {
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    /// Deprecated fields docker still sends for containers (status = action, id, from = image).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

pub fn log_path(root: &Path) -> PathBuf {
    root.join(LOG_FILE)
}

/// Appends one event; failures are ignored (an event log must never fail an operation).
pub fn record(root: &Path, typ: &str, action: &str, id: &str, attributes: &[(&str, &str)]) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let attributes: BTreeMap<String, String> = attributes
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let container = typ == "container";
    let e = Event {
        typ: typ.into(),
        action: action.into(),
        status: container.then(|| action.to_string()),
        id: container.then(|| id.to_string()),
        from: if container {
            attributes.get("image").cloned()
        } else {
            None
        },
        actor: Actor {
            id: id.into(),
            attributes,
        },
        scope: "local".into(),
        time: now.as_secs() as i64,
        time_nano: now.as_nanos() as i64,
    };
    let mut line = serde_json::to_vec(&e).expect("event serializes");
    line.push(b'\n');
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(root))
    {
        let _ = f.write_all(&line);
    }
}

/// docker's `--filter` for events: values of one key are ORed, keys ANDed.
#[derive(Debug, Clone, Default)]
pub struct Filter(pub Vec<(String, String)>);

impl Filter {
    /// docker's message for a filter key it does not know.
    pub fn validate(&self) -> Result<(), String> {
        for (k, _) in &self.0 {
            if !matches!(
                k.as_str(),
                "container" | "event" | "type" | "image" | "label" | "volume" | "scope"
            ) {
                return Err(format!("invalid filter '{k}'"));
            }
        }
        Ok(())
    }

    pub fn matches(&self, e: &Event) -> bool {
        let mut keys: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter().all(|key| {
            self.0
                .iter()
                .filter(|(k, _)| k == key)
                .any(|(_, v)| match key {
                    "container" => {
                        e.typ == "container"
                            && (e.actor.id.starts_with(v.as_str())
                                || e.actor.attributes.get("name").is_some_and(|n| n == v))
                    }
                    "event" => e.action == *v || e.action.split(':').next() == Some(v.as_str()),
                    "type" => e.typ == *v,
                    "image" => {
                        e.actor.attributes.get("image").is_some_and(|i| i == v)
                            || (e.typ == "image" && e.actor.id == *v)
                    }
                    "volume" => e.typ == "volume" && e.actor.id == *v,
                    "scope" => e.scope == *v,
                    "label" => match v.split_once('=') {
                        Some((k, val)) => e.actor.attributes.get(k).is_some_and(|x| x == val),
                        None => e.actor.attributes.contains_key(v.as_str()),
                    },
                    _ => false,
                })
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Only events at or after this time (unix nanos).
    pub since: Option<i64>,
    /// Stop at this time (unix nanos); without it and with `follow`, read forever.
    pub until: Option<i64>,
    /// Keep reading new events as they are appended.
    pub follow: bool,
    pub filter: Filter,
}

/// The log's current end: follow from here to see only what happens next.
pub fn end_offset(root: &Path) -> u64 {
    std::fs::metadata(log_path(root))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Calls `emit` for every matching event (from `offset`, 0 = the start); returns when the
/// log is read (no `follow`), `until` has passed, or `emit` returns false.
pub fn read(
    root: &Path,
    offset: u64,
    o: &ReadOptions,
    emit: &mut dyn FnMut(&Event) -> bool,
) -> std::io::Result<()> {
    let path = log_path(root);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let watch = if o.follow { Watch::new(&path) } else { None };
    loop {
        let n = f.read(&mut chunk)?;
        if n > 0 {
            pending.extend_from_slice(&chunk[..n]);
            while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let Ok(e) = serde_json::from_slice::<Event>(&line) else {
                    continue;
                };
                if o.since.is_some_and(|s| e.time_nano < s) {
                    continue;
                }
                if o.until.is_some_and(|u| e.time_nano > u) {
                    return Ok(());
                }
                if o.filter.matches(&e) && !emit(&e) {
                    return Ok(());
                }
            }
            continue;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i64;
        if !o.follow || o.until.is_some_and(|u| now > u) {
            return Ok(());
        }
        // A cancelled follower learns it here: an empty heartbeat asks whether to go on.
        if !emit(&Event::default()) {
            return Ok(());
        }
        match &watch {
            Some(w) => w.wait(HEARTBEAT),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// How often a follower with nothing to read asks `emit` whether to go on.
pub const HEARTBEAT: Duration = Duration::from_millis(200);

/// An inotify watch on the log, so a follower wakes the moment a line is appended.
struct Watch(std::os::fd::OwnedFd);

impl Watch {
    fn new(path: &Path) -> Option<Watch> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return None;
        }
        let w = Watch(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        if unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_MODIFY) } < 0 {
            return None;
        }
        Some(w)
    }

    /// Returns when the log changed or after `timeout`.
    fn wait(&self, timeout: Duration) {
        use std::os::fd::AsRawFd;
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
        let mut buf = [0u8; 4096];
        while unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_filter_and_read() {
        let dir = std::env::temp_dir().join(format!("berth-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        record(
            &dir,
            "container",
            "create",
            "abc123",
            &[("image", "busybox"), ("name", "web")],
        );
        record(&dir, "volume", "create", "data", &[("driver", "local")]);
        record(
            &dir,
            "container",
            "die",
            "abc123",
            &[("exitCode", "3"), ("name", "web")],
        );
        let mut got = Vec::new();
        let o = ReadOptions {
            filter: Filter(vec![("container".into(), "web".into())]),
            ..Default::default()
        };
        read(&dir, 0, &o, &mut |e| {
            if !e.typ.is_empty() {
                got.push(e.action.clone());
            }
            true
        })
        .unwrap();
        assert_eq!(got, ["create", "die"]);
        let mut all = 0;
        read(&dir, 0, &ReadOptions::default(), &mut |e| {
            all += !e.typ.is_empty() as usize;
            true
        })
        .unwrap();
        assert_eq!(all, 3);
        let end = end_offset(&dir);
        let mut none = 0;
        read(&dir, end, &ReadOptions::default(), &mut |_| {
            none += 1;
            true
        })
        .unwrap();
        assert_eq!(none, 0);
        assert!(Filter(vec![("bogus".into(), "x".into())])
            .validate()
            .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
