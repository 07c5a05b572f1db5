//! Diagnostics in the style of rustc, rendered with codespan-reporting:
//! the message, `--> FILE:LINE:COL`, the source line with a caret, notes.

use codespan_reporting::diagnostic::{Diagnostic as CsDiag, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Chars, Config};
use std::ops::Range;

/// Error or warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One diagnostic about a source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Byte range in the source, if the diagnostic points somewhere.
    pub span: Option<Range<usize>>,
    /// Text beside the caret.
    pub label: String,
    /// `= note: …` / `= help: …` lines.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Range<usize>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span: Some(span),
            label: String::new(),
            notes: Vec::new(),
        }
    }
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(format!("note: {}", note.into()));
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.notes.push(format!("help: {}", help.into()));
        self
    }
}

fn config() -> Config {
    Config { chars: Chars::ascii(), ..Config::default() }
}

/// Renders diagnostics about `src` (named `name`) as plain text.
/// Source lines longer than this are not printed in a diagnostic.
const MAX_SHOWN_LINE: usize = 4096;

pub fn render(name: &str, src: &str, diags: &[Diagnostic]) -> String {
    let file = SimpleFile::new(name, src);
    let mut out = term::termcolor::NoColor::new(Vec::new());
    for d in diags {
        let mut cs = match d.severity {
            Severity::Error => CsDiag::error(),
            Severity::Warning => CsDiag::warning(),
        }
        .with_message(cap(&d.message))
        .with_notes(d.notes.iter().map(|n| cap(n)).collect());
        if let Some(span) = &d.span {
            let span = clamp(span.clone(), src);
            // A line too long to show (binary junk, a generated line) is
            // named, not printed: the report stays small.
            let line_start = src[..span.start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = src[span.start..].find('\n').map_or(src.len(), |i| span.start + i);
            if line_end - line_start > MAX_SHOWN_LINE {
                let line = src[..span.start].matches('\n').count() + 1;
                let col = src[line_start..span.start].chars().count() + 1;
                cs = cs.with_notes(vec![format!(
                    "at {name}:{line}:{col} (the line is {} bytes long; not shown)",
                    line_end - line_start
                )]);
            } else {
                cs = cs.with_labels(vec![Label::primary((), span).with_message(&d.label)]);
            }
        }
        // Rendering into a Vec cannot fail for in-range spans (clamped above).
        let _ = term::emit(&mut out, &config(), &file, &cs);
    }
    String::from_utf8_lossy(&out.into_inner()).into_owned()
}

/// A message or note with each line cut to a readable length (one can
/// quote a name of any length from the source).
fn cap(s: &str) -> String {
    const MAX: usize = 400;
    let line = |l: &str| match l.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &l[..i]),
        None => l.to_string(),
    };
    s.split('\n').map(line).collect::<Vec<_>>().join("\n")
}

fn clamp(span: Range<usize>, src: &str) -> Range<usize> {
    let mut s = span.start.min(src.len());
    while !src.is_char_boundary(s) {
        s -= 1;
    }
    let mut e = span.end.clamp(s, src.len());
    while !src.is_char_boundary(e) {
        e += 1;
    }
    s..e
}

/// Byte range of the text at `line:col` (1-based, col in characters) up to
/// the end of the instruction (before a comment, trailing blanks trimmed).
pub fn span_of(src: &str, line: u32, col: u32) -> Option<Range<usize>> {
    let mut start = 0;
    for (i, l) in src.split('\n').enumerate() {
        if i + 1 == line as usize {
            let off: usize = l.chars().take(col.saturating_sub(1) as usize).map(char::len_utf8).sum();
            let rest = &l[off..];
            let end = instr_text_len(rest);
            return Some(start + off..start + off + end.max(1).min(rest.len().max(1)));
        }
        start += l.len() + 1;
    }
    None
}

/// Length of an instruction's text: up to a `;` outside a string, trimmed.
fn instr_text_len(s: &str) -> usize {
    let mut in_str = false;
    let mut esc = false;
    let mut end = s.len();
    for (i, c) in s.char_indices() {
        if in_str {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if c == ';' || c == '@' {
            end = i;
            break;
        }
    }
    s[..end].trim_end().len()
}

/// Where each line of a text starts, so that a position's line is a binary
/// search and its column a scan of that line only: the assembler looks up
/// every instruction's position, and a scan from the start of the file for
/// each made large files quadratic (70,000 lines took 39 s).
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(src: &str) -> Self {
        LineIndex { starts: std::iter::once(0).chain(src.match_indices('\n').map(|(i, _)| i + 1)).collect() }
    }

    /// 1-based line and column (in characters) of byte `offset` of `src`,
    /// the text the index was built from.
    pub fn line_col(&self, src: &str, offset: usize) -> (u32, u32) {
        let offset = clamp(offset..offset, src).start;
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        (line as u32, src[start..offset].chars().count() as u32 + 1)
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely
/// misspelling.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|&(d, c)| d <= limit && c != word)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_positions() {
        let src = "li r1, 2\n  add r1, r1, 1 ; c\n";
        assert_eq!(span_of(src, 2, 3), Some(11..24));
        let lines = LineIndex::new(src);
        assert_eq!(lines.line_col(src, 11), (2, 3));
        assert_eq!(lines.line_col(src, 0), (1, 1));
        assert_eq!(lines.line_col(src, 8), (1, 9), "the newline ends line 1");
        assert_eq!(lines.line_col(src, 9), (2, 1));
        assert_eq!(lines.line_col(src, 1000), (3, 1), "past the end: the end");
        let wide = "é\nαβγ x";
        assert_eq!(LineIndex::new(wide).line_col(wide, "é\nαβγ ".len()), (2, 5), "columns count characters");
        assert_eq!(span_of(src, 9, 1), None);
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("ad", ["add", "sub", "mod"]), Some("add"));
        assert_eq!(did_you_mean("lood", ["load", "store"]), Some("load"));
        assert_eq!(did_you_mean("xyzzy", ["add", "sub"]), None);
    }
}
