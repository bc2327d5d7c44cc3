//! The staging container's file system, reached from this host through `/proc/PID/root` of its
//! first process (the same way whether its files are mounted from here or were built into an
//! image): the CNB platform's folders and plan files are made there, and what the buildpacks
//! declared is read back. Every path is resolved with openat2 `RESOLVE_IN_ROOT`, so a symlink a
//! buildpack left resolves inside the container, never on this host; the root must not be this
//! host's own (a pid that is no longer the container's).
//!
//! Nothing a buildpack put in place is ever opened as anything but a regular file or a folder: a
//! device node opened from here would be opened by this host's root, outside the container's
//! device cgroup, and a FIFO would block. A read opens the path with `O_PATH` (which opens
//! nothing), looks at what it is, and only then opens that very inode through
//! `/proc/self/fd/N`; a write removes whatever has the name and creates a new file
//! (`O_CREAT|O_EXCL`), so it never writes into something that was there. Reads are bounded.
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};

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

/// What a file that is not a regular file is, for the message.
fn kind(st: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a folder",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symlink",
        _ => "of an unknown type",
    }
}

fn is_regular(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

fn same_inode(a: &FileStat, b: &FileStat) -> bool {
    (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
}

impl RootFs {
    /// The root of the container whose first process is `pid` on this host; an error when that
    /// is this host's own root (the pid is no longer the container's, or the container shares
    /// this host's file system), so that nothing is ever made or read on this host.
    pub fn of(pid: u32) -> std::io::Result<RootFs> {
        let fs = RootFs::at(&format!("/proc/{pid}/root"))?;
        let ours = nix::sys::stat::stat("/").map_err(io)?;
        if same_inode(&fs.stat()?, &ours) {
            return Err(std::io::Error::other(format!(
                "/proc/{pid}/root is this host's own root, not a container's"
            )));
        }
        Ok(fs)
    }

    /// The folder `dir` of this host as a root.
    fn at(dir: &str) -> std::io::Result<RootFs> {
        let root = nix::fcntl::open(
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
        Ok(RootFs { root })
    }

    fn stat(&self) -> std::io::Result<FileStat> {
        nix::sys::stat::fstat(&self.root).map_err(io)
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
    /// that is not a regular file, is an error; what is not a regular file is never opened.
    pub fn read(&self, path: &str, max: u64) -> std::io::Result<Option<Vec<u8>>> {
        let file = match self.open_regular(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
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

    /// Open a regular file for reading: `O_PATH` first, which opens nothing, then, once it is
    /// known to be a regular file, that inode itself through `/proc/self/fd/N`.
    fn open_regular(&self, path: &str) -> std::io::Result<File> {
        let at = self.open_read(path, OFlag::O_PATH)?;
        let st = nix::sys::stat::fstat(&at).map_err(io)?;
        if !is_regular(&st) {
            return Err(std::io::Error::other(format!(
                "not a regular file but {}",
                kind(&st)
            )));
        }
        let fd = nix::fcntl::open(
            format!("/proc/self/fd/{}", at.as_raw_fd()).as_str(),
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
        if !same_inode(&nix::sys::stat::fstat(&fd).map_err(io)?, &st) {
            return Err(std::io::Error::other("changed while it was opened"));
        }
        Ok(File::from(fd))
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

    /// Write a new file owned by `owner` with `mode`, in place of whatever had the name (a file,
    /// a symlink, a FIFO, a device node: removed, never opened); a folder there is an error.
    pub fn write(&self, path: &str, bytes: &[u8], owner: Owner, mode: u32) -> std::io::Result<()> {
        let (parent, name) = split(path);
        let dir = self.open(parent, OFlag::O_PATH | OFlag::O_DIRECTORY, 0)?;
        match nix::unistd::unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::EISDIR) => return Err(std::io::Error::other("a folder is in its place")),
            Err(e) => return Err(io(e)),
        }
        // O_EXCL: something put there since the unlink is an error, not written into.
        let fd = openat2(
            &dir,
            name,
            how(
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                mode,
                false,
            ),
        )
        .map_err(io)?;
        own(&fd, owner, mode)?;
        File::from(fd).write_all(bytes)
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

    fn me() -> Owner {
        Owner {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }

    /// A temporary folder stands in for a container's root.
    fn container() -> (tempfile::TempDir, RootFs) {
        let dir = tempfile::tempdir().unwrap();
        let fs = RootFs::at(dir.path().to_str().unwrap()).unwrap();
        (dir, fs)
    }

    #[test]
    fn write_read_and_list_inside_the_root() {
        let (dir, fs) = container();
        fs.mkdir_all("/x/y", me(), 0o750).unwrap();
        assert!(dir.path().join("x/y").is_dir());
        fs.write("/x/y/f.toml", b"a = 1\n", me(), 0o640).unwrap();
        assert_eq!(fs.read("/x/y/f.toml", 100).unwrap().unwrap(), b"a = 1\n");
        assert!(fs.read("/x/y/f.toml", 2).is_err());
        assert_eq!(fs.read("/x/none", 100).unwrap(), None);
        assert_eq!(fs.list("/x").unwrap(), [("y".to_string(), true)]);
        // Writing again replaces the file.
        fs.write("/x/y/f.toml", b"b", me(), 0o640).unwrap();
        assert_eq!(fs.read("/x/y/f.toml", 100).unwrap().unwrap(), b"b");
    }

    #[test]
    fn symlinks_resolve_inside_the_root_and_are_never_written_through() {
        let (dir, fs) = container();
        fs.mkdir_all("/x", me(), 0o755).unwrap();
        fs.write("/x/f", b"inside", me(), 0o644).unwrap();
        let link = dir.path().join("x/link");
        // Absolute and climbing symlinks stay in the root.
        std::os::unix::fs::symlink("/x/f", &link).unwrap();
        assert_eq!(fs.read("/x/link", 100).unwrap().unwrap(), b"inside");
        std::os::unix::fs::symlink("../../../../../../etc/passwd", dir.path().join("x/up"))
            .unwrap();
        assert_eq!(fs.read("/x/up", 1 << 20).unwrap(), None);
        // A write replaces the symlink itself; its target is untouched.
        fs.write("/x/link", b"new", me(), 0o644).unwrap();
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(fs.read("/x/f", 100).unwrap().unwrap(), b"inside");
    }

    #[test]
    fn a_fifo_is_neither_read_nor_written_into_and_nothing_blocks() {
        let (dir, fs) = container();
        fs.mkdir_all("/x", me(), 0o755).unwrap();
        let fifo = dir.path().join("x/plan.toml");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).unwrap();
        let e = fs.read("/x/plan.toml", 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file but a FIFO");
        // A write puts a file in the FIFO's place (opening the FIFO to write would block).
        fs.write("/x/plan.toml", b"[[entries]]\n", me(), 0o644)
            .unwrap();
        assert!(std::fs::symlink_metadata(&fifo).unwrap().is_file());
        // A folder in the file's place is an error, and stays.
        std::fs::create_dir(dir.path().join("x/d")).unwrap();
        let e = fs.write("/x/d", b"", me(), 0o644).unwrap_err();
        assert_eq!(e.to_string(), "a folder is in its place");
    }

    #[test]
    fn a_device_is_never_opened() {
        // /dev/null of this host as a root's file: refused by its type, before any open.
        let fs = RootFs::at("/").unwrap();
        let e = fs.read("/dev/null", 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file but a character device");
        assert!(fs.read("/proc/self", 10).is_err(), "a folder");
    }

    #[test]
    fn this_hosts_own_root_is_refused() {
        let e = RootFs::of(std::process::id()).err().unwrap();
        assert!(e.to_string().contains("is this host's own root"), "{e}");
    }
}
