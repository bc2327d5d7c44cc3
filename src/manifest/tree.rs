//! A buildpack's files, read where they are: a folder, or a zip read in place (inspect never
//! extracts one). Files are streamed, never held in memory: a cached buildpack holds gigabytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::manifest::read::MAX_MANIFEST_BYTES;
use crate::staging::buildpack::{size_text, UnzipLimit};

/// A buildpack's file tree.
pub enum Tree {
    /// A folder: the buildpack's root.
    Dir(PathBuf),
    /// A zip: its path, and every file under the buildpack's root inside it (the top, or the one
    /// folder everything is in) by its path relative to that root, with its index in the zip.
    Zip {
        path: PathBuf,
        files: BTreeMap<String, usize>,
    },
}

/// What hashing one file gave: its sha256 (lowercase hex) and size, or why it could not be read.
pub type Hashed = std::io::Result<(String, u64)>;

/// A path relative to the buildpack's root, with only plain components ("./" dropped): `None` for
/// an absolute path or one that climbs out with "..".
pub fn relative(p: &str) -> Option<String> {
    let path = Path::new(p);
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?.to_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl Tree {
    /// The buildpack at `source`: a folder, or a zip (whose files may sit under one top folder, as
    /// in GitHub archives). Anything else is bad input (exit 2), and so is a zip that declares
    /// more than `limit` once inflated or whose entries share compressed data (each would be
    /// inflated and hashed again): what reading it could cost is bounded before any is read.
    pub fn open(source: &Path, limit: UnzipLimit) -> Result<Tree> {
        let meta = std::fs::metadata(source).map_err(|e| Error::Read {
            path: source.to_path_buf(),
            source: e,
        })?;
        if meta.is_dir() {
            return Ok(Tree::Dir(source.to_path_buf()));
        }
        let bad = |reason: String| Error::BadInput {
            path: source.to_path_buf(),
            reason,
        };
        let file = File::open(source).map_err(|e| Error::Read {
            path: source.to_path_buf(),
            source: e,
        })?;
        let mut zip = zip::ZipArchive::new(file)
            .map_err(|e| bad(format!("not a buildpack folder or a readable zip: {e}")))?;
        check_cost(&mut zip, meta.len(), limit).map_err(bad)?;
        let mut all: Vec<(String, usize)> = Vec::new();
        for i in 0..zip.len() {
            let entry = zip
                .by_index_raw(i)
                .map_err(|e| bad(format!("bad zip entry {i}: {e}")))?;
            if entry.is_dir() {
                continue;
            }
            // Names that would climb out of the archive name nothing of the buildpack.
            if let Some(rel) = entry
                .enclosed_name()
                .and_then(|p| p.to_str().and_then(relative))
            {
                all.push((rel, i));
            }
        }
        let prefix = zip_root(&all);
        let files = all
            .into_iter()
            .filter_map(|(n, i)| n.strip_prefix(&prefix).map(|r| (r.to_string(), i)))
            .collect();
        Ok(Tree::Zip {
            path: source.to_path_buf(),
            files,
        })
    }

    /// manifest.yml's bytes (at most one byte past [`MAX_MANIFEST_BYTES`]), `None` when the
    /// buildpack has none.
    pub fn manifest(&self) -> std::io::Result<Option<Vec<u8>>> {
        if !self.has_file("manifest.yml") {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        self.with_reader("manifest.yml", &mut |r| {
            r.take(MAX_MANIFEST_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map(drop)
        })?;
        Ok(Some(bytes))
    }

    /// Whether manifest.yml is a symlink in a folder (never read: see [`Tree::has_file`]).
    pub fn manifest_is_symlink(&self) -> bool {
        match self {
            Tree::Dir(root) => std::fs::symlink_metadata(root.join("manifest.yml"))
                .is_ok_and(|m| m.file_type().is_symlink()),
            Tree::Zip { .. } => false,
        }
    }

    /// Whether `rel` (relative to the root, see [`relative`]) is a file of the buildpack. In a
    /// folder: a regular file reached through folders only, never through a symlink (the staging
    /// image stores symlinks as symlinks, so the buildpack would not find it there).
    pub fn has_file(&self, rel: &str) -> bool {
        let Some(rel) = relative(rel) else {
            return false;
        };
        match self {
            Tree::Zip { files, .. } => files.contains_key(&rel),
            Tree::Dir(root) => {
                let mut at = root.clone();
                let parts: Vec<&str> = rel.split('/').collect();
                for (i, part) in parts.iter().enumerate() {
                    at.push(part);
                    let Ok(m) = std::fs::symlink_metadata(&at) else {
                        return false;
                    };
                    let last = i + 1 == parts.len();
                    if (last && !m.file_type().is_file()) || (!last && !m.is_dir()) {
                        return false;
                    }
                }
                true
            }
        }
    }

    /// Every file under the folder `dir` (relative to the root), sorted: regular files and
    /// symlinks alike, since either takes a place no entry may name. In a folder, `dir` itself
    /// when it is there but not a real folder (a symlink to `/` is never walked).
    pub fn files_under(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        match self {
            Tree::Zip { files, .. } => files
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect(),
            Tree::Dir(root) => {
                let dir = dir.trim_end_matches('/');
                let mut out = Vec::new();
                match std::fs::symlink_metadata(root.join(dir)) {
                    Ok(m) if m.is_dir() => walk(root, &root.join(dir), &mut out),
                    Ok(_) => out.push(dir.to_string()),
                    Err(_) => {}
                }
                out.sort();
                out
            }
        }
    }

    /// The sha256 and size of each of these files, streamed, on up to two threads (each with its
    /// own handle on the zip), in the order given.
    pub fn sha256_all(&self, rels: &[String]) -> Vec<Hashed> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 2)
            .min(rels.len().max(1));
        let next = AtomicUsize::new(0);
        let mut out: Vec<Option<Hashed>> = (0..rels.len()).map(|_| None).collect();
        let done: Vec<Vec<(usize, Hashed)>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| s.spawn(|| self.hash_worker(rels, &next)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_default())
                .collect()
        });
        for (i, h) in done.into_iter().flatten() {
            out[i] = Some(h);
        }
        out.into_iter()
            .map(|h| h.unwrap_or_else(|| Err(std::io::Error::other("the hashing thread died"))))
            .collect()
    }

    /// Hash files from `rels`, taking the next index from `next` until none is left.
    fn hash_worker(&self, rels: &[String], next: &AtomicUsize) -> Vec<(usize, Hashed)> {
        let mut done = Vec::new();
        let mut zip = match self {
            Tree::Zip { path, .. } => match File::open(path).map(zip::ZipArchive::new) {
                Ok(Ok(z)) => Some(z),
                Ok(Err(e)) => return failed_all(rels, next, &e.to_string()),
                Err(e) => return failed_all(rels, next, &e.to_string()),
            },
            Tree::Dir(_) => None,
        };
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(rel) = rels.get(i) else {
                return done;
            };
            let h = self.open_in(zip.as_mut(), rel, &mut |r| sha256_of(r));
            done.push((i, h));
        }
    }

    /// Run `f` on a reader of `rel`.
    fn with_reader(
        &self,
        rel: &str,
        f: &mut dyn FnMut(&mut dyn Read) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut zip = match self {
            Tree::Zip { path, .. } => {
                Some(zip::ZipArchive::new(File::open(path)?).map_err(std::io::Error::other)?)
            }
            Tree::Dir(_) => None,
        };
        self.open_in(zip.as_mut(), rel, f)
    }

    /// Run `f` on a reader of `rel`, from `zip` (this tree's zip, opened) or the folder.
    fn open_in<T>(
        &self,
        zip: Option<&mut zip::ZipArchive<File>>,
        rel: &str,
        f: &mut dyn FnMut(&mut dyn Read) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let missing = || std::io::Error::new(std::io::ErrorKind::NotFound, "not in the buildpack");
        match (self, zip) {
            (Tree::Zip { files, .. }, Some(z)) => {
                let i = *files.get(rel).ok_or_else(missing)?;
                let mut entry = z.by_index(i).map_err(std::io::Error::other)?;
                f(&mut entry)
            }
            (Tree::Dir(root), _) if self.has_file(rel) => f(&mut File::open(root.join(rel))?),
            _ => Err(missing()),
        }
    }
}

/// Refuse a zip whose entries declare more than `limit` inflated, or share compressed data.
fn check_cost(
    zip: &mut zip::ZipArchive<File>,
    zip_size: u64,
    limit: UnzipLimit,
) -> std::result::Result<(), String> {
    let (max, how) = limit.for_zip(zip_size);
    let mut declared = 0u64;
    for i in 0..zip.len() {
        let e = zip
            .by_index_raw(i)
            .map_err(|e| format!("bad zip entry {i}: {e}"))?;
        declared = declared.saturating_add(e.size());
    }
    if declared > max {
        return Err(format!(
            "the zip declares {} inflated, over the limit of {how}; a cached buildpack holds about its zip's size, so this may be a zip bomb: if it is genuine, raise the limit with --max-unzipped SIZE (e.g. --max-unzipped 8g)",
            size_text(declared)
        ));
    }
    if zip
        .has_overlapping_files()
        .map_err(|e| format!("unreadable zip: {e}"))?
    {
        return Err("entries of the zip share compressed data (each would be inflated again): expected a zip whose every file is stored once".into());
    }
    Ok(())
}

/// Every file `rels` still holds after `next`, failed with `why` (the zip would not open).
fn failed_all(rels: &[String], next: &AtomicUsize, why: &str) -> Vec<(usize, Hashed)> {
    let mut out = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= rels.len() {
            return out;
        }
        out.push((i, Err(std::io::Error::other(why.to_string()))));
    }
}

/// The sha256 (lowercase hex) and length of everything `r` yields, read 1 MiB at a time.
pub fn sha256_of(r: &mut dyn Read) -> Hashed {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// The folder inside a zip that is the buildpack's root: "" when manifest.yml or bin/ sits at the
/// top, else the one top-level folder every file is in ("name/"), as staging accepts it.
fn zip_root(files: &[(String, usize)]) -> String {
    let at_top = |n: &str| n == "manifest.yml" || n.starts_with("bin/");
    if files.iter().any(|(n, _)| at_top(n)) {
        return String::new();
    }
    let tops: Vec<&str> = files
        .iter()
        .filter_map(|(n, _)| n.split_once('/'))
        .map(|(t, _)| t)
        .collect();
    match tops.first() {
        Some(t) if tops.len() == files.len() && tops.iter().all(|x| x == t) => format!("{t}/"),
        _ => String::new(),
    }
}

/// Every file under `dir`, relative to `root`, symlinks not followed.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(root, &p, out),
            Ok(_) => {
                if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn relative_paths_stay_inside() {
        assert_eq!(
            relative("./dependencies/a/b.tgz").as_deref(),
            Some("dependencies/a/b.tgz")
        );
        assert_eq!(relative("/etc/passwd"), None);
        assert_eq!(relative("dependencies/../../x"), None);
        assert_eq!(relative(""), None);
    }

    fn folder() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("dependencies/abc")).unwrap();
        std::fs::write(d.path().join("dependencies/abc/x.tgz"), b"abc").unwrap();
        std::fs::write(d.path().join("manifest.yml"), b"language: x\n").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("dependencies/abc/link"))
            .unwrap();
        d
    }

    #[test]
    fn a_folder_holds_regular_files_reached_without_symlinks() {
        let d = folder();
        let t = Tree::open(d.path(), UnzipLimit::default()).unwrap();
        assert!(t.has_file("dependencies/abc/x.tgz"));
        assert!(
            !t.has_file("dependencies/abc/link"),
            "a symlink is not a cached file"
        );
        assert!(!t.has_file("dependencies/abc"));
        assert!(!t.has_file("../x"));
        assert_eq!(
            t.files_under("dependencies"),
            ["dependencies/abc/link", "dependencies/abc/x.tgz"]
        );
        assert_eq!(t.manifest().unwrap().unwrap(), b"language: x\n");
        let h = t.sha256_all(&["dependencies/abc/x.tgz".into(), "nope".into()]);
        assert_eq!(
            h[0].as_ref().unwrap(),
            &(
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(),
                3
            )
        );
        assert!(h[1].is_err());
    }

    #[test]
    fn a_zip_is_read_in_place_even_under_one_top_folder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bp.zip");
        let mut w = zip::ZipWriter::new(File::create(&p).unwrap());
        let o = zip::write::SimpleFileOptions::default();
        for (name, body) in [
            ("bp-main/manifest.yml", &b"language: z\n"[..]),
            ("bp-main/bin/supply", b"#!/bin/sh\n"),
            ("bp-main/dependencies/abc/x.tgz", b"abc"),
        ] {
            w.start_file(name, o).unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap();
        let t = Tree::open(&p, UnzipLimit::default()).unwrap();
        assert!(t.has_file("dependencies/abc/x.tgz"));
        assert_eq!(t.files_under("dependencies/"), ["dependencies/abc/x.tgz"]);
        assert_eq!(t.manifest().unwrap().unwrap(), b"language: z\n");
        let h = t.sha256_all(&["dependencies/abc/x.tgz".into()]);
        assert_eq!(h[0].as_ref().unwrap().1, 3);
        // Not a zip at all: bad input.
        std::fs::write(d.path().join("no.zip"), b"nope").unwrap();
        let e = Tree::open(&d.path().join("no.zip"), UnzipLimit::default())
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), 2);
    }

    /// A `dependencies` that is a symlink (here to `/`) is one unnamed entry, never walked.
    #[test]
    fn a_dependencies_symlink_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", d.path().join("dependencies")).unwrap();
        let t = Tree::open(d.path(), UnzipLimit::default()).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(t.files_under("dependencies"), ["dependencies"]);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        std::fs::remove_file(d.path().join("dependencies")).unwrap();
        assert!(t.files_under("dependencies").is_empty());
        std::fs::write(d.path().join("dependencies"), b"x").unwrap();
        assert_eq!(t.files_under("dependencies/"), ["dependencies"]);
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("manifest.yml")).unwrap();
        assert!(t.manifest_is_symlink() && t.manifest().unwrap().is_none());
    }

    /// A zip of `files` (deflated), then each entry's declared inflated size set to `declare`
    /// (in its local header and the central directory), as a zip bomb would declare it.
    pub(crate) fn zip_declaring(p: &Path, files: &[(&str, &[u8])], declare: Option<u32>) {
        let mut w = zip::ZipWriter::new(File::create(p).unwrap());
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in files {
            w.start_file(*name, o).unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap();
        let Some(size) = declare else { return };
        let mut bytes = std::fs::read(p).unwrap();
        for (sig, at) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
            let starts: Vec<usize> = bytes
                .windows(4)
                .enumerate()
                .filter(|(_, w)| w == sig)
                .map(|(i, _)| i)
                .collect();
            for i in starts {
                bytes[i + at..i + at + 4].copy_from_slice(&size.to_le_bytes());
            }
        }
        std::fs::write(p, bytes).unwrap();
    }

    #[test]
    fn a_zip_that_declares_too_much_or_shares_data_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bomb.zip");
        zip_declaring(&p, &[("manifest.yml", b"language: z\n")], Some(0x8000_0000));
        let started = std::time::Instant::now();
        let e = Tree::open(&p, UnzipLimit::default()).err().unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains("bomb.zip"), "{msg}");
        assert!(msg.contains("declares 2.0 GiB"), "{msg}");
        assert!(msg.contains("--max-unzipped"), "{msg}");
        // Raised: read.
        Tree::open(
            &p,
            UnzipLimit {
                bytes: Some(3 << 30),
            },
        )
        .unwrap();

        let p = d.path().join("overlap.zip");
        let mut w = zip::ZipWriter::new(File::create(&p).unwrap());
        let o = zip::write::SimpleFileOptions::default();
        w.start_file("manifest.yml", o).unwrap();
        w.write_all(b"language: z\n").unwrap();
        w.shallow_copy_file("manifest.yml", "dependencies/a/x.tgz")
            .unwrap();
        w.finish().unwrap();
        let e = Tree::open(&p, UnzipLimit::default()).err().unwrap();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("share compressed data"), "{e}");
    }
}
