//! A buildpack's dependencies for one stack, each cached or not: what a staging run matches its
//! flows against and what `inspect` checks.

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
            self.stacks.join(", ")
        )
    }
}

impl StackDeps {
    /// The dependencies of `m` for `stack`, each looked up in `tree`.
    pub fn of(m: &Manifest, tree: &Tree, stack: &str, buildpack: usize, source: String) -> Self {
        let entries: Vec<_> = m
            .dependencies
            .iter()
            .filter(|e| m.is_for(e, stack))
            .collect();
        let names: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.version.as_str()))
            .collect();
        let default = versions::defaults(&names, &m.default_versions);
        let dependencies = entries
            .iter()
            .zip(default)
            .map(|(e, default)| Dependency {
                name: e.name.clone(),
                version: e.version.clone(),
                uri: e.uri.clone(),
                sha256: e.sha256.clone(),
                cached: cached_at(tree, e),
                default,
            })
            .collect();
        StackDeps {
            buildpack,
            source,
            stack: stack.to_string(),
            dependencies,
            stacks: m.stacks(),
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

/// The manifest of every buildpack of a run that has one, for the run's stack, read from the
/// prepared buildpack folders (zips are extracted there). A manifest that cannot be read is an
/// [`Unreadable`], never an error: the egress check goes on without it.
pub fn read_all(buildpacks: &[Buildpack], stack: &str) -> Vec<ManifestRead> {
    buildpacks
        .iter()
        .enumerate()
        .filter_map(|(i, bp)| {
            let source = bp.source.display().to_string();
            let tree = Tree::Dir(bp.dir.clone());
            let unreadable = |message: String| Unreadable {
                buildpack: i,
                source: source.clone(),
                message,
            };
            let bytes = match tree.manifest() {
                Ok(Some(b)) => b,
                Ok(None) => return None,
                Err(e) => return Some(Err(unreadable(e.to_string()))),
            };
            Some(
                Manifest::parse_bytes(&bytes)
                    .map(|m| StackDeps::of(&m, &tree, stack, i, source.clone()))
                    .map_err(unreadable),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::cache::packager_path;

    #[test]
    fn dependencies_for_the_stack_cached_or_not() {
        let d = tempfile::tempdir().unwrap();
        let cached = "http://deps.example.org/tool-1.0.tgz";
        let at = d.path().join(packager_path(cached));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(&at, b"x").unwrap();
        let m = Manifest::parse(&format!(
            "default_versions:\n- {{name: node, version: 20.x}}\ndependencies:\n\
             - {{name: tool, version: '1.0', uri: '{cached}', cf_stacks: [s4]}}\n\
             - {{name: node, version: 20.1.0, uri: 'http://deps.example.org/n20', cf_stacks: [s4]}}\n\
             - {{name: node, version: 18.1.0, uri: 'http://deps.example.org/n18', cf_stacks: [s3]}}\n"
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
    }
}
