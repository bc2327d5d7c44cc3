//! manifest.yml as cloudfoundry/libbuildpack reads it (manifest.go, packager/models.go): the
//! `dependencies:` with `name`, `version`, `uri`, `sha256`, `cf_stacks` and, in a cached package,
//! `file:`; `default_versions:`; and `stack:`, which the packager writes into a package made for
//! one stack (dropping every entry's `cf_stacks`). Other keys (`language`,
//! `dependency_deprecation_dates`, `exclude_files`, `include_files`, …) are the buildpack's own
//! business and are ignored, as libbuildpack ignores what it does not know.

use serde::Deserialize;

use crate::verdict::policy::{describe_yaml_error, too_deep, MAX_NESTING};

/// The largest manifest read: real ones are at most a few hundred KiB (the Ruby buildpack's is
/// about 100 KiB).
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;

/// A buildpack's manifest.yml.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub language: Option<String>,
    /// The stack a stack-specific package was made for: its entries are for that stack only.
    #[serde(default)]
    pub stack: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub default_versions: Vec<DefaultVersion>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub dependencies: Vec<Entry>,
}

/// One `default_versions:` item: the version pattern ("20.11.x") libbuildpack picks for a name.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DefaultVersion {
    pub name: String,
    pub version: String,
}

/// One `dependencies:` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Entry {
    pub name: String,
    /// As written: plain YAML scalars keep their text ("1.10" stays "1.10", not 1.1).
    pub version: String,
    pub uri: String,
    #[serde(default)]
    pub sha256: Option<String>,
    /// `None` when the key is absent (a stack-specific package drops it).
    #[serde(default)]
    pub cf_stacks: Option<Vec<String>>,
    /// Where a cached package holds it, relative to the buildpack's root.
    #[serde(default)]
    pub file: Option<String>,
}

/// `key:` with no value is YAML null: read it as an empty list, as libbuildpack's Go YAML does.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

impl Manifest {
    /// Parse manifest text. The error says where ("line 7 column 5: …"). Text over
    /// [`MAX_MANIFEST_BYTES`] or nested deeper than 64 levels is refused before the YAML parser
    /// sees it (it takes quadratic time on deep nesting).
    pub fn parse(text: &str) -> Result<Manifest, String> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(format!(
                "larger than {} MiB: expected a buildpack manifest (refused before parsing)",
                MAX_MANIFEST_BYTES >> 20
            ));
        }
        if let Some(line) = too_deep(text) {
            return Err(format!(
                "line {line}: nested more than {MAX_NESTING} levels deep: a manifest needs 4"
            ));
        }
        if text.trim().is_empty() {
            return Ok(Manifest::default());
        }
        serde_norway::from_str(text).map_err(|e| describe_yaml_error(&e))
    }

    /// Parse manifest bytes: they must be UTF-8 text.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Manifest, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            format!(
                "not UTF-8 text (invalid byte at offset {}): expected a YAML file",
                e.valid_up_to()
            )
        })?;
        Manifest::parse(text)
    }

    /// Whether libbuildpack would use `e` on `stack`: a stack-specific package's entries are for
    /// its `stack:` only; otherwise an entry is for the stacks its `cf_stacks` names, or for every
    /// stack when it names none (the key absent).
    pub fn is_for(&self, e: &Entry, stack: &str) -> bool {
        match (&self.stack, &e.cf_stacks) {
            (Some(only), _) => only == stack,
            (None, Some(stacks)) => stacks.iter().any(|s| s == stack),
            (None, None) => true,
        }
    }

    /// Every stack the manifest names, in order of first mention.
    pub fn stacks(&self) -> Vec<String> {
        let mut out: Vec<String> = self.stack.iter().cloned().collect();
        if self.stack.is_none() {
            for s in self
                .dependencies
                .iter()
                .flat_map(|e| e.cf_stacks.iter().flatten())
            {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "---
language: fixture
default_versions:
- name: node
  version: 20.11.x
dependency_deprecation_dates:
- version_line: 18.x.x
  name: node
  date: 2025-04-30
exclude_files:
- .git/
dependencies:
- name: node
  version: 20.11.1
  uri: https://deps.example.org/node-20.11.1.tgz
  sha256: 0123
  cf_stacks:
  - cflinuxfs4
  source: https://example.org/src.tgz
- name: tool
  version: 1.10
  uri: https://deps.example.org/tool-1.10.tgz
  cf_stacks: [cflinuxfs3]
- name: any
  version: 8
  uri: https://deps.example.org/any-8.tgz
  file: dependencies/abc/any-8.tgz
";

    #[test]
    fn reads_what_libbuildpack_reads_and_ignores_the_rest() {
        let m = Manifest::parse(MANIFEST).unwrap();
        assert_eq!(m.language.as_deref(), Some("fixture"));
        assert_eq!(m.default_versions[0].version, "20.11.x");
        assert_eq!(m.dependencies.len(), 3);
        assert_eq!(
            m.dependencies[1].version, "1.10",
            "a version keeps its text"
        );
        assert_eq!(m.dependencies[2].version, "8");
        assert_eq!(
            m.dependencies[2].file.as_deref(),
            Some("dependencies/abc/any-8.tgz")
        );
        assert_eq!(m.stacks(), ["cflinuxfs4", "cflinuxfs3"]);
        let for4: Vec<&str> = m
            .dependencies
            .iter()
            .filter(|e| m.is_for(e, "cflinuxfs4"))
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(for4, ["node", "any"], "no cf_stacks: every stack");
    }

    #[test]
    fn a_stack_specific_package_is_for_its_stack_only() {
        let m = Manifest::parse(
            "stack: cflinuxfs4\ndependencies:\n- {name: a, version: '1', uri: 'http://x/a'}\n",
        )
        .unwrap();
        assert!(m.is_for(&m.dependencies[0], "cflinuxfs4"));
        assert!(!m.is_for(&m.dependencies[0], "cflinuxfs3"));
        assert_eq!(m.stacks(), ["cflinuxfs4"]);
    }

    #[test]
    fn empty_and_null_lists_are_empty() {
        assert_eq!(Manifest::parse("").unwrap(), Manifest::default());
        let m = Manifest::parse("language: x\ndependencies:\ndefault_versions: ~\n").unwrap();
        assert!(m.dependencies.is_empty() && m.default_versions.is_empty());
    }

    #[test]
    fn errors_say_where() {
        let e = Manifest::parse("dependencies:\n- name: a\n  version: 1\n").unwrap_err();
        assert!(e.starts_with("line 2 column 3: "), "{e}");
        assert!(e.contains("missing field `uri`"), "{e}");
        let e = Manifest::parse("dependencies:\n  - name: [\n").unwrap_err();
        assert!(e.starts_with("line "), "{e}");
        let e = Manifest::parse(&format!("a: {}", "[".repeat(100))).unwrap_err();
        assert!(e.contains("nested more than 64"), "{e}");
        let e = Manifest::parse_bytes(b"a: \xff\n").unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");
        let e = Manifest::parse("- a\n- b\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
    }
}
