//! Darknet's cfg lexer: text to `[section]`s of `key=value` entries with line numbers.
//!
//! Conventions fixed here, as in darknet's `read_cfg`: every whitespace character of a line is
//! removed before anything else (so `mask = 6,7,8` is `mask=6,7,8` and ` # x` is a comment);
//! a line is then blank, a comment (`#` or `;` first), a section header `[name]`, or
//! `key=value` split at the first `=`. Keys belong to the most recent section.

use std::cell::Cell;

use crate::error::{ModelError, Result};

/// One `key=value` line.
#[derive(Debug)]
pub(crate) struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
    /// Set when a typed reader consumed the key, so the rest can be reported as unknown.
    pub used: Cell<bool>,
}

/// One `[section]` with its entries in file order.
#[derive(Debug)]
pub(crate) struct RawSection {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// Splits cfg text into sections. `file` names the cfg in errors.
pub(crate) fn lex(text: &str, file: &str) -> Result<Vec<RawSection>> {
    let mut sections: Vec<RawSection> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let stripped: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        let syntax =
            |message: String| ModelError::CfgSyntax { file: file.to_owned(), line, message };
        match stripped.chars().next() {
            None | Some('#' | ';') => {}
            Some('[') => {
                let name = stripped
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .filter(|s| !s.is_empty() && !s.contains(['[', ']']))
                    .ok_or_else(|| syntax(format!("malformed section header `{}`", raw.trim())))?;
                sections.push(RawSection { name: name.to_owned(), line, entries: Vec::new() });
            }
            Some(_) => {
                let (key, value) = stripped.split_once('=').ok_or_else(|| {
                    syntax(format!("expected `key=value`, found `{}`", raw.trim()))
                })?;
                if key.is_empty() {
                    return Err(syntax(format!("empty key in `{}`", raw.trim())));
                }
                let section = sections
                    .last_mut()
                    .ok_or_else(|| syntax(format!("`{key}` appears before any [section]")))?;
                section.entries.push(Entry {
                    key: key.to_owned(),
                    value: value.to_owned(),
                    line,
                    used: Cell::new(false),
                });
            }
        }
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_whitespace_and_comments() {
        let text = "[net]\n width = 416 \n#!D0-2 - [route]\n ; c\n\n[yolo]\nmask = 6,7,8\nanchors = 10,13,  16,30\n";
        let s = lex(text, "t.cfg").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].entries[0].key, "width");
        assert_eq!(s[0].entries[0].value, "416");
        assert_eq!(s[1].entries[0].value, "6,7,8");
        assert_eq!(s[1].entries[1].value, "10,13,16,30");
        assert_eq!(s[1].entries[1].line, 8);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(lex("[net]\nwidth\n", "t"), Err(ModelError::CfgSyntax { line: 2, .. })));
        assert!(matches!(lex("width=3\n", "t"), Err(ModelError::CfgSyntax { line: 1, .. })));
        assert!(matches!(lex("[net\n", "t"), Err(ModelError::CfgSyntax { line: 1, .. })));
    }
}
