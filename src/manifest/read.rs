//! manifest.yml as cloudfoundry/libbuildpack reads it (manifest.go, packager/models.go): the
//! `dependencies:` with `name`, `version`, `uri`, `sha256`, `cf_stacks` and, in a cached package,
//! `file:`; `default_versions:`; and `stack:`, which the packager writes into a package made for
//! one stack (dropping every entry's `cf_stacks`). Other keys (`language`,
//! `dependency_deprecation_dates`, `exclude_files`, `include_files`, …) are the buildpack's own
//! business and are ignored, as libbuildpack ignores what it does not know.

use std::collections::HashSet;

use serde::Deserialize;

use crate::manifest::anchors::{refusal, Refusal};
use crate::verdict::policy::{describe_yaml_error, MAX_NESTING};

/// The largest manifest read: real ones are at most a few hundred KiB (the Ruby buildpack's is
/// about 100 KiB).
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;

/// A buildpack's manifest.yml.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub language: Option<String>,
    /// The stack a stack-specific package was made for: its entries are for that stack only.
    /// `stack: ""` is read as absent, as libbuildpack reads it.
    #[serde(default, deserialize_with = "empty_as_none")]
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

/// `stack: ""` (or null) is no stack: libbuildpack tests `m.Stack != ""`.
fn empty_as_none<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

impl Manifest {
    /// Parse manifest text. The error says where ("line 7 column 5: …"). Text over
    /// [`MAX_MANIFEST_BYTES`] is refused unread; text nested deeper than 64 levels or with a
    /// YAML anchor or alias, when libyaml's event parser meets it, before the deserializer reads it
    /// (libyaml slows with depth; the deserializer expands an alias every time it is used).
    pub fn parse(text: &str) -> Result<Manifest, String> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(format!(
                "larger than {} MiB: expected a buildpack manifest (refused before parsing)",
                MAX_MANIFEST_BYTES >> 20
            ));
        }
        match refusal(text, MAX_NESTING) {
            Some(Refusal::Deep(line)) => {
                return Err(format!(
                    "line {line}: nested more than {MAX_NESTING} levels deep: a manifest needs 4"
                ))
            }
            Some(Refusal::Alias(line)) => {
                return Err(format!(
                    "line {line}: a YAML anchor or alias (&name, *name): expected a manifest without them, as the buildpack packager writes it (each alias would be expanded wherever it is used)"
                ))
            }
            None => {}
        }
        if text.trim().is_empty() {
            return Ok(Manifest::default());
        }
        serde_norway::from_str(text).map_err(|e| describe_yaml_error(&e))
    }

    /// Parse manifest bytes: they must be UTF-8 text (the error says on which line they are not).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Manifest, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            let column =
                good.len() - good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
            format!(
                "line {line} column {column}: not UTF-8 text (byte 0x{:02x}): expected a YAML file",
                bytes[e.valid_up_to()]
            )
        })?;
        Manifest::parse(text)
    }

    /// Whether libbuildpack would use `e` on `stack` (manifest.go, `AllDependencyVersions` and
    /// `getEntry`): a stack-specific package's entries are for its `stack:` only; otherwise an
    /// entry is for the stacks its `cf_stacks` names exactly, and one that names none is for no
    /// stack at all (an empty CF_STACK included).
    pub fn is_for(&self, e: &Entry, stack: &str) -> bool {
        match (&self.stack, &e.cf_stacks) {
            (Some(only), _) => only == stack,
            (None, Some(stacks)) => stacks.iter().any(|s| s == stack),
            (None, None) => false,
        }
    }

    /// Whether `e` is for no stack: no `stack:` and no `cf_stacks` (libbuildpack never uses it,
    /// and the packager drops it).
    pub fn for_no_stack(&self, e: &Entry) -> bool {
        self.stack.is_none() && e.cf_stacks.as_ref().is_none_or(Vec::is_empty)
    }

    /// Every stack the manifest names, in order of first mention.
    pub fn stacks(&self) -> Vec<String> {
        if let Some(only) = &self.stack {
            return vec![only.clone()];
        }
        let mut seen: HashSet<&str> = HashSet::new();
        self.dependencies
            .iter()
            .flat_map(|e| e.cf_stacks.iter().flatten())
            .filter(|s| seen.insert(s.as_str()))
            .cloned()
            .collect()
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
        assert_eq!(for4, ["node"], "no cf_stacks: no stack");
        assert!(m.for_no_stack(&m.dependencies[2]));
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
        let e = Manifest::parse_bytes(b"a: b\nc: d\xff\n").unwrap_err();
        assert!(e.starts_with("line 2 column 5: not UTF-8"), "{e}");
        let e = Manifest::parse("- a\n- b\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
    }

    /// libbuildpack's rule (manifest.go): `stack:` wins; else the exact names in `cf_stacks`; an
    /// entry with none is for no stack; `stack: ""` is no `stack:`.
    #[test]
    fn the_stack_rule_is_libbuildpacks() {
        let entry = |stacks: Option<&[&str]>| Entry {
            name: "a".into(),
            version: "1".into(),
            uri: "http://x/a".into(),
            sha256: None,
            cf_stacks: stacks.map(|s| s.iter().map(|x| x.to_string()).collect()),
            file: None,
        };
        let with_stack = |stack: &str| {
            Manifest::parse(&format!("stack: '{stack}'\n"))
                .unwrap()
                .stack
        };
        assert_eq!(with_stack(""), None, "stack: \"\" is unset");
        assert_eq!(with_stack("s4").as_deref(), Some("s4"));
        let none = Manifest::default();
        let s4 = Manifest {
            stack: Some("s4".into()),
            ..Manifest::default()
        };
        let cases: [(&Manifest, Option<&[&str]>, &str, bool); 10] = [
            (&none, None, "s4", false),
            (&none, None, "", false),
            (&none, Some(&[]), "s4", false),
            (&none, Some(&["s4"]), "s4", true),
            (&none, Some(&["s4"]), "S4", false),
            (&none, Some(&["s4"]), "", false),
            (&none, Some(&[""]), "", true),
            (&s4, None, "s4", true),
            (&s4, Some(&["s3"]), "s4", true),
            (&s4, None, "", false),
        ];
        for (m, stacks, stack, want) in cases {
            assert_eq!(
                m.is_for(&entry(stacks), stack),
                want,
                "stack: {:?}, cf_stacks {stacks:?}, CF_STACK {stack:?}",
                m.stack
            );
        }
        assert!(none.for_no_stack(&entry(None)) && none.for_no_stack(&entry(Some(&[]))));
        assert!(!s4.for_no_stack(&entry(None)));
        assert!(!none.for_no_stack(&entry(Some(&["s4"]))));
    }

    /// An alias expands wherever it is used: a few MiB could stand for terabytes. Refused at once.
    #[test]
    fn an_alias_bomb_is_refused_fast() {
        let mut text = format!(
            "x: &s [{}]\ndependencies:\n",
            vec!["a"; 1_000_000].join(", ")
        );
        for i in 0..200_000 {
            text.push_str(&format!(
                "- {{name: n{i}, version: v, uri: u, cf_stacks: *s}}\n"
            ));
        }
        let started = std::time::Instant::now();
        let e = Manifest::parse(&text).unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
        assert!(e.starts_with("line 1: a YAML anchor or alias"), "{e}");
    }

    /// The same bomb in each form a line-based pre-scan once missed (merged review, finding 1):
    /// an anchor under a block scalar opened after "- ", lines broken by CR, NEL, LS or PS, and a
    /// BOM before JSON-style flow. Each is refused, at once.
    #[test]
    fn an_alias_bomb_in_any_disguise_is_refused_fast() {
        let list = vec!["a"; 1_000_000].join(", ");
        let mut block = format!("dependencies:\n- note: |\n  cf_stacks: &s [{list}]\n  name: n\n");
        for i in 0..200_000 {
            block.push_str(&format!("- note: |\n  cf_stacks: *s\n  name: n{i}\n"));
        }
        let mut texts = vec![(block, 3)];
        for brk in ["\r", "\u{85}", "\u{2028}", "\u{2029}"] {
            let mut t = format!("x:{brk}  &s [{list}]{brk}dependencies:{brk}");
            for i in 0..200_000 {
                t.push_str(&format!("- {{name: n{i}, cf_stacks: *s}}{brk}"));
            }
            texts.push((t, 2));
        }
        let mut json = format!("\u{feff}{{\"x\":&s [{list}], \"dependencies\": [");
        for i in 0..200_000 {
            json.push_str(&format!("{{\"name\":\"n{i}\", \"cf_stacks\":*s}},"));
        }
        texts.push((json + "]}", 1));
        for (text, line) in texts {
            let started = std::time::Instant::now();
            let e = Manifest::parse(&text).unwrap_err();
            let took = started.elapsed();
            assert!(
                took < std::time::Duration::from_millis(100),
                "{took:?}: {e}"
            );
            let want = format!("line {line}: a YAML anchor or alias");
            assert!(e.starts_with(&want), "{e}");
        }
    }
}
