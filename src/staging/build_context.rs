//! The Docker build context of a staging run: a generated Dockerfile over the stack image, the app
//! and the buildpacks (directories, or zips extracted safely), as one tar file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::staging::lifecycle::{self, Scripts};

/// A buildpack ready to go into the context.
#[derive(Clone, Debug)]
pub struct Buildpack {
    /// What the user named (directory or zip).
    pub source: PathBuf,
    /// The directory whose bin/ holds the scripts (the source, or where its zip was extracted).
    pub dir: PathBuf,
    pub scripts: Scripts,
}

impl Buildpack {
    /// A short name for reports: the source's file name.
    pub fn name(&self) -> String {
        self.source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.source.display().to_string())
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadInput {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Check a buildpack directory or zip; zips are extracted under `scratch`.
pub fn load_buildpack(source: &Path, scratch: &Path, i: usize) -> Result<Buildpack> {
    let meta = std::fs::metadata(source).map_err(|e| Error::Read {
        path: source.to_path_buf(),
        source: e,
    })?;
    let dir = if meta.is_dir() {
        source.to_path_buf()
    } else {
        let into = scratch.join(format!("buildpack-{i}"));
        extract_zip(source, &into)?;
        // Accept a zip whose scripts sit under one top-level folder (as GitHub archives are).
        if !into.join("bin").is_dir() {
            let entries: Vec<_> = std::fs::read_dir(&into)
                .map_err(|e| bad(source, e.to_string()))?
                .filter_map(|e| e.ok())
                .collect();
            if entries.len() == 1 && entries[0].path().join("bin").is_dir() {
                entries[0].path()
            } else {
                into
            }
        } else {
            into
        }
    };
    if !dir.join("bin").is_dir() {
        return Err(bad(
            source,
            "not a buildpack: no bin/ directory (expected bin/supply, bin/finalize or bin/compile, bin/release)",
        ));
    }
    Ok(Buildpack {
        source: source.to_path_buf(),
        scripts: Scripts::of(&dir),
        dir,
    })
}

/// Extract a zip, refusing any entry that would land outside `into`.
fn extract_zip(zip_path: &Path, into: &Path) -> Result<()> {
    let file = File::open(zip_path).map_err(|e| Error::Read {
        path: zip_path.to_path_buf(),
        source: e,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        bad(
            zip_path,
            format!("not a buildpack directory or a readable zip: {e}"),
        )
    })?;
    std::fs::create_dir_all(into).map_err(|e| bad(into, e.to_string()))?;
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
        let mut f = File::create(&out).map_err(|e| bad(&out, e.to_string()))?;
        std::io::copy(&mut entry, &mut f)
            .map_err(|e| bad(zip_path, format!("zip entry {raw:?}: {e}")))?;
        if let Some(mode) = entry.unix_mode() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&out, std::fs::Permissions::from_mode(mode & 0o777));
        }
    }
    Ok(())
}

/// The user a name or uid[:gid] may be: safe to put in a shell line and a Dockerfile.
pub fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// An image reference Docker could accept; anything else is refused before it reaches a Dockerfile.
pub fn valid_image_ref(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && r.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@')
        })
}

/// The Dockerfile: the stack image, the app and buildpacks at the lifecycle's paths, the lifecycle's
/// directories owned by the user that will run the phases (written to /tmp/.airgap-check-user), and
/// the run's labels — first, so that every layer of the build carries them and an interrupted
/// build can be cleaned up by label. Few steps: each costs the legacy builder a container and a
/// commit.
pub fn dockerfile(
    stack_image: &str,
    user_override: Option<&str>,
    stack_user: Option<&str>,
    buildpacks: usize,
    labels: &[(&str, &str)],
) -> String {
    let deps: Vec<String> = (0..buildpacks)
        .map(|i| {
            format!(
                "{}/{}",
                lifecycle::DEPS_DIR,
                lifecycle::index(i, buildpacks)
            )
        })
        .collect();
    let dirs = format!(
        "{} {} {} {} {}",
        lifecycle::BUILD_DIR,
        lifecycle::CACHE_DIR,
        lifecycle::DEPS_DIR,
        lifecycle::PROFILE_DIR,
        lifecycle::ENV_DIR
    );
    let stack_user = stack_user.filter(|u| valid_user(u));
    let as_root = match stack_user {
        Some(u) if u != "root" && u != "0" && !u.starts_with("0:") => "USER root\n",
        _ => "",
    };
    let label_line: Vec<String> = labels
        .iter()
        .filter(|(k, v)| valid_label(k) && valid_label(v))
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    format!(
        "# Generated by airgap-check: stage an app over the stack image, sealed from any network.\n\
         FROM {stack_image}\n\
         LABEL {labels}\n\
         {as_root}\
         COPY app {build}\n\
         COPY buildpacks {bps}\n\
         RUN set -e; mkdir -p {dirs} {deps}; \\\n\
         \x20   u='{over}'; if [ -z \"$u\" ] && id vcap >/dev/null 2>&1; then u=vcap; fi; \\\n\
         \x20   if [ -z \"$u\" ]; then u='{stack_user}'; fi; \\\n\
         \x20   if [ -n \"$u\" ] && [ \"$u\" != root ] && [ \"$u\" != 0 ]; then chown -R \"$u\" {dirs}; fi; \\\n\
         \x20   chmod -R a+rX {bps}; printf '%s' \"$u\" > /tmp/.airgap-check-user\n",
        build = lifecycle::BUILD_DIR,
        bps = lifecycle::BUILDPACKS_DIR,
        deps = deps.join(" "),
        over = user_override.filter(|u| valid_user(u)).unwrap_or(""),
        stack_user = stack_user.unwrap_or(""),
        labels = label_line.join(" "),
    )
}

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

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
    /// One line for the console and the reports.
    pub fn describe(&self) -> String {
        format!(
            "{}: not staged: {}; only directories, regular files and symlinks are (as in a Cloud Foundry app upload)",
            shown(&self.path).display(),
            self.kind
        )
    }
}

/// What a directory entry is, from its own metadata (a symlink is never followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    Special(&'static str),
}

fn kind_of(ft: std::fs::FileType) -> Kind {
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

/// A path as it can be shown on one line of a terminal: control characters and bytes that are not
/// UTF-8 escaped (`\n`, `\xff`), so a hostile file name cannot break the line or drive the
/// terminal. Other paths are shown as they are.
pub fn shown(path: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                s.extend(c.escape_default());
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    PathBuf::from(s)
}

fn unreadable(path: &Path, e: std::io::Error) -> Error {
    Error::Read {
        path: shown(path),
        source: e,
    }
}

/// Visit every entry under `root` (not `root` itself): each directory's entries in byte order of
/// their names, each directory before what it holds, symlinks never followed.
fn walk(root: &Path, visit: &mut dyn FnMut(&Path, &Path, Kind) -> Result<()>) -> Result<()> {
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
fn open_file(path: &Path) -> std::io::Result<Option<File>> {
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

/// The context file's writer: remembers a failed write, so that an error from the tar builder is
/// told apart as the context file's (disk full) or the input file's.
struct Tracked<W> {
    inner: W,
    failed: bool,
}

impl<W: Write> Write for Tracked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| self.failed = true)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}

type ContextTar = tar::Builder<Tracked<BufWriter<File>>>;

/// Add `root` as `name`/: directories, regular files (streamed, sparse files kept sparse), and
/// symlinks stored as symlinks with their target as written, never followed; FIFOs, sockets and
/// devices are skipped (never opened) and returned. Names are taken as bytes: non-UTF-8 bytes,
/// newlines and names over 100 bytes (GNU long-name entries) go in unchanged.
fn append_tree(
    tar: &mut ContextTar,
    out: &Path,
    name: &str,
    root: &Path,
    skipped: &mut Vec<Skipped>,
) -> Result<()> {
    let fail = |tar: &ContextTar, path: &Path, e: std::io::Error| {
        if tar.get_ref().failed {
            Error::WriteFile {
                path: out.to_path_buf(),
                source: e,
            }
        } else {
            unreadable(path, e)
        }
    };
    tar.append_dir(name, root).map_err(|e| fail(tar, root, e))?;
    walk(root, &mut |path, rel, kind| {
        let dest = Path::new(name).join(rel);
        let r = match kind {
            Kind::Dir => tar.append_dir(&dest, path),
            // follow_symlinks(false): the link itself, whatever it points at.
            Kind::Symlink => tar.append_path_with_name(path, &dest),
            Kind::File => match open_file(path).map_err(|e| unreadable(path, e))? {
                Some(mut f) => tar.append_file(&dest, &mut f),
                None => {
                    skipped.push(Skipped {
                        path: path.to_path_buf(),
                        kind: "no longer a regular file",
                    });
                    Ok(())
                }
            },
            Kind::Special(what) => {
                skipped.push(Skipped {
                    path: path.to_path_buf(),
                    kind: what,
                });
                Ok(())
            }
        };
        r.map_err(|e| fail(tar, path, e))
    })
}

/// Write the build context tar to `out`: the Dockerfile, the app as `app/`, the buildpacks as
/// `buildpacks/N/`, streamed (memory does not grow with the app). Symlinks are stored as
/// symlinks, never followed; FIFOs, sockets and devices are skipped and returned.
pub fn write_context(
    out: &Path,
    dockerfile: &str,
    app: &Path,
    buildpacks: &[Buildpack],
) -> Result<Vec<Skipped>> {
    let werr = |e: std::io::Error| Error::WriteFile {
        path: out.to_path_buf(),
        source: e,
    };
    let file = File::create(out).map_err(werr)?;
    let mut tar = tar::Builder::new(Tracked {
        inner: BufWriter::new(file),
        failed: false,
    });
    tar.follow_symlinks(false);
    // No GNU sparse entries (type 'S'): Docker's build context reader refuses them ("unhandled
    // tar header type 83"), so a sparse file goes in whole, its holes as zeros.
    tar.sparse(false);
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .map_err(werr)?;
    let mut skipped = Vec::new();
    append_tree(&mut tar, out, "app", app, &mut skipped)?;
    for (i, bp) in buildpacks.iter().enumerate() {
        append_tree(
            &mut tar,
            out,
            &format!("buildpacks/{i}"),
            &bp.dir,
            &mut skipped,
        )?;
    }
    let mut w = tar.into_inner().map_err(werr)?;
    w.flush().map_err(werr)?;
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = load_buildpack(&zpath, dir.path(), 0)
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
        let bp = load_buildpack(&zpath, dir.path(), 0).unwrap();
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
        let e = load_buildpack(dir.path(), dir.path(), 0).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("no bin/"));
        let f = dir.path().join("x.zip");
        std::fs::write(&f, b"not a zip").unwrap();
        let e = load_buildpack(&f, dir.path(), 0).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("readable zip"), "{e}");
    }

    #[test]
    fn dockerfile_refuses_unsafe_users_and_images() {
        assert!(valid_image_ref("cloudfoundry/cflinuxfs4:latest"));
        assert!(!valid_image_ref("x\nRUN curl evil"));
        let d = dockerfile(
            "stack",
            Some("bad user; rm -rf /"),
            Some("vcap"),
            2,
            &[("io.x", "1"), ("bad", "a\"b")],
        );
        assert!(d.contains("u='';"), "{d}");
        assert!(d.contains("/tmp/deps/0 /tmp/deps/1"), "{d}");
        assert!(
            d.contains("USER root"),
            "a non-root stack user needs root for the RUN: {d}"
        );
        assert!(
            d.contains("FROM stack\nLABEL io.x=\"1\"\n"),
            "labels first: {d}"
        );
        assert!(!d.contains("a\"b"), "{d}");
        assert!(!dockerfile("stack", None, None, 1, &[]).contains("USER root"));
    }

    /// An entry of a context tar: (path bytes, entry type, link target bytes, size).
    type Entry = (Vec<u8>, tar::EntryType, Option<Vec<u8>>, u64);

    fn entries(tar_path: &Path) -> Vec<Entry> {
        let mut a = tar::Archive::new(File::open(tar_path).unwrap());
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path_bytes().into_owned(),
                    e.header().entry_type(),
                    e.link_name_bytes().map(|l| l.into_owned()),
                    e.header().size().unwrap(),
                )
            })
            .collect()
    }

    fn entry<'a>(list: &'a [Entry], path: &[u8]) -> &'a Entry {
        list.iter()
            .find(|e| e.0 == path || e.0.strip_suffix(b"/") == Some(path))
            .unwrap_or_else(|| panic!("no {:?} in the context", String::from_utf8_lossy(path)))
    }

    /// write_context on another thread: a FIFO that blocked it would fail the test, not hang it.
    fn write_within(out: &Path, app: &Path, secs: u64) -> Result<Vec<Skipped>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (out, app) = (out.to_path_buf(), app.to_path_buf());
        std::thread::spawn(move || {
            let _ = tx.send(write_context(&out, "FROM x\n", &app, &[]));
        });
        rx.recv_timeout(std::time::Duration::from_secs(secs))
            .expect("write_context returns (a FIFO must not block it)")
    }

    #[test]
    fn symlinks_out_of_the_app_are_stored_as_links_never_followed() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let secret = outside.join("secret");
        let marker = "SECRET-CONTENT-OUTSIDE-THE-APP-7f3a9";
        std::fs::write(&secret, marker).unwrap();
        let app = dir.path().join("work/app");
        std::fs::create_dir_all(app.join("sub")).unwrap();
        std::fs::write(app.join("index.html"), "hi").unwrap();
        symlink(&secret, app.join("absolute")).unwrap();
        symlink("../../outside/secret", app.join("relative")).unwrap();
        symlink("../../../outside", app.join("sub/dir")).unwrap();
        symlink("loop", app.join("loop")).unwrap();
        symlink("/nonexistent/dangling", app.join("dangling")).unwrap();
        assert!(check_tree(&app).unwrap().is_empty());
        let out = dir.path().join("context.tar");
        assert!(write_within(&out, &app, 30).unwrap().is_empty());
        let bytes = std::fs::read(&out).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "the content of a file outside the app is in the context"
        );
        let list = entries(&out);
        let target = secret.as_os_str().as_encoded_bytes().to_vec();
        for (path, to) in [
            (&b"app/absolute"[..], &target[..]),
            (b"app/relative", b"../../outside/secret"),
            (b"app/sub/dir", b"../../../outside"),
            (b"app/loop", b"loop"),
            (b"app/dangling", b"/nonexistent/dangling"),
        ] {
            let e = entry(&list, path);
            assert_eq!(e.1, tar::EntryType::Symlink, "{path:?}");
            assert_eq!(e.2.as_deref(), Some(to), "{path:?}");
            assert_eq!(e.3, 0);
        }
        assert_eq!(entry(&list, b"app/index.html").3, 2);
        // Nothing from inside the linked directory.
        assert!(!list.iter().any(|e| e.0.starts_with(b"app/sub/dir/")));
    }

    #[test]
    fn fifos_sockets_and_devices_are_skipped_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        std::fs::write(app.join("kept"), "x").unwrap();
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
        // A FIFO with no writer: opening it for reading blocks until one comes.
        nix::unistd::mkfifo(&app.join("fifo"), mode).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(app.join("socket")).unwrap();
        // /dev/null's numbers; creating a node needs root (CAP_MKNOD).
        let dev = nix::sys::stat::mknod(
            &app.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            mode,
            nix::sys::stat::makedev(1, 3),
        )
        .is_ok();
        let mut expected = vec![("fifo", "a FIFO (named pipe)"), ("socket", "a unix socket")];
        if dev {
            expected.insert(1, ("null", "a character device"));
        }
        let expected: Vec<Skipped> = expected
            .into_iter()
            .map(|(n, kind)| Skipped {
                path: app.join(n),
                kind,
            })
            .collect();
        assert_eq!(check_tree(&app).unwrap(), expected);
        let out = dir.path().join("context.tar");
        assert_eq!(write_within(&out, &app, 30).unwrap(), expected);
        let names: Vec<Vec<u8>> = entries(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(names, [&b"Dockerfile"[..], b"app", b"app/kept"]);
        let line = expected[0].describe();
        assert!(line.contains("/app/fifo: not staged: a FIFO"), "{line}");
        // A regular file swapped for a FIFO after the listing: open_file does not block either.
        assert!(open_file(&app.join("fifo")).unwrap().is_none());
    }

    #[test]
    fn odd_names_go_in_byte_for_byte() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let long = "n".repeat(200);
        let long_dir = "d".repeat(120);
        let names: Vec<Vec<u8>> = vec![
            b"new\nline".to_vec(),
            b"not-utf8-\xff\xfe".to_vec(),
            b"-rf".to_vec(),
            b"--help".to_vec(),
            b" spaced \t".to_vec(),
            b"esc\x1b[31mred".to_vec(),
            "caf\u{e9}".as_bytes().to_vec(),
            long.as_bytes().to_vec(),
            format!("{long_dir}/{long}").into_bytes(),
        ];
        std::fs::create_dir(app.join(&long_dir)).unwrap();
        for n in &names {
            std::fs::write(app.join(OsStr::from_bytes(n)), n).unwrap();
        }
        let long_target = format!("/{}", "t".repeat(150));
        std::os::unix::fs::symlink(&long_target, app.join("long-link")).unwrap();
        let out = dir.path().join("context.tar");
        assert!(write_within(&out, &app, 30).unwrap().is_empty());
        let list = entries(&out);
        for n in &names {
            let mut path = b"app/".to_vec();
            path.extend_from_slice(n);
            let e = entry(&list, &path);
            assert_eq!(e.1, tar::EntryType::Regular);
            assert_eq!(e.3, n.len() as u64);
        }
        let e = entry(&list, b"app/long-link");
        assert_eq!(e.2.as_deref(), Some(long_target.as_bytes()));
        // Shown on one line, escaped.
        let s = shown(&app.join(OsStr::from_bytes(b"a\nb\xff\x1bc\\d\xc3\xa9")));
        let s = s.to_str().unwrap();
        assert!(s.ends_with(r"/a\nb\xff\u{1b}c\\dé"), "{s}");
        assert!(!s.chars().any(char::is_control));
    }

    #[test]
    fn sparse_and_large_files_stream_through_as_plain_entries() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        // A file with no data block, and one of real data.
        let sparse = File::create(app.join("sparse")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(app.join("data"), &data).unwrap();
        let out = dir.path().join("context.tar");
        write_within(&out, &app, 60).unwrap();
        // Docker refuses GNU sparse entries (type 'S', "unhandled tar header type 83"): the
        // sparse file is a plain one in the context, its holes written out.
        let list = entries(&out);
        let e = entry(&list, b"app/sparse");
        assert_eq!((e.1, e.3), (tar::EntryType::Regular, 64 << 20));
        assert!(list.iter().all(|e| e.1 != tar::EntryType::GNUSparse));
        assert!(std::fs::metadata(&out).unwrap().len() > (72 << 20));
        let mut a = tar::Archive::new(File::open(&out).unwrap());
        let mut found = false;
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if &*e.path_bytes() == b"app/data" {
                let mut back = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut back).unwrap();
                found = back == data;
            }
        }
        assert!(found, "app/data is in the context, byte for byte");
    }

    #[test]
    fn a_path_too_long_to_open_is_exit_2_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        // Past PATH_MAX (4096): made one level at a time, relative to the last.
        let seg = "s".repeat(250);
        let mut fd = nix::fcntl::open(
            &app,
            nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        for _ in 0..18 {
            nix::sys::stat::mkdirat(
                &fd,
                seg.as_str(),
                nix::sys::stat::Mode::from_bits_truncate(0o755),
            )
            .unwrap();
            fd = nix::fcntl::openat(
                &fd,
                seg.as_str(),
                nix::fcntl::OFlag::O_DIRECTORY,
                nix::sys::stat::Mode::empty(),
            )
            .unwrap();
        }
        let e = check_tree(&app).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.starts_with("cannot read ") && msg.contains(&seg),
            "{msg}"
        );
        assert!(msg.contains("too long"), "{msg}");
        let e = write_within(&dir.path().join("c.tar"), &app, 30).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        // TempDir's drop removes the tree (std's remove_dir_all works relative to each parent).
        drop(fd);
    }
}
