//! The staging container's file system, reached from this host through `/proc/PID/root` of its
//! first process (the same way whether its files are mounted from here or were built into an
//! image): the CNB platform's folders and plan files are made there, and what the buildpacks
//! declared is read back. Every path is resolved with openat2 `RESOLVE_IN_ROOT`, so a symlink a
//! buildpack left resolves inside the container, never on this host; what is written or given an
//! owner is never a symlink itself, reads take regular files only (never a FIFO or a device), and
//! are bounded.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

/// The container's root, held open.
pub struct RootFs {
    root: OwnedFd,
}

/// The owner files and folders are given.
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// `follow`: whether the last component may be a symlink (resolved inside the container too).
fn how(flags: OFlag, mode: u32, follow: bool) -> OpenHow {
    let nofollow = if follow {
        OFlag::empty()
    } else {
        OFlag::O_NOFOLLOW
    };
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | nofollow)
        .mode(Mode::from_bits_truncate(mode))
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// "a/b/c" → ("a/b", "c"); paths are absolute inside the container.
fn split(path: &str) -> (&str, &str) {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("/", path),
    }
}

impl RootFs {
    /// The root of the container whose first process is `pid` on this host.
    pub fn of(pid: u32) -> std::io::Result<RootFs> {
        let root = nix::fcntl::open(
            format!("/proc/{pid}/root").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
        Ok(RootFs { root })
    }

    /// Open without following a symlink at the end (what is written or given an owner).
    fn open(&self, path: &str, flags: OFlag, mode: u32) -> std::io::Result<OwnedFd> {
        openat2(self.root.as_fd(), path, how(flags, mode, false)).map_err(io)
    }

    /// Open for reading: a symlink at the end is followed, inside the container.
    fn open_read(&self, path: &str, flags: OFlag) -> std::io::Result<OwnedFd> {
        openat2(self.root.as_fd(), path, how(flags, 0, true)).map_err(io)
    }

    /// A regular file's bytes, at most `max`; `None` when there is none. A bigger file, or one
    /// that is not a regular file, is an error.
    pub fn read(&self, path: &str, max: u64) -> std::io::Result<Option<Vec<u8>>> {
        let fd = match self.open_read(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let mut out = Vec::new();
        file.take(max + 1).read_to_end(&mut out)?;
        if out.len() as u64 > max {
            return Err(std::io::Error::other(format!(
                "larger than {} KiB",
                max >> 10
            )));
        }
        Ok(Some(out))
    }

    /// A folder's entries: (name, whether it is a folder itself), sorted; empty when there is
    /// no such folder.
    pub fn list(&self, path: &str) -> std::io::Result<Vec<(String, bool)>> {
        let fd = match self.open_read(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(io)?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            let is_dir = entry.file_type() == Some(nix::dir::Type::Directory);
            out.push((name, is_dir));
            if out.len() > 100_000 {
                return Err(std::io::Error::other("more than 100000 entries"));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Make a folder (its parent must exist) owned by `owner` with `mode`; one already there is
    /// given to `owner` too.
    pub fn mkdir(&self, path: &str, owner: Owner, mode: u32) -> std::io::Result<()> {
        let (parent, name) = split(path);
        let dir = self.open(parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
        match nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(io(e)),
        }
        let made = self.open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
        own(&made, owner, mode)
    }

    /// Make every folder of `path` that is missing (owned by root, 0755), then `path` itself as
    /// [`RootFs::mkdir`] does.
    pub fn mkdir_all(&self, path: &str, owner: Owner, mode: u32) -> std::io::Result<()> {
        let mut at = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            at.push('/');
            at.push_str(part);
            if i + 1 == parts.len() {
                return self.mkdir(&at, owner, mode);
            }
            if self
                .open(&at, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
                .is_err()
            {
                self.mkdir(&at, Owner::ROOT, 0o755)?;
            }
        }
        Ok(())
    }

    /// Write a file (replacing one there), owned by `owner` with `mode`.
    pub fn write(&self, path: &str, bytes: &[u8], owner: Owner, mode: u32) -> std::io::Result<()> {
        let fd = self.open(
            path,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC,
            mode,
        )?;
        own(&fd, owner, mode)?;
        let mut f = File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        f.write_all(bytes)
    }
}

fn own(fd: &OwnedFd, owner: Owner, mode: u32) -> std::io::Result<()> {
    nix::unistd::fchown(
        fd,
        Some(Uid::from_raw(owner.uid)),
        Some(Gid::from_raw(owner.gid)),
    )
    .map_err(io)?;
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_folder_and_name() {
        assert_eq!(split("/layers"), ("/", "layers"));
        assert_eq!(split("/a/b/c"), ("/a/b", "c"));
        assert_eq!(split("/a/b/"), ("/a", "b"));
    }

    /// Our own process's root stands in for a container's: what is written under a temporary
    /// folder reads back, and a symlink out of it is not followed.
    #[test]
    fn write_read_list_and_no_symlink_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RootFs::of(std::process::id()).unwrap();
        let me = Owner {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        };
        let base = dir.path().display().to_string();
        fs.mkdir_all(&format!("{base}/x/y"), me, 0o750).unwrap();
        fs.write(&format!("{base}/x/y/f.toml"), b"a = 1\n", me, 0o640)
            .unwrap();
        assert_eq!(
            fs.read(&format!("{base}/x/y/f.toml"), 100)
                .unwrap()
                .unwrap(),
            b"a = 1\n"
        );
        assert!(fs.read(&format!("{base}/x/y/f.toml"), 2).is_err());
        assert_eq!(fs.read(&format!("{base}/x/none"), 100).unwrap(), None);
        assert_eq!(
            fs.list(&format!("{base}/x")).unwrap(),
            [("y".to_string(), true)]
        );
        std::os::unix::fs::symlink("/dev/null", dir.path().join("x/link")).unwrap();
        assert!(fs.read(&format!("{base}/x/link"), 1 << 20).is_err());
        nix::unistd::mkfifo(&dir.path().join("x/fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        assert!(fs.read(&format!("{base}/x/fifo"), 1 << 20).is_err());
        assert!(fs
            .write(&format!("{base}/x/link"), b"no", me, 0o644)
            .is_err());
    }
}
