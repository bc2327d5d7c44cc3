//! What every report says behind a flow — the manifest dependency it was after and the command
//! that made it — and each manifest's summary, written once for the console, JUnit and GitHub.

use crate::capture::attribution::Process;
use crate::manifest::StackDeps;
use crate::report::redact::redact_argv;
use crate::report::text::terminal_safe;
use crate::staging::lifecycle::BUILDPACKS_DIR;
use crate::verdict::analysis::{Analysis, Judged};
use crate::verdict::explain::MatchedBy;

/// At most this many characters of a command line in a sentence (the JSON report has it whole).
const MAX_COMMAND: usize = 160;
/// At most this many missing dependencies named in a summary line.
const MAX_MISSING: usize = 5;

/// "node 20.11.1 from manifest.yml, not cached" for a flow with a dependency; for one without, in
/// a run whose buildpacks have manifests, "no manifest.yml entry for cflinuxfs4 matches it";
/// `None` otherwise.
pub fn dependency(a: &Analysis, f: &Judged) -> Option<String> {
    let Some(d) = &f.dependency else {
        return a.manifests.first().map(|m| {
            format!(
                "no manifest.yml entry for {} matches it",
                terminal_safe(&m.stack)
            )
        });
    };
    let whose = if a.manifests.len() > 1 || d.buildpack > 0 {
        format!(" of buildpack {}", d.buildpack)
    } else {
        String::new()
    };
    let how = match (d.matched_by, f.candidates) {
        (MatchedBy::Host, n) if n > 1 => format!(" (by host: the likeliest of {n} entries)"),
        (MatchedBy::Host, _) => " (by host)".to_string(),
        _ => String::new(),
    };
    Some(format!(
        "{} {} from manifest.yml{whose}, {}{how}",
        terminal_safe(&d.name),
        terminal_safe(&d.version),
        if d.cached { "cached" } else { "not cached" }
    ))
}

/// "nc deps.example.org 80 (under bin/supply)": the command, then the script or command it ran
/// under, with the staging image's buildpack folder left out.
pub fn command(p: &Process) -> String {
    let mut s = argv_text(&p.command);
    if let Some(parent) = &p.parent {
        s.push_str(&format!(" (under {})", under(parent)));
    }
    s
}

/// The parent as a reader knows it: a script of the buildpack by its path in the buildpack
/// ("bin/supply" for `/bin/sh /tmp/buildpacks/0/bin/supply /tmp/app …`, or when run directly),
/// anything else by its command line.
fn under(parent: &[String]) -> String {
    const INTERPRETERS: [&str; 9] = [
        "sh", "bash", "dash", "ash", "zsh", "env", "python3", "ruby", "perl",
    ];
    let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    let script = match parent {
        [first, second, ..] if INTERPRETERS.contains(&base(first).as_str()) => second,
        [first, ..] => first,
        [] => return String::new(),
    };
    in_buildpack(script).unwrap_or_else(|| argv_text(parent))
}

/// "/tmp/buildpacks/0/bin/supply" → "bin/supply"; `None` for a path outside the buildpacks.
fn in_buildpack(p: &str) -> Option<String> {
    let (_, rest) = p
        .strip_prefix(BUILDPACKS_DIR)?
        .strip_prefix('/')?
        .split_once('/')?;
    Some(terminal_safe(rest).into_owned())
}

/// An argv as one line: its credentials redacted ([`redact_argv`]), each word through the terminal
/// escaper, words with spaces (or empty ones) quoted, at most [`MAX_COMMAND`] characters.
pub fn argv_text(argv: &[String]) -> String {
    let words: Vec<String> = redact_argv(argv)
        .iter()
        .map(|w| {
            let w = terminal_safe(w);
            if w.is_empty() || w.contains(' ') {
                format!("'{w}'")
            } else {
                w.into_owned()
            }
        })
        .collect();
    let line = words.join(" ");
    if line.chars().count() > MAX_COMMAND {
        let cut: String = line.chars().take(MAX_COMMAND - 1).collect();
        format!("{cut}…")
    } else {
        line
    }
}

/// "manifest: 3 dependencies for cflinuxfs4, 2 cached; missing: node 20.11.1" (of buildpack N
/// when the run has several).
pub fn manifest_summary(a: &Analysis, m: &StackDeps) -> String {
    let several = a.stage.as_ref().is_some_and(|s| s.buildpacks.len() > 1);
    let whose = if several {
        format!(" of buildpack {}", m.buildpack)
    } else {
        String::new()
    };
    let n = m.dependencies.len();
    let mut s = format!(
        "manifest{whose}: {n} dependenc{} for {}, {} cached",
        if n == 1 { "y" } else { "ies" },
        terminal_safe(&m.stack),
        m.cached()
    );
    let missing: Vec<String> = m
        .missing()
        .map(|d| format!("{} {}", terminal_safe(&d.name), terminal_safe(&d.version)))
        .collect();
    if !missing.is_empty() {
        let shown = missing.len().min(MAX_MISSING);
        s.push_str(&format!("; missing: {}", missing[..shown].join(", ")));
        if missing.len() > shown {
            s.push_str(&format!(" and {} more", missing.len() - shown));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_as_a_shell_line_under_their_script() {
        let p = Process {
            pid: 12,
            command: vec!["curl".into(), "-o".into(), "a b".into(), "".into()],
            parent: Some(
                vec![
                    "/bin/sh".into(),
                    "/tmp/buildpacks/0/bin/supply".into(),
                    "/tmp/app".into(),
                ]
                .into(),
            ),
        };
        assert_eq!(command(&p), "curl -o 'a b' '' (under bin/supply)");
        assert_eq!(
            under(&["/tmp/buildpacks/1/bin/finalize".into()]),
            "bin/finalize"
        );
        assert_eq!(
            under(&["sh".into(), "-c".into(), "x y".into()]),
            "sh -c 'x y'"
        );
        assert_eq!(
            under(&["/usr/bin/make".into(), "install".into()]),
            "/usr/bin/make install"
        );
        assert_eq!(argv_text(&["a\nb".into()]), "a\\nb");
        let long = argv_text(&["x".repeat(500)]);
        assert_eq!(long.chars().count(), MAX_COMMAND);
        assert!(long.ends_with('…'));
    }
}
