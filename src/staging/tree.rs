//! Walking an app or buildpack folder as an app upload sees it: directories, regular files and
//! symlinks (never followed); FIFOs, sockets and devices are skipped and said. Checked before a run
//! creates anything, copied into a run's workspace, or written into a build context.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A directory entry that is not staged: a FIFO, a socket or a device node. A Cloud Foundry app
/// upload holds only directories, regular files and symlinks, so these never reach a real staging;
/// a FIFO would also block whoever reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    /// "a FIFO (named pipe)", "a unix socket", …
    pub kind: &'static str,
}

impl Skipped {
    /// One line for the reports, raw: each writer escapes it as it prints it (escaped here, it
    /// would be escaped twice).
    pub fn describe(&self) -> String {
        format!(
            "{}: not staged: {}; only directories, regular files and symlinks are (as in a Cloud Foundry app upload)",
            self.path.display(),
            self.kind
        )
    }
}

/// What a directory entry is, from its own metadata (a symlink is never followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
    Special(&'static str),
}

pub(crate) fn kind_of(ft: std::fs::FileType) -> Kind {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_fifo() {
        Kind::Special("a FIFO (named pipe)")
    } else if ft.is_socket() {
        Kind::Special("a unix socket")
    } else if ft.is_char_device() {
        Kind::Special("a character device")
    } else if ft.is_block_device() {
        Kind::Special("a block device")
    } else {
        Kind::Special("a file of an unknown type")
    }
}

/// The error for an entry that cannot be read: the path as it is; the sinks that print an error
/// (main, the stage command's warning, the reports' notes) escape it, so it is escaped once.
pub(crate) fn unreadable(path: &Path, e: std::io::Error) -> Error {
    Error::Read {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Visit every entry under `root` (not `root` itself): each directory's entries in byte order of
/// their names, each directory before what it holds, symlinks never followed.
pub(crate) fn walk(
    root: &Path,
    visit: &mut dyn FnMut(&Path, &Path, Kind) -> Result<()>,
) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let mut entries = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| unreadable(&dir, e))? {
            let e = e.map_err(|e| unreadable(&dir, e))?;
            let path = e.path();
            let ft = e.file_type().map_err(|e| unreadable(&path, e))?;
            entries.push((path, kind_of(ft)));
        }
        entries.sort_by(|a, b| {
            let name = |p: &Path| p.file_name().map(|n| n.as_bytes().to_vec());
            name(&a.0).cmp(&name(&b.0))
        });
        let mut subdirs = Vec::new();
        for (path, kind) in entries {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            visit(&path, rel, kind)?;
            if kind == Kind::Dir {
                subdirs.push(path);
            }
        }
        dirs.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

/// Open a regular file for reading without following a symlink and without blocking: if it was
/// swapped for a FIFO since it was listed, the open returns at once and the caller sees no file.
pub(crate) fn open_file(path: &Path) -> std::io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    Ok(f.metadata()?.is_file().then_some(f))
}

/// Check a directory that goes into the context before anything is created: every directory
/// listable, every regular file readable. Returns what will be skipped (see [`Skipped`]).
pub fn check_tree(root: &Path) -> Result<Vec<Skipped>> {
    let mut skipped = Vec::new();
    walk(root, &mut |path, _, kind| {
        match kind {
            Kind::File => {
                if open_file(path).map_err(|e| unreadable(path, e))?.is_none() {
                    skipped.push(Skipped {
                        path: path.to_path_buf(),
                        kind: "no longer a regular file",
                    });
                }
            }
            Kind::Special(what) => skipped.push(Skipped {
                path: path.to_path_buf(),
                kind: what,
            }),
            Kind::Dir | Kind::Symlink => {}
        }
        Ok(())
    })?;
    Ok(skipped)
}

/// Copy `root` into `dest` (an empty folder) as an app upload is staged: directories, regular
/// files (streamed) and symlinks (as links, never followed), every one owned by `owner` (uid, gid),
/// with its permission bits and modification time; FIFOs, sockets and devices are skipped and
/// returned. Names are taken as bytes.
pub fn copy_tree(root: &Path, dest: &Path, owner: (u32, u32)) -> Result<Vec<Skipped>> {
    let write = |path: &Path, e: std::io::Error| Error::WriteFile {
        path: path.to_path_buf(),
        source: e,
    };
    let mut skipped = Vec::new();
    walk(root, &mut |path, rel, kind| {
        let to = dest.join(rel);
        match kind {
            Kind::Dir => {
                std::fs::create_dir(&to).map_err(|e| write(&to, e))?;
                copy_meta(path, &to, owner).map_err(|e| write(&to, e))?;
            }
            Kind::Symlink => {
                let target = std::fs::read_link(path).map_err(|e| unreadable(path, e))?;
                std::os::unix::fs::symlink(&target, &to).map_err(|e| write(&to, e))?;
                std::os::unix::fs::lchown(&to, Some(owner.0), Some(owner.1))
                    .map_err(|e| write(&to, e))?;
            }
            Kind::File => match open_file(path).map_err(|e| unreadable(path, e))? {
                Some(mut from) => {
                    let mut out = File::create(&to).map_err(|e| write(&to, e))?;
                    std::io::copy(&mut from, &mut out).map_err(|e| write(&to, e))?;
                    copy_meta(path, &to, owner).map_err(|e| write(&to, e))?;
                }
                None => skipped.push(Skipped {
                    path: path.to_path_buf(),
                    kind: "no longer a regular file",
                }),
            },
            Kind::Special(what) => skipped.push(Skipped {
                path: path.to_path_buf(),
                kind: what,
            }),
        }
        Ok(())
    })?;
    // The top folder itself.
    copy_meta(root, dest, owner).map_err(|e| write(dest, e))?;
    Ok(skipped)
}

/// Owner, permission bits and modification time of `from`, onto `to`.
fn copy_meta(from: &Path, to: &Path, owner: (u32, u32)) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::symlink_metadata(from)?;
    std::os::unix::fs::chown(to, Some(owner.0), Some(owner.1))?;
    std::fs::set_permissions(
        to,
        std::fs::Permissions::from_mode(m.permissions().mode() & 0o777),
    )?;
    if let Ok(t) = m.modified() {
        let _ = File::open(to).and_then(|f| f.set_modified(t));
    }
    Ok(())
}

/// Whether every file under `root` is readable and every folder listable by anyone (the staging
/// user is not their owner); the first that is not, when one is not.
pub fn first_not_world_readable(root: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let ok = |p: &Path, dir: bool| {
        std::fs::symlink_metadata(p).is_ok_and(|m| {
            let mode = m.permissions().mode();
            m.file_type().is_symlink() || (mode & 0o004 != 0 && (!dir || mode & 0o001 != 0))
        })
    };
    if !ok(root, true) {
        return Some(root.to_path_buf());
    }
    let mut found = None;
    let _ = walk(root, &mut |path, _, kind| {
        if found.is_none() && matches!(kind, Kind::Dir | Kind::File) && !ok(path, kind == Kind::Dir)
        {
            found = Some(path.to_path_buf());
        }
        Ok(())
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn a_copy_is_the_staging_users_links_kept_specials_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir_all(app.join("sub")).unwrap();
        std::fs::write(app.join("sub/run.sh"), "echo").unwrap();
        std::fs::set_permissions(
            app.join("sub/run.sh"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", app.join("out")).unwrap();
        nix::unistd::mkfifo(
            &app.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let dest = dir.path().join("copy");
        std::fs::create_dir(&dest).unwrap();
        let skipped = copy_tree(&app, &dest, (2000, 2001)).unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].kind, "a FIFO (named pipe)");
        let m = std::fs::metadata(dest.join("sub/run.sh")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (2000, 2001, 0o750));
        assert_eq!(
            std::fs::read_to_string(dest.join("sub/run.sh")).unwrap(),
            "echo"
        );
        // The link is a link, with the owner too, and is not followed.
        let l = std::fs::symlink_metadata(dest.join("out")).unwrap();
        assert!(l.file_type().is_symlink());
        assert_eq!(l.uid(), 2000);
        assert_eq!(
            std::fs::read_link(dest.join("out")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(!dest.join("fifo").exists());
        assert_eq!(std::fs::metadata(&dest).unwrap().uid(), 2000);
    }

    #[test]
    fn folders_others_cannot_read_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let bp = dir.path().join("bp");
        std::fs::create_dir_all(bp.join("bin")).unwrap();
        std::fs::set_permissions(&bp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(bp.join("bin/supply"), "x").unwrap();
        std::fs::set_permissions(
            bp.join("bin/supply"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::set_permissions(bp.join("bin"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(first_not_world_readable(&bp), None);
        std::fs::set_permissions(
            bp.join("bin/supply"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        assert_eq!(first_not_world_readable(&bp), Some(bp.join("bin/supply")));
    }
}
