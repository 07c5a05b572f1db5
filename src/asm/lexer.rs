//! The lexer: one line at a time, into tokens with byte spans.

use std::ops::Range;

/// A token of the assembly language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// A name: mnemonic, label or function.
    Ident(String),
    /// A directive such as `.func` (the text includes the dot).
    Directive(String),
    /// `r0` … `r255`.
    Reg(u8),
    Int(i64),
    /// A string literal, escapes decoded.
    Str(String),
    Comma,
    Colon,
    /// `@` (starts a source-location annotation, an rcvm extension used by
    /// the disassembler).
    At,
}

impl Tok {
    /// How the token is described in messages.
    pub fn describe(&self) -> String {
        // A name is shown whole up to 64 characters (a generated or junk
        // line can hold one of megabytes).
        let cut = |s: &str| match s.char_indices().nth(64) {
            Some((i, _)) => format!("{}...", &s[..i]),
            None => s.to_string(),
        };
        match self {
            Tok::Ident(s) => format!("`{}`", cut(s)),
            Tok::Directive(s) => format!("directive `{}`", cut(s)),
            Tok::Reg(r) => format!("register `r{r}`"),
            Tok::Int(i) => format!("integer `{i}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Comma => "`,`".into(),
            Tok::Colon => "`:`".into(),
            Tok::At => "`@`".into(),
        }
    }
}

/// A token and where it is in the source (byte offsets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub span: Range<usize>,
}

/// A lexical error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    pub msg: String,
    pub span: Range<usize>,
    pub help: Option<String>,
}

/// True if `s` is spelled like a register (`r` followed by digits only).
pub fn is_register_name(s: &str) -> bool {
    s.len() > 1 && s.starts_with('r') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Lexes one line (without its newline) that starts at byte `base` of the
/// source. Stops at the first error: the rest of the line is skipped.
pub fn lex_line(line: &str, base: usize) -> Result<Vec<Token>, LexError> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    let err = |msg: String, s: usize, e: usize| LexError { msg, span: base + s..base + e, help: None };
    while i < b.len() {
        let c = line[i..].chars().next().unwrap_or(' ');
        let start = i;
        match c {
            ' ' | '\t' | '\r' => i += 1,
            ';' => break,
            ',' => {
                out.push(Token { tok: Tok::Comma, span: base + i..base + i + 1 });
                i += 1;
            }
            ':' => {
                out.push(Token { tok: Tok::Colon, span: base + i..base + i + 1 });
                i += 1;
            }
            '@' => {
                out.push(Token { tok: Tok::At, span: base + i..base + i + 1 });
                i += 1;
            }
            '"' => {
                let (s, end) = lex_string(line, i).map_err(|(msg, s, e)| err(msg, s, e))?;
                out.push(Token { tok: Tok::Str(s), span: base + start..base + end });
                i = end;
            }
            '-' | '0'..='9' => {
                let mut end = i + 1;
                while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                    end += 1;
                }
                let text = &line[i..end];
                let v = parse_int(text).map_err(|m| err(m, start, end))?;
                out.push(Token { tok: Tok::Int(v), span: base + start..base + end });
                i = end;
            }
            '.' => {
                let mut end = i + 1;
                while end < b.len() && is_ident_char(b[end] as char) {
                    end += 1;
                }
                let text = &line[i..end];
                out.push(Token { tok: Tok::Directive(text.to_string()), span: base + start..base + end });
                i = end;
            }
            c if is_ident_start(c) => {
                let mut end = i + 1;
                while end < b.len() && is_ident_char(b[end] as char) {
                    end += 1;
                }
                let text = &line[i..end];
                let tok = if is_register_name(text) {
                    match text[1..].parse::<u32>() {
                        Ok(n) if n <= 255 => Tok::Reg(n as u8),
                        _ => {
                            return Err(LexError {
                                msg: format!("register `{text}` out of range"),
                                span: base + start..base + end,
                                help: Some("registers are r0 … r255".into()),
                            })
                        }
                    }
                } else {
                    Tok::Ident(text.to_string())
                };
                out.push(Token { tok, span: base + start..base + end });
                i = end;
            }
            other => {
                return Err(err(
                    format!("unexpected character `{}`", other.escape_debug()),
                    start,
                    start + other.len_utf8(),
                ))
            }
        }
    }
    Ok(out)
}

/// Parses an integer literal: optional `-`, then decimal, `0x` hex or `0b`
/// binary digits, with single `_` allowed between digits. Must fit in i64.
pub fn parse_int(text: &str) -> Result<i64, String> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (radix, digits, what) = if let Some(d) = body.strip_prefix("0x") {
        (16, d, "hexadecimal")
    } else if let Some(d) = body.strip_prefix("0b") {
        (2, d, "binary")
    } else {
        (10, body, "decimal")
    };
    if digits.is_empty() {
        return Err(format!("malformed integer `{text}`: no digits"));
    }
    if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return Err(format!("malformed integer `{text}`: `_` is only allowed between digits"));
    }
    let mut mag: u128 = 0;
    for ch in digits.chars().filter(|&c| c != '_') {
        let d = ch.to_digit(radix).ok_or_else(|| format!("invalid digit `{ch}` in {what} integer `{text}`"))?;
        mag = mag * radix as u128 + d as u128;
        if mag > 1u128 << 64 {
            break;
        }
    }
    let v = if neg { -(mag as i128) } else { mag as i128 };
    i64::try_from(v)
        .map_err(|_| format!("integer `{text}` does not fit in 64 bits (range {} ..= {})", i64::MIN, i64::MAX))
}

/// Lexes a string literal starting at the `"` at byte `start`; returns the
/// decoded text and the byte just past the closing quote.
fn lex_string(line: &str, start: usize) -> Result<(String, usize), (String, usize, usize)> {
    let mut out = String::new();
    let mut it = line[start + 1..].char_indices().map(|(i, c)| (i + start + 1, c)).peekable();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => {
                let Some((j, e)) = it.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '0' => out.push('\0'),
                    'x' => {
                        let h1 = it.next();
                        let h2 = it.next();
                        let hex: Option<u32> = match (h1, h2) {
                            (Some((_, a)), Some((_, b))) => {
                                a.to_digit(16).and_then(|a| b.to_digit(16).map(|b| a * 16 + b))
                            }
                            _ => None,
                        };
                        let end = h2.map(|(k, ch)| k + ch.len_utf8()).unwrap_or(line.len());
                        match hex {
                            Some(v) if v < 0x80 => out.push(v as u8 as char),
                            Some(_) => {
                                return Err((
                                    "`\\x` escapes go up to `\\x7f`: strings are UTF-8, write the character itself"
                                        .into(),
                                    i,
                                    end,
                                ))
                            }
                            None => return Err(("`\\x` needs two hexadecimal digits".into(), i, end)),
                        }
                    }
                    other => {
                        return Err((
                            format!(
                                "unknown escape `\\{}` (known: \\n \\t \\r \\\\ \\\" \\0 \\xHH)",
                                other.escape_debug()
                            ),
                            i,
                            j + other.len_utf8(),
                        ))
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(("unterminated string".into(), start, line.len()))
}

/// Writes `s` as a string literal that [`lex_line`] reads back as `s`:
/// double-quoted, with the escapes `\n \t \r \\ \" \0 \xHH`.
pub fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex_line(s, 0).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn integers_in_every_form() {
        assert_eq!(parse_int("42"), Ok(42));
        assert_eq!(parse_int("-7"), Ok(-7));
        assert_eq!(parse_int("0x2a"), Ok(42));
        assert_eq!(parse_int("0x2A"), Ok(42));
        assert_eq!(parse_int("-0x2a"), Ok(-42));
        assert_eq!(parse_int("0b101"), Ok(5));
        assert_eq!(parse_int("1_000_000"), Ok(1_000_000));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_int("0x7fff_ffff_ffff_ffff"), Ok(i64::MAX));
        assert_eq!(parse_int("-0x8000000000000000"), Ok(i64::MIN));
    }

    #[test]
    fn malformed_integers() {
        assert!(parse_int("9223372036854775808").unwrap_err().contains("64 bits"));
        assert!(parse_int("-9223372036854775809").unwrap_err().contains("64 bits"));
        assert!(parse_int("0x1_0000_0000_0000_0000_0000").unwrap_err().contains("64 bits"));
        assert!(parse_int("1__0").is_err());
        assert!(parse_int("_1").is_err());
        assert!(parse_int("1_").is_err());
        assert!(parse_int("0x").is_err());
        assert!(parse_int("0b102").unwrap_err().contains("invalid digit `2`"));
        assert!(parse_int("12ab").is_err());
        assert!(parse_int("-").is_err());
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(toks(r#""a\n\t\r\\\"\0\x41é""#), vec![Tok::Str("a\n\t\r\\\"\0Aé".into())]);
        assert!(lex_line(r#""abc"#, 0).unwrap_err().msg.contains("unterminated"));
        assert!(lex_line(r#""\q""#, 0).unwrap_err().msg.contains("unknown escape"));
        assert!(lex_line(r#""\xZZ""#, 0).unwrap_err().msg.contains("two hexadecimal"));
        assert!(lex_line(r#""\xff""#, 0).unwrap_err().msg.contains("UTF-8"));
        assert_eq!(toks(r#""; not a comment""#), vec![Tok::Str("; not a comment".into())]);
    }

    #[test]
    fn quote_round_trips() {
        for s in ["", "plain", "a\nb\t\r\\\"\0", "\x01\x7f é ✓"] {
            let mut q = String::new();
            quote(s, &mut q);
            assert_eq!(toks(&q), vec![Tok::Str(s.into())], "{q}");
        }
    }

    #[test]
    fn registers_labels_and_comments() {
        assert_eq!(
            toks("top: add r0, r255, -1 ; comment"),
            vec![
                Tok::Ident("top".into()),
                Tok::Colon,
                Tok::Ident("add".into()),
                Tok::Reg(0),
                Tok::Comma,
                Tok::Reg(255),
                Tok::Comma,
                Tok::Int(-1)
            ]
        );
        assert!(lex_line("mov r256, r1", 0).unwrap_err().msg.contains("out of range"));
        assert_eq!(toks("a.b_c1 .func"), vec![Tok::Ident("a.b_c1".into()), Tok::Directive(".func".into())]);
        assert_eq!(toks("rx r"), vec![Tok::Ident("rx".into()), Tok::Ident("r".into())]);
        assert!(lex_line("mov r1, $", 0).unwrap_err().msg.contains("unexpected character"));
    }

    #[test]
    fn spans_are_byte_offsets() {
        let t = lex_line("  li r1, 5", 100).unwrap();
        assert_eq!(t[0].span, 102..104);
        assert_eq!(t[3].span, 109..110);
    }
}
