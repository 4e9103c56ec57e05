//! Template functions: docker's (`json`, `split`, `join`, `title`, `lower`, `upper`, `pad`,
//! `truncate`), Go builtins that gtmpl gets wrong for docker's data (`print`, `println`, `printf`,
//! `index`, `len`), docker's header variants, and the hidden helpers the rewrite in
//! `template.rs` inserts (`__print`, `__range`, `__key`, `__val`).

use gtmpl::{Func, FuncError, Value};

use crate::value::{go_float, go_json, go_print, is_row, to_json};

pub(crate) const PRINT: &str = "__berth_print";
pub(crate) const RANGE: &str = "__berth_range";
pub(crate) const KEY: &str = "__berth_key";
pub(crate) const VAL: &str = "__berth_val";
pub(crate) const LABEL: &str = "__berth_label";

/// Functions every template gets.
pub(crate) fn basic() -> Vec<(&'static str, Func)> {
    vec![
        ("json", json as Func),
        ("split", split),
        ("join", join),
        ("title", title),
        ("lower", lower),
        ("upper", upper),
        ("pad", pad),
        ("truncate", truncate),
        ("print", print),
        ("println", println),
        ("printf", printf),
        ("index", index),
        ("len", len),
        ("eq", eq),
        ("ne", ne),
        (PRINT, hidden_print),
        (RANGE, hidden_range),
        (KEY, hidden_key),
        (VAL, hidden_val),
        (LABEL, hidden_label),
    ]
}

/// docker's HeaderFunctions: the header row shows column names, so these pass the name through.
pub(crate) fn header() -> Vec<(&'static str, Func)> {
    let mut f = basic();
    for name in [
        "json", "split", "join", "title", "lower", "upper", "truncate",
    ] {
        f.retain(|(n, _)| *n != name);
        f.push((name, first_string as Func));
    }
    f.retain(|(n, _)| *n != LABEL);
    f.push((LABEL, label_header as Func));
    f
}

/// docker's `{{.Label "k"}}` on a listing row (ps, volume ls, ...): the value of label `k`,
/// "" when absent. The row's `Labels` is docker's "k=v,k2=v2" text (or a map).
fn hidden_label(args: &[Value]) -> Result<Value, FuncError> {
    arity("Label", args, 2)?;
    let key = string_arg(&args[1])?;
    let labels = match &args[0] {
        Value::Object(m) | Value::Map(m) => m.get("Labels").cloned().unwrap_or(Value::Nil),
        other => {
            return Err(FuncError::Generic(format!(
                "can't evaluate field Label in type {}",
                type_name(other)
            )))
        }
    };
    let found = match labels {
        Value::String(s) => s
            .split(',')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string()),
        Value::Object(m) | Value::Map(m) => m.get(key).map(go_print),
        _ => None,
    };
    Ok(Value::String(found.unwrap_or_default()))
}

/// The header of a `{{.Label "com.example.some-key"}}` column: "SOME KEY".
fn label_header(args: &[Value]) -> Result<Value, FuncError> {
    let key = args.get(1).map(string_arg).transpose()?.unwrap_or("");
    let last = key.rsplit('.').next().unwrap_or(key);
    Ok(Value::String(last.replace(['-', '_'], " ").to_uppercase()))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::NoValue | Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::String(_) => "string",
        Value::Number(n) if n.as_f64().is_some() => "float64",
        Value::Number(_) => "int",
        Value::Array(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Object(_) => "struct",
        Value::Function(_) => "func",
    }
}

fn wrong_type(expected: &str, got: &Value) -> FuncError {
    FuncError::Generic(format!(
        "wrong type for value; expected {expected}; got {}",
        type_name(got)
    ))
}

fn arity(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(FuncError::Generic(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )))
    }
}

fn string_arg(v: &Value) -> Result<&str, FuncError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(wrong_type("string", other)),
    }
}

fn int_arg(v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Number(n) if n.as_i64().is_some() => Ok(n.as_i64().unwrap_or_default()),
        other => Err(wrong_type("int", other)),
    }
}

fn json(args: &[Value]) -> Result<Value, FuncError> {
    arity("json", args, 1)?;
    Ok(Value::String(go_json(
        &to_json(&args[0]),
        None,
        is_row(&args[0]),
    )))
}

fn split(args: &[Value]) -> Result<Value, FuncError> {
    arity("split", args, 2)?;
    let (s, sep) = (string_arg(&args[0])?, string_arg(&args[1])?);
    let parts: Vec<Value> = if sep.is_empty() {
        // Go splits into UTF-8 sequences when the separator is empty.
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep).map(|p| Value::String(p.to_string())).collect()
    };
    Ok(Value::Array(parts))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    arity("join", args, 2)?;
    let sep = string_arg(&args[1])?;
    match &args[0] {
        Value::Array(a) => {
            let parts = a.iter().map(string_arg).collect::<Result<Vec<_>, _>>()?;
            Ok(Value::String(parts.join(sep)))
        }
        // A nil []string joins to "".
        Value::Nil => Ok(Value::String(String::new())),
        other => Err(wrong_type("[]string", other)),
    }
}

/// strings.Title: upper-cases the first letter of each word.
fn title(args: &[Value]) -> Result<Value, FuncError> {
    arity("title", args, 1)?;
    let s = string_arg(&args[0])?;
    let is_sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            c.is_whitespace()
        }
    };
    let mut prev_sep = true;
    let out: String = s
        .chars()
        .flat_map(|c| {
            let up = prev_sep;
            prev_sep = is_sep(c);
            let v: Vec<char> = if up {
                c.to_uppercase().collect()
            } else {
                vec![c]
            };
            v
        })
        .collect();
    Ok(Value::String(out))
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    arity("lower", args, 1)?;
    Ok(Value::String(string_arg(&args[0])?.to_lowercase()))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    arity("upper", args, 1)?;
    Ok(Value::String(string_arg(&args[0])?.to_uppercase()))
}

/// docker's padWithSpace: spaces before and after a non-empty string.
fn pad(args: &[Value]) -> Result<Value, FuncError> {
    arity("pad", args, 3)?;
    let s = string_arg(&args[0])?;
    let (pre, post) = (
        int_arg(&args[1])?.max(0) as usize,
        int_arg(&args[2])?.max(0) as usize,
    );
    if s.is_empty() {
        return Ok(Value::String(String::new()));
    }
    Ok(Value::String(format!(
        "{}{s}{}",
        " ".repeat(pre),
        " ".repeat(post)
    )))
}

/// docker's truncateWithLength cuts at a byte length; here the cut moves back to a character
/// boundary so the output stays UTF-8 (Go would emit a broken sequence).
fn truncate(args: &[Value]) -> Result<Value, FuncError> {
    arity("truncate", args, 2)?;
    let s = string_arg(&args[0])?;
    let n = int_arg(&args[1])?;
    if n < 0 {
        return Err(FuncError::Generic(format!(
            "slice bounds out of range [:{n}]"
        )));
    }
    let mut n = (n as usize).min(s.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    Ok(Value::String(s[..n].to_string()))
}

fn first_string(args: &[Value]) -> Result<Value, FuncError> {
    match args.first() {
        Some(v @ Value::String(_)) => Ok(v.clone()),
        Some(other) => Err(wrong_type("string", other)),
        None => Err(FuncError::Generic(
            "wrong number of args: want 1 got 0".into(),
        )),
    }
}

/// fmt.Sprint: spaces between operands when neither side is a string.
fn print(args: &[Value]) -> Result<Value, FuncError> {
    let mut s = String::new();
    for (i, v) in args.iter().enumerate() {
        if i > 0 && !matches!(v, Value::String(_)) && !matches!(args[i - 1], Value::String(_)) {
            s.push(' ');
        }
        s.push_str(&go_print(v));
    }
    Ok(Value::String(s))
}

/// fmt.Sprintln: spaces between all operands and a newline.
fn println(args: &[Value]) -> Result<Value, FuncError> {
    let mut s: String = args.iter().map(go_print).collect::<Vec<_>>().join(" ");
    s.push('\n');
    Ok(Value::String(s))
}

/// Go's `index`: a missing map key gives the zero value, which for docker's string maps
/// (labels, options) is "" — the same for a null map.
fn index(args: &[Value]) -> Result<Value, FuncError> {
    let Some((mut cur, keys)) = args.split_first().map(|(c, k)| (c.clone(), k)) else {
        return Err(FuncError::Generic(
            "wrong number of args for index: want at least 1 got 0".into(),
        ));
    };
    for key in keys {
        cur = match (&cur, key) {
            (Value::Array(a), k) => {
                let i = int_arg(k).map_err(|_| {
                    FuncError::Generic(format!(
                        "cannot index slice/array with type {}",
                        type_name(k)
                    ))
                })?;
                match usize::try_from(i).ok().and_then(|i| a.get(i)) {
                    Some(v) => v.clone(),
                    None => {
                        return Err(FuncError::Generic(format!(
                            "error calling index: index out of range: {i}"
                        )))
                    }
                }
            }
            (Value::Map(m) | Value::Object(m), Value::String(k)) => match m.get(k) {
                Some(v) => v.clone(),
                None if m.values().all(|v| matches!(v, Value::String(_))) => {
                    Value::String(String::new())
                }
                None => Value::NoValue,
            },
            (Value::Map(_) | Value::Object(_), k) => {
                return Err(FuncError::Generic(format!(
                    "value has type {}; should be string",
                    type_name(k)
                )))
            }
            (Value::Nil | Value::NoValue, _) => Value::String(String::new()),
            (other, _) => {
                return Err(FuncError::Generic(format!(
                    "can't index item of type {}",
                    type_name(other)
                )))
            }
        };
    }
    Ok(cur)
}

/// Go's `eq arg1 arg2 [arg3...]`: whether arg1 equals any of the others.
fn eq(args: &[Value]) -> Result<Value, FuncError> {
    let Some((first, rest)) = args.split_first().filter(|(_, r)| !r.is_empty()) else {
        return Err(FuncError::Generic("missing argument for comparison".into()));
    };
    for other in rest {
        if basic_eq(first, other)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn ne(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() != 2 {
        return Err(FuncError::Generic(format!(
            "wrong number of args for ne: want 2 got {}",
            args.len()
        )));
    }
    Ok(Value::Bool(!basic_eq(&args[0], &args[1])?))
}

fn basic_eq(a: &Value, b: &Value) -> Result<bool, FuncError> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Ok(match (x.as_f64(), y.as_f64()) {
            (None, None) => x.as_i64() == y.as_i64() && x.as_u64() == y.as_u64(),
            (fx, fy) => {
                fx.or_else(|| x.as_i64().map(|i| i as f64))
                    .or_else(|| x.as_u64().map(|u| u as f64))
                    == fy
                        .or_else(|| y.as_i64().map(|i| i as f64))
                        .or_else(|| y.as_u64().map(|u| u as f64))
            }
        }),
        (Value::String(x), Value::String(y)) => Ok(x == y),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Nil | Value::NoValue, Value::Nil | Value::NoValue) => Ok(true),
        (Value::Array(_) | Value::Map(_) | Value::Object(_), _)
        | (_, Value::Array(_) | Value::Map(_) | Value::Object(_)) => {
            Err(FuncError::Generic("non-comparable type".into()))
        }
        _ => Err(FuncError::Generic(format!(
            "incompatible types for comparison: {} and {}",
            type_name(a),
            type_name(b)
        ))),
    }
}

fn len(args: &[Value]) -> Result<Value, FuncError> {
    arity("len", args, 1)?;
    let n = match &args[0] {
        Value::String(s) => s.len(),
        Value::Array(a) => a.len(),
        Value::Map(m) | Value::Object(m) => m.len(),
        Value::Nil | Value::NoValue => 0,
        other => {
            return Err(FuncError::Generic(format!(
                "len of type {}",
                type_name(other)
            )))
        }
    };
    Ok(Value::from(n))
}

/// What an action prints: Go's `%v` of the pipeline's value, as a string gtmpl prints as is.
fn hidden_print(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(args.last().map(go_print).unwrap_or_default()))
}

/// What `range` walks: `[key, value]` pairs, map keys sorted as Go sorts them, nothing for nil.
fn hidden_range(args: &[Value]) -> Result<Value, FuncError> {
    let pairs = |k: Value, v: &Value| Value::Array(vec![k, v.clone()]);
    Ok(Value::Array(match args.last() {
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| pairs(Value::from(i), v))
            .collect(),
        Some(Value::Map(m) | Value::Object(m)) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys.into_iter()
                .map(|k| pairs(Value::String(k.clone()), &m[k]))
                .collect()
        }
        Some(Value::Nil | Value::NoValue) | None => Vec::new(),
        Some(Value::Number(n)) if n.as_u64().is_some() => (0..n.as_u64().unwrap_or_default())
            .map(|i| pairs(Value::from(i), &Value::from(i)))
            .collect(),
        Some(other) => {
            return Err(FuncError::Generic(format!(
                "range can't iterate over {}",
                go_print(other)
            )))
        }
    }))
}

fn pair_part(args: &[Value], i: usize) -> Result<Value, FuncError> {
    match args.last() {
        Some(Value::Array(p)) if p.len() == 2 => Ok(p[i].clone()),
        _ => Err(FuncError::Generic("internal: range pair expected".into())),
    }
}

fn hidden_key(args: &[Value]) -> Result<Value, FuncError> {
    pair_part(args, 0)
}

/// The value of a pair, wrapped in a one-element list so an inner `range` sets dot to it even
/// when it is empty or false (a `with` would skip it).
fn hidden_val(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(vec![pair_part(args, 1)?]))
}

/// fmt.Sprintf for the verbs docker users write: %v %s %q %d %f %e %g %x %X %t %c %%, with
/// flags `-`, `+`, `0`, ` `, width and precision.
fn printf(args: &[Value]) -> Result<Value, FuncError> {
    let Some((fmt, rest)) = args.split_first() else {
        return Err(FuncError::Generic(
            "wrong number of args for printf: want at least 1 got 0".into(),
        ));
    };
    Ok(Value::String(sprintf(string_arg(fmt)?, rest)))
}

pub(crate) fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = Some(width.unwrap_or(0) * 10 + d as usize);
            chars.next();
        }
        let mut prec = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                chars.next();
            }
            prec = Some(p);
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let (num_f, num_i) = match arg {
            Value::Number(n) => (
                n.as_f64()
                    .or_else(|| n.as_i64().map(|i| i as f64))
                    .or_else(|| n.as_u64().map(|u| u as f64)),
                n.as_i64(),
            ),
            _ => (None, None),
        };
        let sign = |s: String, negative: bool| {
            if negative {
                s
            } else if plus {
                format!("+{s}")
            } else if space {
                format!(" {s}")
            } else {
                s
            }
        };
        let is_num = matches!(arg, Value::Number(_));
        let body = match (verb, arg) {
            ('v' | 's', Value::String(s)) => match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('v', _) if is_num => sign(go_print(arg), num_f.is_some_and(|f| f < 0.0)),
            ('v' | 's', _) => go_print(arg),
            ('q', Value::String(s)) => go_json(&serde_json::Value::String(s.clone()), None, false),
            ('t', Value::Bool(b)) => b.to_string(),
            ('d', Value::Number(n)) if n.as_f64().is_none() => {
                sign(n.to_string(), n.as_i64().is_some_and(|i| i < 0))
            }
            ('c', _) if num_i.is_some() => num_i
                .and_then(|i| u32::try_from(i).ok())
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}')
                .to_string(),
            ('x', Value::String(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('X', Value::String(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
            ('x', _) if num_i.is_some() => {
                sign(hex(num_i.unwrap_or_default(), false), num_i < Some(0))
            }
            ('X', _) if num_i.is_some() => {
                sign(hex(num_i.unwrap_or_default(), true), num_i < Some(0))
            }
            ('f' | 'F', _) if num_f.is_some() => {
                let f = num_f.unwrap_or_default();
                sign(format!("{:.*}", prec.unwrap_or(6), f), f < 0.0)
            }
            ('e', _) if num_f.is_some() => {
                let f = num_f.unwrap_or_default();
                sign(go_exp(f, prec.unwrap_or(6)), f < 0.0)
            }
            ('g', _) if num_f.is_some() => {
                let f = num_f.unwrap_or_default();
                sign(go_float(f), f < 0.0)
            }
            (v, other) => format!("%!{v}({}={})", type_name(other), go_print(other)),
        };
        let w = width.unwrap_or(0);
        let len = body.chars().count();
        if len >= w {
            out.push_str(&body);
        } else if minus {
            out.push_str(&body);
            out.push_str(&" ".repeat(w - len));
        } else if zero && is_num {
            let (s, digits) = match body.strip_prefix(['-', '+', ' ']) {
                Some(d) => (&body[..1], d),
                None => ("", body.as_str()),
            };
            out.push_str(s);
            out.push_str(&"0".repeat(w - len));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(w - len));
            out.push_str(&body);
        }
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", type_name(a), go_print(a)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

fn hex(i: i64, upper: bool) -> String {
    let s = if upper {
        format!("{:X}", i.unsigned_abs())
    } else {
        format!("{:x}", i.unsigned_abs())
    };
    if i < 0 {
        format!("-{s}")
    } else {
        s
    }
}

/// Go's %e: at least two exponent digits.
fn go_exp(f: f64, prec: usize) -> String {
    let s = format!("{:.*e}", prec, f);
    let (mant, exp) = s.split_once('e').expect("rust {:e} has an exponent");
    let exp: i32 = exp.parse().expect("rust {:e} exponent is an integer");
    format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}
