//! Variable expansion as Docker's builder does it (`$X`, `${X}`, `${X:-d}`, `${X:+a}`,
//! `${X:?msg}`, quotes removed, the escape character honoured), and Go-style durations.

use std::collections::BTreeMap;

pub type Vars = BTreeMap<String, String>;

/// Expands one word: quotes are removed, `'...'` is literal, variables are replaced.
pub fn expand(word: &str, vars: &Vars, esc: char) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut dquote = false;
    while i < chars.len() {
        let c = chars[i];
        if c == esc && i + 1 < chars.len() {
            // Inside double quotes the escape only protects $, " and itself.
            let n = chars[i + 1];
            if !dquote || n == '$' || n == '"' || n == esc {
                out.push(n);
                i += 2;
                continue;
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '\'' if !dquote => {
                let Some(end) = chars[i + 1..].iter().position(|&x| x == '\'') else {
                    return Err("unterminated single quote".into());
                };
                out.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            }
            '"' => {
                dquote = !dquote;
                i += 1;
            }
            '$' => {
                let (v, n) = variable(&chars[i..], vars, esc)?;
                out.push_str(&v);
                i += n;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    if dquote {
        return Err("unterminated double quote".into());
    }
    Ok(out)
}

/// `$...` at the start of `s`: its value and how many chars it took.
fn variable(s: &[char], vars: &Vars, esc: char) -> Result<(String, usize), String> {
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if s.len() < 2 {
        return Ok(("$".into(), 1));
    }
    if s[1] == '{' {
        let mut depth = 0;
        let mut end = None;
        for (j, &c) in s.iter().enumerate().skip(1) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.ok_or("missing '}' in a ${...} substitution")?;
        let inner: String = s[2..end].iter().collect();
        let n: usize = inner.chars().take_while(|&c| name_char(c)).count();
        if n == 0 {
            return Err(format!("bad substitution: ${{{inner}}}"));
        }
        let name = &inner[..n];
        let op = &inner[n..];
        let val = vars.get(name);
        let v = if op.is_empty() {
            val.cloned().unwrap_or_default()
        } else {
            let (colon, op) = match op.strip_prefix(':') {
                Some(o) => (true, o),
                None => (false, op),
            };
            let set = match val {
                Some(v) => !(colon && v.is_empty()),
                None => false,
            };
            let (kind, arg) = op.split_at(op.chars().next().map_or(0, char::len_utf8));
            let arg = expand(arg, vars, esc)?;
            match kind {
                "-" => {
                    if set {
                        val.cloned().unwrap_or_default()
                    } else {
                        arg
                    }
                }
                "+" => {
                    if set {
                        arg
                    } else {
                        String::new()
                    }
                }
                "?" => {
                    if set {
                        val.cloned().unwrap_or_default()
                    } else {
                        return Err(format!(
                            "{name}: {}",
                            if arg.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &arg
                            }
                        ));
                    }
                }
                _ => {
                    return Err(format!(
                        "unsupported modifier ({op}) in substitution ${{{inner}}}"
                    ))
                }
            }
        };
        return Ok((v, end + 1));
    }
    let n = s[1..].iter().take_while(|&&c| name_char(c)).count();
    if n == 0 {
        return Ok(("$".into(), 1));
    }
    let name: String = s[1..1 + n].iter().collect();
    Ok((vars.get(&name).cloned().unwrap_or_default(), n + 1))
}

/// Words of `s` (split on unquoted whitespace), each expanded.
pub fn expand_words(s: &str, vars: &Vars, esc: char) -> Result<Vec<String>, String> {
    crate::parser::raw_words(s, esc)?
        .iter()
        .map(|w| expand(w, vars, esc))
        .collect()
}

/// A Go duration ("30s", "1m30s", "500ms") in nanoseconds.
pub fn duration_ns(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {s:?}");
    if s == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let num: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("A", "one"), ("E", ""), ("P", "/usr/bin")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion_follows_docker() {
        let v = vars();
        let x = |s: &str| expand(s, &v, '\\').unwrap();
        assert_eq!(x("$A"), "one");
        assert_eq!(x("${A}x"), "onex");
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A b\""), "one b");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("${E:-d}"), "d");
        assert_eq!(x("${E-d}"), "");
        assert_eq!(x("${U:-$A}"), "one");
        assert_eq!(x("${A:+yes}"), "yes");
        assert_eq!(x("${U:+yes}"), "");
        assert_eq!(x("$P:/x"), "/usr/bin:/x");
        assert_eq!(x("a$"), "a$");
        assert!(expand("${U:?must be set}", &v, '\\')
            .unwrap_err()
            .contains("must be set"));
        assert!(expand("${A", &v, '\\').is_err());
        assert_eq!(expand("`$A", &v, '`').unwrap(), "$A");
        assert_eq!(
            expand_words("a \"b c\" $A", &v, '\\').unwrap(),
            vec!["a", "b c", "one"]
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ns("30s").unwrap(), 30_000_000_000);
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("500ms").unwrap(), 500_000_000);
        assert!(duration_ns("5x").is_err() && duration_ns("").is_err());
    }
}
