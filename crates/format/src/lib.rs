//! docker's `--format`: Go templates (on the `gtmpl` crate), `table` formats with headers,
//! `json`, and Go-tabwriter-aligned columns — what docker/cli's `cli/command/formatter`,
//! `cli/command/inspect` and `templates` packages do.
//!
//! # How the CLI calls this
//!
//! Build one `serde_json::Value` object per row with docker's field names (for `ps`: `ID`,
//! `Image`, `Command`, `CreatedAt`, `RunningFor`, `Ports`, `State`, `Status`, `Size`, `Names`,
//! `Labels`, `Mounts`, `Networks`, ... — already truncated/humanised as docker shows them), then:
//!
//! ```
//! use berth_format::{render_list, Headers};
//! const PS_HEADERS: Headers = Headers(&[("ID", "CONTAINER ID"), ("Image", "IMAGE"), ("Names", "NAMES")]);
//! let rows = vec![serde_json::json!({"ID": "4a5b6c7d8e9f", "Image": "busybox", "Names": "web"})];
//! let out = render_list(Some("table {{.ID}}\t{{.Names}}"), "table {{.ID}}\t{{.Image}}\t{{.Names}}", &PS_HEADERS, &rows)?;
//! assert_eq!(out, "CONTAINER ID   NAMES\n4a5b6c7d8e9f   web\n");
//! print!("{out}");
//! # Ok::<(), berth_format::Error>(())
//! ```
//!
//! Commands keep their default table as a `table ...` string and their header map as a
//! `const` [`Headers`] (docker's: `ID` → "CONTAINER ID" for `ps`, "IMAGE ID" for `images`,
//! `CreatedSince`/`RunningFor` → "CREATED", `CreatedAt` → "CREATED AT", ...). `-q` is the
//! caller's business (docker uses `{{.ID}}`).
//!
//! `berth inspect` passes the full objects to [`render_inspect`] and prints the result.
//! [`tabwrite`] aligns any tab-separated text (e.g. `system df -v` sections) like docker.
//!
//! Errors print as one line: `Error: {err}` on stderr, exit status 1 — except that docker
//! exits 64 when an `inspect` template fails to parse ([`Error::Parse`]).
//!
//! # Data model
//!
//! Objects whose keys all start with an upper-case letter act as Go structs (a missing field
//! is an error, as for docker's typed rows); other objects act as Go maps (a missing key prints
//! `<no value>`; `index` of a missing key gives "" in a map of strings). JSON null prints as Go's `<nil>`, ranges
//! over nothing and indexes to ""; where docker prints a nil slice or map as `[]`/`map[]`, put
//! `[]`/`{}` in the data instead. Integers print exactly, integral floats as integers, other
//! floats as Go's `%v` (negative fractions and floats beyond 2^63 travel as their Go text,
//! as gtmpl's numbers cannot hold them).
//!
//! Key order is kept as the `serde_json::Map` has it: sorted unless serde_json's
//! `preserve_order` feature is on. This crate does not turn that feature on: Cargo would unify it
//! into every crate built together with this one, changing the key order of JSON that other
//! crates serialise from `serde_json::Map`s (e.g. image configs written by `commit`, whose
//! digests would change depending on what else is in the build). docker's list rows are Go
//! maps, so `--format json` is sorted anyway; docker's inspect output keeps struct field order,
//! which needs `preserve_order` enabled for the CLI (this crate then follows that order in
//! `{{json .X}}` and struct printing too).
//!
//! # gtmpl
//!
//! Templates run on `gtmpl` 0.7 with docker's functions added and Go's `print`, `println`,
//! `printf`, `index`, `len`, `eq`, `ne` replaced by Go-faithful versions. Where gtmpl's engine
//! differs from Go (printing lists/maps, `range` over maps, nil and `range ... else`), the
//! template source is rewritten before parsing; see `template.rs`. Not available: `break`,
//! `continue` and `else with`. docker's `{{.Label "k"}}` method on listing rows works (the
//! row's `Labels` text is looked up).

mod funcs;
mod tabwriter;
mod template;
mod value;

use serde_json::Value as Json;

pub use tabwriter::tabwrite;
pub use template::{template, Template};
pub use value::go_json;

/// Errors print as docker prints them: one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template does not parse.
    #[error("template parsing error: {0}")]
    Parse(String),
    /// The template failed on a row (docker words this as a parsing error too).
    #[error("template parsing error: {0}")]
    Exec(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Field name → column header for one command, e.g. `("ID", "CONTAINER ID")` for `ps`.
/// Fields not listed get their upper-cased name.
pub struct Headers(pub &'static [(&'static str, &'static str)]);

impl Headers {
    fn get(&self, field: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| *k == field)
            .map_or_else(|| field.to_uppercase(), |(_, h)| h.to_string())
    }
}

/// Renders rows for a listing command (`ps`, `images`, `volume ls`, `history`, ...).
///
/// `format`: None, "" or "table" → `default_table` (itself a `table ...` format); "json" → one
/// JSON object per line (docker marshals rows with `json.Marshal`: sorted keys, `<`, `>`, `&`
/// escaped); "table TEMPLATE" → a header row and one row per object, aligned;
/// anything else → the template once per row, each followed by a newline. As in docker, the
/// two-character sequences `\t` and `\n` in the format become a tab and a newline.
pub fn render_list(
    format: Option<&str>,
    default_table: &str,
    headers: &Headers,
    rows: &[Json],
) -> Result<String> {
    let format = match format.unwrap_or("") {
        "" | "table" => default_table,
        f => f,
    };
    if format == "json" {
        return Ok(rows.iter().map(|r| go_json(r, None, true) + "\n").collect());
    }
    let is_table = format.starts_with("table");
    let body = if is_table {
        &format["table".len()..]
    } else {
        format
    };
    let body = body
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let tmpl = template(&body)?;
    let mut out = String::new();
    for row in rows {
        out.push_str(&tmpl.execute_row(row)?);
        out.push('\n');
    }
    if !is_table {
        return Ok(out);
    }
    let header = header_row(&body, headers, rows);
    Ok(tabwrite(&format!("{header}\n{out}")))
}

/// docker executes the table template once more on a map of column headers, with functions
/// that pass names through, and ignores errors there (keeping what was printed before the
/// failing action). gtmpl gives no partial output, so on error the longest tab-separated prefix
/// of the template that renders is used.
fn header_row(body: &str, headers: &Headers, rows: &[Json]) -> String {
    let mut names: Vec<String> = headers.0.iter().map(|(k, _)| k.to_string()).collect();
    names.extend(
        rows.iter()
            .filter_map(Json::as_object)
            .flat_map(|m| m.keys().cloned()),
    );
    names.extend(field_names(body));
    let map = names
        .into_iter()
        .map(|n| (n.clone(), gtmpl::Value::String(headers.get(&n))))
        .collect();
    let data = gtmpl::Value::Map(map);
    let cuts: Vec<usize> = body
        .match_indices('\t')
        .map(|(i, _)| i)
        .chain([body.len()])
        .collect();
    for &cut in cuts.iter().rev() {
        if let Ok(t) = template::parse(&body[..cut], &funcs::header()) {
            if let Ok(h) = t.execute_value(data.clone()) {
                // Keep the tab that ended the prefix, as Go's partial output would.
                return if cut < body.len() { h + "\t" } else { h };
            }
        }
    }
    String::new()
}

/// Names used as `.Name` anywhere in the template, so unknown fields still get a header.
fn field_names(body: &str) -> Vec<String> {
    let b = body.as_bytes();
    let mut names = Vec::new();
    for (i, _) in body.match_indices('.') {
        let prev_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        let name: String = body[i + 1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !prev_ident && !name.is_empty() {
            names.push(name);
        }
    }
    names
}

/// Renders `inspect` output: None/"" → docker's indented JSON array (4 spaces), "json" → the
/// compact array, anything else → the template once per object, each followed by a newline.
pub fn render_inspect(format: Option<&str>, objects: &[Json]) -> Result<String> {
    match format.unwrap_or("") {
        "" => Ok(go_json(&Json::Array(objects.to_vec()), Some("    "), false) + "\n"),
        "json" => Ok(go_json(&Json::Array(objects.to_vec()), None, false) + "\n"),
        t => {
            let tmpl = template(t)?;
            let mut out = String::new();
            for o in objects {
                out.push_str(&tmpl.execute(o)?);
                out.push('\n');
            }
            // docker prints one empty line when nothing was printed at all.
            if out.is_empty() {
                out.push('\n');
            }
            Ok(out)
        }
    }
}
