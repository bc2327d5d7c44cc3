//! manifest.yml and buildpack zips: any bytes as a manifest (parsed, then viewed for every stack it
//! names against an empty buildpack folder, as staging and `inspect` view it), and, when the first
//! byte says so, the rest as a buildpack zip read in place (opened under the default inflate
//! limit, its manifest read and every named file hashed). No panic, and no input may cost more
//! than a second: a hostile manifest or zip must be refused, not expanded (libFuzzer's
//! -rss_limit_mb in scripts/fuzz.sh bounds the memory).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use airgap_check::manifest::inspect::inspect;
use airgap_check::manifest::{Manifest, StackDeps, Tree};
use airgap_check::staging::buildpack::UnzipLimit;
use libfuzzer_sys::fuzz_target;

/// An empty folder of this process: the buildpack the manifest is viewed against.
fn empty() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("airgap-check-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fn views(m: &Manifest, tree: &Tree) {
    let stacks = m.stacks();
    let some = &stacks[..stacks.len().min(64)];
    for (s, v) in some.iter().zip(StackDeps::each(m, tree, some, "bp")) {
        assert_eq!(&v.stack, s);
        assert!(v.dependencies.iter().all(|d| d.cached.is_none()), "nothing is cached in an empty folder");
        let one = StackDeps::of(m, tree, s, 0, "bp".into());
        assert_eq!(one.dependencies, v.dependencies, "one stack viewed alone or with others");
    }
    let i = inspect(tree, m, some, "bp");
    assert_eq!(i.stacks.len(), some.len());
}

fn zip(bytes: &[u8]) {
    let path = empty().with_extension("zip");
    std::fs::write(&path, bytes).unwrap();
    let Ok(tree) = Tree::open(&path, UnzipLimit::default()) else {
        return;
    };
    if let Ok(Some(text)) = tree.manifest() {
        if let Ok(m) = Manifest::parse_bytes(&text) {
            let stacks = m.stacks();
            let _ = inspect(&tree, &m, &stacks[..stacks.len().min(8)], "bp.zip");
        }
    }
    let _ = tree.files_under("dependencies");
}

fuzz_target!(|data: &[u8]| {
    let started = Instant::now();
    match data.split_first() {
        Some((b'Z', rest)) => zip(rest),
        _ => {
            if let Ok(m) = Manifest::parse_bytes(data) {
                views(&m, &Tree::Dir(empty().clone()));
            }
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "one input took {:?}",
        started.elapsed()
    );
});
