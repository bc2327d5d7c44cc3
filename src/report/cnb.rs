//! What a Cloud Native Buildpack's build declared, as progress lines: its layers with their types,
//! and its processes. Every name, command and argument is the buildpack's own text: escaped
//! ([`terminal_safe`]), so that it can neither drive a terminal nor start a line of its own (a
//! GitHub workflow command).

use crate::report::explain::argv_text;
use crate::report::text::terminal_safe;
use crate::staging::cnb::layers::{Declared, Layer};

/// One line for the layers a build made (none when it made none), one for each process it
/// declared.
pub fn declared_lines(d: &Declared) -> Vec<String> {
    let mut lines = Vec::new();
    if !d.layers.is_empty() {
        let list: Vec<String> = d.layers.iter().map(layer).collect();
        lines.push(format!("  layers: {}", list.join("; ")));
    }
    for p in &d.processes {
        let argv: Vec<String> = p.command.iter().chain(&p.args).cloned().collect();
        lines.push(format!(
            "  process {}{}: {}",
            terminal_safe(&p.kind),
            if p.default { " (default)" } else { "" },
            argv_text(&argv)
        ));
    }
    lines
}

/// "web (launch, cache)"; "(none)" for a layer of no type.
fn layer(l: &Layer) -> String {
    let types: Vec<&str> = [("launch", l.launch), ("build", l.build), ("cache", l.cache)]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(t, _)| *t)
        .collect();
    let types = if types.is_empty() {
        "none".to_string()
    } else {
        types.join(", ")
    };
    format!("{} ({types})", terminal_safe(&l.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staging::cnb::layers::Process;

    #[test]
    fn names_and_commands_cannot_start_a_line() {
        let d = Declared {
            layers: vec![Layer {
                buildpack: "a".into(),
                name: "x\n::error::owned".into(),
                path: "/layers/a/x".into(),
                launch: true,
                build: false,
                cache: true,
                has_contents: true,
            }],
            processes: vec![Process {
                kind: "web".into(),
                command: vec!["serve".into(), "\r::warning::x".into()],
                args: vec!["--quiet".into(), "a b".into()],
                default: true,
                working_dir: None,
                buildpack: "a".into(),
            }],
            unmet: vec![],
        };
        let lines = declared_lines(&d);
        assert_eq!(
            lines,
            [
                "  layers: x\\n::error::owned (launch, cache)",
                "  process web (default): serve \\r::warning::x --quiet 'a b'",
            ]
        );
        assert!(lines.iter().all(|l| !l.contains('\n') && !l.contains('\r')));
        assert!(declared_lines(&Declared::default()).is_empty());
    }
}
