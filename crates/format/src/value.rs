//! Moving data between serde_json and gtmpl, and printing it the way Go does.
//!
//! gtmpl keeps objects in `HashMap`s, which forget key order. Go prints map keys sorted and
//! struct fields in declaration order, and docker's JSON for structs follows that order, so while
//! a template runs a thread-local registry remembers each object's key order (looked up by its
//! key set). Objects with the same key set share one order, as Go values of one struct type do.

use std::cell::RefCell;
use std::collections::HashMap;

use gtmpl::Value;
use serde_json::Value as Json;

thread_local! {
    static KEY_ORDERS: RefCell<HashMap<String, Vec<String>>> = RefCell::new(HashMap::new());
    /// The row a list template runs on. docker's list rows marshal themselves with
    /// `json.Marshal` (which escapes HTML), so `{{json .}}` on the row escapes `<`, `>`, `&`.
    static ROW: RefCell<Option<Value>> = const { RefCell::new(None) };
}

/// Marks `row` as the list row being rendered until dropped.
pub(crate) struct RowScope;

impl RowScope {
    pub(crate) fn new(row: &Value) -> Self {
        ROW.with(|r| *r.borrow_mut() = Some(row.clone()));
        RowScope
    }
}

impl Drop for RowScope {
    fn drop(&mut self) {
        ROW.with(|r| *r.borrow_mut() = None);
    }
}

/// Whether `v` is the list row itself (see `ROW`).
pub(crate) fn is_row(v: &Value) -> bool {
    ROW.with(|r| r.borrow().as_ref() == Some(v))
}

/// Clears the key-order registry when a template execution ends, even on error.
pub(crate) struct OrderScope;

impl OrderScope {
    pub(crate) fn new() -> Self {
        KEY_ORDERS.with(|o| o.borrow_mut().clear());
        OrderScope
    }
}

impl Drop for OrderScope {
    fn drop(&mut self) {
        KEY_ORDERS.with(|o| o.borrow_mut().clear());
    }
}

fn key_set<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let mut k: Vec<&str> = keys.map(String::as_str).collect();
    k.sort_unstable();
    k.join("\0")
}

/// Keys of `m` in the order the data had them (struct order), sorted when unknown (map order).
pub(crate) fn ordered_keys(m: &HashMap<String, Value>) -> Vec<String> {
    let set = key_set(m.keys());
    if let Some(order) = KEY_ORDERS.with(|o| o.borrow().get(&set).cloned()) {
        return order;
    }
    let mut keys: Vec<String> = m.keys().cloned().collect();
    keys.sort();
    keys
}

/// Whether a JSON object stands for a Go struct: every key an exported Go field name. Structs
/// are strict (a missing field is an error, as in docker); other objects are maps, where a
/// missing key prints `<no value>`.
fn looks_like_struct(m: &serde_json::Map<String, Json>) -> bool {
    !m.is_empty()
        && m.keys()
            .all(|k| k.starts_with(|c: char| c.is_ascii_uppercase()))
}

/// Converts JSON data for gtmpl, registering key orders. JSON null becomes Go's nil.
pub(crate) fn to_gtmpl(v: &Json) -> Value {
    match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                float_value(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(to_gtmpl).collect()),
        Json::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let set = key_set(keys.iter());
            KEY_ORDERS.with(|o| {
                o.borrow_mut().entry(set).or_insert(keys);
            });
            let inner = m.iter().map(|(k, v)| (k.clone(), to_gtmpl(v))).collect();
            if looks_like_struct(m) {
                Value::Object(inner)
            } else {
                Value::Map(inner)
            }
        }
    }
}

/// gtmpl stores integral floats as integers, which is how they should print. Its conversion
/// also truncates negative fractions (-1.5 → -1) and saturates huge values; those floats are
/// carried as their Go text instead, so they print right (but compare and encode as strings).
fn float_value(f: f64) -> Value {
    let v = Value::from(f);
    let kept = match &v {
        Value::Number(n) => match (n.as_f64(), n.as_i64(), n.as_u64()) {
            (Some(x), _, _) => x == f,
            (None, Some(i), _) => i as f64 == f,
            (None, None, Some(u)) => u as f64 == f,
            _ => false,
        },
        _ => false,
    };
    if kept {
        v
    } else {
        Value::String(go_float(f))
    }
}

/// Converts back for JSON encoding: struct-like objects keep their order, maps are sorted as
/// Go's encoder sorts map keys (the order survives when serde_json preserves order).
pub(crate) fn to_json(v: &Value) -> Json {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Json::from(u)
            } else if let Some(i) = n.as_i64() {
                Json::from(i)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Json::Number)
                    .unwrap_or(Json::Null)
            }
        }
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Object(m) => Json::Object(
            ordered_keys(m)
                .into_iter()
                .map(|k| (k.clone(), to_json(&m[&k])))
                .collect(),
        ),
        Value::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), to_json(&m[k])))
                    .collect(),
            )
        }
    }
}

/// Go's `%v`: what text/template prints for a value.
pub(crate) fn go_print(v: &Value) -> String {
    let mut s = String::new();
    write_go(&mut s, v);
    s
}

fn write_go(out: &mut String, v: &Value) {
    match v {
        Value::NoValue => out.push_str("<no value>"),
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => out.push_str(s),
        Value::Number(n) => match n.as_f64() {
            Some(f) => out.push_str(&go_float(f)),
            None => out.push_str(&n.to_string()),
        },
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(out, x);
            }
            out.push(']');
        }
        Value::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go(out, &m[k]);
            }
            out.push(']');
        }
        // A Go struct prints its field values in declaration order.
        Value::Object(m) => {
            out.push('{');
            for (i, k) in ordered_keys(m).iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(out, &m[k]);
            }
            out.push('}');
        }
        Value::Function(_) => out.push_str("<func>"),
    }
}

/// Shortest digits of `f`: (digits without dot, decimal exponent of the first digit).
fn shortest(f: f64) -> (String, i32) {
    let e = format!("{:e}", f.abs());
    let (mant, exp) = e.split_once('e').expect("rust {:e} has an exponent");
    (
        mant.replace('.', ""),
        exp.parse().expect("rust {:e} exponent is an integer"),
    )
}

/// Go's `%v` for float64 (strconv 'g' with the shortest precision).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (digits, exp) = shortest(f);
    let sign = if f < 0.0 { "-" } else { "" };
    // strconv's 'g' with shortest precision switches to an exponent at 1e-4 and 1e6.
    if !(-4..6).contains(&exp) {
        exp_form(sign, &digits, exp, 2)
    } else {
        format!("{sign}{}", f.abs())
    }
}

/// Go's encoding/json for float64: plain decimal in [1e-6, 1e21), else exponent form.
pub(crate) fn json_float(f: f64) -> String {
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let (digits, exp) = shortest(f);
        exp_form(if f < 0.0 { "-" } else { "" }, &digits, exp, 1)
    } else {
        format!("{f}")
    }
}

fn exp_form(sign: &str, digits: &str, exp: i32, min_exp_digits: usize) -> String {
    let (first, rest) = digits.split_at(1);
    let mant = if rest.is_empty() {
        first.to_string()
    } else {
        format!("{first}.{rest}")
    };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{mant}e{esign}{:0w$}", exp.abs(), w = min_exp_digits)
}

/// Go's JSON encoding. `escape_html` as `json.Marshal` (`<`, `>`, `&` become `\u003c`...):
/// docker's list rows are marshalled that way, while its `json` template function and the
/// daemon's inspect output turn it off. U+2028 and U+2029 are always escaped; numbers follow Go.
/// `indent` gives `json.MarshalIndent`/`json.Indent` layout with that indent and no prefix.
pub fn go_json(v: &Json, indent: Option<&str>, escape_html: bool) -> String {
    let mut out = String::new();
    write_json(&mut out, v, indent, escape_html, 0);
    out
}

fn newline(out: &mut String, indent: Option<&str>, depth: usize) {
    if let Some(ind) = indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(ind);
        }
    }
}

fn write_json(out: &mut String, v: &Json, indent: Option<&str>, html: bool, depth: usize) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => out.push_str(&u.to_string()),
            (_, Some(i), _) => out.push_str(&i.to_string()),
            (_, _, Some(f)) => out.push_str(&json_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Json::String(s) => json_string(out, s, html),
        Json::Array(a) if a.is_empty() => out.push_str("[]"),
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_json(out, x, indent, html, depth + 1);
            }
            newline(out, indent, depth);
            out.push(']');
        }
        Json::Object(m) if m.is_empty() => out.push_str("{}"),
        Json::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                json_string(out, k, html);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_json(out, x, indent, html, depth + 1);
            }
            newline(out, indent, depth);
            out.push('}');
        }
    }
}

fn json_string(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20
                || c == '\u{2028}'
                || c == '\u{2029}'
                || (html && matches!(c, '<' | '>' | '&')) =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_print_in_registered_order() {
        let _scope = OrderScope::new();
        // With serde_json's preserve_order the data's own order is registered; simulate it.
        KEY_ORDERS.with(|o| {
            o.borrow_mut().insert(
                key_set(["Status".to_string(), "Pid".to_string()].iter()),
                vec!["Status".into(), "Pid".into()],
            )
        });
        let v = Value::Object(
            [
                ("Pid".to_string(), Value::from(1u64)),
                ("Status".to_string(), Value::from("up")),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(go_print(&v), "{up 1}");
        // Unknown key sets fall back to sorted order; maps always print sorted, like Go.
        let m = Value::Map(
            [
                ("b".to_string(), Value::from(2u64)),
                ("a".to_string(), Value::from(1u64)),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(go_print(&m), "map[a:1 b:2]");
    }

    #[test]
    fn floats_gtmpl_cannot_hold_still_print() {
        let _scope = OrderScope::new();
        for (f, want) in [
            (-1.5, "-1.5"),
            (1e21, "1e+21"),
            (2.5, "2.5"),
            (-3.0, "-3"),
            (1e-20, "1e-20"),
        ] {
            assert_eq!(go_print(&to_gtmpl(&serde_json::json!(f))), want, "{f}");
        }
    }

    #[test]
    fn floats_like_go() {
        assert_eq!(go_float(0.1), "0.1");
        assert_eq!(go_float(123456.7), "123456.7");
        assert_eq!(go_float(1234567.5), "1.2345675e+06");
        assert_eq!(go_float(0.00012), "0.00012");
        assert_eq!(go_float(0.000012), "1.2e-05");
        assert_eq!(go_float(-2.5e-10), "-2.5e-10");
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(1.5e-7), "1.5e-7");
        assert_eq!(json_float(0.000001), "0.000001");
        assert_eq!(json_float(123456789.25), "123456789.25");
    }
}
