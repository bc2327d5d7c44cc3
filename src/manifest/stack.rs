//! A buildpack's dependencies for one stack, each cached or not: what a staging run matches its
//! flows against and what `inspect` checks.

use std::collections::HashMap;

use crate::manifest::cache::cached_at;
use crate::manifest::read::Manifest;
use crate::manifest::tree::Tree;
use crate::manifest::versions;
use crate::staging::buildpack::Buildpack;

/// One dependency of a buildpack for the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub name: String,
    pub version: String,
    pub uri: String,
    pub sha256: Option<String>,
    /// Where the buildpack holds it (relative to its root), when it does.
    pub cached: Option<String>,
    /// It is the version `default_versions:` picks for its name on this stack.
    pub default: bool,
}

/// A buildpack's manifest, for one stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackDeps {
    /// The buildpack's 0-based index in the run.
    pub buildpack: usize,
    /// The buildpack as the user named it (a folder or a zip).
    pub source: String,
    pub stack: String,
    /// Its dependencies for `stack`, in manifest order.
    pub dependencies: Vec<Dependency>,
    /// Every stack the manifest names (to say so when none is `stack`).
    pub stacks: Vec<String>,
}

/// A manifest that could not be read: the buildpack, and what was wrong (with the line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub buildpack: usize,
    pub source: String,
    pub message: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "buildpack {} ({}): manifest.yml cannot be read: {}; its dependencies are not matched to flows (the egress check is unaffected)",
            self.buildpack, self.source, self.message
        )
    }
}

/// A manifest that lists dependencies, but none for the run's stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoneForStack {
    pub buildpack: usize,
    pub source: String,
    pub stack: String,
    /// The stacks it does list dependencies for.
    pub stacks: Vec<String>,
}

impl NoneForStack {
    /// What `deps` says, when it is that.
    pub fn of(deps: &StackDeps) -> Option<NoneForStack> {
        (deps.dependencies.is_empty() && !deps.stacks.is_empty()).then(|| NoneForStack {
            buildpack: deps.buildpack,
            source: deps.source.clone(),
            stack: deps.stack.clone(),
            stacks: deps.stacks.clone(),
        })
    }
}

impl std::fmt::Display for NoneForStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "buildpack {} ({}): manifest.yml lists no dependency for stack {} (it names {}): is --stack right?",
            self.buildpack,
            self.source,
            self.stack,
            at_most(&self.stacks, 5)
        )
    }
}

/// `names` joined with ", ", at most `most` of them, then "and N more": a hostile manifest may
/// name millions.
pub fn at_most<S: AsRef<str>>(names: &[S], most: usize) -> String {
    let shown: Vec<&str> = names.iter().take(most).map(AsRef::as_ref).collect();
    match names.len() - shown.len() {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

impl StackDeps {
    /// The dependencies of `m` for `stack`, each looked up in `tree`.
    pub fn of(m: &Manifest, tree: &Tree, stack: &str, buildpack: usize, source: String) -> Self {
        let entries: Vec<usize> = (0..m.dependencies.len())
            .filter(|&i| m.is_for(&m.dependencies[i], stack))
            .collect();
        let cached: Vec<Option<String>> = entries
            .iter()
            .map(|&i| cached_at(tree, &m.dependencies[i]))
            .collect();
        let mut deps = Self::from_entries(m, &entries, |k| cached[k].clone(), stack);
        deps.buildpack = buildpack;
        deps.source = source;
        deps.stacks = m.stacks();
        deps
    }

    /// The dependencies of `m` for each of `stacks` (buildpack 0, as named `source`): entries are
    /// indexed by stack once and each looked up in `tree` once, so the work is linear in the
    /// manifest, not in stacks times entries. Their `stacks` are left empty (the caller has them).
    pub fn each(m: &Manifest, tree: &Tree, stacks: &[String], source: &str) -> Vec<StackDeps> {
        let mut index: HashMap<&str, Vec<usize>> =
            stacks.iter().map(|s| (s.as_str(), Vec::new())).collect();
        for (i, e) in m.dependencies.iter().enumerate() {
            let of_entry: Box<dyn Iterator<Item = &String>> = match &m.stack {
                Some(only) => Box::new(std::iter::once(only)),
                None => Box::new(e.cf_stacks.iter().flatten()),
            };
            for s in of_entry {
                // Listed twice in one entry: once.
                if let Some(at) = index.get_mut(s.as_str()).filter(|at| at.last() != Some(&i)) {
                    at.push(i);
                }
            }
        }
        let mut cached: HashMap<usize, Option<String>> = HashMap::new();
        stacks
            .iter()
            .map(|s| {
                let entries = index.get(s.as_str()).map_or(&[][..], Vec::as_slice);
                for &i in entries {
                    cached
                        .entry(i)
                        .or_insert_with(|| cached_at(tree, &m.dependencies[i]));
                }
                let mut deps = Self::from_entries(m, entries, |k| cached[&entries[k]].clone(), s);
                deps.source = source.to_string();
                deps
            })
            .collect()
    }

    /// The view of the entries of `m` at `entries` (manifest order), the k-th cached at
    /// `cached(k)`; buildpack 0, no source and no stacks named (the callers set them).
    fn from_entries(
        m: &Manifest,
        entries: &[usize],
        cached: impl Fn(usize) -> Option<String>,
        stack: &str,
    ) -> Self {
        let names: Vec<(&str, &str)> = entries
            .iter()
            .map(|&i| {
                (
                    m.dependencies[i].name.as_str(),
                    m.dependencies[i].version.as_str(),
                )
            })
            .collect();
        let default = versions::defaults(&names, &m.default_versions);
        let dependencies = entries
            .iter()
            .zip(default)
            .enumerate()
            .map(|(k, (&i, default))| {
                let e = &m.dependencies[i];
                Dependency {
                    name: e.name.clone(),
                    version: e.version.clone(),
                    uri: e.uri.clone(),
                    sha256: e.sha256.clone(),
                    cached: cached(k),
                    default,
                }
            })
            .collect();
        StackDeps {
            buildpack: 0,
            source: String::new(),
            stack: stack.to_string(),
            dependencies,
            stacks: Vec::new(),
        }
    }

    pub fn cached(&self) -> usize {
        self.dependencies
            .iter()
            .filter(|d| d.cached.is_some())
            .count()
    }

    pub fn missing(&self) -> impl Iterator<Item = &Dependency> {
        self.dependencies.iter().filter(|d| d.cached.is_none())
    }
}

/// What reading one buildpack's manifest gave.
pub type ManifestRead = std::result::Result<StackDeps, Unreadable>;

/// Something worth saying of a manifest besides its dependencies (informational).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Aside {
    /// Entries with no `cf_stacks` in a manifest with no `stack:`: for no stack, so libbuildpack
    /// never uses them (and its packager drops them). Their "name version", the first few.
    ForNoStack {
        buildpack: usize,
        source: String,
        entries: usize,
        first: Vec<String>,
    },
    /// manifest.yml is a symlink: not read (a buildpack's manifest is a file of its own).
    Symlinked { buildpack: usize, source: String },
}

/// At most this many entries named in an [`Aside::ForNoStack`].
const FIRST_NAMED: usize = 3;

impl Aside {
    /// What `m` has for no stack, if anything.
    pub fn for_no_stack(m: &Manifest, buildpack: usize, source: &str) -> Option<Aside> {
        let of: Vec<&crate::manifest::Entry> = m
            .dependencies
            .iter()
            .filter(|e| m.for_no_stack(e))
            .collect();
        (!of.is_empty()).then(|| Aside::ForNoStack {
            buildpack,
            source: source.to_string(),
            entries: of.len(),
            first: of
                .iter()
                .take(FIRST_NAMED)
                .map(|e| format!("{} {}", e.name, e.version))
                .collect(),
        })
    }
}

impl std::fmt::Display for Aside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Aside::ForNoStack {
                buildpack,
                source,
                entries,
                first,
            } => {
                let (they, them) = if *entries == 1 { ("it is", "it") } else { ("they are", "them") };
                write!(
                    f,
                    "buildpack {buildpack} ({source}): manifest.yml has no stack: and {entries} entr{} with no cf_stacks ({}{}): {they} for no stack, so libbuildpack never uses {them}",
                    if *entries == 1 { "y" } else { "ies" },
                    first.join(", "),
                    if *entries > first.len() { ", …" } else { "" },
                )
            }
            Aside::Symlinked { buildpack, source } => write!(
                f,
                "buildpack {buildpack} ({source}): manifest.yml is a symlink, not read (expected a regular file of the buildpack): its dependencies are not matched to flows"
            ),
        }
    }
}

/// Every manifest of a run, read once before staging: for the run's stack, and what to say of
/// them besides.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    pub reads: Vec<ManifestRead>,
    pub asides: Vec<Aside>,
}

/// The manifest of every buildpack of a run that has one, for the run's stack, read from the
/// prepared buildpack folders (zips are extracted there). A manifest that cannot be read is an
/// [`Unreadable`], never an error: the egress check goes on without it.
pub fn read_all(buildpacks: &[Buildpack], stack: &str) -> Manifests {
    let mut out = Manifests::default();
    for (i, bp) in buildpacks.iter().enumerate() {
        let source = bp.source.display().to_string();
        let tree = Tree::Dir(bp.dir.clone());
        let unreadable = |message: String| Unreadable {
            buildpack: i,
            source: source.clone(),
            message,
        };
        let bytes = match tree.manifest() {
            Ok(Some(b)) => b,
            Ok(None) => {
                if tree.manifest_is_symlink() {
                    out.asides.push(Aside::Symlinked {
                        buildpack: i,
                        source: source.clone(),
                    });
                }
                continue;
            }
            Err(e) => {
                out.reads.push(Err(unreadable(e.to_string())));
                continue;
            }
        };
        match Manifest::parse_bytes(&bytes) {
            Ok(m) => {
                out.asides.extend(Aside::for_no_stack(&m, i, &source));
                out.reads
                    .push(Ok(StackDeps::of(&m, &tree, stack, i, source.clone())));
            }
            Err(message) => out.reads.push(Err(unreadable(message))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::cache::packager_path;

    /// A hostile manifest may name millions of stacks: a note names five (merged review, 11).
    #[test]
    fn a_few_names_then_how_many_more() {
        let names: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
        assert_eq!(at_most(&names, 5), "s0, s1, s2, s3, s4 and 995 more");
        assert_eq!(at_most(&names[..5], 5), "s0, s1, s2, s3, s4");
        assert_eq!(at_most::<&str>(&[], 5), "");
        let note = NoneForStack {
            buildpack: 0,
            source: "bp".into(),
            stack: "x".into(),
            stacks: names,
        };
        assert!(
            note.to_string()
                .contains("(it names s0, s1, s2, s3, s4 and 995 more)"),
            "{note}"
        );
    }

    #[test]
    fn dependencies_for_the_stack_cached_or_not() {
        let d = tempfile::tempdir().unwrap();
        let cached = "http://deps.example.org/tool-1.0.tgz";
        let at = d.path().join(packager_path(cached));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(&at, b"x").unwrap();
        let m = Manifest::parse(&format!(
            "default_versions:\n- {{name: node, version: 20.x}}\ndependencies:\n\
             - {{name: tool, version: '1.0', uri: '{cached}', cf_stacks: [s4], file: {}}}\n\
             - {{name: node, version: 20.1.0, uri: 'http://deps.example.org/n20', cf_stacks: [s4]}}\n\
             - {{name: node, version: 18.1.0, uri: 'http://deps.example.org/n18', cf_stacks: [s3]}}\n\
             - {{name: old, version: '1', uri: 'http://deps.example.org/old'}}\n",
            packager_path(cached)
        ))
        .unwrap();
        let s = StackDeps::of(&m, &Tree::Dir(d.path().into()), "s4", 0, "bp".into());
        assert_eq!(s.dependencies.len(), 2);
        assert_eq!(s.cached(), 1);
        let missing: Vec<_> = s.missing().map(|d| (d.name.as_str(), d.default)).collect();
        assert_eq!(missing, [("node", true)]);
        assert_eq!(s.stacks, ["s4", "s3"]);
        let s3 = StackDeps::of(&m, &Tree::Dir(d.path().into()), "s3", 0, "bp".into());
        assert_eq!((s3.dependencies.len(), s3.cached()), (1, 0));
        let each = StackDeps::each(
            &m,
            &Tree::Dir(d.path().into()),
            &["s4".into(), "s3".into(), "s9".into()],
            "bp",
        );
        let all = |mut v: StackDeps| {
            v.stacks = m.stacks();
            v
        };
        assert_eq!(all(each[0].clone()), s);
        assert_eq!(all(each[1].clone()), s3);
        assert!(each[2].dependencies.is_empty());
        let aside = Aside::for_no_stack(&m, 0, "bp").unwrap().to_string();
        assert_eq!(aside, "buildpack 0 (bp): manifest.yml has no stack: and 1 entry with no cf_stacks (old 1): it is for no stack, so libbuildpack never uses it");
    }

    /// 16 MiB of distinct stack names: linear work, not quadratic (which would take hours). The
    /// budget is 2 s optimised; an unoptimised build (`cargo test`) parses YAML about 15 times
    /// slower, and shares 2 cores with other builds here, so it gets 120 s.
    #[test]
    fn a_manifest_naming_1_5m_stacks_is_read_fast() {
        let mut text = String::from(
            "dependencies:\n- {name: a, version: '1', uri: 'http://x/a', cf_stacks: [s0",
        );
        let mut n = 1;
        while text.len() < (16 << 20) - 32 {
            text.push_str(&format!(",s{n:x}"));
            n += 1;
        }
        text.push_str("]}\n");
        assert!(n > 1_500_000, "{n}");
        let started = std::time::Instant::now();
        let m = Manifest::parse(&text).unwrap();
        let d = tempfile::tempdir().unwrap();
        let s = StackDeps::of(&m, &Tree::Dir(d.path().into()), "s16e35f", 0, "bp".into());
        assert_eq!((s.dependencies.len(), s.stacks.len()), (1, n));
        let some: Vec<String> = (0..1000).map(|i| format!("s{i:x}")).collect();
        let each = StackDeps::each(&m, &Tree::Dir(d.path().into()), &some, "bp");
        assert!(each.iter().all(|v| v.dependencies.len() == 1));
        let took = started.elapsed();
        let budget = if cfg!(debug_assertions) { 120 } else { 2 };
        assert!(took < std::time::Duration::from_secs(budget), "{took:?}");
    }
}
