//! Go's `text/tabwriter` with the settings docker uses for every table:
//! `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)` (minwidth 10, tabwidth 1, padding 3, pad with
//! spaces, no flags).
//!
//! Elastic tabstops: a cell is text terminated by `\t`; the cell after the last tab of a line is
//! not part of any column and is written as is. A column block is a run of consecutive lines that
//! all have a tab-terminated cell in that column; its width is the widest cell plus padding, at
//! least minwidth. docker's fork of the writer measures cells with go-runewidth (East Asian wide
//! characters count 2, combining marks 0); `unicode-width` gives the same widths.

use unicode_width::UnicodeWidthStr;

/// The Go writer's settings this port supports (tabwidth only matters for tab padding and
/// flags are all off in docker, so neither is modelled).
#[derive(Clone, Copy)]
pub(crate) struct Settings {
    pub min_width: usize,
    pub padding: usize,
    pub pad_char: char,
}

/// `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
pub(crate) const DOCKER: Settings = Settings {
    min_width: 10,
    padding: 3,
    pad_char: ' ',
};

struct Cell<'a> {
    text: &'a str,
    width: usize,
}

/// Aligns `text` as docker's tables do.
pub fn tabwrite(text: &str) -> String {
    tabwrite_with(text, DOCKER)
}

pub(crate) fn tabwrite_with(text: &str, s: Settings) -> String {
    let mut lines: Vec<Vec<Cell<'_>>> = text
        .split('\n')
        .map(|line| {
            line.split(['\t', '\x0b'])
                .map(|t| Cell {
                    text: t,
                    width: t.width(),
                })
                .collect()
        })
        .collect();
    // Flush terminates the last cell only if it holds text: a trailing tab on the final,
    // unterminated line leaves no empty cell behind.
    if let Some(last) = lines.last_mut() {
        if last.last().is_some_and(|c| c.text.is_empty()) {
            last.pop();
        }
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format(&lines, s, &mut widths, 0, lines.len(), &mut out);
    out
}

/// Go's `Writer.format`: finds the column blocks of column `widths.len()` within `line0..line1`,
/// recursing to the right for each block.
fn format(
    lines: &[Vec<Cell<'_>>],
    s: Settings,
    widths: &mut Vec<usize>,
    mut line0: usize,
    line1: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, s, widths, line0, this, out);
        line0 = this;
        let mut width = s.min_width;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].width + s.padding);
            this += 1;
        }
        widths.push(width);
        format(lines, s, widths, line0, this, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, s, widths, line0, line1, out);
}

fn write_lines(
    lines: &[Vec<Cell<'_>>],
    s: Settings,
    widths: &[usize],
    line0: usize,
    line1: usize,
    out: &mut String,
) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, c) in line.iter().enumerate() {
            out.push_str(c.text);
            if let Some(&w) = widths.get(j) {
                out.extend(std::iter::repeat_n(s.pad_char, w.saturating_sub(c.width)));
            }
        }
        // The text after the last newline is an unterminated line: no newline of its own.
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from Go's text/tabwriter tests (copied into docker/cli's formatter/tabwriter) that
    /// use settings this port models: flags 0, padding with a non-tab character.
    #[test]
    fn go_tabwriter_cases() {
        let cases: &[(&str, usize, usize, char, &str, &str)] = &[
            ("1a", 8, 1, '.', "", ""),
            ("2", 8, 1, '.', "\n\n\n", "\n\n\n"),
            ("3", 8, 1, '.', "a\nb\nc", "a\nb\nc"),
            ("4a", 8, 1, '.', "\t", ""),
            ("5", 8, 1, '.', "*\t*", "*.......*"),
            ("5b", 8, 1, '.', "*\t*\n", "*.......*\n"),
            ("5c", 8, 1, '.', "*\t*\t", "*.......*"),
            ("6", 8, 1, '.', "\t\n", "........\n"),
            ("7a", 8, 1, '.', "a) foo", "a) foo"),
            ("7b", 8, 1, ' ', "b) foo\tbar", "b) foo  bar"),
            ("7c", 8, 1, '.', "c) foo\tbar\t", "c) foo..bar"),
            ("7d", 8, 1, '.', "d) foo\tbar\n", "d) foo..bar\n"),
            ("7e", 8, 1, '.', "e) foo\tbar\t\n", "e) foo..bar.....\n"),
            ("8", 8, 1, '*', "Hello, world!\n", "Hello, world!\n"),
            ("9a", 1, 0, '.', "1\t2\t3\t4\n11\t222\t3333\t44444\n", "1.2..3...4\n11222333344444\n"),
            ("10a", 5, 0, '.', "1\t2\t3\t4\n", "1....2....3....4\n"),
            ("10b", 5, 0, '.', "1\t2\t3\t4\t\n", "1....2....3....4....\n"),
            (
                "11",
                8,
                1,
                '.',
                "本\tb\tc\naa\t\u{672c}\u{672c}\u{672c}\tcccc\tddddd\naaa\tbbbb\n",
                "本......b.......c\naa......本本本..cccc....ddddd\naaa.....bbbb\n",
            ),
            ("12b", 2, 0, ' ', "a\tb\tc\naa\tbbb\tcccc\naaa\tbbbb\n", "a  b  c\naa bbbcccc\naaabbbb\n"),
            (
                "12c",
                8,
                1,
                '_',
                "a\tb\tc\naa\tbbb\tcccc\naaa\tbbbb\n",
                "a_______b_______c\naa______bbb_____cccc\naaa_____bbbb\n",
            ),
            (
                "13a",
                4,
                1,
                '-',
                "4444\t日本語\t22\t1\t333\n999999999\t22\n7\t22\n\t\t\t88888888\n\n666666\t666666\t666666\t4444\n1\t1\t999999999\t0000000000\n",
                "4444------日本語-22--1---333\n999999999-22\n7---------22\n------------------88888888\n\n666666-666666-666666----4444\n1------1------999999999-0000000000\n",
            ),
            (
                "13b",
                4,
                3,
                '.',
                "4444\t333\t22\t1\t333\n999999999\t22\n7\t22\n\t\t\t88888888\n\n666666\t666666\t666666\t4444\n1\t1\t999999999\t0000000000\n",
                "4444........333...22...1...333\n999999999...22\n7...........22\n....................88888888\n\n666666...666666...666666......4444\n1........1........999999999...0000000000\n",
            ),
            ("15a", 4, 0, '.', "a\t\tb", "a.......b"),
        ];
        for (name, min_width, padding, pad_char, src, want) in cases {
            let got = tabwrite_with(
                src,
                Settings {
                    min_width: *min_width,
                    padding: *padding,
                    pad_char: *pad_char,
                },
            );
            assert_eq!(&got, want, "case {name}");
        }
    }

    #[test]
    fn docker_settings() {
        // minwidth 10 even for short cells; padding 3 past the widest cell; last cell unpadded.
        assert_eq!(
            tabwrite("A\tB\nlong-value-here\tx\n"),
            "A                 B\nlong-value-here   x\n"
        );
        // An empty cell still takes its column's width.
        assert_eq!(
            tabwrite("a\t\tc\nbb\tx\tc\n"),
            "a                   c\nbb        x         c\n"
        );
        // A trailing tab pads the last real cell on newline-terminated lines.
        assert_eq!(tabwrite("a\tb\t\n"), "a         b         \n");
        // A line without tabs ends the column block: the blocks above and below align apart.
        assert_eq!(
            tabwrite("aaaaaaaaaaaaa\tx\n-\nb\ty\n"),
            "aaaaaaaaaaaaa   x\n-\nb         y\n"
        );
        // Widths count display columns, not bytes: é is one column, 本 two.
        assert_eq!(tabwrite("ééééé\tx\nab\ty\n"), "ééééé     x\nab        y\n");
        assert_eq!(
            tabwrite("本本本本本\tx\nab\ty\n"),
            "本本本本本   x\nab           y\n"
        );
    }
}
