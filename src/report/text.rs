//! The one terminal escaper: text that came from outside airgap-check (a manifest, a zip entry's
//! name, a container's argv or output, a file name) as it may be shown on one line of a terminal,
//! a CI log or a report. It can then neither drive the terminal (escape sequences, C1 controls),
//! break or end the line (line feed, carriage return, U+2028/2029), nor reorder what is shown
//! around it (bidi controls). A backslash is escaped too, so `a\u{1b}b` written by a buildpack
//! never reads like an escaped ESC.

use std::borrow::Cow;

/// `s` with every character a terminal would act on escaped: `\n`, `\r`, `\t`, `\\`, and
/// `\u{1b}` for the other C0 controls, DEL, C1 controls, bidi controls (U+061C, U+200E/200F,
/// U+202A-202E, U+2066-2069) and the line and paragraph separators (U+2028/2029). Borrowed when
/// there was nothing to escape.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    let Some(first) = s.find(needs_escape) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    push_escaped(&s[first..], &mut out);
    Cow::Owned(out)
}

/// Whether a character is one [`terminal_safe`] escapes.
fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\\' | '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

fn push_escaped(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
}

/// Test help: fails when `out` holds a raw character [`terminal_safe`] escapes (a line feed ends a
/// line, and the writers' own colour sequences, `ESC [ … m`, are theirs), or any of `secrets`.
#[cfg(test)]
pub(crate) fn assert_terminal_clean(out: &str, secrets: &[&str]) {
    let mut rest = out;
    let mut plain = String::new();
    while let Some(i) = rest.find("\u{1b}[") {
        plain.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        let end = tail
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .filter(|&j| tail[j..].starts_with('m'));
        match end {
            Some(j) => rest = &tail[j + 1..],
            None => {
                plain.push('\u{1b}');
                rest = &rest[i + 1..];
            }
        }
    }
    plain.push_str(rest);
    let raw: Vec<char> = plain
        .chars()
        .filter(|&c| c != '\n' && c != '\\' && needs_escape(c))
        .collect();
    assert!(raw.is_empty(), "raw {raw:?} in:\n{out}");
    // The colour sequences were skipped above as the writer's own; the hostile text's SGR
    // (conceal), which no writer uses, must not be among them.
    assert!(
        !out.contains("\u{1b}[8m"),
        "a raw SGR of the input in:\n{out}"
    );
    for s in secrets {
        assert!(!out.contains(s), "secret {s:?} in:\n{out}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on_and_nothing_else() {
        let table: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("", ""),
            ("é ü 日本 🙂 '\" | <>", "é ü 日本 🙂 '\" | <>"),
            ("a\u{1b}[31mb", "a\\u{1b}[31mb"),
            ("\u{1b}]0;title\u{7}", "\\u{1b}]0;title\\u{7}"),
            ("\u{0}", "\\u{0}"),
            ("a\nb\rc\td", "a\\nb\\rc\\td"),
            ("del\u{7f}", "del\\u{7f}"),
            ("c1 \u{85} \u{9b}31m", "c1 \\u{85} \\u{9b}31m"),
            ("\u{202e}txt.exe", "\\u{202e}txt.exe"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            ("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}"),
            ("line\u{2028}para\u{2029}", "line\\u{2028}para\\u{2029}"),
            // A backslash is escaped, so the literal text cannot pass for an escaped ESC.
            ("a\\u{1b}b", "a\\\\u{1b}b"),
            ("C:\\dir", "C:\\\\dir"),
        ];
        for (raw, want) in table {
            assert_eq!(terminal_safe(raw), *want, "{raw:?}");
            let out = terminal_safe(raw);
            assert!(!out.chars().any(needs_escape_but_backslash), "{out:?}");
        }
        assert!(matches!(terminal_safe("fine"), Cow::Borrowed(_)));
    }

    fn needs_escape_but_backslash(c: char) -> bool {
        c != '\\' && needs_escape(c)
    }
}
