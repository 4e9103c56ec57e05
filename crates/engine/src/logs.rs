//! docker's json-file log: one `{"log":"...","stream":"stdout","time":"..."}` per line.

use crate::error::{Error, Result};
use crate::timefmt;
use std::io::{BufRead, Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// One log line as written by the monitor.
pub fn encode(stream: &str, data: &[u8], time: &str) -> Vec<u8> {
    let mut s = String::with_capacity(data.len() + 64);
    s.push_str("{\"log\":\"");
    for ch in String::from_utf8_lossy(data).chars() {
        match ch {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '<' => s.push_str("\\u003c"),
            '>' => s.push_str("\\u003e"),
            '&' => s.push_str("\\u0026"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push_str("\",\"stream\":\"");
    s.push_str(stream);
    s.push_str("\",\"time\":\"");
    s.push_str(time);
    s.push_str("\"}\n");
    s.into_bytes()
}

#[derive(serde::Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: String,
}

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    pub timestamps: bool,
}

/// "2013-01-02T13:23:37Z", unix seconds ("1700000000[.5]") or a duration ago ("10m", "1h30m").
pub fn parse_time(s: &str) -> Result<SystemTime> {
    if let Some(t) = timefmt::parse(s) {
        return Ok(t);
    }
    if let Ok(f) = s.parse::<f64>() {
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(f));
    }
    let mut total = 0f64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num
            .parse()
            .map_err(|_| Error::invalid(format!("invalid time or duration: {s}")))?;
        num.clear();
        total += n * match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            _ => return Err(Error::invalid(format!("invalid time or duration: {s}"))),
        };
    }
    if !num.is_empty() {
        return Err(Error::invalid(format!("invalid time or duration: {s}")));
    }
    Ok(SystemTime::now() - Duration::from_secs_f64(total))
}

/// Writes the log of a container to `out`/`err`. With `follow`, keeps reading until
/// `running()` turns false and the file has no more lines.
pub fn read(
    path: &Path,
    o: &LogOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
    running: &dyn Fn() -> bool,
) -> Result<()> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !o.follow => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?,
        Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
    };
    let emit = |line: &str, out: &mut dyn Write, err: &mut dyn Write| -> Result<()> {
        let Ok(e) = serde_json::from_str::<Entry>(line) else {
            return Ok(());
        };
        let t = timefmt::parse(&e.time);
        if let (Some(s), Some(t)) = (o.since, t) {
            if t < s {
                return Ok(());
            }
        }
        if let (Some(u), Some(t)) = (o.until, t) {
            if t > u {
                return Ok(());
            }
        }
        let w: &mut dyn Write = match e.stream.as_str() {
            "stderr" if o.stderr => err,
            "stdout" if o.stdout => out,
            _ => return Ok(()),
        };
        let r = if o.timestamps {
            write!(w, "{} {}", e.time, e.log)
        } else {
            w.write_all(e.log.as_bytes())
        };
        r.and_then(|_| w.flush())
            .map_err(|e| Error::io("write log", e))
    };
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    let lines: Vec<&str> = text[..complete].lines().collect();
    let skip = o.tail.map_or(0, |n| lines.len().saturating_sub(n));
    for l in &lines[skip..] {
        emit(l, out, err)?;
    }
    if !o.follow {
        return Ok(());
    }
    let mut pos = complete as u64;
    f.seek(std::io::SeekFrom::Start(pos))
        .map_err(|e| Error::io("seek log", e))?;
    let mut reader = std::io::BufReader::new(f);
    let mut pending = String::new();
    loop {
        let alive = running();
        loop {
            let mut line = String::new();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| Error::io("read log", e))?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            pending.push_str(&line);
            if pending.ends_with('\n') {
                emit(pending.trim_end(), out, err)?;
                pending.clear();
            }
        }
        if !alive {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
        let _ = pos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_docker() {
        let l = encode("stdout", b"a \"b\"\n", "2024-01-01T00:00:00.000000001Z");
        assert_eq!(
            String::from_utf8(l).unwrap(),
            "{\"log\":\"a \\\"b\\\"\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:00.000000001Z\"}\n"
        );
    }
}
