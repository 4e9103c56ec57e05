//! runc's log file: conmon and podman pass `--log FILE --log-format json` and show the last
//! error line of that file to the user, so the line shapes follow runc (logrus) exactly.

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Logger {
    path: Option<PathBuf>,
    format: Format,
    debug: bool,
}

impl Logger {
    pub fn new(path: Option<PathBuf>, format: Format, debug: bool) -> Logger {
        Logger {
            path,
            format,
            debug,
        }
    }

    pub fn error(&self, msg: &str) {
        self.write("error", msg);
    }

    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    /// Appends one line; a log that cannot be written must not hide the error itself.
    fn write(&self, level: &str, msg: &str) {
        let Some(path) = &self.path else { return };
        let line = format_line(self.format, level, msg, &rfc3339(SystemTime::now()));
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

fn format_line(format: Format, level: &str, msg: &str, time: &str) -> String {
    match format {
        Format::Json => {
            let v = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{v}\n")
        }
        Format::Text => format!("time={time:?} level={level} msg={msg:?}\n"),
    }
}

/// UTC time as RFC 3339 with seconds, e.g. 2026-11-23T15:04:05Z.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_446_245)),
            "2026-11-23T15:04:05Z"
        );
    }

    #[test]
    fn json_line_is_what_conmon_parses() {
        let line = format_line(
            Format::Json,
            "error",
            "container \"x\": not found",
            "2026-11-23T15:04:05Z",
        );
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container \"x\": not found");
        assert_eq!(v["time"], "2026-11-23T15:04:05Z");
    }

    #[test]
    fn text_line_quotes_the_message() {
        let line = format_line(Format::Text, "error", "a \"b\"", "T");
        assert_eq!(line, "time=\"T\" level=error msg=\"a \\\"b\\\"\"\n");
    }
}
