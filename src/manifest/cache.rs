//! Where a cached buildpack holds a dependency. cloudfoundry/libbuildpack's packager
//! (packager/packager.go, downloadDependency) stores each one at
//! `dependencies/<md5 hex of the uri>/<basename of the uri>` and writes that path as the entry's
//! `file:` in the packaged manifest. libbuildpack (installer.go, `FetchDependency`) copies `file:`
//! (relative to the buildpack's root) when the entry has one, and downloads the uri when it has
//! none: a file at the packager's path that no `file:` names is never used.

use md5::{Digest, Md5};

use crate::manifest::read::Entry;
use crate::manifest::tree::{relative, Tree};

/// The packager's path for a dependency with this uri.
pub fn packager_path(uri: &str) -> String {
    format!(
        "dependencies/{}/{}",
        hex::encode(Md5::digest(uri.as_bytes())),
        base(uri)
    )
}

/// Go's `filepath.Base`: the last element after trailing slashes are dropped; "." for nothing,
/// "/" for only slashes.
fn base(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.is_empty() { "." } else { "/" };
    }
    t.rsplit('/').next().unwrap_or(t)
}

/// Where `tree` holds `e`: its `file:` when that names a regular file of the buildpack; `None`
/// when it is not cached. A `file:` outside the buildpack (absolute, or climbing out) is not a
/// cached file of it, and neither is a file at the packager's path that `file:` does not name.
pub fn cached_at(tree: &Tree, e: &Entry) -> Option<String> {
    e.file
        .as_deref()
        .and_then(relative)
        .filter(|p| tree.has_file(p))
}

/// The packager's path of `e`, when `tree` holds a file there that `e` is not cached as (no
/// `file:`, or one naming something else): "unreferenced", downloaded all the same.
pub fn unreferenced_at(tree: &Tree, e: &Entry) -> Option<String> {
    let at = packager_path(&e.uri);
    (cached_at(tree, e).is_none() && tree.has_file(&at)).then_some(at)
}

/// Every path an entry of the manifest may be cached at: its `file:` and the packager's path.
pub fn named_paths<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<String> {
    let mut out = Vec::new();
    for e in entries {
        out.extend(e.file.as_deref().and_then(relative));
        out.push(packager_path(&e.uri));
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uri: &str, file: Option<&str>) -> Entry {
        Entry {
            name: "tool".into(),
            version: "1.2.3".into(),
            uri: uri.into(),
            sha256: None,
            cf_stacks: None,
            file: file.map(String::from),
        }
    }

    #[test]
    fn the_packagers_path_is_md5_of_the_uri_then_its_basename() {
        // md5("http://deps.example.org/tool/tool-1.2.3-linux-x64.tgz"), as md5sum prints it.
        assert_eq!(
            packager_path("http://deps.example.org/tool/tool-1.2.3-linux-x64.tgz"),
            "dependencies/55a5943812896ba0c4f943e41dbb09c1/tool-1.2.3-linux-x64.tgz"
        );
        assert_eq!(base("https://x/a/b.tgz?x=1"), "b.tgz?x=1");
        assert_eq!(base("https://x/a/"), "a");
        assert_eq!(base(""), ".");
        assert_eq!(base("///"), "/");
    }

    #[test]
    fn cached_only_by_a_file_that_names_a_regular_file() {
        let d = tempfile::tempdir().unwrap();
        let uri = "http://deps.example.org/tool/tool-1.2.3-linux-x64.tgz";
        let at = d.path().join(packager_path(uri));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(&at, b"x").unwrap();
        std::fs::write(d.path().join("elsewhere.tgz"), b"x").unwrap();
        std::fs::create_dir(d.path().join("a-dir")).unwrap();
        let t = Tree::Dir(d.path().to_path_buf());
        // At the packager's path but no `file:`: libbuildpack downloads it.
        assert_eq!(cached_at(&t, &entry(uri, None)), None);
        assert_eq!(
            unreferenced_at(&t, &entry(uri, None)),
            Some(packager_path(uri))
        );
        assert_eq!(
            cached_at(&t, &entry(uri, Some(&packager_path(uri)))),
            Some(packager_path(uri))
        );
        assert_eq!(
            unreferenced_at(&t, &entry(uri, Some(&packager_path(uri)))),
            None
        );
        assert_eq!(
            cached_at(&t, &entry(uri, Some("./elsewhere.tgz"))).as_deref(),
            Some("elsewhere.tgz")
        );
        // A `file:` that is not there, or not a file: not cached, whatever the packager's path holds.
        assert_eq!(cached_at(&t, &entry(uri, Some("gone.tgz"))), None);
        assert_eq!(
            unreferenced_at(&t, &entry(uri, Some("gone.tgz"))),
            Some(packager_path(uri))
        );
        assert_eq!(cached_at(&t, &entry(uri, Some("a-dir"))), None);
        assert_eq!(cached_at(&t, &entry(uri, Some(""))), None);
        assert_eq!(
            cached_at(&t, &entry("http://x/other.tgz", Some("/etc/passwd"))),
            None
        );
        assert_eq!(
            unreferenced_at(&t, &entry("http://x/other.tgz", None)),
            None
        );
        assert_eq!(
            named_paths([entry(uri, Some("a.tgz")), entry(uri, None)].iter()),
            ["a.tgz".to_string(), packager_path(uri)]
        );
    }
}
