//! Go templates on gtmpl, with a source rewrite for three places where gtmpl 0.7 departs from
//! Go's text/template in ways docker users meet:
//! - an action prints with Rust's `Debug` for lists and maps (`[String("a")]`): every printing
//!   action gets a final `| __berth_print` that formats the value as Go's `%v` does;
//! - `range` over a map walks a `HashMap` in random order, errors on nil, and runs its `else`
//!   branch even after iterating: `{{range [$k, $v :=] P}}B{{else}}E{{end}}` becomes
//!   `{{with $r := P | __berth_range}}{{range $p := $r}}{{$k := __berth_key $p}}`
//!   `{{range $v := __berth_val $p}}B{{end}}{{end}}{{else}}E{{end}}`, where `__berth_range`
//!   returns sorted `[key, value]` pairs (empty for nil) and `__berth_val` a one-element list so
//!   dot becomes the value even when it is falsy.
//!
//! The rewrite adds no newlines, so line numbers in errors stay right. Not supported (gtmpl
//! lacks them): `break`, `continue`, `else with`. docker's one method with an argument on
//! listing rows, `{{.Label "k"}}`, is rewritten into a hidden function call on dot.

use gtmpl::error::{ExecError, ParseError};
use gtmpl::{Context, FuncError};

use crate::funcs::{self, KEY, LABEL, PRINT, RANGE, VAL};
use crate::value::{to_gtmpl, OrderScope, RowScope};
use crate::Error;

/// A parsed Go template with docker's functions.
pub struct Template {
    inner: gtmpl::Template,
}

/// Parses `src` with docker's template functions (`templates.Parse` in docker/cli).
pub fn template(src: &str) -> Result<Template, Error> {
    parse(src, &funcs::basic())
}

pub(crate) fn parse(src: &str, funcs: &[(&'static str, gtmpl::Func)]) -> Result<Template, Error> {
    if let Some(line) = unclosed_action(src) {
        return Err(Error::Parse(format!("template: :{line}: unclosed action")));
    }
    let mut inner = gtmpl::Template::default();
    inner.add_funcs(funcs);
    inner
        .parse(rewrite(src))
        .map_err(|e| Error::Parse(parse_message(&e, src)))?;
    Ok(Template { inner })
}

/// The line of an action with no closing `}}` (gtmpl reports it as a bad character).
fn unclosed_action(src: &str) -> Option<usize> {
    let mut pos = 0;
    while let Some(off) = src[pos..].find("{{") {
        let open = pos + off;
        match action_end(src, open + 2) {
            Some(close) => pos = close + 2,
            None => return Some(src[..open].matches('\n').count() + 1),
        }
    }
    None
}

impl Template {
    /// Runs the template on `data` (a JSON object with docker's field names).
    pub fn execute(&self, data: &serde_json::Value) -> Result<String, Error> {
        let _scope = OrderScope::new();
        self.execute_value(to_gtmpl(data))
    }

    /// Runs on one row of a listing, where `{{json .}}` marshals like docker's row contexts.
    pub(crate) fn execute_row(&self, data: &serde_json::Value) -> Result<String, Error> {
        let _scope = OrderScope::new();
        let row = to_gtmpl(data);
        let _row = RowScope::new(&row);
        self.execute_value(row)
    }

    pub(crate) fn execute_value(&self, data: gtmpl::Value) -> Result<String, Error> {
        self.inner
            .render(&Context::from(data))
            .map_err(|e| Error::Exec(exec_message(&e)))
    }
}

/// Go's wording: `template: :LINE: function "x" not defined`. gtmpl counts lines from 2 and
/// past the end at EOF, so the line is shifted and clamped to the source.
fn parse_message(e: &ParseError, src: &str) -> String {
    match e {
        ParseError::WithContext(ctx, msg) => {
            let lines = src.matches('\n').count() + 1;
            let line = ctx.line.saturating_sub(1).clamp(1, lines);
            let msg = match msg
                .strip_prefix("function ")
                .and_then(|m| m.strip_suffix(" not defined"))
            {
                Some(name) => format!("function \"{name}\" not defined"),
                None => msg.clone(),
            };
            format!("template: {}:{line}: {msg}", ctx.name)
        }
        other => format!("template: {other}"),
    }
}

fn exec_message(e: &ExecError) -> String {
    let msg = match e {
        ExecError::NoFiledFor(field, _) => format!("can't evaluate field {field}"),
        ExecError::OnlyMapsAndObjectsHaveFields => {
            "can't evaluate a field of a value that is not a struct or map".into()
        }
        ExecError::CannotEvaluateCommand(node) if node.to_string() == "nil" => {
            "nil is not a command".into()
        }
        ExecError::InvalidRange(v) => {
            format!("range can't iterate over {}", crate::value::go_print(v))
        }
        ExecError::FuncError(FuncError::Generic(m)) => format!("error calling function: {m}"),
        ExecError::FuncError(f) => format!("error calling function: {f}"),
        other => other.to_string(),
    };
    format!("template: executing \"\": {}", msg.replace('\n', " "))
}

/// The trim markers of one `{{...}}` action.
struct Action {
    left_trim: bool,
    right_trim: bool,
}

impl Action {
    fn open(&self) -> &'static str {
        if self.left_trim {
            "{{- "
        } else {
            "{{"
        }
    }
    fn close(&self) -> &'static str {
        if self.right_trim {
            " -}}"
        } else {
            "}}"
        }
    }
}

/// Finds the end of the action starting at `src[start..]` (just after `{{`): the byte offset of
/// its closing `}}`, skipping quoted strings, raw strings and comments.
fn action_end(src: &str, start: usize) -> Option<usize> {
    let b = src.as_bytes();
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let close = src[i + 2..].find("*/")?;
                i += 2 + close + 2;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => i += 1,
        }
    }
    None
}

enum Block {
    Range { has_else: bool },
    Other,
}

/// Leading identifier of an action (`if`, `range`, `end`, ...).
fn keyword(inner: &str) -> &str {
    let t = inner.trim_start();
    let end = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(t.len());
    &t[..end]
}

/// `$a :=`, `$a, $b :=` or `$a =` at the start: the action declares instead of printing.
/// Returns the variables and the rest of the pipeline.
fn split_decl(inner: &str) -> Option<(Vec<&str>, &str, &str)> {
    let mut vars = Vec::new();
    let mut rest = inner.trim_start();
    loop {
        if !rest.starts_with('$') {
            return None;
        }
        let end = rest[1..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(rest.len(), |e| e + 1);
        vars.push(&rest[..end]);
        rest = rest[end..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
            continue;
        }
        if let Some(r) = rest.strip_prefix(":=") {
            return Some((vars, ":=", r));
        }
        if rest.starts_with('=') && !rest.starts_with("==") {
            return Some((vars, "=", &rest[1..]));
        }
        return None;
    }
}

/// Applies [`methods`] inside every action.
fn rewrite_methods(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 16);
    let mut pos = 0;
    while let Some(off) = src[pos..].find("{{") {
        let body = pos + off + 2;
        let Some(close) = action_end(src, body) else {
            break;
        };
        out.push_str(&src[pos..body]);
        out.push_str(&methods(&src[body..close]));
        pos = close;
    }
    out.push_str(&src[pos..]);
    out
}

/// docker's methods with an argument: `.Label "k"` (not `$x.Label` or `.X.Label`) becomes a
/// call of the hidden label function on dot. Quoted text is left alone.
fn methods(inner: &str) -> String {
    let b = inner.as_bytes();
    let mut out = String::with_capacity(inner.len() + 16);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'`' | b'\'') => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && q != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                out.push_str(&inner[start..i]);
            }
            b'.' if inner[i..].starts_with(".Label")
                && (i == 0 || matches!(b[i - 1], b' ' | b'(' | b'|' | b'\t'))
                && inner[i + 6..].starts_with(|c: char| c.is_ascii_whitespace()) =>
            {
                out.push_str(LABEL);
                out.push_str(" .");
                i += 6;
            }
            _ => {
                let c = inner[i..].chars().next().expect("char");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// Rewrites `src` so gtmpl prints and ranges as Go does (see the module docs). Malformed input
/// is passed through unchanged for gtmpl to report.
pub(crate) fn rewrite(src: &str) -> String {
    let src = &rewrite_methods(src);
    let mut out = String::with_capacity(src.len() + 64);
    let mut stack: Vec<Block> = Vec::new();
    let mut ranges = 0usize;
    let mut pos = 0;
    while let Some(off) = src[pos..].find("{{") {
        let open = pos + off;
        out.push_str(&src[pos..open]);
        let mut body = open + 2;
        let left_trim = src[body..].starts_with('-')
            && src[body + 1..].starts_with(|c: char| c.is_ascii_whitespace());
        if left_trim {
            body += 2;
        }
        let Some(close) = action_end(src, body) else {
            out.push_str(&src[open..]);
            return out;
        };
        let mut inner = &src[body..close];
        let right_trim = inner.ends_with('-')
            && inner[..inner.len() - 1].ends_with(|c: char| c.is_ascii_whitespace());
        if right_trim {
            inner = &inner[..inner.len() - 2];
        }
        pos = close + 2;
        let a = Action {
            left_trim,
            right_trim,
        };
        let (o, c) = (a.open(), a.close());
        let verbatim = &src[open..pos];
        match keyword(inner) {
            _ if inner.trim_start().starts_with("/*") => out.push_str(verbatim),
            "if" | "with" | "define" | "block" => {
                stack.push(Block::Other);
                out.push_str(verbatim);
            }
            "range" => {
                let rest = inner.trim_start()["range".len()..].trim();
                let n = ranges;
                ranges += 1;
                let (vars, pipe) = match split_decl(rest) {
                    Some((vars, ":=", pipe)) if vars.len() <= 2 => (vars, pipe.trim()),
                    Some(_) => {
                        out.push_str(verbatim);
                        stack.push(Block::Other);
                        continue;
                    }
                    None => (Vec::new(), rest),
                };
                if pipe.is_empty() {
                    out.push_str(verbatim);
                    stack.push(Block::Other);
                    continue;
                }
                out.push_str(&format!(
                    "{o}with $__r{n} := {pipe} | {RANGE}}}}}{{{{range $__p{n} := $__r{n}}}}}"
                ));
                if vars.len() == 2 {
                    out.push_str(&format!("{{{{{} := {KEY} $__p{n}}}}}", vars[0]));
                }
                let decl = vars.last().map(|v| format!("{v} := ")).unwrap_or_default();
                out.push_str(&format!("{{{{range {decl}{VAL} $__p{n}{c}"));
                stack.push(Block::Range { has_else: false });
            }
            "else" => match stack.last_mut() {
                Some(Block::Range { has_else, .. }) if inner.trim() == "else" => {
                    *has_else = true;
                    out.push_str(&format!("{o}end}}}}{{{{end}}}}{{{{else{c}"));
                }
                _ => out.push_str(verbatim),
            },
            "end" => match stack.pop() {
                Some(Block::Range { has_else: true, .. }) => out.push_str(verbatim),
                Some(Block::Range { has_else: false }) => {
                    out.push_str(&format!("{o}end}}}}{{{{end}}}}{{{{end{c}"))
                }
                _ => out.push_str(verbatim),
            },
            "template" | "break" | "continue" | "nil" => out.push_str(verbatim),
            _ if split_decl(inner).is_some() || inner.trim().is_empty() => out.push_str(verbatim),
            _ => out.push_str(&format!("{o}{} | {PRINT}{c}", inner.trim_end())),
        }
    }
    out.push_str(&src[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, data: &serde_json::Value) -> String {
        template(t)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
            .execute(data)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    #[test]
    fn rewrite_keeps_lines_and_leaves_non_printing_actions() {
        let src = "{{$x := .A}}\n{{if .B}}{{/* c */}}{{end}}\n{{template \"t\" .}}";
        assert_eq!(rewrite(src), src);
        assert_eq!(rewrite("{{- .A -}}"), format!("{{{{- .A | {PRINT} -}}}}"));
        assert_eq!(
            rewrite("a\n{{range .L}}\n{{.}}\n{{end}}")
                .matches('\n')
                .count(),
            3
        );
        // Strings holding braces do not end an action.
        assert_eq!(
            rewrite(r#"{{printf "}}" .A}}"#),
            format!(r#"{{{{printf "}}}}" .A | {PRINT}}}}}"#)
        );
    }

    #[test]
    fn range_rewrite_in_awkward_places() {
        let d = json!({"L": ["a", "b"], "E": [], "M": {"y": 2, "x": 1}});
        // Trim markers on range, else and end.
        assert_eq!(
            run("{{- range .E -}} x {{- else -}} none {{- end -}}", &d),
            "none"
        );
        assert_eq!(run("[ {{- range .L -}} {{.}} {{- end -}} ]", &d), "[ab]");
        // Ranges nested in ranges and in else branches, inside define.
        assert_eq!(
            run(
                "{{range .L}}{{range $.E}}x{{else}}({{.}}){{end}}{{end}}",
                &d
            ),
            "(a)(b)"
        );
        assert_eq!(
            run(
                "{{range .E}}x{{else}}{{range $k, $v := .M}}{{$k}}{{$v}}{{end}}{{end}}",
                &d
            ),
            "x1y2"
        );
        assert_eq!(
            run(
                "{{define \"t\"}}{{range .}}<{{.}}>{{end}}{{end}}{{template \"t\" .L}}",
                &d
            ),
            "<a><b>"
        );
        // if/with inside a range are not confused with the range's own else/end.
        assert_eq!(
            run("{{range .L}}{{if eq . \"a\"}}A{{else}}B{{end}}{{end}}", &d),
            "AB"
        );
        assert_eq!(run("{{range $i, $_ := .L}}{{$i}}{{end}}", &d), "01");
    }
}
