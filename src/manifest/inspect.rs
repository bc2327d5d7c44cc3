//! `inspect`: the manifest question answered before any staging, without Docker or root. For each
//! stack: every dependency cached or missing, each cached file's sha256 checked against the
//! manifest (streamed, compared exactly as libbuildpack's `CheckSha256` does); and the files under
//! dependencies/ that no entry names.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::manifest::cache::{named_paths, packager_path};
use crate::manifest::read::Manifest;
use crate::manifest::stack::{Dependency, StackDeps};
use crate::manifest::tree::Tree;

/// What was found for one dependency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Not in the buildpack: staging downloads it.
    Missing,
    /// Not cached, though a file sits at the packager's path for it: no `file:` names it, so
    /// libbuildpack downloads it all the same.
    Unreferenced { at: String },
    /// Cached, with the sha256 the manifest gives.
    Intact,
    /// Cached, but its bytes are not what the manifest says (libbuildpack deletes it and fails).
    WrongSha256 { actual: String },
    /// Cached, but the manifest gives no sha256 to check it against.
    NoSha256,
    /// Cached, but it could not be read to its end.
    Unreadable(String),
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Missing => "missing",
            State::Unreferenced { .. } => "unreferenced",
            State::Intact => "intact",
            State::WrongSha256 { .. } => "wrong_sha256",
            State::NoSha256 => "no_sha256",
            State::Unreadable(_) => "unreadable",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub dep: Dependency,
    pub state: State,
}

/// One stack's dependencies, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackCheck {
    pub stack: String,
    pub dependencies: Vec<Checked>,
}

impl StackCheck {
    pub fn count(&self, state: &str) -> usize {
        self.dependencies
            .iter()
            .filter(|c| c.state.as_str() == state)
            .count()
    }
}

/// Everything `inspect` found.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The buildpack as named (folder or zip).
    pub source: String,
    pub language: Option<String>,
    /// The stack a stack-specific package was made for.
    pub packaged_for: Option<String>,
    pub stacks: Vec<StackCheck>,
    /// Files under dependencies/ that no entry (of any stack) names.
    pub unnamed: Vec<String>,
    /// Files hashed, their bytes, and how long the hashing took.
    /// Entries the manifest lists when no stack was there to check them against (each for no
    /// stack): nothing was checked, so nothing says the buildpack is air-gapped.
    pub for_no_stack: usize,
    pub hashed_files: usize,
    pub hashed_bytes: u64,
    pub seconds: f64,
}

impl Inspection {
    /// Every dependency of every stack inspected is cached and intact, and something was
    /// inspected when the manifest lists dependencies.
    pub fn complete(&self) -> bool {
        self.for_no_stack == 0
            && self
                .stacks
                .iter()
                .flat_map(|s| &s.dependencies)
                .all(|c| c.state == State::Intact)
    }
}

/// Check `m`'s dependencies for each of `stacks` in `tree`, hashing each cached file once.
pub fn inspect(tree: &Tree, m: &Manifest, stacks: &[String], source: &str) -> Inspection {
    let views = StackDeps::each(m, tree, stacks, source);
    let mut paths: Vec<String> = views
        .iter()
        .flat_map(|v| v.dependencies.iter().filter_map(|d| d.cached.clone()))
        .collect();
    paths.sort();
    paths.dedup();
    let started = Instant::now();
    let hashes: BTreeMap<String, std::io::Result<(String, u64)>> =
        paths.iter().cloned().zip(tree.sha256_all(&paths)).collect();
    let seconds = started.elapsed().as_secs_f64();
    let named = named_paths(m.dependencies.iter());
    let unnamed = tree
        .files_under("dependencies")
        .into_iter()
        .filter(|f| named.binary_search(f).is_err())
        .collect();
    let mut unreferenced: HashMap<String, Option<String>> = HashMap::new();
    let mut state = |dep: &Dependency| match state_of(dep, &hashes) {
        State::Missing => unreferenced
            .entry(dep.uri.clone())
            .or_insert_with(|| {
                let at = packager_path(&dep.uri);
                tree.has_file(&at).then_some(at)
            })
            .clone()
            .map_or(State::Missing, |at| State::Unreferenced { at }),
        s => s,
    };
    Inspection {
        for_no_stack: if stacks.is_empty() {
            m.dependencies.len()
        } else {
            0
        },
        source: source.to_string(),
        language: m.language.clone(),
        packaged_for: m.stack.clone(),
        stacks: views
            .into_iter()
            .map(|v| StackCheck {
                stack: v.stack,
                dependencies: v
                    .dependencies
                    .into_iter()
                    .map(|dep| Checked {
                        state: state(&dep),
                        dep,
                    })
                    .collect(),
            })
            .collect(),
        unnamed,
        hashed_files: hashes.values().filter(|h| h.is_ok()).count(),
        hashed_bytes: hashes.values().flatten().map(|(_, n)| n).sum(),
        seconds,
    }
}

fn state_of(d: &Dependency, hashes: &BTreeMap<String, std::io::Result<(String, u64)>>) -> State {
    let Some(path) = &d.cached else {
        return State::Missing;
    };
    match (hashes.get(path), &d.sha256) {
        (Some(Err(e)), _) => State::Unreadable(e.to_string()),
        (None, _) => State::Unreadable("not hashed".into()),
        (Some(Ok(_)), None) => State::NoSha256,
        // Byte for byte: libbuildpack compares the lowercase hex digest with the manifest's text,
        // so an uppercase or padded sha256 fails staging.
        (Some(Ok((actual, _))), Some(want)) if actual == want => State::Intact,
        (Some(Ok((actual, _))), Some(_)) => State::WrongSha256 {
            actual: actual.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::cache::packager_path;

    #[test]
    fn cached_missing_corrupt_and_unnamed() {
        let d = tempfile::tempdir().unwrap();
        let put = |rel: &str, body: &[u8]| {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        };
        let (good, bad) = ("http://x/good.tgz", "http://x/bad.tgz");
        put(&packager_path(good), b"abc");
        put(&packager_path(bad), b"abd");
        let unreferenced = "http://x/unreferenced.tgz";
        put(&packager_path(unreferenced), b"abc");
        put("dependencies/old/left-over.tgz", b"x");
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let m = Manifest::parse(&format!(
            "dependencies:\n\
             - {{name: good, version: '1', uri: '{good}', sha256: {abc}, file: {}, cf_stacks: [s]}}\n\
             - {{name: bad, version: '1', uri: '{bad}', sha256: {abc}, file: {}, cf_stacks: [s]}}\n\
             - {{name: gone, version: '1', uri: 'http://x/gone.tgz', sha256: {abc}, cf_stacks: [s]}}\n\
             - {{name: unref, version: '1', uri: '{unreferenced}', sha256: {abc}, cf_stacks: [s]}}\n",
            packager_path(good),
            packager_path(bad),
        ))
        .unwrap();
        let i = inspect(&Tree::Dir(d.path().into()), &m, &["s".into()], "bp");
        let states: Vec<&str> = i.stacks[0]
            .dependencies
            .iter()
            .map(|c| c.state.as_str())
            .collect();
        assert_eq!(
            states,
            ["intact", "wrong_sha256", "missing", "unreferenced"]
        );
        assert_eq!(i.unnamed, ["dependencies/old/left-over.tgz"]);
        assert_eq!((i.hashed_files, i.hashed_bytes), (2, 6));
        assert!(!i.complete());
    }

    /// libbuildpack compares the lowercase digest with the manifest's text byte for byte.
    #[test]
    fn an_uppercase_or_padded_sha256_is_wrong() {
        let d = tempfile::tempdir().unwrap();
        let uri = "http://x/good.tgz";
        let at = d.path().join(packager_path(uri));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(&at, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let file = packager_path(uri);
        for (sha, want) in [
            (abc.to_string(), "intact"),
            (abc.to_uppercase(), "wrong_sha256"),
            (format!("' {abc} '"), "wrong_sha256"),
        ] {
            let m = Manifest::parse(&format!(
                "dependencies:\n- {{name: a, version: '1', uri: '{uri}', sha256: {sha}, file: {file}, cf_stacks: [s]}}\n"
            ))
            .unwrap();
            let i = inspect(&Tree::Dir(d.path().into()), &m, &["s".into()], "bp");
            assert_eq!(i.stacks[0].dependencies[0].state.as_str(), want, "{sha}");
            assert_eq!(i.complete(), want == "intact");
        }
    }
}
