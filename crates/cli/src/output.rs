//! Printing through berth-format, with docker's exit statuses.

use berth_format::{render_inspect, render_list, Headers};
use serde_json::Value;

use crate::{CmdResult, Failure};

mod typed;

/// A listing command's rows: `format` as the user gave it, `default_table` docker's default.
pub fn print_list(
    format: Option<&str>,
    default_table: &str,
    headers: &Headers,
    rows: &[Value],
) -> CmdResult {
    print!("{}", render_list(format, default_table, headers, rows)?);
    Ok(())
}

/// `inspect` output. `default_text` prints the objects without a format, in docker's key
/// order where the caller knows it (berth-format would print `serde_json`'s sorted keys).
/// docker exits 64 (and prints no `Error:` prefix) when the template does not parse; nothing
/// has been printed at that point.
pub fn print_inspect(
    format: Option<&str>,
    objects: &[Value],
    default_text: impl FnOnce(&[Value]) -> String,
) -> CmdResult {
    if format.is_none_or(str::is_empty) {
        println!("{}", default_text(objects));
        return Ok(());
    }
    // Templates see docker's typed structures; `json` prints the objects as they are.
    let typed: Vec<Value>;
    let objects = if format == Some("json") {
        objects
    } else {
        typed = objects.iter().map(typed::for_template).collect();
        &typed[..]
    };
    match render_inspect(format, objects) {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        Err(e @ berth_format::Error::Parse(_)) => {
            eprintln!("{e}");
            std::process::exit(64)
        }
        Err(e) => Err(Failure(e.to_string())),
    }
}

/// The docker inspect indentation (4 spaces) for values that keep docker's key order.
pub fn indented_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    v.serialize(&mut ser).expect("json");
    String::from_utf8(buf).expect("utf-8 json")
}

/// docker's key order for printing a JSON object and the objects below it, by path ("" for
/// the top, "Config", "State.Health", ...; array elements share their array's path). Keys not
/// listed follow, sorted. docker prints Go structs in field order; berth's `serde_json` maps are
/// sorted (see berth-format's notes on `preserve_order`).
pub struct KeyOrder(pub &'static [(&'static str, &'static [&'static str])]);

/// `v` serialised in `order`.
pub struct InOrder<'a> {
    pub v: &'a Value,
    pub order: &'a KeyOrder,
    pub path: String,
}

impl serde::Serialize for InOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        let child = |v, path| InOrder {
            v,
            order: self.order,
            path,
        };
        match self.v {
            Value::Object(m) => {
                let listed = self
                    .order
                    .0
                    .iter()
                    .find(|(p, _)| *p == self.path)
                    .map_or(&[][..], |(_, k)| k);
                let mut keys: Vec<&String> = listed
                    .iter()
                    .filter_map(|k| m.get_key_value(*k).map(|(k, _)| k))
                    .collect();
                keys.extend(m.keys().filter(|k| !listed.contains(&k.as_str())));
                let mut map = s.serialize_map(Some(m.len()))?;
                for k in keys {
                    let path = if self.path.is_empty() {
                        k.clone()
                    } else {
                        format!("{}.{k}", self.path)
                    };
                    map.serialize_entry(k, &child(&m[k], path))?;
                }
                map.end()
            }
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for x in a {
                    seq.serialize_element(&child(x, self.path.clone()))?;
                }
                seq.end()
            }
            other => serde::Serialize::serialize(other, s),
        }
    }
}

/// docker's `formatter.Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!(
            "{}…",
            s.chars().take(max.saturating_sub(1)).collect::<String>()
        )
    }
}

/// Go's `strconv.Quote` (docker quotes `ps`' COMMAND with it): printable text as is, `"` and
/// `\` escaped, control characters as Go's escapes.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ellipsis_like_docker() {
        assert_eq!(super::ellipsis("abcdef", 4), "abc…");
        assert_eq!(super::ellipsis("abcd", 4), "abcd");
        assert_eq!(super::ellipsis("ééééé", 3), "éé…");
    }

    #[test]
    fn go_quote_like_strconv() {
        assert_eq!(super::go_quote("true"), "\"true\"");
        assert_eq!(
            super::go_quote(r#"sh -c "echo \ hi""#),
            r#""sh -c \"echo \\ hi\"""#
        );
        assert_eq!(
            super::go_quote("a\tb\nc\u{1}\u{7f}…"),
            "\"a\\tb\\nc\\x01\\x7f…\""
        );
    }
}
