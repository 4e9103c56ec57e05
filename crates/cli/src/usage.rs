//! Command-line usage errors in docker's words and exit codes: clap finds the error, this module
//! tells it the way the docker CLI (cobra/pflag) does, so scripts that match docker's messages
//! or its 125 keep working.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Command, CommandFactory, FromArgMatches};
use std::ffi::OsString;

/// Parses our arguments; on a usage error prints docker's message and exits (125 for a bad
/// flag or value, 1 for a wrong number of arguments or an unknown command, as docker does).
pub fn parse<P: CommandFactory + FromArgMatches>() -> P {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut cmd = P::command();
    let r = cmd
        .try_get_matches_from_mut(&args)
        .and_then(|m| P::from_arg_matches(&m));
    match r {
        Ok(p) => p,
        Err(e) => {
            cmd.build();
            let (text, code) = report(&cmd, &args, &e);
            match code {
                None => e.exit(),
                Some(code) => {
                    eprintln!("{text}");
                    std::process::exit(code)
                }
            }
        }
    }
}

/// docker's text and exit code for a clap error; None for help and version (clap prints those).
pub fn report(root: &Command, args: &[OsString], e: &clap::Error) -> (String, Option<i32>) {
    let sub = subcommand(root, args);
    let name = sub.get_bin_name().unwrap_or(sub.get_name()).to_string();
    let usage = docker_usage(sub);
    let hint = format!("Run '{name} --help' for more information");
    let ctx = |k: ContextKind| match e.get(k) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(", "),
        _ => String::new(),
    };
    let flag_error = |msg: String| (format!("{msg}\n\nUsage:  {usage}\n\n{hint}"), Some(125));
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => (String::new(), None),
        ErrorKind::InvalidSubcommand => {
            let bad = ctx(ContextKind::InvalidSubcommand);
            (
                format!(
                    "{}: unknown command: {name} {bad}\n\n{hint}",
                    root.get_name()
                ),
                Some(1),
            )
        }
        ErrorKind::UnknownArgument => {
            let arg = ctx(ContextKind::InvalidArg);
            if let Some(long) = arg.strip_prefix("--") {
                flag_error(format!(
                    "unknown flag: --{}",
                    long.split('=').next().unwrap_or(long)
                ))
            } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
                let c = short.chars().next().unwrap_or('-');
                flag_error(format!("unknown shorthand flag: '{c}' in -{short}"))
            } else {
                let bin = root.get_name();
                (format!("{bin}: '{name}' got an unexpected argument: {arg}\n\nUsage:  {usage}\n\n{hint}"), Some(1))
            }
        }
        ErrorKind::MissingRequiredArgument | ErrorKind::TooFewValues
            if !ctx(ContextKind::InvalidArg).starts_with('-') =>
        {
            let bin = root.get_name();
            let n = sub
                .get_positionals()
                .filter(|a| a.is_required_set())
                .count()
                .max(1);
            let s = if n == 1 { "" } else { "s" };
            (format!("{bin}: '{name}' requires at least {n} argument{s}\n\nUsage:  {usage}\n\nSee '{name} --help' for more information"), Some(1))
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let val = ctx(ContextKind::InvalidValue);
            let flag = flag_names(sub, &ctx(ContextKind::InvalidArg));
            if val.is_empty() && e.kind() == ErrorKind::InvalidValue {
                return flag_error(format!(
                    "flag needs an argument: {}",
                    flag.rsplit(", ").next().unwrap_or(&flag)
                ));
            }
            let why = go_parse_error(e, &val, &ctx(ContextKind::ValidValue));
            flag_error(format!(
                "invalid argument \"{val}\" for \"{flag}\" flag: {why}"
            ))
        }
        _ => {
            let text = e.kind().as_str().map(str::to_string).unwrap_or_else(|| {
                let s = e.to_string();
                let first = s
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
                    .to_string();
                first
            });
            flag_error(text)
        }
    }
}

/// The subcommand that `args` names (global options and their values are skipped).
fn subcommand<'a>(root: &'a Command, args: &[OsString]) -> &'a Command {
    let mut cur = root;
    let mut it = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        if let Some(long) = a.strip_prefix("--") {
            // A global option taking a value in the next word (`--root DIR`).
            let takes_value = cur.get_arguments().chain(root.get_arguments()).any(|x| {
                x.get_long() == Some(long) && x.get_action().takes_values() && x.is_global_set()
            });
            if takes_value && !long.contains('=') {
                it.next();
            }
            if takes_value {
                continue;
            }
            break;
        }
        if a.starts_with('-') {
            break;
        }
        match cur.find_subcommand(&a) {
            Some(s) => cur = s,
            None => break,
        }
    }
    cur
}

/// docker's usage line: `berth run [OPTIONS] IMAGE [COMMAND] [ARG...]`.
fn docker_usage(cmd: &Command) -> String {
    let mut c = cmd.clone();
    let u = c.render_usage().to_string();
    let u = u
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("Usage:")
        .trim()
        .to_string();
    let mut out = String::new();
    for w in u.split(' ') {
        let w = match w.strip_prefix('<') {
            Some(inner) => inner.replace(">...", "").replace('>', ""),
            None => w.to_string(),
        };
        let w = w
            .replace(">...", "")
            .replace('>', "")
            .replace("]...", "...]");
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&w);
    }
    // A positional taking 2.. values renders its value name twice.
    if let Some((head, pos)) = out.split_once(" [OPTIONS] ") {
        let half = pos.len() / 2;
        if pos.len() % 2 == 1 && pos[..half] == pos[half + 1..] {
            return format!("{head} [OPTIONS] {}", &pos[..half]);
        }
    }
    out
}

/// `--pids-limit <PIDS_LIMIT>` → `--pids-limit`; `-c, --cpu-shares` when it has a short form.
fn flag_names(cmd: &Command, invalid: &str) -> String {
    let word = invalid.split([' ', '=']).next().unwrap_or(invalid);
    let long = word.strip_prefix("--");
    let short = word
        .strip_prefix('-')
        .filter(|s| long.is_none() && s.chars().count() == 1)
        .and_then(|s| s.chars().next());
    let found = cmd.get_arguments().find(|a| {
        (long.is_some() && a.get_long() == long) || (short.is_some() && a.get_short() == short)
    });
    match found {
        Some(a) => match (a.get_short(), a.get_long()) {
            (Some(s), Some(l)) => format!("-{s}, --{l}"),
            (None, Some(l)) => format!("--{l}"),
            (Some(s), None) => format!("-{s}"),
            (None, None) => word.to_string(),
        },
        None => word.to_string(),
    }
}

/// Go's strconv wording for the numbers and booleans docker's flags parse.
fn go_parse_error(e: &clap::Error, val: &str, valid: &str) -> String {
    use std::error::Error as _;
    let src = e.source();
    if let Some(p) = src.and_then(|s| s.downcast_ref::<std::num::ParseIntError>()) {
        use std::num::IntErrorKind::*;
        let why = match p.kind() {
            PosOverflow | NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        return format!("strconv.ParseInt: parsing \"{val}\": {why}");
    }
    if src.is_some_and(|s| s.to_string().contains("boolean")) || valid.contains("true") {
        return format!("strconv.ParseBool: parsing \"{val}\": invalid syntax");
    }
    match src {
        Some(s) => s.to_string(),
        None => e
            .to_string()
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string(),
    }
}
