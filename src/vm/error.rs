//! Runtime errors and how they are shown.

use crate::bytecode::format::Pos;
use crate::diag::{render, span_of, Diagnostic, Severity};

/// One frame of the call stack at the time of an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub func: String,
    pub pos: Pos,
}

/// A runtime error: the message, notes, and the call stack, innermost
/// frame first (its position is the failing instruction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeError {
    pub message: String,
    pub notes: Vec<String>,
    /// The frames kept: all of them, or for a deeper stack the innermost
    /// and the outermost `SHOWN_FRAMES / 2` (the rest are only counted:
    /// a stack can hold hundreds of millions).
    pub frames: Vec<FrameInfo>,
    /// How many frames the stack held.
    pub depth: usize,
    pub source_name: String,
}

/// At most this many frames are kept and listed; the middle of a deeper
/// stack is elided.
pub const SHOWN_FRAMES: usize = 20;

impl RuntimeError {
    /// Renders the error in rustc style: message, `--> FILE:LINE:COL`, the
    /// source line with a caret when `src` is available, notes, and the
    /// call stack.
    pub fn render(&self, src: Option<&str>) -> String {
        let pos = self.frames.first().map(|f| f.pos).unwrap_or_default();
        let mut notes: Vec<String> = self
            .notes
            .iter()
            .map(|n| if n.starts_with("help:") || n.starts_with("note:") { n.clone() } else { format!("note: {n}") })
            .collect();
        let mut stack = String::from("note: call stack, innermost first:");
        let (n, kept) = (self.depth.max(self.frames.len()), self.frames.len());
        for (k, f) in self.frames.iter().enumerate() {
            // The outer half of the kept frames are the stack's last ones.
            let i = if k < SHOWN_FRAMES / 2 || n == kept { k } else { n - (kept - k) };
            if n > kept && k == SHOWN_FRAMES / 2 {
                stack.push_str(&format!("\n  ... {} frames omitted ...", n - kept));
            }
            stack.push_str(&format!("\n  {i}: {} at {}:{}:{}", f.func, self.source_name, f.pos.line, f.pos.col));
        }
        notes.push(stack);
        let span = src.and_then(|s| span_of(s, pos.line, pos.col));
        match (src, span) {
            (Some(src), Some(span)) => {
                let d = Diagnostic {
                    severity: Severity::Error,
                    message: self.message.clone(),
                    span: Some(span),
                    label: String::new(),
                    notes,
                };
                render(&self.source_name, src, &[d])
            }
            _ => {
                let mut s = format!("error: {}\n  --> {}:{}:{}\n", self.message, self.source_name, pos.line, pos.col);
                for n in notes {
                    s.push_str(&format!("  = {}\n", n.replace('\n', "\n    ")));
                }
                s.push('\n');
                s
            }
        }
    }
}

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(None))
    }
}

impl std::error::Error for RuntimeError {}
