//! YAML anchors (`&a`) and aliases (`*a`), and deep nesting, found before the YAML deserializer
//! sees the text. An alias is expanded by the deserializer every time it is used, so a few
//! kilobytes of manifest can stand for terabytes of strings (serde_norway only counts alias jumps,
//! not what they expand to). The packager writes manifest.yml with Go's yaml, which emits neither,
//! so a manifest that has one is refused rather than expanded.
//!
//! The text is read by libyaml's own event parser (unsafe-libyaml-norway, the one serde_norway
//! parses with), not by a scanner of ours: a second lexer differs from libyaml's somewhere (line
//! breaks, BOMs, block scalars), and each difference is an alias that is expanded but never seen.
//! No crate exposes these events safely (serde_norway keeps its parser private), hence the small
//! unsafe wrapper below. Events are read one at a time and dropped: O(events), no tree is built.
//! Nesting is bounded in the same pass: libyaml's scanner costs more per token the deeper its flow
//! nesting, and the deserializer recurses.

use std::marker::PhantomData;
use std::mem::MaybeUninit;

use unsafe_libyaml_norway as unsafe_sys;

/// Why text is refused before the deserializer sees it; each with the 1-based line where.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An anchor or an alias.
    Alias(usize),
    /// Collections nested more than the given depth.
    Deep(usize),
}

/// The first anchor or alias of `text` as libyaml reads it, or the first collection nested deeper
/// than `max_depth` (reading stops there: libyaml's cost per token grows with the depth). None
/// when there is neither, or when libyaml stops at a syntax error before one (the deserializer
/// then reports that error, at the same place: it reads the same events).
pub fn refusal(text: &str, max_depth: usize) -> Option<Refusal> {
    let mut events = Events::new(text.as_bytes());
    let mut depth = 0usize;
    loop {
        match events.next()? {
            Event::End => return None,
            Event::Anchored { line } => return Some(Refusal::Alias(line + 1)),
            Event::Open { line } => {
                depth += 1;
                if depth > max_depth {
                    return Some(Refusal::Deep(line + 1));
                }
            }
            Event::Close => depth = depth.saturating_sub(1),
            Event::Other => {}
        }
    }
}

enum Event {
    /// An alias, or a node that carries an anchor; its 0-based line.
    Anchored {
        line: usize,
    },
    /// A sequence or a mapping begins (with no anchor); its 0-based line.
    Open {
        line: usize,
    },
    /// A sequence or a mapping ends.
    Close,
    Other,
    /// The end of the stream.
    End,
}

/// libyaml's event parser over borrowed text.
struct Events<'a> {
    /// Boxed: libyaml keeps a pointer to the parser in the parser (its read handler's data), so
    /// it must not move once the input is set.
    parser: Box<MaybeUninit<unsafe_sys::yaml_parser_t>>,
    /// The parser reads the text through a raw pointer: it must outlive the parser.
    _text: PhantomData<&'a [u8]>,
    /// After an error or the end of the stream libyaml must not be called again.
    done: bool,
}

impl<'a> Events<'a> {
    fn new(text: &'a [u8]) -> Events<'a> {
        let mut parser = Box::new(MaybeUninit::<unsafe_sys::yaml_parser_t>::uninit());
        let p = parser.as_mut_ptr();
        // SAFETY: `p` points to memory for a parser; initialize fills it (it only fails when
        // allocating fails, which aborts in Rust). The input is `text`, which outlives `self`, and
        // the parser is boxed, so the pointer libyaml keeps to it stays valid.
        unsafe {
            if unsafe_sys::yaml_parser_initialize(p).fail {
                panic!("libyaml could not allocate its parser");
            }
            unsafe_sys::yaml_parser_set_encoding(p, unsafe_sys::YAML_UTF8_ENCODING);
            unsafe_sys::yaml_parser_set_input_string(p, text.as_ptr(), text.len() as u64);
        }
        Events {
            parser,
            _text: PhantomData,
            done: false,
        }
    }

    /// The next event; None on a syntax error.
    fn next(&mut self) -> Option<Event> {
        if self.done {
            return Some(Event::End);
        }
        let mut event = MaybeUninit::<unsafe_sys::yaml_event_t>::uninit();
        // SAFETY: the parser was initialized in `new` and has not failed or ended (`done`). On
        // success libyaml filled `event`; the union field read is the one its type names, and the
        // event is deleted (freeing its strings) before it goes out of scope.
        unsafe {
            if unsafe_sys::yaml_parser_parse(self.parser.as_mut_ptr(), event.as_mut_ptr()).fail {
                self.done = true;
                return None;
            }
            let e = event.as_mut_ptr();
            let line = (*e).start_mark.line as usize;
            let event = match (*e).type_ {
                unsafe_sys::YAML_ALIAS_EVENT => Event::Anchored { line },
                unsafe_sys::YAML_SCALAR_EVENT if !(*e).data.scalar.anchor.is_null() => {
                    Event::Anchored { line }
                }
                unsafe_sys::YAML_SEQUENCE_START_EVENT
                    if !(*e).data.sequence_start.anchor.is_null() =>
                {
                    Event::Anchored { line }
                }
                unsafe_sys::YAML_MAPPING_START_EVENT
                    if !(*e).data.mapping_start.anchor.is_null() =>
                {
                    Event::Anchored { line }
                }
                unsafe_sys::YAML_SEQUENCE_START_EVENT | unsafe_sys::YAML_MAPPING_START_EVENT => {
                    Event::Open { line }
                }
                unsafe_sys::YAML_SEQUENCE_END_EVENT | unsafe_sys::YAML_MAPPING_END_EVENT => {
                    Event::Close
                }
                unsafe_sys::YAML_STREAM_END_EVENT => {
                    self.done = true;
                    Event::End
                }
                _ => Event::Other,
            };
            unsafe_sys::yaml_event_delete(e);
            Some(event)
        }
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`; deleted once, here.
        unsafe { unsafe_sys::yaml_parser_delete(self.parser.as_mut_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_alias(text: &str) -> Option<usize> {
        match refusal(text, 64) {
            Some(Refusal::Alias(line)) => Some(line),
            _ => None,
        }
    }

    #[test]
    fn nesting_is_bounded_where_libyaml_sees_it() {
        let flow = format!("a:\r {}", "[".repeat(100_000));
        assert_eq!(refusal(&flow, 64), Some(Refusal::Deep(2)));
        let block: String = (0..70)
            .map(|i| format!("{}k:\u{2028}", " ".repeat(i)))
            .collect();
        assert_eq!(refusal(&block, 64), Some(Refusal::Deep(65)));
        let ok = format!("a: {}1{}", "[".repeat(63), "]".repeat(63));
        assert_eq!(refusal(&ok, 64), None);
    }

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
            "k: [a, b\n",
        ] {
            assert_eq!(first_alias(text), None, "{text:?}");
        }
    }

    /// Inputs a line-based scan of ours once missed (merged review, finding 1): libyaml reads each
    /// as holding an alias, so each is refused.
    #[test]
    fn what_a_line_scanner_missed_is_found() {
        for (text, line) in [
            // A block scalar opened after "- ": it ends at the mapping's column, not the line's.
            (
                "dependencies:\n- note: |\n  cf_stacks: &s [a, a]\n  name: n\n- note: |\n  cf_stacks: *s\n",
                3,
            ),
            ("- - |\n  - &s [a]\n", 2),
            // Line breaks other than \n.
            ("x:\r  &s [a, b]\ry:\r  *s\r", 2),
            ("x:\u{85}  &s [a, b]\u{85}y:\u{85}  *s\u{85}", 2),
            ("x:\u{2028}  &s [a, b]\u{2028}y:\u{2028}  *s\u{2028}", 2),
            ("x:\u{2029}  &s [a, b]\u{2029}y:\u{2029}  *s\u{2029}", 2),
            // A BOM before JSON-style flow.
            ("\u{feff}{\"a\":&s [1,2], \"b\":*s}", 1),
        ] {
            assert_eq!(first_alias(text), Some(line), "{text:?}");
        }
    }

    #[test]
    fn a_syntax_error_before_any_alias_is_left_to_the_deserializer() {
        assert_eq!(first_alias("k: [a\n  ]]: *s\n"), None);
        assert_eq!(first_alias(""), None);
    }
}
