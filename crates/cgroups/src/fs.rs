//! Small named wrappers around the file operations cgroupfs needs, each error carrying its path.

use crate::{Error, Result};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes `value` in a single write(2), as cgroupfs expects (one value per write).
pub(crate) fn write(path: &Path, value: impl AsRef<str>) -> Result<()> {
    let value = value.as_ref();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io_err("open", path, e))?;
    f.write_all(value.as_bytes())
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            value: value.to_owned(),
            source,
        })
}

pub(crate) fn raw_os_error(e: &Error) -> Option<i32> {
    match e {
        Error::Io { source, .. } | Error::Write { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| io_err("read", path, e))
}

pub(crate) fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn parse_err(path: &Path, content: &str) -> Error {
    Error::Parse {
        path: path.to_owned(),
        content: content.trim().chars().take(80).collect(),
    }
}

/// A single number; "max" (v2) reads as u64::MAX.
pub(crate) fn read_u64(path: &Path) -> Result<u64> {
    let s = read(path)?;
    parse_u64(s.trim()).ok_or_else(|| parse_err(path, &s))
}

/// Like [`read_u64`] but 0 when the file does not exist (controller or feature absent).
pub(crate) fn read_u64_opt(path: &Path) -> Result<u64> {
    if !path.exists() {
        return Ok(0);
    }
    read_u64(path)
}

pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// "key value" lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
pub(crate) fn read_keyed(path: &Path) -> Result<Vec<(String, u64)>> {
    let s = read(path)?;
    parse_keyed(&s).ok_or_else(|| parse_err(path, &s))
}

pub(crate) fn parse_keyed(s: &str) -> Option<Vec<(String, u64)>> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = parse_u64(it.next()?)?;
            Some((k.to_owned(), v))
        })
        .collect()
}

pub(crate) fn keyed_value(path: &Path, key: &str) -> Result<u64> {
    read_keyed(path)?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| Error::Parse {
            path: path.to_owned(),
            content: format!("no key {key}"),
        })
}

/// "0-3,5" -> [0,1,2,3,5].
pub(crate) fn parse_list(s: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// Writes `pid` into `dir`/cgroup.procs.
pub(crate) fn add_pid(dir: &Path, pid: i32) -> Result<()> {
    write(&dir.join("cgroup.procs"), pid.to_string())
}

/// Pids in `dir` and every cgroup below it.
pub(crate) fn pids_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    let s = read(&procs)?;
    for p in s.split_whitespace() {
        out.push(p.parse().map_err(|_| parse_err(&procs, &s))?);
    }
    for child in subdirs(dir)? {
        pids_recursive(&child, out)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_err("read directory", dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| io_err("read directory", dir, e))?;
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// Removes a cgroup directory and its sub-cgroups, deepest first, retrying briefly on EBUSY
/// (a process that just exited may still be accounted for a moment). Ok when already gone.
pub(crate) fn remove_cgroup(dir: &Path) -> Result<()> {
    let children = match subdirs(dir) {
        Ok(c) => c,
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for c in children {
        remove_cgroup(&c)?;
    }
    let mut delay = Duration::from_millis(5);
    for attempt in 0.. {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 8 => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(io_err("remove", dir, e)),
        }
    }
    unreachable!()
}

/// mkdir -p that reports the path.
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))
}

/// Creates empty files, as cgroupfs would have them, for unit tests against a temp dir.
#[cfg(test)]
pub(crate) fn touch(dir: &Path, files: &[&str]) {
    for f in files {
        std::fs::write(dir.join(f), "").unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_keyed_files() {
        assert_eq!(parse_list("0-2,5\n"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_list(""), Some(vec![]));
        assert_eq!(parse_list("x"), None);
        assert_eq!(
            parse_keyed("nr_periods 3\nnr_throttled 1\n"),
            Some(vec![("nr_periods".into(), 3), ("nr_throttled".into(), 1)])
        );
        assert_eq!(parse_u64("max"), Some(u64::MAX));
    }

    #[test]
    fn write_reports_path_and_value() {
        let err = write(Path::new("/nonexistent-berth/x"), "1").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-berth/x"), "{err}");
    }
}
