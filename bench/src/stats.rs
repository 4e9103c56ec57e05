//! Figures over repeated runs: median and spread, printed side by side.

use std::time::Duration;

/// Samples of one measured quantity for one tool.
pub struct Series {
    pub tool: String,
    pub samples: Vec<f64>,
    /// Why this tool has no figures (not on PATH, or its first failure), shown in its row.
    pub unavailable: Option<String>,
}

impl Series {
    pub fn new(tool: impl Into<String>) -> Series {
        Series {
            tool: tool.into(),
            samples: Vec::new(),
            unavailable: None,
        }
    }

    /// A row that says why it is empty.
    pub fn unavailable(tool: impl Into<String>, reason: impl Into<String>) -> Series {
        Series {
            unavailable: Some(reason.into()),
            ..Series::new(tool)
        }
    }

    /// Records the first failure; later samples stop (callers check `is_unavailable`).
    pub fn fail(&mut self, reason: impl std::fmt::Display) {
        self.unavailable.get_or_insert_with(|| reason.to_string());
    }

    pub fn is_unavailable(&self) -> bool {
        self.unavailable.is_some()
    }

    pub fn push_duration(&mut self, d: Duration) {
        self.samples.push(d.as_secs_f64() * 1000.0);
    }

    pub fn median(&self) -> f64 {
        percentile(&self.samples, 0.5)
    }

    /// Interquartile range: robust against the noisy neighbour runs of a shared machine.
    pub fn iqr(&self) -> (f64, f64) {
        (
            percentile(&self.samples, 0.25),
            percentile(&self.samples, 0.75),
        )
    }
}

/// Which tool runs first in round `i` (true: berth): alternating, so neither always meets the
/// machine warmed up, or cooled down, by the other.
pub fn berth_first(i: usize) -> [bool; 2] {
    if i % 2 == 0 {
        [true, false]
    } else {
        [false, true]
    }
}

fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Prints one table: each tool's median, quartiles, min/max, n, and its ratio to the first row
/// (berth's row comes first, so a ratio below 1 means the other tool is slower).
pub fn print_table(title: &str, unit: &str, rows: &[Series]) {
    println!("\n## {title}");
    // The first column as wide as the longest tool name, so long names keep the columns aligned.
    let w = rows.iter().map(|r| r.tool.len()).max().unwrap_or(0).max(14);
    println!(
        "{:<w$} {:>10} {:>21} {:>21} {:>5} {:>14}",
        "tool",
        format!("median {unit}"),
        "p25..p75",
        "min..max",
        "n",
        "vs first row"
    );
    let base = rows.first().map(|r| r.median()).unwrap_or(f64::NAN);
    for r in rows {
        if r.samples.is_empty() {
            let why = r.unavailable.as_deref().unwrap_or("no samples");
            println!("{:<w$} {:>10}  {}", r.tool, "n/a", one_line(why));
            continue;
        }
        let (p25, p75) = r.iqr();
        let min = r.samples.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = r.samples.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "{:<w$} {:>10.2} {:>21} {:>21} {:>5} {:>13.2}x",
            r.tool,
            r.median(),
            format!("{p25:.2}..{p75:.2}"),
            format!("{min:.2}..{max:.2}"),
            r.samples.len(),
            r.median() / base
        );
        if let Some(why) = &r.unavailable {
            println!(
                "{:<w$} (stopped after {} samples: {})",
                "",
                r.samples.len(),
                one_line(why)
            );
        }
    }
}

/// Tool errors are often multi-line: keep the table one row per tool.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quartiles() {
        let s = Series {
            samples: vec![5.0, 1.0, 3.0, 2.0, 4.0],
            ..Series::new("t")
        };
        assert_eq!(s.median(), 3.0);
        assert_eq!(s.iqr(), (2.0, 4.0));
    }

    #[test]
    fn first_failure_is_kept() {
        let mut s = Series::new("t");
        assert!(!s.is_unavailable());
        s.fail("runc create failed");
        s.fail("later");
        assert_eq!(s.unavailable.as_deref(), Some("runc create failed"));
        assert_eq!(one_line("a\n  b"), "a b");
    }
}
