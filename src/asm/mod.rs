//! The assembler: `.asm` text to a bytecode [`Module`].
//!
//! Three passes, each collecting every error it finds (up to
//! [`MAX_ERRORS`]) instead of stopping at the first:
//! 1. lex and parse each line into labels, directives and instructions;
//! 2. group them into functions (the implicit `main` takes the lines outside
//!    every `.func`) and collect function names, so calls may come first;
//! 3. per function, collect labels, then choose each instruction's opcode
//!    from the ISA table by its operands' kinds and resolve names.
//!
//! The result still goes through the verifier before it can run.

pub mod lexer;

use crate::bytecode::format::{Function, Module, Pos};
use crate::bytecode::isa::{self, Instr, Kind, OpInfo, Operand};
use crate::bytecode::verify::MAX_ARGS;
use crate::diag::{did_you_mean, Diagnostic, LineIndex};
use indexmap::IndexMap;
use lexer::{Tok, Token};
use std::collections::HashMap;
use std::ops::Range;

/// Assembly stops after this many errors.
pub const MAX_ERRORS: usize = 50;

/// A successful assembly: the module and any warnings.
#[derive(Debug)]
pub struct Assembled {
    pub module: Module,
    pub warnings: Vec<Diagnostic>,
}

/// One parsed instruction line.
#[derive(Clone, Debug)]
struct InstrLine {
    mnemonic: String,
    span: Range<usize>,
    operands: Vec<Token>,
    /// Source position override from an `@LINE:COL` annotation.
    loc: Option<Pos>,
}

#[derive(Clone, Debug)]
enum Item {
    Label(String, Range<usize>),
    Instr(InstrLine),
}

#[derive(Debug)]
struct FuncBlock {
    name: String,
    span: Range<usize>,
    arity: u8,
    items: Vec<Item>,
    /// The `.end` directive closing the block (`None` for the implicit
    /// `main`, which ends at the end of the file).
    end: Option<Range<usize>>,
}

struct Errors {
    list: Vec<Diagnostic>,
}

impl Errors {
    fn push(&mut self, d: Diagnostic) {
        if self.list.len() < MAX_ERRORS {
            self.list.push(d);
        }
    }
    fn full(&self) -> bool {
        self.list.len() >= MAX_ERRORS
    }
}

/// Assembles `src`; `name` is recorded as the source file of the line table.
pub fn assemble(name: &str, src: &str) -> Result<Assembled, Vec<Diagnostic>> {
    let mut errs = Errors { list: Vec::new() };
    let mut source_name = name.to_string();
    let lines = LineIndex::new(src);
    let (funcs, main_block) = parse(src, &lines, &mut errs, &mut source_name);
    let warnings = Vec::new();

    // Pass 2: the function table.
    let mut blocks: Vec<FuncBlock> = Vec::new();
    let explicit_main = funcs.iter().any(|f| f.name == "main");
    let top_has_code = !main_block.is_empty();
    if explicit_main && top_has_code {
        let span = match &main_block[0] {
            Item::Label(_, s) => s.clone(),
            Item::Instr(i) => i.span.clone(),
        };
        let def = funcs.iter().find(|f| f.name == "main").map(|f| f.span.clone());
        let mut d = Diagnostic::error("instructions outside every `.func`, and also a `.func main`", span)
            .with_label("this would be the body of the implicit `main`");
        if let Some(def) = def {
            let (l, _) = lines.line_col(src, def.start);
            d = d.with_note(format!("`main` is also defined with `.func main` at line {l}"));
        }
        errs.push(d.with_help("move these lines into `.func main`, or remove `.func main`"));
    } else if !explicit_main {
        blocks.push(FuncBlock { name: "main".into(), span: 0..0, arity: 0, items: main_block, end: None });
    }
    if funcs.is_empty() && !top_has_code && errs.list.is_empty() {
        errs.push(
            Diagnostic::error(format!("`{name}` contains no instructions: there is nothing to run"), 0..0)
                .with_help("an rcvm program needs at least one instruction, e.g. `halt`"),
        );
    }
    let mut index: HashMap<String, usize> = HashMap::new();
    for b in blocks.iter() {
        index.insert(b.name.clone(), 0);
    }
    for f in funcs {
        if let Some(&prev) = index.get(&f.name) {
            let prev_span = blocks.get(prev).map(|b| b.span.clone()).unwrap_or(0..0);
            let (l, _) = lines.line_col(src, prev_span.start);
            errs.push(
                Diagnostic::error(format!("function `{}` is defined twice", f.name), f.span.clone())
                    .with_label("redefined here")
                    .with_note(format!("first defined at line {l}")),
            );
            continue;
        }
        index.insert(f.name.clone(), blocks.len());
        blocks.push(f);
    }
    if let Some(&mi) = index.get("main") {
        if blocks[mi].arity != 0 {
            errs.push(
                Diagnostic::error("`main` must take no arguments", blocks[mi].span.clone())
                    .with_label("declared with arguments here"),
            );
        }
    }
    if blocks.len() > u16::MAX as usize + 1 {
        errs.push(Diagnostic::error("too many functions (at most 65536)", 0..0));
        return Err(errs.list);
    }
    let sigs: Vec<(String, u8, Range<usize>)> =
        blocks.iter().map(|b| (b.name.clone(), b.arity, b.span.clone())).collect();

    // Pass 3: code.
    let mut ctx = Ctx {
        src,
        lines: &lines,
        ints: IndexMap::new(),
        strings: IndexMap::new(),
        reglists: Vec::new(),
        index: &index,
        sigs: &sigs,
    };
    let mut out = Vec::new();
    for b in &blocks {
        if errs.full() {
            break;
        }
        out.push(ctx.function(b, &mut errs));
    }
    if !errs.list.is_empty() {
        // Report in source order (passes find errors in different orders).
        errs.list.sort_by_key(|d| d.span.as_ref().map(|s| s.start).unwrap_or(0));
        return Err(errs.list);
    }
    let main = index.get("main").copied().unwrap_or(0) as u16;
    let module = Module {
        ints: ctx.ints.into_keys().collect(),
        strings: ctx.strings.into_keys().collect(),
        reglists: ctx.reglists,
        funcs: out,
        main,
        source_name,
    };
    Ok(Assembled { module, warnings })
}

/// Pass 1: lines to function blocks plus the top-level items.
fn parse(src: &str, lines: &LineIndex, errs: &mut Errors, source_name: &mut String) -> (Vec<FuncBlock>, Vec<Item>) {
    let mut funcs: Vec<FuncBlock> = Vec::new();
    let mut top: Vec<Item> = Vec::new();
    let mut cur: Option<FuncBlock> = None;
    let mut base = 0;
    for line in src.split('\n') {
        let line_base = base;
        base += line.len() + 1;
        if errs.full() {
            break;
        }
        let toks = match lexer::lex_line(line, line_base) {
            Ok(t) => t,
            Err(e) => {
                let mut d = Diagnostic::error(e.msg, e.span);
                if let Some(h) = e.help {
                    d = d.with_help(h);
                }
                errs.push(d);
                continue;
            }
        };
        let mut toks = &toks[..];
        // A label, possibly followed by an instruction.
        if let [Token { tok: Tok::Ident(name), span }, Token { tok: Tok::Colon, .. }, rest @ ..] = toks {
            let item = Item::Label(name.clone(), span.clone());
            match &mut cur {
                Some(f) => f.items.push(item),
                None => top.push(item),
            }
            toks = rest;
        }
        let Some(first) = toks.first() else { continue };
        match &first.tok {
            Tok::Directive(d) => match d.as_str() {
                ".func" => {
                    if let Some(open) = &cur {
                        let (l, _) = lines.line_col(src, open.span.start);
                        errs.push(
                            Diagnostic::error("`.func` inside another function", first.span.clone())
                                .with_label("nested here")
                                .with_note(format!("`{}` opened at line {l} has no `.end`", open.name)),
                        );
                        funcs.push(cur.take().unwrap_or_else(|| unreachable!()));
                    }
                    match parse_func_header(&toks[1..], first.span.clone()) {
                        Ok((name, arity, span)) => {
                            cur = Some(FuncBlock { name, span, arity, items: Vec::new(), end: None })
                        }
                        Err(e) if e.1.is_some() => {
                            let (d, name) = *e;
                            let name = name.unwrap_or_default();
                            // A bad argument count: keep the function (with
                            // the most arguments allowed) so that calls to
                            // it do not also fail as undefined.
                            errs.push(d);
                            let span = first.span.clone();
                            cur = Some(FuncBlock { name, span, arity: MAX_ARGS as u8, items: Vec::new(), end: None });
                        }
                        Err(e) => {
                            errs.push(e.0);
                            // Keep going inside an unnamed block so its
                            // lines are still checked but not run.
                            cur = Some(FuncBlock {
                                name: String::new(),
                                span: first.span.clone(),
                                arity: 0,
                                items: Vec::new(),
                                end: None,
                            });
                        }
                    }
                }
                ".end" => {
                    if toks.len() > 1 {
                        errs.push(
                            Diagnostic::error("`.end` takes no operands", toks[1].span.clone())
                                .with_label("unexpected"),
                        );
                    }
                    match cur.take() {
                        Some(mut f) => {
                            f.end = Some(first.span.clone());
                            if !f.name.is_empty() {
                                funcs.push(f)
                            }
                        }
                        None => errs.push(
                            Diagnostic::error("`.end` without a matching `.func`", first.span.clone())
                                .with_label("nothing to end"),
                        ),
                    }
                }
                ".source" => match &toks[1..] {
                    [Token { tok: Tok::Str(s), .. }] => *source_name = s.clone(),
                    _ => errs.push(
                        Diagnostic::error("`.source` takes one string", first.span.clone())
                            .with_help("write `.source \"file.asm\"`"),
                    ),
                },
                other => {
                    let mut d = Diagnostic::error(format!("unknown directive `{other}`"), first.span.clone())
                        .with_label("not a directive");
                    if let Some(s) = did_you_mean(other, [".func", ".end", ".source"]) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    errs.push(d);
                }
            },
            Tok::Ident(mn) => {
                let mut operands: Vec<Token> = Vec::new();
                let mut loc = None;
                let mut rest = &toks[1..];
                let mut ok = true;
                // Operands separated by commas.
                let mut expect_operand = true;
                while let Some(t) = rest.first() {
                    match (&t.tok, expect_operand) {
                        (Tok::At, _) => match rest {
                            [_, Token { tok: Tok::Int(l), .. }, Token { tok: Tok::Colon, .. }, Token { tok: Tok::Int(c), .. }]
                                if *l > 0 && *c > 0 && *l <= u32::MAX as i64 && *c <= u32::MAX as i64 =>
                            {
                                loc = Some(Pos { line: *l as u32, col: *c as u32 });
                                break;
                            }
                            _ => {
                                errs.push(
                                    Diagnostic::error("malformed location annotation", t.span.clone())
                                        .with_help("write `@LINE:COL` at the end of the instruction"),
                                );
                                ok = false;
                                break;
                            }
                        },
                        (Tok::Comma, true) => {
                            errs.push(
                                Diagnostic::error("expected an operand, found `,`", t.span.clone())
                                    .with_label("missing operand before this comma"),
                            );
                            ok = false;
                            break;
                        }
                        (Tok::Comma, false) => expect_operand = true,
                        (Tok::Colon, _) | (Tok::Directive(_), _) => {
                            errs.push(
                                Diagnostic::error(format!("unexpected {}", t.tok.describe()), t.span.clone())
                                    .with_label("not expected here"),
                            );
                            ok = false;
                            break;
                        }
                        (_, true) => {
                            operands.push(t.clone());
                            expect_operand = false;
                        }
                        (_, false) => {
                            errs.push(
                                Diagnostic::error(
                                    format!("expected `,` between operands, found {}", t.tok.describe()),
                                    t.span.clone(),
                                )
                                .with_label("add a comma before this"),
                            );
                            ok = false;
                            break;
                        }
                    }
                    rest = &rest[1..];
                }
                if ok && expect_operand && !operands.is_empty() {
                    let last = &toks[toks.len() - 1];
                    errs.push(
                        Diagnostic::error("trailing `,` with no operand after it", last.span.clone())
                            .with_label("remove this comma or add an operand"),
                    );
                    ok = false;
                }
                if ok {
                    let item = Item::Instr(InstrLine {
                        mnemonic: mn.clone(),
                        span: first.span.start..toks.last().map(|t| t.span.end).unwrap_or(first.span.end),
                        operands,
                        loc,
                    });
                    match &mut cur {
                        Some(f) => f.items.push(item),
                        None => top.push(item),
                    }
                }
            }
            other => {
                let help = match other {
                    Tok::Reg(_) | Tok::Int(_) | Tok::Str(_) => {
                        "a line starts with a mnemonic, a label (`name:`) or a directive"
                    }
                    _ => "a line starts with a mnemonic, a label or a directive",
                };
                errs.push(
                    Diagnostic::error(
                        format!("expected an instruction, found {}", other.describe()),
                        first.span.clone(),
                    )
                    .with_help(help),
                );
            }
        }
    }
    if let Some(f) = cur {
        errs.push(
            Diagnostic::error(format!("`.func {}` is never closed", f.name), f.span.clone())
                .with_label("opened here")
                .with_help("add `.end` after the function's last line"),
        );
    }
    (funcs, top)
}

/// A malformed `.func` line, and the function's name if it was readable.
type HeaderError = Box<(Diagnostic, Option<String>)>;

/// Parses `.func NAME [NARGS]`. On error, also returns the name when it
/// was readable.
fn parse_func_header(toks: &[Token], dir_span: Range<usize>) -> Result<(String, u8, Range<usize>), HeaderError> {
    let span = |t: &[Token]| dir_span.start..t.last().map(|x| x.span.end).unwrap_or(dir_span.end);
    let (name, arity_tok) = match toks {
        [Token { tok: Tok::Ident(n), .. }] => (n.clone(), None),
        [Token { tok: Tok::Ident(n), .. }, a] => (n.clone(), Some(a)),
        [Token { tok: Tok::Ident(n), .. }, Token { tok: Tok::Comma, .. }, a] => (n.clone(), Some(a)),
        [] => {
            return Err(Box::new((
                Diagnostic::error("`.func` needs a name", dir_span).with_help("write `.func NAME [NARGS]`"),
                None,
            )))
        }
        [t, ..] if !matches!(t.tok, Tok::Ident(_)) => {
            return Err(Box::new((
                Diagnostic::error(format!("expected a function name, found {}", t.tok.describe()), t.span.clone())
                    .with_help("names match [A-Za-z_][A-Za-z0-9_.]*, and must not look like a register"),
                None,
            )))
        }
        _ => {
            return Err(Box::new((
                Diagnostic::error("malformed `.func` line", span(toks)).with_help("write `.func NAME [NARGS]`"),
                None,
            )))
        }
    };
    let arity = match arity_tok {
        None => 0,
        Some(Token { tok: Tok::Int(n), span: s }) => {
            if (0..=MAX_ARGS as i64).contains(n) {
                *n as u8
            } else {
                return Err(Box::new((
                    Diagnostic::error(format!("a function takes 0 to {MAX_ARGS} arguments, not {n}"), s.clone())
                        .with_label("argument count out of range"),
                    Some(name),
                )));
            }
        }
        Some(t) => {
            return Err(Box::new((
                Diagnostic::error(format!("expected the argument count, found {}", t.tok.describe()), t.span.clone()),
                Some(name),
            )))
        }
    };
    Ok((name, arity, span(toks)))
}

struct Ctx<'a> {
    src: &'a str,
    /// Line starts of `src`, for every instruction's position.
    lines: &'a LineIndex,
    ints: IndexMap<i64, ()>,
    strings: IndexMap<String, ()>,
    reglists: Vec<u8>,
    index: &'a HashMap<String, usize>,
    sigs: &'a [(String, u8, Range<usize>)],
}

/// The syntax of a mnemonic, e.g. `add rD, rS, K`, merged over its forms.
pub fn syntax(mnemonic: &str) -> String {
    let forms: Vec<&OpInfo> = isa::forms(mnemonic).collect();
    let mut shapes: Vec<String> = Vec::new();
    let max = forms.iter().map(|f| f.kinds.len()).max().unwrap_or(0);
    let counts: Vec<usize> = {
        let mut c: Vec<usize> = forms.iter().map(|f| f.kinds.len()).collect();
        c.dedup();
        c
    };
    for n in counts {
        let parts: Vec<String> = (0..n)
            .map(|i| {
                let ks: Vec<Kind> = forms.iter().filter(|f| f.kinds.len() == n).map(|f| f.kinds[i]).collect();
                if ks.contains(&Kind::R) && ks.contains(&Kind::I) {
                    "K".to_string()
                } else {
                    ks[0].syntax().to_string()
                }
            })
            .collect();
        let _ = max;
        shapes.push(if parts.is_empty() { mnemonic.to_string() } else { format!("{mnemonic} {}", parts.join(", ")) });
    }
    if mnemonic == "gc" {
        return "gc rD[, G]".into();
    }
    shapes.join("` or `")
}

impl Ctx<'_> {
    fn function(&mut self, b: &FuncBlock, errs: &mut Errors) -> Function {
        // Labels: name -> instruction index.
        let mut labels: HashMap<&str, (u32, Range<usize>)> = HashMap::new();
        let mut n = 0u32;
        for it in &b.items {
            match it {
                Item::Label(name, span) => {
                    if let Some((_, prev)) = labels.get(name.as_str()) {
                        let (l, _) = self.lines.line_col(self.src, prev.start);
                        errs.push(
                            Diagnostic::error(format!("label `{name}` is defined twice in `{}`", b.name), span.clone())
                                .with_label("redefined here")
                                .with_note(format!("first defined at line {l}; labels are local to their function")),
                        );
                    } else {
                        labels.insert(name, (n, span.clone()));
                    }
                }
                Item::Instr(_) => n += 1,
            }
        }
        let mut code = Vec::new();
        let mut lines = Vec::new();
        let mut max_reg: i32 = -1;
        for it in &b.items {
            let Item::Instr(line) = it else { continue };
            if errs.full() {
                break;
            }
            match self.instr(line, &labels, errs) {
                Some(ins) => {
                    for op in ins.operands() {
                        match op {
                            Operand::D(r) | Operand::R(r) => max_reg = max_reg.max(r as i32),
                            Operand::A(a) => {
                                let at = a as usize;
                                let cnt = self.reglists[at] as usize;
                                for &r in &self.reglists[at + 1..at + 1 + cnt] {
                                    max_reg = max_reg.max(r as i32);
                                }
                            }
                            _ => {}
                        }
                    }
                    code.push(ins);
                    let pos = line.loc.unwrap_or_else(|| {
                        let (l, c) = self.lines.line_col(self.src, line.span.start);
                        Pos { line: l, col: c }
                    });
                    lines.push(pos);
                }
                None => {
                    // Keep indexes aligned with the label table.
                    code.push(Instr::Ret0 {});
                    lines.push(Pos::default());
                }
            }
        }
        // Falling off the end is `ret` with nil. It releases the frame, so
        // it can fail (a freed object in a register); it is located where
        // the function ends: its `.end`, or for the implicit `main` the end
        // of the file. (Not the last instruction: an error there would
        // point at a line that did not cause it.)
        let label_at_end = labels.values().any(|(t, _)| *t as usize == code.len());
        if code.last().is_none_or(|i| !i.is_terminator()) || label_at_end {
            let at = b.end.as_ref().map_or(self.src.len(), |e| e.start);
            let (line, col) = self.lines.line_col(self.src, at);
            code.push(Instr::Ret0 {});
            lines.push(Pos { line, col });
        }
        let frame_size = ((max_reg + 1) as u16).max(b.arity as u16);
        Function { name: b.name.clone(), arity: b.arity, frame_size, code, lines }
    }

    fn instr(
        &mut self,
        line: &InstrLine,
        labels: &HashMap<&str, (u32, Range<usize>)>,
        errs: &mut Errors,
    ) -> Option<Instr> {
        let mn = line.mnemonic.as_str();
        let forms: Vec<&OpInfo> = isa::forms(mn).collect();
        let mn_span = line.span.start..line.span.start + mn.len();
        if forms.is_empty() {
            let mut d =
                Diagnostic::error(format!("unknown instruction `{mn}`"), mn_span.clone()).with_label("not a mnemonic");
            let lower = mn.to_ascii_lowercase();
            if lower != mn && isa::forms(&lower).next().is_some() {
                d = d.with_help(format!("mnemonics are lowercase: `{lower}`"));
            } else if let Some(s) = did_you_mean(mn, isa::mnemonics()) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            errs.push(d);
            return None;
        }
        let mut ops = line.operands.clone();
        if mn == "gc" && ops.len() == 1 {
            ops.push(Token { tok: Tok::Int(2), span: line.span.clone() });
        }
        let variadic = forms.iter().any(|f| f.kinds.last() == Some(&Kind::A));
        // A register list comes last; it may be empty unless the opcode
        // needs some registers in it (`print`).
        let min_ops = |f: &OpInfo| f.kinds.len() - 1 + f.min_list_len();
        let counts_ok = forms.iter().any(|f| {
            if f.kinds.last() == Some(&Kind::A) {
                ops.len() >= min_ops(f)
            } else {
                ops.len() == f.kinds.len()
            }
        });
        if !counts_ok {
            let want: Vec<String> = {
                let mut v: Vec<usize> = forms.iter().map(|f| f.kinds.len()).collect();
                if mn == "gc" {
                    // The generation is optional (`gc rD` is `gc rD, 2`).
                    v.insert(0, 1);
                }
                v.dedup();
                v.iter().map(|n| n.to_string()).collect()
            };
            let msg = if variadic {
                format!("`{mn}` needs at least {} operand(s), found {}", min_ops(forms[0]), ops.len())
            } else {
                format!(
                    "`{mn}` takes {} operand{}, found {}",
                    want.join(" or "),
                    if want == ["1"] { "" } else { "s" },
                    ops.len()
                )
            };
            errs.push(
                Diagnostic::error(msg, line.span.clone())
                    .with_label("wrong number of operands")
                    .with_help(format!("the syntax is `{}`", syntax(mn))),
            );
            return None;
        }
        // Try each form; keep the error from the form that got furthest.
        let mut best: Option<(usize, Diagnostic)> = None;
        for f in &forms {
            match self.try_form(f, &ops, labels, mn) {
                Ok(ins) => return Some(ins),
                Err((score, d)) => {
                    if best.as_ref().is_none_or(|(s, _)| score > *s) {
                        best = Some((score, d));
                    }
                }
            }
        }
        if let Some((_, d)) = best {
            errs.push(d.with_help(format!("the syntax is `{}`", syntax(mn))));
        }
        None
    }

    /// Matches operands against one form. On failure returns how many
    /// operands matched (to pick the most relevant error) and the error.
    fn try_form(
        &mut self,
        f: &OpInfo,
        ops: &[Token],
        labels: &HashMap<&str, (u32, Range<usize>)>,
        mn: &str,
    ) -> Result<Instr, (usize, Diagnostic)> {
        let mut out: smallvec::SmallVec<[Operand; 4]> = smallvec::SmallVec::new();
        let variadic = f.kinds.last() == Some(&Kind::A);
        if (!variadic && ops.len() != f.kinds.len()) || (variadic && ops.len() + 1 < f.kinds.len()) {
            let span = ops.first().map(|t| t.span.clone()).unwrap_or(0..0);
            return Err((0, Diagnostic::error(format!("`{mn}` takes {} operands here", f.kinds.len()), span)));
        }
        for (i, k) in f.kinds.iter().enumerate() {
            let fail = |msg: String, t: &Token, score: usize| (score, Diagnostic::error(msg, t.span.clone()));
            if *k == Kind::A {
                let rest = &ops[i..];
                let max = if mn == "call" { MAX_ARGS } else { 255 };
                if rest.len() > max {
                    return Err((
                        100,
                        Diagnostic::error(
                            format!("`{mn}` takes at most {max} argument registers, found {}", rest.len()),
                            rest[max].span.start..rest[rest.len() - 1].span.end,
                        )
                        .with_label("too many"),
                    ));
                }
                let mut regs = Vec::with_capacity(rest.len());
                for (j, t) in rest.iter().enumerate() {
                    match &t.tok {
                        Tok::Reg(r) => regs.push(*r),
                        other => {
                            return Err(with_reg_hint(
                                fail(format!("expected a register, found {}", other.describe()), t, 10 * (i + j) + 1),
                                other,
                            ))
                        }
                    }
                }
                if let Some(Operand::F(fi)) = out.last() {
                    let (name, arity, def) = &self.sigs[*fi as usize];
                    if regs.len() != *arity as usize {
                        let (l, _) = self.lines.line_col(self.src, def.start);
                        let span = ops[0].span.start..ops[ops.len() - 1].span.end;
                        return Err((
                            100,
                            Diagnostic::error(
                                format!(
                                    "`{name}` takes {arity} argument{}, but {} {} given",
                                    if *arity == 1 { "" } else { "s" },
                                    regs.len(),
                                    if regs.len() == 1 { "was" } else { "were" }
                                ),
                                span,
                            )
                            .with_label("arity mismatch")
                            .with_note(format!("`{name}` is defined at line {l}")),
                        ));
                    }
                }
                let at = self.reglists.len() as u32;
                self.reglists.push(regs.len() as u8);
                self.reglists.extend_from_slice(&regs);
                out.push(Operand::A(at));
                break;
            }
            let t = &ops[i];
            let score = 10 * i;
            let op = match (k, &t.tok) {
                (Kind::D, Tok::Reg(r)) => Operand::D(*r),
                (Kind::R, Tok::Reg(r)) => Operand::R(*r),
                (Kind::I, Tok::Int(v)) => match i32::try_from(*v) {
                    Ok(x) => Operand::I(x),
                    Err(_) => return Err(fail("wide immediate".into(), t, score + 5)),
                },
                (Kind::W, Tok::Int(v)) => Operand::W(self.ints.insert_full(*v, ()).0 as u32),
                (Kind::N, Tok::Int(v)) => match u16::try_from(*v) {
                    Ok(x) => Operand::N(x),
                    Err(_) => {
                        return Err((
                            100,
                            Diagnostic::error(format!("record size {v} out of range 0..=65535"), t.span.clone())
                                .with_label("out of range"),
                        ))
                    }
                },
                (Kind::G, Tok::Int(v)) => match u8::try_from(*v) {
                    Ok(x) if x <= 2 => Operand::G(x),
                    _ => {
                        return Err((
                            100,
                            Diagnostic::error(format!("generation {v} out of range 0..=2"), t.span.clone())
                                .with_label("out of range"),
                        ))
                    }
                },
                (Kind::T, Tok::Int(v)) => {
                    if *v < 0 {
                        return Err((
                            100,
                            Diagnostic::error(format!("threshold {v} is negative"), t.span.clone())
                                .with_label("thresholds are 0 or more"),
                        ));
                    }
                    let idx = self.ints.insert_full(*v, ()).0;
                    match u16::try_from(idx) {
                        Ok(x) => Operand::T(x),
                        Err(_) => {
                            return Err((100, Diagnostic::error("too many distinct integer constants", t.span.clone())))
                        }
                    }
                }
                (Kind::L, Tok::Ident(name)) => match labels.get(name.as_str()) {
                    Some((pc, _)) => Operand::L(*pc),
                    None => {
                        let mut d = Diagnostic::error(format!("undefined label `{name}`"), t.span.clone())
                            .with_label("no such label in this function");
                        if let Some(s) = did_you_mean(name, labels.keys().copied()) {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        }
                        return Err((100, d));
                    }
                },
                (Kind::F, Tok::Ident(name)) => match self.index.get(name) {
                    Some(&fi) => Operand::F(fi as u16),
                    None => {
                        let mut d = Diagnostic::error(format!("undefined function `{name}`"), t.span.clone())
                            .with_label("no function of this name");
                        if let Some(s) = did_you_mean(name, self.sigs.iter().map(|s| s.0.as_str())) {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        }
                        return Err((100, d));
                    }
                },
                (Kind::S, Tok::Str(s)) => Operand::S(self.strings.insert_full(s.clone(), ()).0 as u32),
                (k, other) => {
                    let want = match k {
                        Kind::D | Kind::R => "a register",
                        Kind::I | Kind::W | Kind::N | Kind::G | Kind::T => "an integer",
                        Kind::L => "a label",
                        Kind::F => "a function name",
                        Kind::S => "a string literal",
                        Kind::A => "registers",
                    };
                    return Err(with_reg_hint(
                        fail(format!("expected {want}, found {}", other.describe()), t, score + 1),
                        other,
                    ));
                }
            };
            out.push(op);
        }
        Instr::from_operands(f.code, &out).ok_or_else(|| {
            (0, Diagnostic::error("internal: operand mismatch", ops.first().map(|t| t.span.clone()).unwrap_or(0..0)))
        })
    }
}

fn with_reg_hint(e: (usize, Diagnostic), tok: &Tok) -> (usize, Diagnostic) {
    let (s, d) = e;
    if let Tok::Ident(name) = tok {
        let lower = name.to_ascii_lowercase();
        if lower != *name && lexer::is_register_name(&lower) {
            return (s, d.with_help(format!("registers are lowercase: `{lower}`")));
        }
    }
    (s, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asm(src: &str) -> Module {
        match assemble("t.asm", src) {
            Ok(a) => a.module,
            Err(e) => panic!("{}", crate::diag::render("t.asm", src, &e)),
        }
    }
    fn errors(src: &str) -> Vec<String> {
        assemble("t.asm", src).unwrap_err().into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn picks_register_inline_and_wide_forms() {
        let m = asm("add r1, r2, r3\nadd r1, r2, 5\nadd r1, r2, 0x1_0000_0000\n");
        let c = &m.funcs[0].code;
        assert_eq!(c[0], Instr::AddRR { d: 1, a: 2, b: 3 });
        assert_eq!(c[1], Instr::AddRI { d: 1, a: 2, i: 5 });
        assert_eq!(c[2], Instr::AddRW { d: 1, a: 2, w: 0 });
        assert_eq!(m.ints, vec![1 << 32]);
        assert_eq!(c[3], Instr::Ret0 {});
        assert_eq!(m.funcs[0].frame_size, 4);
    }

    #[test]
    fn labels_on_instruction_lines_and_forward_calls() {
        let m = asm("call r0, f\nhalt\n.func f\ntop: jmp done\ndone: ret\n.end\n");
        assert_eq!(m.funcs[0].name, "main");
        assert_eq!(m.funcs[1].code[0], Instr::Jmp { t: 1 });
        assert_eq!(m.funcs[0].code.len(), 2, "no ret appended after halt");
    }

    #[test]
    fn every_error_is_reported() {
        let e = errors("ad r1, r2, 1\nli r1\njmp nowhere\ncall r0, nofunc\n");
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].contains("unknown instruction `ad`"));
        assert!(e[1].contains("takes 2 operands"));
    }

    #[test]
    fn arity_and_ranges() {
        assert!(errors(".func f 2\nret\n.end\ncall r0, f, r1\n")[0].contains("takes 2 arguments"));
        assert!(errors("new r0, 65536\n")[0].contains("out of range"));
        assert!(errors("gc r0, 3\n")[0].contains("generation 3"));
        assert!(errors("gcthreshold 1, -1, 2\n")[0].contains("negative"));
        assert!(errors("li r1, r2\n")[0].contains("expected an integer"));
        assert!(errors("li 5, 5\n")[0].contains("expected a register"));
    }

    #[test]
    fn print_needs_a_register_and_is_reported_with_the_others() {
        let e = errors("li r0, 1\nprint\nli r1\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("`print` needs at least 1 operand"), "{e:?}");
        assert!(errors(".func f\nprint\n.end\n")[0].contains("`print` needs at least 1 operand"));
        assert!(errors("call r0\n")[0].contains("`call` needs at least 2 operand"));
    }

    #[test]
    fn the_implicit_return_is_located_where_its_function_ends() {
        let m = asm("li r0, 1\n.func f\n  li r0, 2\n  .end\nprint r0");
        let end = |f: usize| (m.funcs[f].code.last().copied(), m.funcs[f].lines.last().copied());
        assert_eq!(end(1), (Some(Instr::Ret0 {}), Some(Pos { line: 4, col: 3 })), "at `.end`");
        assert_eq!(end(0), (Some(Instr::Ret0 {}), Some(Pos { line: 5, col: 9 })), "main: at the end of the file");
        let m = asm("jz r0, out\nli r0, 1\nout:\n");
        assert_eq!(m.funcs[0].lines[2], Pos { line: 4, col: 1 }, "a label at the end; the file ends with a newline");
    }

    #[test]
    fn gc_generation_defaults_to_two() {
        let m = asm("gc r0\n");
        assert_eq!(m.funcs[0].code[0], Instr::Gc { d: 0, g: 2 });
    }
}
