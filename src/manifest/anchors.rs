//! YAML anchors (`&a`) and aliases (`*a`) found before the YAML parser sees the text. An alias is
//! expanded by the deserializer every time it is used, so a few kilobytes of manifest can stand for
//! terabytes of strings (serde_norway only counts alias jumps, not what they expand to). The
//! packager writes manifest.yml with Go's yaml, which emits neither, so a manifest that has one is
//! refused rather than expanded.

/// The 1-based line of the first anchor or alias of `text`, if it has one.
///
/// An anchor or alias can only open a node: at the start of a line's content, after `- `, `? `,
/// `: `, a flow bracket or a flow comma. Quoted scalars, comments and block scalars (`|`, `>`) are
/// skipped, so `uri: https://x/a?b=1&c=2` or `# see *this*` are no alias. A plain scalar continued
/// onto a line that starts with `&` or `*` is taken for one: a refusal, never an expansion.
pub fn first_alias(text: &str) -> Option<usize> {
    let mut s = Scan::default();
    for (n, line) in text.lines().enumerate() {
        if s.line(line) {
            return Some(n + 1);
        }
    }
    None
}

#[derive(Default)]
struct Scan {
    /// Flow collections open (`[`, `{`).
    flow: usize,
    /// An open quoted scalar (they may span lines): its quote character.
    quote: Option<char>,
    /// Inside a block scalar: the indentation of the line that opened it.
    block_scalar: Option<usize>,
}

impl Scan {
    /// Scan one line; true when it holds an anchor or an alias.
    fn line(&mut self, line: &str) -> bool {
        let body = line.trim_start_matches([' ', '\t']);
        let indent = line.len() - body.len();
        if let Some(opened) = self.block_scalar {
            if body.is_empty() || indent > opened {
                return false;
            }
            self.block_scalar = None;
        }
        // Where a node may begin: the line's content, unless a quoted scalar goes on.
        let mut node_start = self.quote.is_none();
        let mut after_space = true;
        // A document marker: a node may follow it on its line ("--- &a [x]").
        let line = match body.strip_prefix("---") {
            Some(rest) if indent == 0 && self.quote.is_none() && rest.starts_with([' ', '\t']) => {
                rest
            }
            _ => line,
        };
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            let next = chars.peek().copied();
            if let Some(q) = self.quote {
                if (c == '\\' && q == '"') || (c == q && q == '\'' && next == Some('\'')) {
                    chars.next();
                } else if c == q {
                    self.quote = None;
                    node_start = false;
                }
                continue;
            }
            let space = c == ' ' || c == '\t';
            let ends = next.is_none_or(|n| n == ' ' || n == '\t');
            match c {
                '#' if after_space => break,
                '&' | '*' if node_start => return true,
                '"' | '\'' if node_start => self.quote = Some(c),
                '|' | '>' if node_start && self.flow == 0 => {
                    self.block_scalar = Some(indent);
                    break;
                }
                '[' | '{' if node_start || self.flow > 0 => self.flow += 1,
                ']' | '}' if self.flow > 0 => self.flow -= 1,
                '!' if node_start => {
                    // A tag: the node it tags follows after white space.
                    while chars.next_if(|&n| n != ' ' && n != '\t').is_some() {}
                    after_space = false;
                    continue;
                }
                _ => {}
            }
            node_start = match c {
                _ if space => node_start,
                '[' | '{' => node_start || self.flow > 0,
                ',' => self.flow > 0,
                ':' => ends || self.flow > 0,
                '-' | '?' => node_start && ends,
                _ => false,
            };
            after_space = space;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_and_aliases_are_found_where_a_node_begins() {
        for (text, line) in [
            ("x: &s [a, b]\n", 1),
            ("a: 1\nb: *s\n", 2),
            ("- *s\n", 1),
            ("- {name: n, cf_stacks: *s}\n", 1),
            ("- [a, *s]\n", 1),
            ("k: !!seq &s [a]\n", 1),
            ("k:\n  &s\n  [a]\n", 2),
            ("? *k\n: v\n", 1),
            ("\"a\": *s\n", 1),
            ("--- &s [a]\n", 1),
            ("---\n--- *s\n", 2),
        ] {
            assert_eq!(first_alias(text), Some(line), "{text:?}");
        }
    }

    #[test]
    fn text_that_only_looks_like_one_is_not() {
        for text in [
            "uri: https://x/a?b=1&c=2\n",
            "uri: http://host:&x\n",
            "name: a*b\n",
            "# *not* &this\n",
            "k: v # *nor* this\n",
            "k: 'it''s *quoted* &'\n",
            "k: \"a \\\" *b\"\n",
            "k: \"multi\n  *line\"\n",
            "k: |\n  * a bullet\n  &more\nnext: 1\n",
            "k: a-*b\n",
            "- -*x\n",
            "---\nk: v\n",
            "----*x\n",
            "k: foo &bar\n",
        ] {
            assert_eq!(first_alias(text), None, "{text:?}");
        }
    }
}
