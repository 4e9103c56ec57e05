//! `.dockerignore` patterns with Docker's rules (moby/patternmatcher): `#` comments, paths
//! cleaned and taken relative to the context root, `*`, `?`, `[...]`, `**` across directories,
//! `!` exceptions, the last matching pattern wins, and a pattern that matches a directory
//! excludes what is below it.

#[derive(Debug, Clone)]
struct Pattern {
    parts: Vec<String>,
    exclusion: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

fn clean(p: &str) -> String {
    let mut v: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                v.pop();
            }
            c => v.push(c),
        }
    }
    v.join("/")
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exclusion, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let p = clean(p);
            if p.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                parts: p.split('/').map(str::to_string).collect(),
                exclusion,
            });
        }
        Ignore { patterns }
    }

    /// Whether `path` (relative to the context, "/"-separated) is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        if path.is_empty() {
            return false;
        }
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for p in &self.patterns {
            if p.exclusion != excluded {
                continue;
            }
            // The path itself or one of its parents.
            let hit = (1..=parts.len()).any(|n| match_parts(&p.parts, &parts[..n]));
            if hit {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// Whether an exception could re-include something below the excluded directory `dir`
    /// (so a walk must still look inside it).
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        let dir = clean(dir);
        self.patterns.iter().any(|p| {
            p.exclusion && {
                let prefix: Vec<&str> = dir.split('/').collect();
                p.parts.len() > prefix.len() || p.parts.iter().any(|x| x == "**")
            }
        })
    }
}

fn match_parts(pat: &[String], path: &[&str]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|n| match_parts(&pat[1..], &path[n..])),
        Some(p) => {
            !path.is_empty()
                && glob(p.as_bytes(), path[0].as_bytes())
                && match_parts(&pat[1..], &path[1..])
        }
    }
}

/// Go's filepath.Match for one path segment.
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    if p.is_empty() {
        return s.is_empty();
    }
    match p[0] {
        b'*' => (0..=s.len()).any(|n| glob(&p[1..], &s[n..])),
        b'?' => !s.is_empty() && glob(&p[1..], &s[1..]),
        b'[' => {
            let Some(c) = s.first() else { return false };
            let mut i = 1;
            let neg = matches!(p.get(1), Some(b'^') | Some(b'!'));
            if neg {
                i += 1;
            }
            let mut hit = false;
            let mut first = true;
            while i < p.len() && (p[i] != b']' || first) {
                first = false;
                let mut lo = p[i];
                if lo == b'\\' && i + 1 < p.len() {
                    i += 1;
                    lo = p[i];
                }
                let mut hi = lo;
                if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&x| x != b']') {
                    hi = p[i + 2];
                    i += 2;
                }
                if lo <= *c && *c <= hi {
                    hit = true;
                }
                i += 1;
            }
            if i >= p.len() {
                return false; // unterminated class: Go reports ErrBadPattern, which never matches
            }
            hit != neg && glob(&p[i + 1..], &s[1..])
        }
        b'\\' if p.len() > 1 => !s.is_empty() && s[0] == p[1] && glob(&p[2..], &s[1..]),
        c => !s.is_empty() && s[0] == c && glob(&p[1..], &s[1..]),
    }
}

/// A COPY source pattern against a context-relative path, segment by segment.
pub fn path_glob(pattern: &str, path: &str) -> bool {
    let pp: Vec<String> = clean(pattern).split('/').map(str::to_string).collect();
    let sp: Vec<&str> = path.split('/').collect();
    pp.len() == sp.len()
        && pp
            .iter()
            .zip(&sp)
            .all(|(p, s)| glob(p.as_bytes(), s.as_bytes()))
}

pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_rules() {
        let i = Ignore::parse(
            "# comment\n*.log\n!keep.log\nbuild/\n**/tmp\n/secret\ndocs/*.md\n!docs/README.md\n",
        );
        assert!(i.excluded("a.log") && !i.excluded("keep.log"));
        assert!(!i.excluded("sub/a.log"), "*.log matches at the top only");
        assert!(i.excluded("build") && i.excluded("build/x/y"));
        assert!(i.excluded("tmp") && i.excluded("a/b/tmp") && i.excluded("a/tmp/f"));
        assert!(i.excluded("secret") && i.excluded("./secret"));
        assert!(
            i.excluded("docs/x.md") && !i.excluded("docs/README.md") && !i.excluded("docs/x.txt")
        );
        assert!(!i.excluded("src/main.rs"));
        let i = Ignore::parse("*\n!src\n");
        assert!(i.excluded("Dockerfile") && !i.excluded("src") && !i.excluded("src/a"));
        let i = Ignore::parse("**/*.o\n");
        assert!(i.excluded("a.o") && i.excluded("x/y/a.o"));
        let i = Ignore::parse("f[0-9].txt\nq?\n");
        assert!(
            i.excluded("f1.txt") && !i.excluded("fa.txt") && i.excluded("qa") && !i.excluded("qab")
        );
    }

    #[test]
    fn globs() {
        assert!(path_glob("*.txt", "a.txt") && !path_glob("*.txt", "d/a.txt"));
        assert!(path_glob("d/*", "d/a") && path_glob("./d/a?", "d/ab"));
        assert!(glob(b"[!a]x", b"bx") && !glob(b"[!a]x", b"ax"));
    }
}
