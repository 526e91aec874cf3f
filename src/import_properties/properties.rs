//! The Java properties format, as `java.util.Properties` reads it: `key=value`, `key: value`,
//! `key value`, `#`/`!` comments, `\` line continuations, `\t`/`\uXXXX` escapes. Pure: text in,
//! pairs out.
//!
//! Hand-written rather than the `java-properties` crate (2.0): that crate decodes each `\uXXXX`
//! alone, so a surrogate pair (`\uD83D\uDE00`, how Java writes characters outside the BMP) is
//! an error instead of one character; its errors do not quote the bad escape; and it brings
//! `regex`, `lazy_static` and `encoding_rs` for a reader of about a hundred lines.

/// A syntax error in a properties text (line numbers start at 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Parses a Java properties text into `(key, value)` pairs in file order. A key repeated in the
/// text keeps its last value (as `java.util.Properties` does), at its first position.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, SyntaxError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut index = 0;
    while index < lines.len() {
        let start_line = index + 1;
        let first = lines[index].strip_suffix('\r').unwrap_or(lines[index]);
        index += 1;
        let trimmed = first.trim_start_matches([' ', '\t', '\u{c}']);
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        // Join continuation lines: a line ending in an odd number of backslashes continues.
        let mut logical = String::from(trimmed);
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.get(index) {
                Some(next) => {
                    let next = next.strip_suffix('\r').unwrap_or(next);
                    logical.push_str(next.trim_start_matches([' ', '\t', '\u{c}']));
                    index += 1;
                }
                None => break,
            }
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        let key = unescape(raw_key).map_err(|message| SyntaxError {
            line: start_line,
            message,
        })?;
        let value = unescape(raw_value).map_err(|message| SyntaxError {
            line: start_line,
            message,
        })?;
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    Ok(out)
}

fn ends_with_odd_backslashes(text: &str) -> bool {
    text.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits a logical line (leading whitespace removed) at the first unescaped `=`, `:` or
/// whitespace; whitespace around one `=` or `:` belongs to neither side.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' | '\u{c}' => {
                key_end = i;
                break;
            }
            _ => {}
        }
    }
    let key = &line[..key_end];
    let mut rest = line[key_end..].trim_start_matches([' ', '\t', '\u{c}']);
    if let Some(stripped) = rest.strip_prefix(['=', ':']) {
        rest = stripped.trim_start_matches([' ', '\t', '\u{c}']);
    }
    (key, rest)
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| format!("malformed \\u escape \"\\u{hex}\""))?;
                // A surrogate pair (\uD83D\uDE00) is two escapes.
                if (0xD800..0xDC00).contains(&code) {
                    let rest: String = chars.by_ref().take(6).collect();
                    let low = rest
                        .strip_prefix("\\u")
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .filter(|low| (0xDC00..0xE000).contains(low))
                        .ok_or_else(|| format!("unpaired surrogate \"\\u{hex}\""))?;
                    let combined = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    out.push(char::from_u32(combined).ok_or("invalid surrogate pair")?);
                } else {
                    out.push(
                        char::from_u32(code)
                            .ok_or_else(|| format!("\"\\u{hex}\" is not a character"))?,
                    );
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn properties_separators_comments_and_blank_lines() {
        let text = "# comment\n! also a comment\n\n  a=1\nb : 2\nc 3\nd=\ne\n f = x = y \n";
        assert_eq!(
            parse_properties(text).unwrap(),
            pairs(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", ""),
                ("e", ""),
                ("f", "x = y "),
            ])
        );
    }

    #[test]
    fn properties_continuations_and_escapes() {
        let text = "long = one, \\\n      two\r\nkey\\ with\\=odd\\:chars = v\ntab=a\\tb\\u00e9\\\\\nemoji=\\uD83D\\uDE00\n";
        assert_eq!(
            parse_properties(text).unwrap(),
            pairs(&[
                ("long", "one, two"),
                ("key with=odd:chars", "v"),
                ("tab", "a\tb\u{e9}\\"),
                ("emoji", "\u{1F600}"),
            ])
        );
    }

    #[test]
    fn an_escaped_trailing_backslash_does_not_continue() {
        assert_eq!(
            parse_properties("a=x\\\\\nb=y").unwrap(),
            pairs(&[("a", "x\\"), ("b", "y")])
        );
    }

    #[test]
    fn a_continuation_at_the_end_of_the_file_ends_the_value() {
        assert_eq!(parse_properties("a=x\\").unwrap(), pairs(&[("a", "x")]));
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        assert_eq!(
            parse_properties("a=1\nb=2\na=3").unwrap(),
            pairs(&[("a", "3"), ("b", "2")])
        );
    }

    #[test]
    fn a_malformed_unicode_escape_names_its_line() {
        let err = parse_properties("ok=1\n\nbad=\\u12g4\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("\\u12g4"), "{}", err.message);
    }
}
