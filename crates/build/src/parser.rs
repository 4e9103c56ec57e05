//! The Dockerfile parser: parser directives, comments, line continuations, heredocs, and each
//! instruction's flags and arguments checked up front, so a malformed file fails naming its
//! line before anything runs. Variables are expanded later, per step (see `lex`).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dockerfile:{}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        msg: msg.into(),
    })
}

/// `# syntax=`, `# escape=`, `# check=` at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    pub escape: char,
    pub syntax: Option<String>,
    pub check: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// Unquoted delimiter: the content's variables are expanded.
    pub expand: bool,
}

/// `--name=value` flags of an instruction (a bare `--name` has the value "true").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flags(pub Vec<(String, String)>);

impl Flags {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Shell form (a string for the SHELL) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// None: `HEALTHCHECK NONE`.
    pub test: Option<Command>,
    pub flags: Flags,
}

/// One instruction, its arguments still unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inst {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run {
        cmd: Command,
        heredocs: Vec<Heredoc>,
    },
    /// COPY and ADD: the last word is the destination.
    Copy {
        add: bool,
        srcs: Vec<String>,
        dest: String,
        heredocs: Vec<Heredoc>,
    },
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Workdir(String),
    User(String),
    Cmd(Command),
    Entrypoint(Command),
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
    Volume(Vec<String>),
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Onbuild(Box<Instruction>),
    Maintainer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    pub flags: Flags,
    pub inst: Inst,
    /// The instruction as written (continuations joined), for history and messages.
    pub original: String,
}

impl Instruction {
    pub fn keyword(&self) -> &'static str {
        match &self.inst {
            Inst::From { .. } => "FROM",
            Inst::Run { .. } => "RUN",
            Inst::Copy { add: false, .. } => "COPY",
            Inst::Copy { add: true, .. } => "ADD",
            Inst::Env(_) => "ENV",
            Inst::Arg(_) => "ARG",
            Inst::Workdir(_) => "WORKDIR",
            Inst::User(_) => "USER",
            Inst::Cmd(_) => "CMD",
            Inst::Entrypoint(_) => "ENTRYPOINT",
            Inst::Expose(_) => "EXPOSE",
            Inst::Label(_) => "LABEL",
            Inst::Volume(_) => "VOLUME",
            Inst::Shell(_) => "SHELL",
            Inst::StopSignal(_) => "STOPSIGNAL",
            Inst::Healthcheck(_) => "HEALTHCHECK",
            Inst::Onbuild(_) => "ONBUILD",
            Inst::Maintainer(_) => "MAINTAINER",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    pub from: Instruction,
    pub steps: Vec<Instruction>,
}

impl Stage {
    pub fn name(&self) -> Option<&str> {
        match &self.from.inst {
            Inst::From { name, .. } => name.as_deref(),
            _ => None,
        }
    }
    pub fn base(&self) -> &str {
        match &self.from.inst {
            Inst::From { image, .. } => image,
            _ => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Directives,
    /// ARGs before the first FROM.
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

const FLAGS: &[(&str, &[&str])] = &[
    ("FROM", &["platform"]),
    // Flags berth does not implement (--security, --parents, --exclude, --keep-git-dir) are
    // refused as unknown rather than ignored.
    ("RUN", &["mount", "network"]),
    ("COPY", &["from", "chown", "chmod", "link"]),
    ("ADD", &["chown", "chmod", "link", "checksum"]),
    (
        "HEALTHCHECK",
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    ),
];

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let (directives, mut i) = directives(&lines)?;
    let esc = directives.escape;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    while i < lines.len() {
        let start = i;
        let trimmed = lines[i].trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        // Join continuation lines: comment and empty lines inside are dropped.
        let mut logical = String::new();
        let mut cur = lines[i].to_string();
        loop {
            let t = cur.trim_end();
            if let Some(body) = t.strip_suffix(esc) {
                logical.push_str(body);
                i += 1;
                loop {
                    if i >= lines.len() {
                        return err(
                            start + 1,
                            "unexpected end of file: the last line ends with a line continuation",
                        );
                    }
                    let t = lines[i].trim_start();
                    if t.starts_with('#') || t.is_empty() {
                        i += 1;
                        continue;
                    }
                    break;
                }
                cur = lines[i].to_string();
            } else {
                logical.push_str(&cur);
                i += 1;
                break;
            }
        }
        let (word, rest) = split_word(logical.trim());
        let keyword = word.to_ascii_uppercase();
        let docs = heredoc_markers(&keyword, rest);
        let mut heredocs = Vec::new();
        for (name, strip, expand) in docs {
            let mut content = String::new();
            loop {
                if i >= lines.len() {
                    return err(
                        start + 1,
                        format!("unterminated heredoc: no line \"{name}\" ends it"),
                    );
                }
                let mut l = lines[i];
                i += 1;
                if strip {
                    l = l.trim_start_matches('\t');
                }
                if l == name {
                    break;
                }
                content.push_str(l);
                content.push('\n');
            }
            heredocs.push(Heredoc {
                name,
                content,
                expand,
            });
        }
        let ins = instruction(start + 1, &keyword, rest, heredocs, &logical, esc, 0)?;
        match ins.inst {
            Inst::From { .. } => stages.push(Stage { index: stages.len(), from: ins, steps: Vec::new() }),
            Inst::Arg(_) if stages.is_empty() => global_args.push(ins),
            _ => match stages.last_mut() {
                Some(s) => s.steps.push(ins),
                None => return err(start + 1, format!("{keyword} before the first FROM: a Dockerfile must begin with FROM (or ARG)")),
            },
        }
    }
    if stages.is_empty() {
        return err(
            1,
            "no FROM instruction: the Dockerfile defines no build stage",
        );
    }
    let mut names: Vec<&str> = Vec::new();
    for s in &stages {
        if let Some(n) = s.name() {
            if names.contains(&n) {
                return err(s.from.line, format!("duplicate stage name {n:?}"));
            }
            names.push(n);
        }
    }
    Ok(Dockerfile {
        directives,
        global_args,
        stages,
    })
}

fn directives(lines: &[&str]) -> Result<(Directives, usize), ParseError> {
    let mut d = Directives {
        escape: '\\',
        syntax: None,
        check: None,
    };
    let mut i = 0;
    while i < lines.len() {
        let Some(body) = lines[i].trim().strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = body.split_once('=') else {
            break;
        };
        let k = k.trim().to_ascii_lowercase();
        if k.is_empty() || k.contains(char::is_whitespace) {
            break;
        }
        let v = v.trim().to_string();
        match k.as_str() {
            "escape" => {
                d.escape = match v.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return err(
                            i + 1,
                            format!("invalid escape token {v:?}: it must be ` or \\"),
                        )
                    }
                }
            }
            "syntax" => d.syntax = Some(v),
            "check" => d.check = Some(v),
            _ => break,
        }
        i += 1;
    }
    Ok((d, i))
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(n) => (&s[..n], s[n..].trim_start()),
        None => (s, ""),
    }
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` markers of RUN/COPY/ADD: (name, strip tabs, expand).
fn heredoc_markers(keyword: &str, rest: &str) -> Vec<(String, bool, bool)> {
    if !matches!(keyword, "RUN" | "COPY" | "ADD") || rest.trim_start().starts_with('[') {
        return Vec::new();
    }
    let mut v = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i + 1 < b.len() {
        match (quote, b[i]) {
            (None, q @ (b'\'' | b'"')) => quote = Some(q),
            (Some(q), c) if c == q => quote = None,
            (None, b'<')
                if b[i + 1] == b'<'
                    && b.get(i + 2) != Some(&b'<')
                    && (i == 0 || b[i - 1] != b'<') =>
            {
                let mut j = i + 2;
                let strip = b.get(j) == Some(&b'-');
                if strip {
                    j += 1;
                }
                let q = b.get(j).copied().filter(|c| *c == b'"' || *c == b'\'');
                if q.is_some() {
                    j += 1;
                }
                let s = j;
                while j < b.len()
                    && (b[j].is_ascii_alphanumeric()
                        || b[j] == b'_'
                        || b[j] == b'-'
                        || b[j] == b'.')
                {
                    j += 1;
                }
                if j > s && (q.is_none() || b.get(j).copied() == q) {
                    v.push((rest[s..j].to_string(), strip, q.is_none()));
                    if q.is_some() {
                        j += 1;
                    }
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    v
}

/// Splits leading `--flag[=value]` words off `rest`.
fn take_flags<'a>(
    line: usize,
    keyword: &str,
    mut rest: &'a str,
) -> Result<(Flags, &'a str), ParseError> {
    let allowed: &[&str] = FLAGS
        .iter()
        .find(|(k, _)| *k == keyword)
        .map(|(_, f)| *f)
        .unwrap_or(&[]);
    let mut flags = Flags::default();
    while let Some(f) = rest.strip_prefix("--") {
        let (word, after) = split_word(f);
        let (name, value) = word.split_once('=').unwrap_or((word, "true"));
        if name.is_empty() {
            // "--" alone ends the flags.
            rest = after;
            break;
        }
        if !allowed.contains(&name) {
            return err(line, format!("unknown flag: --{name} for {keyword}"));
        }
        flags.0.push((name.to_string(), value.to_string()));
        rest = after;
    }
    Ok((flags, rest))
}

/// `["a", "b"]` as an exec form, or None when `s` isn't a JSON array of strings.
fn json_array(s: &str) -> Option<Vec<String>> {
    serde_json::from_str::<Vec<String>>(s.trim()).ok()
}

fn command(line: usize, keyword: &str, rest: &str) -> Result<Command, ParseError> {
    let t = rest.trim();
    if t.starts_with('[') {
        if let Some(v) = json_array(t) {
            return Ok(Command::Exec(v));
        }
        // Docker runs a broken array through the shell; a closed bracket is clearly meant as JSON.
        if t.ends_with(']') {
            return err(line, format!("{keyword}: invalid JSON in exec form: {t}"));
        }
    }
    if t.is_empty() && keyword != "CMD" && keyword != "ENTRYPOINT" {
        return err(line, format!("{keyword} requires at least one argument"));
    }
    Ok(Command::Shell(t.to_string()))
}

/// Words split on whitespace, quotes kept (expanded and unquoted later).
pub fn raw_words(s: &str, esc: char) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == esc && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            continue;
        }
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// ENV/LABEL pairs: `k=v k2="v 2"` or the legacy `k some value`.
fn pairs(
    line: usize,
    keyword: &str,
    rest: &str,
    esc: char,
) -> Result<Vec<(String, String)>, ParseError> {
    let words = raw_words(rest, esc).map_err(|e| ParseError {
        line,
        msg: format!("{keyword}: {e}"),
    })?;
    let Some(first) = words.first() else {
        return err(line, format!("{keyword} requires at least one argument"));
    };
    if !first.contains('=') {
        if keyword == "LABEL" || words.len() < 2 {
            return err(
                line,
                format!("{keyword} names must be given as KEY=VALUE (got {first:?})"),
            );
        }
        let (k, v) = split_word(rest.trim());
        return Ok(vec![(k.to_string(), v.to_string())]);
    }
    let mut v = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, val)) if !k.is_empty() => v.push((k.to_string(), val.to_string())),
            _ => return err(line, format!("{keyword}: {w:?} is not KEY=VALUE")),
        }
    }
    Ok(v)
}

fn instruction(
    line: usize,
    keyword: &str,
    rest: &str,
    heredocs: Vec<Heredoc>,
    original: &str,
    esc: char,
    depth: usize,
) -> Result<Instruction, ParseError> {
    let (flags, rest) = take_flags(line, keyword, rest)?;
    let rest = rest.trim();
    let need = |min: usize| -> Result<Vec<String>, ParseError> {
        let w = raw_words(rest, esc).map_err(|e| ParseError {
            line,
            msg: format!("{keyword}: {e}"),
        })?;
        if w.len() < min {
            return err(
                line,
                format!(
                    "{keyword} requires at least {min} argument{}",
                    if min == 1 { "" } else { "s" }
                ),
            );
        }
        Ok(w)
    };
    let one = |what: &str| -> Result<String, ParseError> {
        if rest.is_empty() {
            return err(
                line,
                format!("{keyword} requires exactly one argument ({what})"),
            );
        }
        Ok(rest.to_string())
    };
    let inst = match keyword {
        "FROM" => {
            let w = need(1)?;
            let (image, name) = match w.as_slice() {
                [i] => (i.clone(), None),
                [i, as_, n] if as_.eq_ignore_ascii_case("as") => {
                    let ok = n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
                    if !ok {
                        return err(line, format!("invalid stage name {n:?}: it must start with a letter and hold only letters, digits, '_', '-', '.'"));
                    }
                    (i.clone(), Some(n.to_ascii_lowercase()))
                }
                _ => return err(line, "FROM takes an image and optionally AS NAME"),
            };
            Inst::From {
                image,
                name,
                platform: flags.get("platform").map(str::to_string),
            }
        }
        "RUN" => {
            for m in flags.all("mount") {
                crate::mounts::RunMount::parse(m).map_err(|e| ParseError {
                    line,
                    msg: format!("RUN --mount: {e}"),
                })?;
            }
            if let Some(n) = flags.get("network") {
                if !matches!(n, "none" | "host" | "default") {
                    return err(
                        line,
                        format!("RUN --network={n}: expected none, host or default"),
                    );
                }
            }
            Inst::Run {
                cmd: command(line, keyword, rest)?,
                heredocs,
            }
        }
        "COPY" | "ADD" => {
            let words = if rest.starts_with('[') {
                json_array(rest).ok_or_else(|| ParseError {
                    line,
                    msg: format!("{keyword}: invalid JSON array: {rest}"),
                })?
            } else {
                need(1)?
            };
            let min = if heredocs.is_empty() { 2 } else { 1 };
            if words.len() < min {
                return err(line, format!("{keyword} requires at least two arguments, but only one was provided. Destination could not be determined"));
            }
            let mut srcs = words;
            let dest = srcs.pop().expect("dest");
            Inst::Copy {
                add: keyword == "ADD",
                srcs,
                dest,
                heredocs,
            }
        }
        "ENV" => Inst::Env(pairs(line, keyword, rest, esc)?),
        "LABEL" => Inst::Label(pairs(line, keyword, rest, esc)?),
        "ARG" => {
            let w = need(1)?;
            let mut v = Vec::new();
            for a in w {
                let (k, d) = match a.split_once('=') {
                    Some((k, d)) => (k.to_string(), Some(d.to_string())),
                    None => (a, None),
                };
                if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return err(line, format!("ARG: invalid name {k:?}"));
                }
                v.push((k, d));
            }
            Inst::Arg(v)
        }
        "WORKDIR" => Inst::Workdir(one("a path")?),
        "USER" => Inst::User(one("a user")?),
        "STOPSIGNAL" => Inst::StopSignal(one("a signal")?),
        "MAINTAINER" => Inst::Maintainer(one("a name")?),
        "CMD" => Inst::Cmd(command(line, keyword, rest)?),
        "ENTRYPOINT" => Inst::Entrypoint(command(line, keyword, rest)?),
        "EXPOSE" => Inst::Expose(need(1)?),
        "VOLUME" => {
            let v = if rest.starts_with('[') {
                json_array(rest).ok_or_else(|| ParseError {
                    line,
                    msg: format!("VOLUME: invalid JSON array: {rest}"),
                })?
            } else {
                need(1)?
            };
            if v.is_empty() || v.iter().any(|p| p.trim().is_empty()) {
                return err(line, "VOLUME specified can not be an empty string");
            }
            Inst::Volume(v)
        }
        "SHELL" => {
            match json_array(rest) {
                Some(v) if !v.is_empty() => Inst::Shell(v),
                _ => return err(
                    line,
                    "SHELL requires the arguments to be in JSON form, e.g. [\"/bin/sh\", \"-c\"]",
                ),
            }
        }
        "HEALTHCHECK" => {
            let (w, r) = split_word(rest);
            if w.eq_ignore_ascii_case("NONE") {
                if !r.is_empty() || !flags.0.is_empty() {
                    return err(line, "HEALTHCHECK NONE takes no other arguments");
                }
                Inst::Healthcheck(Healthcheck {
                    test: None,
                    flags: flags.clone(),
                })
            } else if w.eq_ignore_ascii_case("CMD") {
                for k in ["interval", "timeout", "start-period", "start-interval"] {
                    if let Some(d) = flags.get(k) {
                        crate::lex::duration_ns(d).map_err(|e| ParseError {
                            line,
                            msg: format!("HEALTHCHECK --{k}: {e}"),
                        })?;
                    }
                }
                if let Some(r) = flags.get("retries") {
                    if r.parse::<u32>().map_or(true, |n| n == 0) {
                        return err(
                            line,
                            format!("HEALTHCHECK --retries must be a positive integer (got {r:?})"),
                        );
                    }
                }
                Inst::Healthcheck(Healthcheck {
                    test: Some(command(line, "HEALTHCHECK", r)?),
                    flags: flags.clone(),
                })
            } else {
                return err(line, "HEALTHCHECK must be followed by CMD or NONE");
            }
        }
        "ONBUILD" => {
            if depth > 0 {
                return err(line, "ONBUILD ONBUILD is not allowed");
            }
            let (w, r) = split_word(rest);
            let k = w.to_ascii_uppercase();
            if k.is_empty() {
                return err(line, "ONBUILD requires an instruction");
            }
            if matches!(k.as_str(), "FROM" | "MAINTAINER" | "ONBUILD") {
                return err(line, format!("{k} isn't allowed as an ONBUILD trigger"));
            }
            let inner = instruction(line, &k, r, Vec::new(), rest, esc, depth + 1)?;
            Inst::Onbuild(Box::new(inner))
        }
        "" => return err(line, "empty instruction"),
        other => return err(line, format!("unknown instruction: {}", other)),
    };
    let flags = if matches!(inst, Inst::Healthcheck(_)) {
        Flags::default()
    } else {
        flags
    };
    Ok(Instruction {
        line,
        flags,
        inst,
        original: original.trim().to_string(),
    })
}

/// One instruction on its own (ONBUILD triggers when they fire).
pub fn parse_line(line: usize, text: &str, esc: char) -> Result<Instruction, ParseError> {
    let (word, rest) = split_word(text.trim());
    instruction(
        line,
        &word.to_ascii_uppercase(),
        rest,
        Vec::new(),
        text,
        esc,
        0,
    )
}
