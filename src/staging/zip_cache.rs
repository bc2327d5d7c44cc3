//! The cache of extracted buildpack zips: each zip is extracted once per content digest (SHA-256)
//! and reused by every later run, whatever its path or name. It lives in `$AIRGAP_CHECK_CACHE`, else
//! `$XDG_CACHE_HOME/airgap-check`, else `~/.cache/airgap-check`; it holds at most
//! `$AIRGAP_CHECK_CACHE_MAX` (default 8 GiB), the least recently used entries going first, never
//! one a run is using (each run holds a shared lock on what it uses); `airgap-check prune` empties
//! it.
//!
//! Layout: `zips/<digest>/` the extracted tree, `zips/<digest>.size` its size in bytes (its mtime is
//! the entry's last use), `zips/<digest>.lock` the lock; `zips/.partial-<pid>-<n>/` an extraction
//! under way (a dead run's is removed by prune).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The default size bound of the cache.
pub const DEFAULT_MAX: u64 = 8 << 30;

/// One extracted zip, locked (shared) as long as a clone of it lives.
#[derive(Clone, Debug)]
pub struct ZipEntry {
    /// SHA-256 of the zip, hex.
    pub digest: String,
    /// The extracted tree.
    pub dir: PathBuf,
    /// Whether it was in the cache already (no extraction this run).
    pub reused: bool,
    _lock: Option<Arc<Flock<File>>>,
}

/// The cache folder.
#[derive(Clone, Debug)]
pub struct ZipCache {
    root: PathBuf,
    max: u64,
}

impl ZipCache {
    /// The cache where the environment says it is.
    pub fn from_env() -> Result<ZipCache> {
        let max = match std::env::var("AIRGAP_CHECK_CACHE_MAX") {
            Ok(v) => crate::cli::parse_size("AIRGAP_CHECK_CACHE_MAX", &v)?,
            Err(_) => DEFAULT_MAX,
        };
        Ok(ZipCache::at(default_root(), max))
    }

    pub fn at(root: PathBuf, max: u64) -> ZipCache {
        ZipCache { root, max }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn zips(&self) -> PathBuf {
        self.root.join("zips")
    }

    /// The zip `zip` extracted: from the cache, or by `extract` (into an empty folder) now.
    pub fn extracted(
        &self,
        zip: &Path,
        extract: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<ZipEntry> {
        let digest = sha256_of(zip)?;
        let zips = self.zips();
        std::fs::create_dir_all(&zips).map_err(|e| self.unwritable(e))?;
        let lock = self.lock(&digest, FlockArg::LockShared)?;
        let dir = zips.join(&digest);
        if dir.is_dir() {
            self.touch(&digest);
            return Ok(ZipEntry {
                digest,
                dir,
                reused: true,
                _lock: Some(Arc::new(lock)),
            });
        }
        let partial = tempfile::Builder::new()
            .prefix(&format!(".partial-{}-", std::process::id()))
            .tempdir_in(&zips)
            .map_err(|e| self.unwritable(e))?;
        extract(partial.path())?;
        let size = tree_size(partial.path());
        let kept = partial.keep();
        if std::fs::rename(&kept, &dir).is_err() {
            // Another run put the same content there first: take theirs.
            let _ = std::fs::remove_dir_all(&kept);
        }
        let _ = std::fs::write(zips.join(format!("{digest}.size")), size.to_string());
        self.evict(&digest);
        Ok(ZipEntry {
            digest,
            dir,
            reused: false,
            _lock: Some(Arc::new(lock)),
        })
    }

    /// (digest, size in bytes) of every entry.
    pub fn entries(&self) -> Vec<(String, u64)> {
        let Ok(rd) = std::fs::read_dir(self.zips()) else {
            return Vec::new();
        };
        let mut out: Vec<(String, u64)> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .map(|d| {
                let size = self.size_of(&d);
                (d, size)
            })
            .collect();
        out.sort();
        out
    }

    /// Remove every entry no run is using, and extractions of runs that died; what was removed.
    pub fn clear(&self) -> (usize, u64) {
        let (mut n, mut bytes) = (0, 0);
        for (digest, size) in self.entries() {
            if self.remove_if_unused(&digest) {
                n += 1;
                bytes += size;
            }
        }
        self.remove_dead_partials();
        (n, bytes)
    }

    fn remove_dead_partials(&self) {
        let Ok(rd) = std::fs::read_dir(self.zips()) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(".partial-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok());
            let dead = pid.is_some_and(|p| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_err()
            });
            if dead {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Keep the cache within its bound: least recently used first, never `keep` nor an entry in
    /// use.
    fn evict(&self, keep: &str) {
        let mut entries: Vec<(std::time::SystemTime, String, u64)> = self
            .entries()
            .into_iter()
            .map(|(d, size)| (self.last_used(&d), d, size))
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.2).sum();
        entries.sort();
        for (_, digest, size) in entries {
            if total <= self.max {
                break;
            }
            if digest != keep && self.remove_if_unused(&digest) {
                total -= size;
            }
        }
    }

    fn remove_if_unused(&self, digest: &str) -> bool {
        let Ok(_exclusive) = self.lock(digest, FlockArg::LockExclusiveNonblock) else {
            return false;
        };
        let zips = self.zips();
        let gone = std::fs::remove_dir_all(zips.join(digest)).is_ok();
        let _ = std::fs::remove_file(zips.join(format!("{digest}.size")));
        gone
    }

    fn lock(&self, digest: &str, how: FlockArg) -> Result<Flock<File>> {
        let path = self.zips().join(format!("{digest}.lock"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| self.unwritable(e))?;
        Flock::lock(f, how).map_err(|(_, e)| self.unwritable(std::io::Error::from(e)))
    }

    fn size_of(&self, digest: &str) -> u64 {
        std::fs::read_to_string(self.zips().join(format!("{digest}.size")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| tree_size(&self.zips().join(digest)))
    }

    fn last_used(&self, digest: &str) -> std::time::SystemTime {
        std::fs::metadata(self.zips().join(format!("{digest}.size")))
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH)
    }

    /// Mark an entry used now (the mtime of its size file).
    fn touch(&self, digest: &str) {
        let size = self.size_of(digest);
        let _ = std::fs::write(self.zips().join(format!("{digest}.size")), size.to_string());
    }

    fn unwritable(&self, e: std::io::Error) -> Error {
        Error::WriteFile {
            path: self.root.clone(),
            source: e,
        }
    }
}

/// `$AIRGAP_CHECK_CACHE`, else `$XDG_CACHE_HOME/airgap-check`, else `~/.cache/airgap-check`.
pub fn default_root() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("AIRGAP_CHECK_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("airgap-check")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/airgap-check")))
        .unwrap_or_else(|| PathBuf::from("/var/cache/airgap-check"))
}

/// SHA-256 of a file, streamed.
pub fn sha256_of(path: &Path) -> Result<String> {
    let read = |e| Error::Read {
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = File::open(path).map_err(read)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(read)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Bytes of the regular files under `root`.
fn tree_size(root: &Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => dirs.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract_one(bytes: usize) -> impl FnOnce(&Path) -> Result<()> {
        move |into: &Path| {
            std::fs::write(into.join("f"), vec![1u8; bytes]).unwrap();
            Ok(())
        }
    }

    #[test]
    fn one_extraction_per_content_and_the_oldest_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ZipCache::at(dir.path().join("c"), 2500);
        let zip = |name: &str, content: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            p
        };
        let a = cache
            .extracted(&zip("a.zip", "A"), extract_one(1000))
            .unwrap();
        assert!(!a.reused);
        // The same content under another name is the same entry.
        let a2 = cache
            .extracted(&zip("copy-of-a.zip", "A"), |_| panic!("extracted again"))
            .unwrap();
        assert!(a2.reused);
        assert_eq!(a.dir, a2.dir);
        drop((a, a2));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = cache
            .extracted(&zip("b.zip", "B"), extract_one(1000))
            .unwrap();
        drop(b);
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Over the bound: A, the least recently used, goes; B and C stay.
        let c = cache
            .extracted(&zip("c.zip", "C"), extract_one(1000))
            .unwrap();
        assert_eq!(cache.entries().len(), 2);
        assert!(c.dir.is_dir());
        // An entry in use is never removed, not even by prune.
        let (n, _) = cache.clear();
        assert_eq!(n, 1);
        assert!(c.dir.is_dir());
        drop(c);
        assert_eq!(cache.clear().0, 1);
        assert!(cache.entries().is_empty());
    }

    #[test]
    fn a_failed_extraction_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ZipCache::at(dir.path().join("c"), 1 << 20);
        let z = dir.path().join("z.zip");
        std::fs::write(&z, "Z").unwrap();
        let e = cache.extracted(&z, |into| {
            std::fs::write(into.join("half"), "x").unwrap();
            Err(Error::Internal("stop".into()))
        });
        assert!(e.is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("c/zips"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| !n.to_string_lossy().ends_with(".lock"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
