//! The Docker build context of a staging run: a generated Dockerfile over the stack image, the app
//! and the buildpacks (directories, or zips extracted safely), as one tar file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::lifecycle::{self, Scripts};

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
    let meta = std::fs::metadata(source).map_err(|e| Error::Unreadable {
        path: source.to_path_buf(),
        reason: e.to_string(),
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
    let file = File::open(zip_path).map_err(|e| Error::Unreadable {
        path: zip_path.to_path_buf(),
        reason: e.to_string(),
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

/// Write the build context tar to `out`. Symlinks are stored as symlinks, never followed.
pub fn write_context(
    out: &Path,
    dockerfile: &str,
    app: &Path,
    buildpacks: &[Buildpack],
) -> Result<()> {
    let werr = |e: std::io::Error| Error::Write {
        path: out.to_path_buf(),
        reason: e.to_string(),
    };
    let file = File::create(out).map_err(werr)?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    tar.follow_symlinks(false);
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .map_err(werr)?;
    tar.append_dir_all("app", app)
        .map_err(|e| Error::Unreadable {
            path: app.to_path_buf(),
            reason: e.to_string(),
        })?;
    for (i, bp) in buildpacks.iter().enumerate() {
        tar.append_dir_all(format!("buildpacks/{i}"), &bp.dir)
            .map_err(|e| Error::Unreadable {
                path: bp.source.clone(),
                reason: e.to_string(),
            })?;
    }
    let mut w = tar.into_inner().map_err(werr)?;
    w.flush().map_err(werr)?;
    Ok(())
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
}
