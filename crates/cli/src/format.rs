//! Docker's ways of printing: sizes ("4.26MB"), ages ("2 hours ago"), tab-aligned tables, and a
//! small subset of Go templates (`{{.Field}}`, `{{json .Field}}`, `table ...`).

use serde_json::Value;

/// go-units HumanSizeWithPrecision: decimal units, `%.*g`.
pub fn human_size_prec(size: f64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(s, precision), UNITS[i])
}

/// `docker images`' SIZE.
pub fn human_size(size: u64) -> String {
    human_size_prec(size as f64, 3)
}

/// Go's `%.*g`.
pub fn go_g(x: f64, p: usize) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let e = format!("{:.*e}", p.saturating_sub(1), x);
    let (mant, exp) = e.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent");
    if exp < -4 || exp >= p as i32 {
        let m = trim_zeros(mant);
        return format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let decimals = (p as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{:.*}", decimals, x))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// go-units HumanDuration.
pub fn human_duration(secs: i64) -> String {
    let hours_rounded = (secs + 1800) / 3600;
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s / 60 < 60 => format!("{} minutes", s / 60),
        _ if hours_rounded == 1 => "About an hour".into(),
        _ if hours_rounded < 48 => format!("{hours_rounded} hours"),
        _ if hours_rounded < 24 * 7 * 2 => format!("{} days", hours_rounded / 24),
        _ if hours_rounded < 24 * 30 * 2 => format!("{} weeks", hours_rounded / 24 / 7),
        _ if hours_rounded < 24 * 365 * 2 => format!("{} months", hours_rounded / 24 / 30),
        s => format!("{} years", s / 3600 / 24 / 365),
    }
}

pub fn ago(created: i64) -> String {
    if created <= 0 {
        return "N/A".into();
    }
    format!("{} ago", human_duration(berth_image::timefmt::now_unix() - created))
}

/// Aligns rows like Go's tabwriter(minwidth 10, padding 3) as docker configures it.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count() + 3).max(10);
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Looks up `.A.B` in a JSON value.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.trim_start_matches('.').split('.').filter(|p| !p.is_empty()) {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// Go's default printing of a value (strings bare, the rest as JSON; null as `<no value>`).
fn plain(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<no value>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => format!("[{}]", a.iter().map(|x| plain(Some(x))).collect::<Vec<_>>().join(" ")),
        Some(Value::Object(m)) => {
            format!(
                "map[{}]",
                m.iter()
                    .map(|(k, x)| format!("{k}:{}", plain(Some(x))))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
        Some(other) => other.to_string(),
    }
}

/// Renders `{{.Field}}`, `{{json .Field}}`, `{{json .}}` against `v`; `\t` and `\n` escapes too.
pub fn render(template: &str, v: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("template: unclosed action in {template:?}"))?;
        let action = after[..end].trim().trim_start_matches('-').trim_end_matches('-').trim();
        let words: Vec<&str> = action.split_whitespace().collect();
        match words.as_slice() {
            ["json", path] if path.starts_with('.') => {
                out.push_str(&serde_json::to_string(&lookup(v, path).cloned().unwrap_or(Value::Null)).expect("json"))
            }
            [path] if path.starts_with('.') => {
                if path.len() > 1 && lookup(v, path).is_none() {
                    return Err(format!("template: can't evaluate field {}", path.trim_start_matches('.')));
                }
                out.push_str(&plain(lookup(v, path)))
            }
            _ => return Err(format!("template: unsupported action {{{{{action}}}}}")),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out.replace("\\t", "\t").replace("\\n", "\n"))
}

/// Header names docker prints for well-known fields.
pub fn header_for(field: &str) -> String {
    match field {
        "ID" => "IMAGE ID".into(),
        "CreatedSince" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        "CreatedBy" => "CREATED BY".into(),
        other => other.to_uppercase(),
    }
}

/// Prints rows of JSON objects with a user format: "json", "table [TEMPLATE]" or a template.
pub fn print_formatted(format: &str, rows: &[Value]) -> Result<(), String> {
    if format == "json" {
        for r in rows {
            println!("{}", serde_json::to_string(r).expect("json"));
        }
        return Ok(());
    }
    if let Some(t) = format.strip_prefix("table") {
        let t = t.trim();
        let fields: Vec<String> = t
            .split("{{")
            .skip(1)
            .filter_map(|p| p.split("}}").next())
            .map(|a| header_for(a.trim().trim_start_matches("json").trim().trim_start_matches('.')))
            .collect();
        let mut lines = vec![fields];
        for r in rows {
            lines.push(render(t, r)?.split('\t').map(str::to_string).collect());
        }
        print!("{}", table(&lines));
        return Ok(());
    }
    for r in rows {
        println!("{}", render(format, r)?);
    }
    Ok(())
}

/// Glob match with `*` and `?` (docker's reference filter uses path.Match).
pub fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != '/' && m(p, &s[1..])),
            (Some('?'), Some(c)) if *c != '/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(&pattern.chars().collect::<Vec<_>>(), &s.chars().collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(4_263_000), "4.26MB");
        assert_eq!(human_size(121_500_000), "122MB");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(human_size(999_900), "1e+03kB");
        assert_eq!(human_size_prec(4_263_000.0, 4), "4.263MB");
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(61), "About a minute");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }

    #[test]
    fn templates() {
        let v = serde_json::json!({"Id": "x", "RootFS": {"Type": "layers"}});
        assert_eq!(render("{{.Id}}\\t{{json .RootFS}}", &v).unwrap(), "x\t{\"Type\":\"layers\"}");
        assert!(render("{{.Nope}}", &v).is_err());
        assert!(glob("busy*", "busybox"));
        assert!(!glob("busy*", "a/busybox"));
    }

    #[test]
    fn tables_align() {
        let t = table(&[vec!["A".into(), "BB".into()], vec!["long-value-here".into(), "x".into()]]);
        assert_eq!(t, "A                 BB\nlong-value-here   x\n");
    }
}
