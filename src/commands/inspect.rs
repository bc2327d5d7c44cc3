//! `airgap-check inspect --buildpack DIR|ZIP [--stack NAME] [--json F|-]`: the manifest question
//! answered before any staging, with neither Docker nor root. Exit 0 when every dependency for the
//! stack(s) is cached and intact, 1 when not, 2 for bad input.

use std::path::Path;

use crate::cli::InspectArgs;
use crate::error::{Error, Result};
use crate::manifest::inspect::inspect;
use crate::manifest::{Manifest, Tree};
use crate::report;

/// The stack name `inspect` uses for a manifest whose entries name no stack (each is for every
/// stack).
pub const ANY_STACK: &str = "(any)";

pub fn run(args: &InspectArgs) -> Result<i32> {
    // `--json -`: the report on stdout, the summary on stderr (as for the other commands).
    let to_stdout = args.json.as_deref().is_some_and(report::is_stdout);
    if let Some(j) = args.json.as_deref().filter(|j| !report::is_stdout(j)) {
        report::check_writable(j)?;
    }
    let source = args.buildpack.display().to_string();
    let tree = Tree::open(&args.buildpack)?;
    let shown = manifest_path(&args.buildpack, &tree);
    let bytes = tree
        .manifest()
        .map_err(|e| Error::Unreadable {
            path: shown.clone().into(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| Error::BadInput {
            path: args.buildpack.clone(),
            reason: "no manifest.yml: expected a buildpack that lists its dependencies (cloudfoundry/libbuildpack's manifest)".into(),
        })?;
    let m = Manifest::parse_bytes(&bytes).map_err(|message| Error::Manifest {
        path: shown,
        message,
    })?;
    let stacks = stacks_to_check(&m, args.stack.as_deref())?;
    let found = inspect(&tree, &m, &stacks, &source);
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
    if to_stdout {
        let _ = report::inspect::write_console(&found, &mut anstream::stderr().lock());
    } else {
        let _ = report::inspect::write_console(&found, &mut anstream::stdout().lock());
    }
    Ok(if found.complete() { 0 } else { 1 })
}

/// "bp/manifest.yml", or "bp.zip (manifest.yml)".
fn manifest_path(source: &Path, tree: &Tree) -> String {
    match tree {
        Tree::Dir(d) => d.join("manifest.yml").display().to_string(),
        Tree::Zip { .. } => format!("{} (manifest.yml)", source.display()),
    }
}

/// The stacks to check: the one asked for, which the manifest must have dependencies for (a typo
/// must not pass as "nothing to check"); else every stack the manifest names; else, when its
/// entries name none, [`ANY_STACK`].
fn stacks_to_check(m: &Manifest, asked: Option<&str>) -> Result<Vec<String>> {
    let named = m.stacks();
    match asked {
        Some(s) if m.dependencies.is_empty() || m.dependencies.iter().any(|e| m.is_for(e, s)) => {
            Ok(vec![s.to_string()])
        }
        Some(s) => Err(Error::BadArgument {
            option: "--stack",
            value: s.to_string(),
            expected: format!(
                "manifest.yml lists no dependency for this stack: expected one of {}",
                named.join(", ")
            ),
        }),
        None if named.is_empty() && !m.dependencies.is_empty() => Ok(vec![ANY_STACK.into()]),
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
        let any = Manifest::parse("dependencies:\n- {name: a, version: '1', uri: 'http://x/a'}\n")
            .unwrap();
        assert_eq!(stacks_to_check(&any, None).unwrap(), [ANY_STACK]);
        assert!(stacks_to_check(&Manifest::default(), None)
            .unwrap()
            .is_empty());
    }
}
