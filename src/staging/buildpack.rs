//! Buildpacks as a run takes them: a directory as it is (never written to), a zip extracted once
//! per content digest into the cache ([`super::zip_cache`]) and shared by every app of the run and
//! every later run. Extraction is bounded against zip bombs, and a buildpack whose scripts cannot
//! run is said before staging.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::staging::cnb::{self, Kind};
use crate::staging::lifecycle::Scripts;
use crate::staging::zip_cache::{ZipCache, ZipEntry};

/// A buildpack ready to stage.
#[derive(Clone, Debug)]
pub struct Buildpack {
    /// What the user named (directory or zip).
    pub source: PathBuf,
    /// The directory whose bin/ holds the scripts (the source, or where its zip was extracted).
    pub dir: PathBuf,
    pub scripts: Scripts,
    /// For a zip: its content digest, and whether an earlier run had extracted it already.
    pub zip: Option<ZipEntry>,
    /// A file or folder of it that others may not read (a user's directory only: a zip is
    /// extracted readable): a staging user other than root could not read it mounted.
    pub unreadable: Option<PathBuf>,
    /// A Cloud Native Buildpack's descriptor (buildpack.toml); `None` for a v2 buildpack.
    pub cnb: Option<cnb::Descriptor>,
}

impl Buildpack {
    /// A short name for reports: a Cloud Native Buildpack's id, else the source's file name.
    pub fn name(&self) -> String {
        if let Some(d) = &self.cnb {
            return d.id.clone();
        }
        self.source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.source.display().to_string())
    }

    /// Scripts the lifecycle will run that are not executable (a zip made without Unix modes):
    /// `bin/supply (mode 0644)`, …
    pub fn not_executable(&self) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let scripts: &[&str] = match self.cnb {
            Some(_) => &["detect", "build"],
            None => &["detect", "supply", "finalize", "compile", "release"],
        };
        scripts
            .iter()
            .filter_map(|s| {
                let m = std::fs::metadata(self.dir.join("bin").join(s)).ok()?;
                let mode = m.permissions().mode() & 0o7777;
                (m.is_file() && mode & 0o111 == 0).then(|| format!("bin/{s} (mode {mode:04o})"))
            })
            .collect()
    }
}

/// How far a zip may expand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnzipLimit {
    /// `--max-unzipped`, bytes; `None`: [`UnzipLimit::AUTO_BASE`] plus
    /// [`UnzipLimit::AUTO_FACTOR`] times the zip's own size.
    pub bytes: Option<u64>,
}

impl UnzipLimit {
    pub const AUTO_BASE: u64 = 256 << 20;
    pub const AUTO_FACTOR: u64 = 4;

    /// The limit for a zip of `zip_size` bytes, and how it was set (for the reader).
    pub fn for_zip(self, zip_size: u64) -> (u64, String) {
        match self.bytes {
            Some(b) => (b, format!("{} (--max-unzipped)", size_text(b))),
            None => {
                let b = Self::AUTO_BASE.saturating_add(zip_size.saturating_mul(Self::AUTO_FACTOR));
                (
                    b,
                    format!(
                        "{} (256 MiB plus {}× the zip's size)",
                        size_text(b),
                        Self::AUTO_FACTOR
                    ),
                )
            }
        }
    }
}

/// "1.5 GiB", "264 MiB", "12 KiB", "7 bytes".
pub fn size_text(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

pub(crate) fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadInput {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Check a buildpack directory or zip; a zip is extracted into `cache` (or found there).
pub fn load_buildpack(source: &Path, cache: &ZipCache, limit: UnzipLimit) -> Result<Buildpack> {
    let meta = std::fs::metadata(source).map_err(|e| Error::Read {
        path: source.to_path_buf(),
        source: e,
    })?;
    let (dir, zip) = if meta.is_dir() {
        (source.to_path_buf(), None)
    } else {
        let entry = cache.extracted(source, |into| extract_zip(source, into, limit))?;
        (scripts_root(&entry.dir), Some(entry))
    };
    let cnb = match cnb::kind_of(&dir, source)? {
        Kind::V2 => None,
        Kind::Cnb => Some(component(&dir)?),
    };
    let unreadable = zip
        .is_none()
        .then(|| crate::staging::tree::first_not_world_readable(&dir))
        .flatten();
    Ok(Buildpack {
        source: source.to_path_buf(),
        scripts: Scripts::of(&dir),
        dir,
        zip,
        unreadable,
        cnb,
    })
}

/// A component Cloud Native Buildpack: its checked buildpack.toml, and bin/detect and bin/build
/// (buildpack.md "Buildpack Interface").
fn component(dir: &Path) -> Result<cnb::Descriptor> {
    let d = cnb::descriptor::load(dir)?;
    let missing: Vec<&str> = ["bin/detect", "bin/build"]
        .into_iter()
        .filter(|s| !dir.join(s).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(bad(
            &d.path,
            format!(
                "buildpack {:?} has no {}: a Cloud Native Buildpack has bin/detect and bin/build",
                d.id,
                missing.join(" and ")
            ),
        ));
    }
    Ok(d)
}

/// A zip whose scripts sit under one top-level folder (as GitHub archives are) is taken from there.
fn scripts_root(extracted: &Path) -> PathBuf {
    let root = |d: &Path| d.join("bin").is_dir() || d.join("buildpack.toml").is_file();
    if root(extracted) {
        return extracted.to_path_buf();
    }
    let entries: Vec<_> = std::fs::read_dir(extracted)
        .map(|r| r.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    match entries.as_slice() {
        [one] if root(&one.path()) => one.path(),
        _ => extracted.to_path_buf(),
    }
}

/// Extract a zip into `into`, refusing any entry that would land outside it and stopping at the
/// size limit (declared or written) before the disk fills. Every file and folder is made readable
/// by all (the staging user is not its owner); modes are otherwise kept, execute bits included.
fn extract_zip(zip_path: &Path, into: &Path, limit: UnzipLimit) -> Result<()> {
    let file = File::open(zip_path).map_err(|e| Error::Read {
        path: zip_path.to_path_buf(),
        source: e,
    })?;
    let zip_size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        bad(
            zip_path,
            format!("not a buildpack directory or a readable zip: {e}"),
        )
    })?;
    let (max, how) = limit.for_zip(zip_size);
    let declared: u64 = (0..archive.len())
        .filter_map(|i| archive.by_index_raw(i).ok().map(|e| e.size()))
        .fold(0u64, u64::saturating_add);
    if declared > max {
        return Err(too_big(zip_path, declared, "declares", &how));
    }
    std::fs::create_dir_all(into).map_err(|e| bad(into, e.to_string()))?;
    let mut written = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| bad(zip_path, format!("bad zip entry {i}: {e}")))?;
        let raw = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        let rel = entry
            .enclosed_name()
            .filter(|p| p.components().all(|c| matches!(c, Component::Normal(_))))
            .ok_or_else(|| bad(zip_path, format!("zip entry {raw:?} points outside the archive: expected relative paths only")))?;
        let out = into.join(&rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&out).map_err(|e| bad(&out, e.to_string()))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| bad(parent, e.to_string()))?;
        }
        // A symlink entry is written as a regular file holding its target: never followed.
        let f = File::create(&out).map_err(|e| bad(&out, e.to_string()))?;
        // At most what is left of the limit, plus one byte to tell that it went over.
        let left = max.saturating_sub(written);
        let n = std::io::copy(&mut (&mut entry).take(left + 1), &mut { f })
            .map_err(|e| bad(zip_path, format!("zip entry {raw:?}: {e}")))?;
        written += n;
        if written > max {
            return Err(too_big(zip_path, written, "expands to more than", &how));
        }
        set_readable_mode(&out, entry.unix_mode());
    }
    readable_dirs(into);
    Ok(())
}

use std::io::Read as _;

fn too_big(zip: &Path, bytes: u64, verb: &str, how: &str) -> Error {
    bad(
        zip,
        format!(
            "the zip {verb} {} when extracted, over the limit of {how}; a cached buildpack expands to about its zip's size, so this may be a zip bomb: if it is genuine, raise the limit with --max-unzipped SIZE (e.g. --max-unzipped 8g)",
            size_text(bytes)
        ),
    )
}

/// The entry's mode (or 0644), readable by all.
fn set_readable_mode(path: &Path, mode: Option<u32>) {
    use std::os::unix::fs::PermissionsExt;
    let mode = mode.map_or(0o644, |m| m & 0o777) | 0o444;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// Every folder under `root` (and `root`) listable by all.
fn readable_dirs(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(path: &Path, files: &[(&str, &[u8], u32)]) {
        let mut w = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, data, mode) in files {
            let o = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            w.start_file(*name, o).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
    }

    fn cache(dir: &tempfile::TempDir) -> ZipCache {
        ZipCache::at(dir.path().join("cache"), 1 << 30)
    }

    #[test]
    fn zip_entries_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        let zpath = dir.path().join("evil.zip");
        {
            let mut w = zip::ZipWriter::new(File::create(&zpath).unwrap());
            let o = zip::write::SimpleFileOptions::default();
            w.start_file("bin/supply", o).unwrap();
            w.write_all(b"#!/bin/sh\n").unwrap();
            w.start_file("../../escaped", o).unwrap();
            w.write_all(b"x").unwrap();
            w.finish().unwrap();
        }
        let e = load_buildpack(&zpath, &cache(&dir), UnzipLimit::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("points outside"), "{e}");
        assert!(!dir.path().parent().unwrap().join("escaped").exists());
    }

    #[test]
    fn zip_with_one_top_folder_and_exec_bits() {
        let dir = tempfile::tempdir().unwrap();
        let zpath = dir.path().join("bp.zip");
        {
            let mut w = zip::ZipWriter::new(File::create(&zpath).unwrap());
            let o = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
            w.start_file("bp-1.0/bin/supply", o).unwrap();
            w.write_all(b"#!/bin/sh\n").unwrap();
            w.start_file("bp-1.0/bin/finalize", o).unwrap();
            w.write_all(b"#!/bin/sh\n").unwrap();
            w.finish().unwrap();
        }
        let bp = load_buildpack(&zpath, &cache(&dir), UnzipLimit::default()).unwrap();
        assert!(bp.scripts.supply && bp.scripts.finalize && !bp.scripts.compile);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(bp.dir.join("bin/supply"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
    }

    #[test]
    fn not_a_buildpack() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_buildpack(dir.path(), &cache(&dir), UnzipLimit::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("no bin/supply"), "{e}");
        let f = dir.path().join("x.zip");
        std::fs::write(&f, b"not a zip").unwrap();
        let e = load_buildpack(&f, &cache(&dir), UnzipLimit::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("readable zip"), "{e}");
    }

    #[test]
    fn zips_are_extracted_once_and_unrunnable_scripts_are_said() {
        let dir = tempfile::tempdir().unwrap();
        let z = dir.path().join("bp.zip");
        zip_of(
            &z,
            &[
                ("bp-main/bin/supply", b"#!/bin/sh\n", 0o755),
                ("bp-main/bin/finalize", b"#!/bin/sh\n", 0o600),
            ],
        );
        let cache = ZipCache::at(dir.path().join("cache"), 1 << 30);
        let bp = load_buildpack(&z, &cache, UnzipLimit::default()).unwrap();
        assert!(bp.dir.ends_with("bp-main"));
        assert!(bp.scripts.supply && bp.scripts.finalize);
        assert_eq!(bp.not_executable(), vec!["bin/finalize (mode 0644)"]);
        assert!(!bp.zip.as_ref().unwrap().reused);
        // A second load of the same content is taken from the cache.
        let again = load_buildpack(&z, &cache, UnzipLimit::default()).unwrap();
        assert!(again.zip.unwrap().reused);
        assert_eq!(again.dir, bp.dir);
    }

    #[test]
    fn a_zip_bomb_stops_at_the_limit_naming_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let z = dir.path().join("bomb.zip");
        {
            let mut w = zip::ZipWriter::new(File::create(&z).unwrap());
            let o = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            w.start_file("bin/supply", o).unwrap();
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..8 {
                w.write_all(&zeros).unwrap();
            }
            w.finish().unwrap();
        }
        let cache = ZipCache::at(dir.path().join("cache"), 1 << 30);
        let limit = UnzipLimit {
            bytes: Some(4 << 20),
        };
        let e = load_buildpack(&z, &cache, limit).unwrap_err().to_string();
        assert!(e.contains("declares 8 MiB"), "{e}");
        assert!(e.contains("4 MiB (--max-unzipped)"), "{e}");
        assert!(e.contains("--max-unzipped SIZE"), "{e}");
        // Nothing of it stays in the cache.
        assert_eq!(cache.entries().len(), 0);
        // Raised, it extracts.
        let bp = load_buildpack(
            &z,
            &cache,
            UnzipLimit {
                bytes: Some(9 << 20),
            },
        )
        .unwrap();
        assert_eq!(
            std::fs::metadata(bp.dir.join("bin/supply")).unwrap().len(),
            8 << 20
        );
        // The automatic limit: 256 MiB plus four times the zip's size.
        assert_eq!(
            UnzipLimit::default().for_zip(1 << 20).0,
            (256 << 20) + (4 << 20)
        );
    }
}
