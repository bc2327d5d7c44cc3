//! `inspect`'s reports: the console summary (what is wrong, then a verdict line) and the JSON
//! report (every dependency with its state). Every text from the buildpack (the manifest's
//! fields, file and zip entry names, read errors) goes through the terminal escaper ([`safe`])
//! on the console; uris are shown with their credentials redacted ([`redact_uri`]) in both.

use std::io::Write;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use crate::manifest::inspect::{Inspection, StackCheck, State};
use crate::report::json::{Tool, SCHEMA_VERSION};
use crate::report::redact::redact_uri;
use crate::report::text::terminal_safe as safe;
use crate::verdict::Verdict;

const BOLD: Style = Style::new().bold();
const RED: Style = AnsiColor::Red.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default().bold();
/// At most this many unnamed files listed on the console (the JSON report has them all).
const MAX_UNNAMED: usize = 10;

/// A sha256 as the console shows it: its first 12 characters (escaped: the manifest's may be
/// anything).
fn short(sha: &str) -> String {
    let s: String = sha.chars().take(12).collect();
    let s = safe(&s).into_owned();
    if sha.chars().count() > 12 {
        format!("{s}…")
    } else {
        s
    }
}

/// The console summary.
pub fn write_console(i: &Inspection, w: &mut dyn Write) -> std::io::Result<()> {
    let entries: usize = i.stacks.iter().map(|s| s.dependencies.len()).sum();
    writeln!(
        w,
        "{BOLD}airgap-check inspect{BOLD:#} {}: manifest.yml{}{}",
        safe(&i.source),
        i.language
            .as_deref()
            .map(|l| format!(" (language {})", safe(l)))
            .unwrap_or_default(),
        i.packaged_for
            .as_deref()
            .map(|s| format!(", packaged for stack {}", safe(s)))
            .unwrap_or_default(),
    )?;
    if entries == 0 {
        writeln!(w, "  no dependency listed")?;
    }
    for s in &i.stacks {
        stack(s, w)?;
    }
    if !i.unnamed.is_empty() {
        let shown: Vec<String> = i
            .unnamed
            .iter()
            .take(MAX_UNNAMED)
            .map(|n| safe(n).into_owned())
            .collect();
        let more = i.unnamed.len() - shown.len();
        writeln!(
            w,
            "  not named by any entry ({}): {}{}",
            i.unnamed.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more (all of them are in --json)")
            } else {
                String::new()
            }
        )?;
    }
    writeln!(
        w,
        "  hashed {} file{}, {} bytes, in {:.2}s",
        i.hashed_files,
        if i.hashed_files == 1 { "" } else { "s" },
        i.hashed_bytes,
        i.seconds
    )?;
    verdict(i, w)
}

/// One stack: its counts, then a line per dependency that is not cached and intact.
fn stack(s: &StackCheck, w: &mut dyn Write) -> std::io::Result<()> {
    let n = s.dependencies.len();
    writeln!(
        w,
        "  stack {}: {n} dependenc{}, {} cached and intact, {} missing",
        safe(&s.stack),
        if n == 1 { "y" } else { "ies" },
        s.count("intact"),
        s.count("missing"),
    )?;
    for c in &s.dependencies {
        let d = &c.dep;
        let what = format!(
            "{} {}{}",
            safe(&d.name),
            safe(&d.version),
            if d.default { " (default)" } else { "" }
        );
        let file = safe(d.cached.as_deref().unwrap_or("-"));
        let line = match &c.state {
            State::Intact => continue,
            State::Missing => format!("missing       {what}  {}", safe(&redact_uri(&d.uri))),
            State::Unreferenced { at } => format!(
                "unreferenced  {what}  {}: no file: names it, so libbuildpack downloads {}",
                safe(at),
                safe(&redact_uri(&d.uri))
            ),
            State::WrongSha256 { actual } => format!(
                "wrong sha256  {what}  {file}: manifest.yml says {}, the file's is {}",
                short(d.sha256.as_deref().unwrap_or_default()),
                short(actual)
            ),
            State::NoSha256 => {
                format!("no sha256     {what}  {file}: manifest.yml gives none to check it against")
            }
            State::Unreadable(e) => format!("unreadable    {what}  {file}: {}", safe(e)),
        };
        writeln!(w, "    {line}")?;
    }
    Ok(())
}

fn verdict(i: &Inspection, w: &mut dyn Write) -> std::io::Result<()> {
    let names: Vec<String> = i
        .stacks
        .iter()
        .map(|s| safe(&s.stack).into_owned())
        .collect();
    if i.complete() {
        return writeln!(
            w,
            "{GREEN}PASS{GREEN:#}: every dependency{} is cached and intact",
            if names.is_empty() {
                String::new()
            } else {
                format!(" for {}", names.join(", "))
            }
        );
    }
    let why: Vec<String> = i
        .stacks
        .iter()
        .filter(|s| s.count("intact") < s.dependencies.len())
        .map(|s| {
            let mut parts = Vec::new();
            for (state, label) in [
                ("missing", "missing"),
                ("unreferenced", "unreferenced (no file:)"),
                ("wrong_sha256", "with the wrong sha256"),
                ("no_sha256", "with no sha256 to check"),
                ("unreadable", "unreadable"),
            ] {
                let n = s.count(state);
                if n > 0 {
                    parts.push(format!("{n} {label}"));
                }
            }
            format!("{}: {}", safe(&s.stack), parts.join(", "))
        })
        .collect();
    writeln!(w, "{RED}FAIL{RED:#}: {}", why.join("; "))
}

#[derive(Serialize)]
struct JsonInspection<'a> {
    schema_version: u32,
    tool: Tool,
    mode: &'static str,
    buildpack: &'a str,
    language: Option<&'a str>,
    /// The stack a stack-specific package was made for; null otherwise.
    packaged_for: Option<&'a str>,
    verdict: Verdict,
    /// Entries listed when no stack was there to check them against (every one for no stack):
    /// then nothing was checked and the verdict is fail.
    for_no_stack: usize,
    stacks: Vec<JsonStack<'a>>,
    unnamed_files: &'a [String],
    hashed: JsonHashed,
}

#[derive(Serialize)]
struct JsonStack<'a> {
    stack: &'a str,
    dependencies: usize,
    cached: usize,
    intact: usize,
    entries: Vec<JsonEntry<'a>>,
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    name: &'a str,
    version: &'a str,
    /// Its credentials redacted.
    uri: std::borrow::Cow<'a, str>,
    sha256: Option<&'a str>,
    default: bool,
    /// Where the buildpack holds it; null when missing.
    file: Option<&'a str>,
    /// "intact", "missing", "unreferenced", "wrong_sha256", "no_sha256" or "unreadable".
    state: &'static str,
    /// The cached file's own sha256 when it is not the manifest's.
    actual_sha256: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonHashed {
    files: usize,
    bytes: u64,
    seconds: f64,
}

/// The JSON report, pretty, with a trailing newline.
pub fn write_json(i: &Inspection, w: &mut dyn Write) -> std::io::Result<()> {
    let report = JsonInspection {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "airgap-check",
            version: env!("CARGO_PKG_VERSION"),
        },
        mode: "inspect",
        buildpack: &i.source,
        language: i.language.as_deref(),
        packaged_for: i.packaged_for.as_deref(),
        verdict: if i.complete() {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        for_no_stack: i.for_no_stack,
        stacks: i
            .stacks
            .iter()
            .map(|s| JsonStack {
                stack: &s.stack,
                dependencies: s.dependencies.len(),
                cached: s
                    .dependencies
                    .iter()
                    .filter(|c| c.dep.cached.is_some())
                    .count(),
                intact: s.count("intact"),
                entries: s
                    .dependencies
                    .iter()
                    .map(|c| JsonEntry {
                        name: &c.dep.name,
                        version: &c.dep.version,
                        uri: redact_uri(&c.dep.uri),
                        sha256: c.dep.sha256.as_deref(),
                        default: c.dep.default,
                        file: c.dep.cached.as_deref(),
                        state: c.state.as_str(),
                        actual_sha256: match &c.state {
                            State::WrongSha256 { actual } => Some(actual),
                            _ => None,
                        },
                    })
                    .collect(),
            })
            .collect(),
        unnamed_files: &i.unnamed,
        hashed: JsonHashed {
            files: i.hashed_files,
            bytes: i.hashed_bytes,
            seconds: (i.seconds * 1000.0).round() / 1000.0,
        },
    };
    serde_json::to_writer_pretty(&mut *w, &report)?;
    w.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::inspect::Checked;
    use crate::manifest::Dependency;
    use crate::report::github::tests::HOSTILE;
    use crate::report::text::assert_terminal_clean;

    fn dep(name: &str, uri: &str, cached: Option<&str>, sha256: Option<&str>) -> Dependency {
        Dependency {
            name: name.into(),
            version: format!("1{HOSTILE}"),
            uri: uri.into(),
            sha256: sha256.map(String::from),
            cached: cached.map(String::from),
            default: true,
        }
    }

    #[test]
    fn hostile_manifest_and_file_names_are_escaped_and_uris_redacted() {
        let h = HOSTILE;
        let uri = "https://u:hunter2pw@h/x?token=tok3nvalue";
        let file = format!("dependencies/f{h}");
        let i = Inspection {
            for_no_stack: 0,
            source: format!("bp{h}.zip"),
            language: Some(format!("lang{h}")),
            packaged_for: Some(format!("pkg{h}")),
            stacks: vec![StackCheck {
                stack: format!("stack{h}"),
                dependencies: vec![
                    Checked {
                        dep: dep(&format!("gone{h}"), uri, None, None),
                        state: State::Missing,
                    },
                    Checked {
                        dep: dep("bad", uri, Some(&file), Some(&format!("{h}{h}"))),
                        state: State::WrongSha256 {
                            actual: "ab".repeat(32),
                        },
                    },
                    Checked {
                        dep: dep("open", uri, Some(&file), None),
                        state: State::Unreadable(format!("cannot read {file}")),
                    },
                    Checked {
                        dep: dep("none", uri, Some(&file), None),
                        state: State::NoSha256,
                    },
                ],
            }],
            unnamed: vec![format!("dependencies/u{h}")],
            hashed_files: 1,
            hashed_bytes: 1,
            seconds: 0.0,
        };
        let mut out = Vec::new();
        write_console(&i, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_terminal_clean(&text, &["hunter2pw", "tok3nvalue"]);
        assert!(text.contains("missing       gonen\\u{1b}]0;pwn"), "{text}");
        assert!(
            text.contains("https://-redacted-@h/x?token=REDACTED"),
            "{text}"
        );
        let mut out = Vec::new();
        write_json(&i, &mut out).unwrap();
        let json = String::from_utf8(out).unwrap();
        assert!(
            !json.contains("hunter2pw") && !json.contains("tok3nvalue"),
            "{json}"
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v["stacks"][0]["entries"][0]["uri"],
            "https://-redacted-@h/x?token=REDACTED"
        );
    }
}
