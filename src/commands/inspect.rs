//! `airgap-check inspect --buildpack DIR|ZIP [--stack NAME] [--json F|-] [--max-unzipped SIZE]`:
//! the manifest question
//! answered before any staging, with neither Docker nor root. Exit 0 when every dependency for the
//! stack(s) is cached and intact, 1 when not (or when every entry is for no stack: nothing could be
//! checked), 2 for bad input.

use std::path::Path;

use crate::cli::{parse_size, InspectArgs};
use crate::error::{Error, Result};
use crate::manifest::inspect::inspect;
use crate::manifest::stack::at_most;
use crate::manifest::{Aside, Manifest, Tree};
use crate::report;
use crate::report::text::terminal_safe;
use crate::staging::buildpack::UnzipLimit;

/// At most this many stacks checked at once (a hostile manifest may name millions, each a report
/// of its own); `--stack` checks any one of them.
const MAX_STACKS: usize = 64;

/// At most this many stack names in the error for a `--stack` the manifest does not serve.
const MAX_NAMED: usize = 10;

pub fn run(args: &InspectArgs) -> Result<i32> {
    // `--json -`: the report on stdout, the summary on stderr (as for the other commands).
    let to_stdout = args.json.as_deref().is_some_and(report::is_stdout);
    if let Some(j) = args.json.as_deref().filter(|j| !report::is_stdout(j)) {
        report::check_writable(j)?;
    }
    let source = args.buildpack.display().to_string();
    let limit = UnzipLimit {
        bytes: args
            .max_unzipped
            .as_deref()
            .map(|m| parse_size("--max-unzipped", m))
            .transpose()?,
    };
    let tree = Tree::open(&args.buildpack, limit)?;
    let m = read_manifest(&args.buildpack, &tree)?;
    let stacks = stacks_to_check(&m, args.stack.as_deref())?;
    if stacks.len() > MAX_STACKS {
        return Err(Error::BadInput {
            path: args.buildpack.clone(),
            reason: format!(
                "manifest.yml names {} stacks: expected at most {MAX_STACKS} (a buildpack serves a few); check one with --stack NAME",
                stacks.len()
            ),
        });
    }
    let found = inspect(&tree, &m, &stacks, &source);
    let aside = Aside::for_no_stack(&m, 0, &source);
    // Dependencies, but every one for no stack: libbuildpack would find none of them, so nothing
    // here says the buildpack is air-gapped.
    let unchecked = found.for_no_stack > 0;
    match &args.json {
        Some(_) if to_stdout => {
            let mut out = std::io::stdout().lock();
            report::inspect::write_json(&found, &mut out).map_err(|e| Error::WriteFile {
                path: report::STDOUT.into(),
                source: e,
            })?;
        }
        Some(j) => report::write_atomically(j, |w| report::inspect::write_json(&found, w))?,
        None => {}
    }
    if unchecked {
        // Where the summary would go.
        let line = format!(
            "FAIL: nothing could be checked: every entry of manifest.yml ({}) is for no stack (no cf_stacks and no stack:), so libbuildpack would use none of them",
            m.dependencies.len()
        );
        if to_stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    } else if to_stdout {
        let _ = report::inspect::write_console(&found, &mut anstream::stderr().lock());
    } else {
        let _ = report::inspect::write_console(&found, &mut anstream::stdout().lock());
    }
    // Said beside the summary, on stderr: entries no stack uses are no dependency to check.
    if let Some(a) = aside {
        eprintln!("note: {}", terminal_safe(&a.to_string()));
    }
    Ok(if found.complete() { 0 } else { 1 })
}

/// The buildpack's manifest, parsed: bad input (exit 2) when it has none, when manifest.yml is a
/// symlink (never read: the staging image keeps it a symlink), or when it cannot be read.
fn read_manifest(source: &Path, tree: &Tree) -> Result<Manifest> {
    let shown = manifest_path(source, tree);
    let none = |reason: &str| Error::BadInput {
        path: source.to_path_buf(),
        reason: reason.into(),
    };
    let bytes = tree
        .manifest()
        .map_err(|e| Error::Unreadable {
            path: shown.clone().into(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| {
            if tree.manifest_is_symlink() {
                none("manifest.yml is a symlink, not read: expected a regular file of the buildpack")
            } else {
                none("no manifest.yml: expected a buildpack that lists its dependencies (cloudfoundry/libbuildpack's manifest)")
            }
        })?;
    Manifest::parse_bytes(&bytes).map_err(|message| Error::Manifest {
        path: shown,
        message,
    })
}

/// "bp/manifest.yml", or "bp.zip (manifest.yml)".
fn manifest_path(source: &Path, tree: &Tree) -> String {
    match tree {
        Tree::Dir(d) => d.join("manifest.yml").display().to_string(),
        Tree::Zip { .. } => format!("{} (manifest.yml)", source.display()),
    }
}

/// The stacks to check: the one asked for, which the manifest must have dependencies for (a typo
/// must not pass as "nothing to check"); else every stack the manifest names (none when its
/// entries name none: they are for no stack, as libbuildpack reads them).
fn stacks_to_check(m: &Manifest, asked: Option<&str>) -> Result<Vec<String>> {
    let named = m.stacks();
    match asked {
        Some(s) if m.dependencies.is_empty() || m.dependencies.iter().any(|e| m.is_for(e, s)) => {
            Ok(vec![s.to_string()])
        }
        Some(s) => Err(Error::BadArgument {
            option: "--stack",
            value: s.to_string(),
            expected: if named.is_empty() {
                "manifest.yml lists no dependency for any stack (no entry has cf_stacks and there is no stack:): expected a manifest whose entries name their stacks".into()
            } else {
                // The names are the manifest's: a few of them only (main escapes the error as it
                // prints it).
                let listed = at_most(&named, MAX_NAMED);
                format!("manifest.yml lists no dependency for this stack: expected one of {listed}")
            },
        }),
        None => Ok(named),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_the_manifest_does_not_serve_is_bad_input() {
        let m = Manifest::parse(
            "dependencies:\n- {name: a, version: '1', uri: 'http://x/a', cf_stacks: [s4, s3]}\n",
        )
        .unwrap();
        assert_eq!(stacks_to_check(&m, None).unwrap(), ["s4", "s3"]);
        assert_eq!(stacks_to_check(&m, Some("s3")).unwrap(), ["s3"]);
        let e = stacks_to_check(&m, Some("s5")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("s4, s3"), "{e}");
        let none = Manifest::parse("dependencies:\n- {name: a, version: '1', uri: 'http://x/a'}\n")
            .unwrap();
        assert!(
            stacks_to_check(&none, None).unwrap().is_empty(),
            "for no stack"
        );
        let e = stacks_to_check(&none, Some("s4")).unwrap_err();
        assert!(e.to_string().contains("no dependency for any stack"), "{e}");
        let packaged = Manifest::parse(
            "stack: s4\ndependencies:\n- {name: a, version: '1', uri: 'http://x/a'}\n",
        )
        .unwrap();
        assert_eq!(stacks_to_check(&packaged, None).unwrap(), ["s4"]);
        assert!(stacks_to_check(&Manifest::default(), None)
            .unwrap()
            .is_empty());
    }
}
