//! docker's `--filter key=value` for `ps` and the prune commands: values of one key are ORed,
//! different keys ANDed (except `label`, where every value must match, as moby's MatchKVList).

use crate::error::{Error, Result};
use crate::model::Container;
use crate::{timefmt, Engine};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parsed `--filter` arguments, in the order given.
#[derive(Debug, Clone, Default)]
pub struct Filters(Vec<(String, String)>);

impl Filters {
    /// "key=value" items; anything else is docker's "bad format of filter" error.
    pub fn parse(items: &[String]) -> Result<Filters> {
        let mut v = Vec::new();
        for it in items {
            let (k, val) = it.split_once('=').ok_or_else(|| {
                Error::invalid(format!("bad format of filter (expected name=value): {it}"))
            })?;
            v.push((k.trim().to_lowercase(), val.to_string()));
        }
        Ok(Filters(v))
    }

    pub fn values(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// docker's `invalid filter 'KEY'` for keys a command does not take.
    pub fn validate(&self, accepted: &[&str]) -> Result<()> {
        match self.0.iter().find(|(k, _)| !accepted.contains(&k.as_str())) {
            Some((k, _)) => Err(Error::invalid(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// moby's `Match`: no values of `key` matches everything; else any value equal to `s` or
    /// found in it as a pattern (see [`go_match`]).
    fn matches(&self, key: &str, s: &str) -> bool {
        let vals = self.values(key);
        vals.is_empty() || vals.iter().any(|v| *v == s || go_match(v, s))
    }

    /// `label=k` / `label=k=v`: every value must match; `label!=...`: none may.
    pub fn match_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        let one = |l: &str| match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(l),
        };
        self.values("label").iter().all(|l| one(l)) && !self.values("label!").iter().any(|l| one(l))
    }

    /// The prune filters: labels as above, `until` (a time or a duration before now) keeps
    /// objects created at or after it.
    pub fn match_prune(
        &self,
        labels: &BTreeMap<String, String>,
        created: SystemTime,
    ) -> Result<bool> {
        for u in self.values("until") {
            if created >= parse_until(u)? {
                return Ok(false);
            }
        }
        Ok(self.match_labels(labels))
    }
}

/// A regular-expression match as moby's filters do, for the patterns people use: `^` and `$`
/// anchors around literal text, `.` and `.*`; other text is searched for as it is.
pub fn go_match(pattern: &str, s: &str) -> bool {
    let (anchored_start, p) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let (anchored_end, p) = match p.strip_suffix('$') {
        Some(p) if !p.ends_with('\\') => (true, p),
        _ => (false, p),
    };
    let toks = tokens(p);
    (0..=s.len())
        .filter(|&i| s.is_char_boundary(i))
        .take(if anchored_start { 1 } else { usize::MAX })
        .any(|i| match_here(&toks, &s[i..], anchored_end))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Lit(char),
    Any,
    AnyStar,
}

fn tokens(p: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut it = p.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => out.push(Tok::Lit(it.next().unwrap_or('\\'))),
            '.' if it.peek() == Some(&'*') => {
                it.next();
                out.push(Tok::AnyStar);
            }
            '.' => out.push(Tok::Any),
            c => out.push(Tok::Lit(c)),
        }
    }
    out
}

fn match_here(toks: &[Tok], s: &str, to_end: bool) -> bool {
    match toks.first() {
        None => !to_end || s.is_empty(),
        Some(Tok::AnyStar) => (0..=s.len())
            .filter(|&i| s.is_char_boundary(i))
            .any(|i| match_here(&toks[1..], &s[i..], to_end)),
        Some(t) => {
            let mut cs = s.chars();
            match cs.next() {
                Some(c) if *t == Tok::Any || *t == Tok::Lit(c) => {
                    match_here(&toks[1..], cs.as_str(), to_end)
                }
                _ => false,
            }
        }
    }
}

/// docker's `until`: RFC 3339 (date, date and time, with or without zone), Unix seconds
/// (with optional fraction), or a Go duration before now ("24h", "90m", "1h30m", "10s").
pub fn parse_until(v: &str) -> Result<SystemTime> {
    let bad = || {
        Error::invalid(format!(
            "failed to parse value as time or duration: \"{v}\""
        ))
    };
    if let Some(d) = parse_go_duration(v) {
        return Ok(SystemTime::now().checked_sub(d).unwrap_or(UNIX_EPOCH));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0)));
    }
    let full = match v.len() {
        10 => format!("{v}T00:00:00Z"),
        19 => format!("{v}Z"),
        _ => v.to_string(),
    };
    timefmt::parse(&full).ok_or_else(bad)
}

/// Go's time.ParseDuration for the units people use (h, m, s, ms).
fn parse_go_duration(v: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = v;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Some(Duration::from_secs_f64(total))
}

/// `docker ps --filter` keys.
pub const PS_KEYS: &[&str] = &[
    "id",
    "name",
    "label",
    "exited",
    "status",
    "ancestor",
    "before",
    "since",
    "volume",
    "network",
    "publish",
    "expose",
    "health",
    "is-task",
    "isolation",
];

const STATES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

impl Engine {
    /// `docker ps`: containers newest first, `all` or only running ones, filtered as docker's
    /// daemon does (`status`, `exited`, `before` and `since` imply all).
    pub fn list_filtered(&self, all: bool, f: &Filters) -> Result<Vec<Container>> {
        f.validate(PS_KEYS)?;
        let bad = |k: &str, v: &str| Error::invalid(format!("invalid filter '{k}={v}'"));
        let mut exited = Vec::new();
        for v in f.values("exited") {
            exited.push(v.parse::<i32>().map_err(|_| bad("exited", v))?);
        }
        for v in f.values("status") {
            if !STATES.contains(&v) {
                return Err(bad("status", v));
            }
        }
        for v in f.values("health") {
            if !["starting", "healthy", "unhealthy", "none"].contains(&v) {
                return Err(bad("health", v));
            }
        }
        for v in f.values("is-task") {
            if !["true", "false"].contains(&v) {
                return Err(bad("is-task", v));
            }
        }
        for k in ["publish", "expose"] {
            for v in f.values(k) {
                let port = v.split('/').next().unwrap_or("");
                if port.split('-').any(|p| p.parse::<u16>().is_err()) {
                    return Err(Error::invalid(format!("invalid port range {v}")));
                }
            }
        }
        let mut before = f
            .values("before")
            .first()
            .map(|v| self.get(v))
            .transpose()?
            .map(|c| c.id);
        let since = f
            .values("since")
            .first()
            .map(|v| self.get(v))
            .transpose()?
            .map(|c| c.id);
        let ancestors: Vec<(String, Vec<String>)> = if f.contains("ancestor") {
            let store = self.store()?;
            f.values("ancestor")
                .iter()
                .filter_map(|v| store.resolve(v).ok())
                .map(|i| (format!("sha256:{}", i.id), i.diff_ids()))
                .collect()
        } else {
            Vec::new()
        };
        let all = all
            || f.contains("status")
            || f.contains("exited")
            || before.is_some()
            || since.is_some();
        let mut out = Vec::new();
        for c in self.list(true)? {
            if !c.state.running && !all {
                continue;
            }
            // docker's names carry a leading "/": either form matches.
            let named = f.matches("name", &c.name) || f.matches("name", &format!("/{}", c.name));
            if !named || !f.matches("id", &c.id) || !f.match_labels(&c.config.labels) {
                continue;
            }
            if let Some(b) = &before {
                if *b == c.id {
                    before = None;
                }
                continue;
            }
            if since.as_deref() == Some(c.id.as_str()) {
                break;
            }
            if !exited.is_empty()
                && (c.state.running
                    || !exited.contains(&c.state.exit_code)
                    || c.state.status == "created")
            {
                continue;
            }
            if !f.matches("status", &c.state.status) || !f.matches("health", "none") {
                continue;
            }
            // berth has no swarm tasks, published or exposed ports yet.
            if f.values("is-task").contains(&"true")
                || f.contains("publish")
                || f.contains("expose")
            {
                continue;
            }
            if f.contains("volume")
                && !f.values("volume").iter().any(|v| {
                    c.mounts.iter().any(|m| {
                        m.name.as_deref() == Some(*v) || m.destination == *v || m.source == *v
                    })
                })
            {
                continue;
            }
            if f.contains("network")
                && !f
                    .values("network")
                    .iter()
                    .any(|v| c.host_config.network_mode == *v)
            {
                continue;
            }
            if f.contains("isolation") && !f.values("isolation").contains(&"default") {
                continue;
            }
            if f.contains("ancestor") && !self.descends(&c, &ancestors)? {
                continue;
            }
            out.push(c);
        }
        Ok(out)
    }

    /// Whether `c` runs one of `ancestors` or an image built on one (its layers start with
    /// the ancestor's, as an image built FROM it does).
    fn descends(&self, c: &Container, ancestors: &[(String, Vec<String>)]) -> Result<bool> {
        let layers = self
            .store()?
            .resolve(&c.image)
            .map(|i| i.diff_ids())
            .unwrap_or_default();
        Ok(ancestors
            .iter()
            .any(|(id, anc)| *id == c.image || (!anc.is_empty() && layers.starts_with(anc))))
    }

    /// `docker container prune --filter`: removes stopped containers matching `label`,
    /// `label!` and `until`; returns their ids.
    pub fn prune_filtered(&self, f: &Filters) -> Result<Vec<String>> {
        f.validate(&["label", "label!", "until"])?;
        let mut out = Vec::new();
        for c in self.list(true)? {
            let created = timefmt::parse(&c.created).unwrap_or(UNIX_EPOCH);
            if !c.state.running && f.match_prune(&c.config.labels, created)? {
                self.remove(&c.id, false, false)?;
                out.push(c.id);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_like_moby_filters() {
        assert!(go_match("web", "my-web-1"));
        assert!(go_match("^web", "web-1"));
        assert!(!go_match("^web", "my-web"));
        assert!(go_match("^web$", "web"));
        assert!(!go_match("^web$", "web2"));
        assert!(go_match("w.b", "awxb"));
        assert!(go_match("^a.*z$", "abcz"));
        assert!(!go_match("^a.*z$", "abcza"));
    }

    #[test]
    fn until_accepts_durations_and_times() {
        let now = SystemTime::now();
        let t = parse_until("1h").unwrap();
        assert!(now.duration_since(t).unwrap() >= Duration::from_secs(3599));
        assert_eq!(
            parse_until("1700000000").unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert_eq!(
            parse_until("2023-11-14T22:13:20Z").unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert!(parse_until("tomorrow").is_err());
    }
}
