//! Reports: console summary, JSON and JUnit, all written from one [`Analysis`].

pub mod cnb;
pub mod console;
pub mod explain;
pub mod github;
pub mod inspect;
pub mod json;
pub mod junit;
pub mod redact;
pub mod suggest;
pub mod text;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::cli::{ReportArgs, Verbosity};
use crate::error::{Error, Result};
use crate::flows::Micros;
use crate::verdict::analysis::Analysis;
use crate::verdict::policy::Allowlist;

/// "203.0.113.5:443", "[2001:db8::7]:80", or the bare address when there is no port.
pub fn endpoint(addr: IpAddr, port: Option<u16>) -> String {
    match (addr, port) {
        (IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, None) => a.to_string(),
    }
}

/// RFC 3339 UTC with microseconds. Times outside years 0000-9999 cannot be written in RFC 3339;
/// they are clamped to that range (reading a capture clamps them already, and says so in a note).
pub fn timestamp(us: Micros) -> String {
    let us = us.clamp(crate::capture::MIN_MICROS, crate::capture::MAX_MICROS);
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "0000-01-01T00:00:00Z".into())
}

/// "+12.345s" relative to the start of the capture ("-0.250s" if `us` is before `start`).
pub fn relative(us: Micros, start: Option<Micros>) -> String {
    let d = i128::from(us) - i128::from(start.unwrap_or(us));
    let sign = if d < 0 { '-' } else { '+' };
    let d = d.unsigned_abs();
    format!("{sign}{}.{:03}s", d / 1_000_000, (d % 1_000_000) / 1000)
}

/// A temporary file beside `pcap` for a live capture to write into; it is renamed into place only
/// when the reports are written, so a failed run leaves no half capture behind.
pub fn pcap_tempfile(pcap: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".airgap-check-")
        .suffix(".pcap")
        .tempfile_in(
            pcap.parent()
                .filter(|x| !x.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
        .map_err(|e| crate::error::Error::WriteFile {
            path: pcap.to_path_buf(),
            source: e,
        })
}

/// Fail early, before any work, when a report could not be written.
pub fn check_writable(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(Error::Write {
            path: path.to_path_buf(),
            reason: "is a directory, expected a file path".into(),
        });
    }
    if !parent.is_dir() {
        return Err(Error::Write {
            path: path.to_path_buf(),
            reason: format!("directory {} does not exist", parent.display()),
        });
    }
    // A read-only file system or a folder this user may not write to: say so now, not after the
    // run. (A full disk is found when the file is written.)
    tempfile::Builder::new()
        .prefix(".airgap-check-probe-")
        .tempfile_in(parent)
        .map(drop)
        .map_err(|e| {
            let e = e
                .raw_os_error()
                .map_or(e, std::io::Error::from_raw_os_error);
            Error::Write {
                path: path.to_path_buf(),
                reason: format!("cannot create files in {}: {e}", parent.display()),
            }
        })
}

/// Fills one report.
pub type Fill<'a> = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + 'a>;

/// Write a report atomically: a temporary file beside the target, renamed into place, so a failed
/// run never leaves half a report behind. The file is created with mode 0644 (less the umask).
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    write_together(vec![(path, Box::new(fill))])
}

/// Write several reports all or nothing: each is rendered into a temporary file beside its target
/// first, and only when every one of them was written are they renamed into place. Should a rename
/// still fail, the reports already renamed are removed again: a run that exits 2 leaves no report
/// from this run behind, never one report without the other. Files get mode 0644 (less the umask).
pub fn write_together(reports: Vec<(&Path, Fill<'_>)>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut rendered = Vec::with_capacity(reports.len());
    for (path, fill) in reports {
        let err = |e: std::io::Error| Error::WriteFile {
            path: path.to_path_buf(),
            source: e,
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // On error, the temporary files made so far are removed when `rendered` is dropped.
        let mut tmp = tempfile::Builder::new()
            .prefix(".airgap-check-")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(parent)
            .map_err(err)?;
        {
            let mut w = std::io::BufWriter::new(tmp.as_file_mut());
            fill(&mut w).map_err(err)?;
            w.flush().map_err(err)?;
        }
        rendered.push((path, tmp));
    }
    let mut placed: Vec<&Path> = Vec::new();
    for (path, tmp) in rendered {
        if let Err(e) = tmp.persist(path) {
            for p in placed {
                let _ = std::fs::remove_file(p);
            }
            return Err(Error::Write {
                path: path.to_path_buf(),
                reason: e.error.to_string(),
            });
        }
        placed.push(path);
    }
    Ok(())
}

/// Where a run's results go: the report files asked for, the allowlist the suggestion starts
/// from, and the capture file to move into place (when one was asked for and written whole).
pub struct Outputs<'a> {
    pub reports: &'a ReportArgs,
    pub allowlist: &'a Allowlist,
    /// Capture files to move into place (one per app).
    pub pcap: Vec<(PathBuf, tempfile::NamedTempFile)>,
    /// -q: the verdict line only.
    pub verbosity: Verbosity,
}

/// The path that means "stdout" for a report (`--json -`).
pub const STDOUT: &str = "-";

/// Whether a report path means stdout.
pub fn is_stdout(p: &Path) -> bool {
    p == Path::new(STDOUT)
}

impl ReportArgs {
    /// Fail early, before any work, when a report (or the capture file `pcap`) could not be
    /// written.
    pub fn check_writable(&self, pcap: Option<&Path>) -> Result<()> {
        let named = [
            ("--json", &self.json),
            ("--junit", &self.junit),
            ("--suggest-allowlist", &self.suggest_allowlist),
        ];
        let to_stdout: Vec<&str> = named
            .iter()
            .filter(|(_, p)| p.as_deref().is_some_and(is_stdout))
            .map(|(o, _)| *o)
            .collect();
        if let [_, second, ..] = to_stdout.as_slice() {
            return Err(Error::BadArgument {
                option: second,
                value: STDOUT.into(),
                expected: format!(
                    "expected a file: {} already writes to stdout, and only one report can",
                    to_stdout[0]
                ),
            });
        }
        if pcap.is_some_and(is_stdout) {
            return Err(Error::BadArgument {
                option: "--pcap",
                value: STDOUT.into(),
                expected: "expected a file: the capture cannot be written to stdout".into(),
            });
        }
        for out in named
            .into_iter()
            .filter_map(|(_, p)| p.as_deref())
            .filter(|p| !is_stdout(p))
            .chain(pcap)
        {
            check_writable(out)?;
        }
        Ok(())
    }

    /// Whether a report goes to stdout (the console summary then goes to stderr).
    pub fn uses_stdout(&self) -> bool {
        [&self.json, &self.junit, &self.suggest_allowlist]
            .into_iter()
            .any(|p| p.as_deref().is_some_and(is_stdout))
    }
}

/// The end of every command: the reports (all or none), the capture file moved into place when
/// there is one to keep, the summary on stdout; the exit code is the verdict's.
pub fn deliver(a: &Analysis, out: Outputs<'_>) -> Result<i32> {
    write_reports(a, out.reports, out.allowlist)?;
    keep_captures(out.pcap)?;
    print_summary(a, out.verbosity, out.reports.uses_stdout());
    Ok(a.verdict.exit_code())
}

/// As [`deliver`], for several apps' runs: one report of each kind holding every run; the exit
/// code is 1 if any run failed, else 3 if any was inconclusive, else 0.
pub fn deliver_runs(runs: &[Analysis], out: Outputs<'_>) -> Result<i32> {
    let merged = Analysis::merged(runs);
    let mut reports: Vec<(&Path, Fill<'_>)> = Vec::new();
    if let Some(p) = &out.reports.json {
        reports.push((p, Box::new(|w| json::write_runs(runs, w))));
    }
    if let Some(p) = &out.reports.junit {
        reports.push((p, Box::new(|w| junit::write_runs(runs, w))));
    }
    if let Some(p) = &out.reports.suggest_allowlist {
        reports.push((p, Box::new(|w| suggest::write(&merged, out.allowlist, w))));
    }
    write_all(reports)?;
    keep_captures(out.pcap)?;
    let stdout_taken = out.reports.uses_stdout();
    let mut buf = Vec::new();
    let _ = if out.verbosity.quiet {
        console::runs_verdict_line(runs, &mut buf)
    } else {
        console::write_runs(runs, &mut buf)
    };
    to_console(&buf, stdout_taken);
    for a in runs {
        github_actions(a, stdout_taken);
    }
    Ok(crate::verdict::Verdict::of_all(runs.iter().map(|a| a.verdict)).exit_code())
}

/// Move the capture files written whole into place.
fn keep_captures(pcap: Vec<(PathBuf, tempfile::NamedTempFile)>) -> Result<()> {
    for (p, t) in pcap {
        t.persist(&p).map_err(|e| Error::Write {
            path: p.clone(),
            reason: e.error.to_string(),
        })?;
    }
    Ok(())
}

/// Write the file reports a run asked for — JSON, JUnit, suggested allowlist — all or none
/// ([`write_together`]). `base` is the allowlist the run judged with.
pub fn write_reports(a: &Analysis, r: &ReportArgs, base: &Allowlist) -> Result<()> {
    let mut all: Vec<(&Path, Fill<'_>)> = Vec::new();
    if let Some(p) = &r.json {
        all.push((p, Box::new(|w| json::write(a, w))));
    }
    if let Some(p) = &r.junit {
        all.push((p, Box::new(|w| junit::write(a, w))));
    }
    if let Some(p) = &r.suggest_allowlist {
        all.push((p, Box::new(|w| suggest::write(a, base, w))));
    }
    write_all(all)
}

/// Write reports: the files all or none ([`write_together`]), then the one for stdout, if any.
fn write_all(all: Vec<(&Path, Fill<'_>)>) -> Result<()> {
    let (to_stdout, files): (Vec<_>, Vec<_>) = all.into_iter().partition(|(p, _)| is_stdout(p));
    let stdout = to_stdout.into_iter().next().map(|(_, fill)| fill);
    // The report for stdout is rendered first and written last, once every file is in place:
    // all reports or none still holds for the files.
    let rendered = stdout
        .map(|fill| {
            let mut buf = Vec::new();
            fill(&mut buf).map(|()| buf)
        })
        .transpose()
        .map_err(|e| Error::WriteFile {
            path: STDOUT.into(),
            source: e,
        })?;
    write_together(files)?;
    if let Some(buf) = rendered {
        let mut out = std::io::stdout().lock();
        out.write_all(&buf)
            .and_then(|()| out.flush())
            .map_err(|e| Error::WriteFile {
                path: STDOUT.into(),
                source: e,
            })?;
    }
    Ok(())
}

/// The console summary — on stdout, or on stderr when a report took stdout; with -q its verdict
/// line only — then, on GitHub Actions, annotations and the step summary.
pub fn print_summary(a: &Analysis, v: Verbosity, stdout_taken: bool) {
    let mut buf = Vec::new();
    let _ = if v.quiet {
        console::verdict_line(a, &mut buf)
    } else {
        console::write(a, &mut buf)
    };
    to_console(&buf, stdout_taken);
    github_actions(a, stdout_taken);
}

/// The console summary on stdout, or on stderr when a report took stdout.
fn to_console(buf: &[u8], stdout_taken: bool) {
    if stdout_taken {
        let mut err = anstream::stderr().lock();
        let _ = err.write_all(buf).and_then(|()| err.flush());
    } else {
        let mut out = anstream::stdout().lock();
        let _ = out.write_all(buf).and_then(|()| out.flush());
    }
}

/// On GitHub Actions: an annotation per disallowed flow and failed phase (GITHUB_ACTIONS=true), on
/// stdout unless a report took it, and a Markdown summary appended to $GITHUB_STEP_SUMMARY when it
/// is set. Failing to write the summary is a warning, not a reason to change the verdict.
pub fn github_actions(a: &Analysis, stdout_taken: bool) {
    if std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
        let mut buf = Vec::new();
        let _ = github::annotations(a, &mut buf);
        let _ = if stdout_taken {
            std::io::stderr().lock().write_all(&buf)
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&buf).and_then(|()| out.flush())
        };
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(github::step_summary(a).as_bytes()));
        if let Err(e) = r {
            eprintln!(
                "airgap-check: warning: cannot append to GITHUB_STEP_SUMMARY {}: {e}",
                std::path::Path::new(&path).display()
            );
        }
    }
}

/// Whether output is going to a GitHub Actions log, where a line starting with "::" is a command.
pub fn in_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_always_rfc3339() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_500_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(timestamp(i64::MAX), "9999-12-31T23:59:59.999999Z");
        assert_eq!(timestamp(i64::MIN), "0000-01-01T00:00:00Z");
        assert_eq!(timestamp(-1_000_000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn relative_times_have_one_sign() {
        assert_eq!(relative(13_250_000, Some(10_000_000)), "+3.250s");
        assert_eq!(relative(10_000_000, Some(13_250_000)), "-3.250s");
        assert_eq!(relative(10_000_000, Some(10_250_000)), "-0.250s");
        assert_eq!(relative(5, None), "+0.000s");
        assert_eq!(relative(i64::MAX, Some(i64::MIN)), "+18446744073709.551s");
    }
}
