//! The one way the tests drive the real binary: [`Agc`], a builder that takes the expected outcome
//! up front (exit code, and where relevant the verdict and the disallowed flows), runs the binary
//! as a child of its own (so its pid is known) under a hard timeout, checks the expectations with
//! stdout and stderr in the panic message, and then checks that the run left nothing behind
//! ([`super::leftovers`]). It returns the [`Outcome`] for further assertions.
//!
//! ```ignore
//! Agc::stage(&["leak-udp"])
//!     .expect_exit(1)
//!     .expect_verdict("fail")
//!     .expect_disallowed(&[flow("udp", "203.0.113.30", Some(69), "supply")])
//!     .run();
//! ```
//!
//! A run that a test must signal or watch mid-way is [`Agc::spawn`]ed instead: [`Running`] waits
//! for a line on stderr, sends signals, and [`Running::finish`] does what `run` does.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::leftovers::{self, Before};
use super::{assert_junit_valid, ensure_stack, root, STACK_IMAGE};

/// Every child is killed after this long, whatever it is doing.
pub const HARD_TIMEOUT: Duration = Duration::from_secs(240);

/// A flow as the tests name it: protocol ("other/47" for protocol "other"), remote address and
/// port, and the phase it was attributed to ("-" for none, as in analyze).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    pub proto: String,
    pub remote: String,
    pub port: Option<u16>,
    pub phase: String,
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.port.map_or("-".to_string(), |p| p.to_string());
        write!(f, "{} {} {port} in {}", self.proto, self.remote, self.phase)
    }
}

pub fn flow(proto: &str, remote: &str, port: Option<u16>, phase: &str) -> Flow {
    Flow {
        proto: proto.into(),
        remote: remote.into(),
        port,
        phase: phase.into(),
    }
}

/// A flow with no phase (analyze, observe's flows outside staging).
pub fn flow_(proto: &str, remote: &str, port: Option<u16>) -> Flow {
    flow(proto, remote, port, "-")
}

fn flow_of(f: &Value) -> Flow {
    let proto = match f["protocol"].as_str().expect("a flow has a protocol") {
        "other" => format!("other/{}", f["protocol_number"]),
        p => p.to_string(),
    };
    Flow {
        proto,
        remote: f["remote"].as_str().expect("a flow has a remote").into(),
        port: f["remote_port"].as_u64().map(|p| p as u16),
        phase: f["phase"].as_str().unwrap_or("-").into(),
    }
}

#[derive(Clone, Debug)]
enum Exit {
    /// One of these exit codes.
    Code(Vec<i32>),
    /// Killed by this signal.
    Signal(i32),
}

/// One run of the real binary, to be.
pub struct Agc {
    args: Vec<OsString>,
    wrapper: Vec<OsString>,
    env: Vec<(String, Option<OsString>)>,
    dir: tempfile::TempDir,
    json: bool,
    junit: bool,
    pcap: bool,
    stage_timeout: Option<String>,
    hard_timeout: Duration,
    context: Vec<String>,
    exit: Option<Exit>,
    verdict: Option<String>,
    disallowed: Option<Vec<Flow>>,
    kept_image: bool,
    cwd: Option<PathBuf>,
    stdin: Option<PathBuf>,
}

impl Agc {
    /// `airgap-check ARGS…`, with no report options. Extracted zips go to a cache of the run's
    /// own (AIRGAP_CHECK_CACHE), so runs neither share nor leave one.
    pub fn new<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Agc {
        let dir = tempfile::tempdir().expect("a temporary folder for the reports");
        let cache = dir.path().join("zip-cache").into_os_string();
        Agc {
            args: args.iter().map(|a| a.as_ref().to_owned()).collect(),
            wrapper: Vec::new(),
            env: vec![("AIRGAP_CHECK_CACHE".into(), Some(cache))],
            dir,
            json: false,
            junit: false,
            pcap: false,
            stage_timeout: None,
            hard_timeout: HARD_TIMEOUT,
            context: Vec::new(),
            exit: None,
            verdict: None,
            disallowed: None,
            kept_image: false,
            cwd: None,
            stdin: None,
        }
    }

    /// `airgap-check analyze --pcap PCAP --json … --junit …` (60 s at most).
    pub fn analyze(pcap: &str) -> Agc {
        let mut a = Agc::new(&["analyze", "--pcap", pcap]);
        a.json = true;
        a.junit = true;
        a.hard_timeout = Duration::from_secs(60);
        a
    }

    /// `airgap-check --app fixtures/apps/hello --buildpack fixtures/buildpacks/BP… --stack-image
    /// <fixture stack> --timeout 120s --json … --junit … --pcap …`. A buildpack with a `/` is a
    /// path as it is.
    pub fn stage(buildpacks: &[&str]) -> Agc {
        let bps: Vec<PathBuf> = buildpacks
            .iter()
            .map(|bp| {
                if bp.contains('/') {
                    PathBuf::from(bp)
                } else {
                    PathBuf::from(format!("fixtures/buildpacks/{bp}"))
                }
            })
            .collect();
        Agc::staging(Path::new("fixtures/apps/hello"), &bps)
    }

    /// A staging run of several apps (fixtures/apps/APP, or paths with a `/`) with these
    /// buildpacks, on the fixture stack: --json only (a test adds --junit and a --pcap folder).
    pub fn stage_apps(apps: &[&str], buildpacks: &[&str]) -> Agc {
        let fixture = |kind: &str, name: &str| {
            if name.contains('/') {
                PathBuf::from(name)
            } else {
                PathBuf::from(format!("fixtures/{kind}/{name}"))
            }
        };
        let bps: Vec<PathBuf> = buildpacks
            .iter()
            .map(|b| fixture("buildpacks", b))
            .collect();
        let mut a = Agc::staging(&fixture("apps", apps[0]), &bps);
        for app in &apps[1..] {
            a = a.arg("--app").arg(fixture("apps", app));
        }
        a.json_only()
    }

    /// A staging run of this app with this buildpack, on the fixture stack.
    pub fn stage_app(app: &Path, bp: &Path) -> Agc {
        Agc::staging(app, &[bp.to_path_buf()])
    }

    fn staging(app: &Path, bps: &[PathBuf]) -> Agc {
        ensure_stack();
        let mut a = Agc::new(&["--app"]).arg(app);
        for bp in bps {
            a = a.arg("--buildpack").arg(bp);
        }
        a = a.arg("--stack-image").arg(STACK_IMAGE);
        a.json = true;
        a.junit = true;
        a.pcap = true;
        a.stage_timeout = Some("120s".into());
        a
    }

    /// `airgap-check watch CONTAINER --json … --junit … --pcap …`.
    pub fn watch(container: &str) -> Agc {
        let mut a = Agc::new(&["watch", container]);
        a.json = true;
        a.junit = true;
        a.pcap = true;
        a
    }

    /// `airgap-check prune`.
    pub fn prune() -> Agc {
        Agc::new(&["prune"])
    }

    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Agc {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: &[S]) -> Agc {
        self.args.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Agc {
        self.env.push((k.into(), Some(v.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, k: &str) -> Agc {
        self.env.push((k.into(), None));
        self
    }

    /// Run the binary through this command, which must end by exec'ing it with its arguments
    /// (setpriv, `sh -c '…; exec "$@"' sh`), so the child's pid stays the binary's.
    pub fn wrapped_in<S: AsRef<std::ffi::OsStr>>(mut self, wrapper: &[S]) -> Agc {
        self.wrapper = wrapper.iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// No --json, --junit or --pcap.
    pub fn no_reports(mut self) -> Agc {
        self.json = false;
        self.junit = false;
        self.pcap = false;
        self
    }

    /// --json only.
    pub fn json_only(mut self) -> Agc {
        self.json = true;
        self.junit = false;
        self.pcap = false;
        self
    }

    /// The staging run's own `--timeout`.
    pub fn stage_timeout(mut self, t: &str) -> Agc {
        self.stage_timeout = Some(t.into());
        self
    }

    /// Kill the child after this long (default [`HARD_TIMEOUT`]).
    pub fn hard_timeout(mut self, t: Duration) -> Agc {
        self.hard_timeout = t;
        self
    }

    /// Run in this folder instead of the repository root.
    pub fn in_dir(mut self, dir: impl Into<PathBuf>) -> Agc {
        self.cwd = Some(dir.into());
        self
    }

    /// Feed this file to the child's stdin (instead of nothing).
    pub fn stdin_from(mut self, file: impl Into<PathBuf>) -> Agc {
        self.stdin = Some(file.into());
        self
    }

    /// The folder the reports go to, removed with the outcome: for files a test adds.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--allowlist FILE` with this YAML.
    pub fn allowlist_text(self, yaml: &str) -> Agc {
        let p = self.dir.path().join("allow.yaml");
        std::fs::write(&p, yaml).unwrap();
        self.arg("--allowlist").arg(p)
    }

    /// Said in the panic message when an expectation fails.
    pub fn context(mut self, c: impl Into<String>) -> Agc {
        self.context.push(c.into());
        self
    }

    pub fn expect_exit(mut self, code: i32) -> Agc {
        self.exit = Some(Exit::Code(vec![code]));
        self
    }

    /// Any of these exit codes.
    pub fn expect_exit_in(mut self, codes: &[i32]) -> Agc {
        self.exit = Some(Exit::Code(codes.to_vec()));
        self
    }

    /// Killed by this signal (the test sends it).
    pub fn expect_signal(mut self, sig: i32) -> Agc {
        self.exit = Some(Exit::Signal(sig));
        self
    }

    /// The JSON report's verdict (needs --json).
    pub fn expect_verdict(mut self, verdict: &str) -> Agc {
        self.verdict = Some(verdict.into());
        self
    }

    /// Exactly these disallowed flows, in any order (needs --json).
    pub fn expect_disallowed(mut self, flows: &[Flow]) -> Agc {
        let mut v = flows.to_vec();
        v.sort();
        self.disallowed = Some(v);
        self
    }

    fn json_path(&self) -> PathBuf {
        self.dir.path().join("r.json")
    }

    fn junit_path(&self) -> PathBuf {
        self.dir.path().join("r.xml")
    }

    fn pcap_path(&self) -> PathBuf {
        self.dir.path().join("r.pcap")
    }

    fn command(&self) -> Command {
        // Cargo builds the binary for the integration tests and says where.
        let bin = env!("CARGO_BIN_EXE_airgap-check");
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.current_dir(self.cwd.clone().unwrap_or_else(root))
            .args(&self.args)
            .env("NO_COLOR", "1");
        if let Some(t) = &self.stage_timeout {
            cmd.args(["--timeout", t]);
        }
        if self.json {
            cmd.arg("--json").arg(self.json_path());
        }
        if self.junit {
            cmd.arg("--junit").arg(self.junit_path());
        }
        if self.pcap {
            cmd.arg("--pcap").arg(self.pcap_path());
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let stdin = match &self.stdin {
            Some(f) => Stdio::from(std::fs::File::open(f).expect("the stdin file opens")),
            None => Stdio::null(),
        };
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Run to the end; check the expectations and that nothing is left.
    /// Run with --keep-image and expect the run's image to be there afterwards; the check then
    /// removes it before it looks for anything else left behind.
    pub fn expect_kept_image(mut self) -> Agc {
        self.kept_image = true;
        self.arg("--keep-image")
    }

    pub fn run(self) -> Outcome {
        self.spawn().finish()
    }

    /// Start the run; the test drives it through [`Running`].
    // The child is reaped by wait4 (in `Running::reap`), which std cannot see.
    #[allow(clippy::zombie_processes)]
    pub fn spawn(self) -> Running {
        assert!(
            self.exit.is_some(),
            "the test must say which exit it expects (expect_exit) before running {:?}",
            self.args
        );
        let before = Before::now();
        let mut cmd = self.command();
        let described = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {described}: {e}"));
        let pid = child.id();
        let stdout = Pipe::read(child.stdout.take().unwrap());
        let stderr = Pipe::read(child.stderr.take().unwrap());
        drop(child);
        // Tell when the child has exited, without reaping it: its pid stays its own until
        // `reap`, so a kill never hits another process.
        let (tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            // SAFETY: a plain waitid on our own child with WNOWAIT; siginfo is plain data.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let r =
                unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
            let _ = tx.send(r);
        });
        Running {
            agc: self,
            described,
            pid,
            before,
            started: Instant::now(),
            stdout,
            stderr,
            exited,
            reaped: None,
        }
    }
}

/// What a child wrote on one of its pipes, read as it comes.
#[derive(Clone)]
struct Pipe {
    buf: Arc<(Mutex<Piped>, Condvar)>,
}

#[derive(Default)]
struct Piped {
    bytes: Vec<u8>,
    closed: bool,
}

impl Pipe {
    fn read(mut from: impl Read + Send + 'static) -> Pipe {
        let pipe = Pipe {
            buf: Arc::new((Mutex::new(Piped::default()), Condvar::new())),
        };
        let p = pipe.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                let n = from.read(&mut chunk).unwrap_or(0);
                let (lock, cv) = &*p.buf;
                let mut b = lock.lock().unwrap();
                if n == 0 {
                    b.closed = true;
                    cv.notify_all();
                    return;
                }
                b.bytes.extend_from_slice(&chunk[..n]);
                cv.notify_all();
            }
        });
        pipe
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.0.lock().unwrap().bytes).into_owned()
    }

    /// Wait until the text holds `marker` (true), the pipe is closed, or the deadline passes.
    fn wait_for(&self, marker: &str, deadline: Instant) -> bool {
        let (lock, cv) = &*self.buf;
        let mut b = lock.lock().unwrap();
        loop {
            if String::from_utf8_lossy(&b.bytes).contains(marker) {
                return true;
            }
            let now = Instant::now();
            if b.closed || now >= deadline {
                return false;
            }
            b = cv.wait_timeout(b, deadline - now).unwrap().0;
        }
    }

    /// Wait for the end of the pipe (the child and whatever inherited it closed it).
    fn wait_closed(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let (lock, cv) = &*self.buf;
        let mut b = lock.lock().unwrap();
        while !b.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            b = cv.wait_timeout(b, deadline - now).unwrap().0;
        }
        true
    }
}

/// How the child ended, from wait4.
#[derive(Clone, Copy)]
struct Reaped {
    status: i32,
    max_rss_kib: u64,
    killed_at_timeout: bool,
}

/// A run in progress. Dropping it kills the child.
pub struct Running {
    agc: Agc,
    described: String,
    pid: u32,
    before: Before,
    started: Instant,
    stdout: Pipe,
    stderr: Pipe,
    exited: mpsc::Receiver<i32>,
    reaped: Option<Reaped>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What the child wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Wait until stderr shows `marker`; panics with what it showed after `within`, or when the
    /// child closed it first. Returns stderr so far.
    pub fn wait_for_stderr(&self, marker: &str, within: Duration) -> String {
        let ok = self.stderr.wait_for(marker, Instant::now() + within);
        assert!(
            ok,
            "{}: never printed {marker:?} (within {within:?}): {}",
            self.described,
            self.stderr.text()
        );
        self.stderr.text()
    }

    /// Send a signal to the running child.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        assert!(self.reaped.is_none(), "signal to a child already reaped");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), sig)
            .unwrap_or_else(|e| panic!("kill -{sig} {}: {e}", self.pid));
    }

    /// Wait for the child to end, for `within` at most (then it is killed; the hard timeout
    /// still bounds it). No checks: [`Running::finish`] does them.
    pub fn wait(&mut self, within: Duration) {
        if self.reaped.is_some() {
            return;
        }
        let hard = self.agc.hard_timeout.saturating_sub(self.started.elapsed());
        let within = within.min(hard);
        let killed = match self.exited.recv_timeout(within) {
            Ok(_) => false,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Still its own pid: nothing has reaped it.
                // SAFETY: kill with a pid we spawned and have not reaped.
                unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
                let _ = self.exited.recv_timeout(Duration::from_secs(30));
                within == hard
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => false,
        };
        self.reap(killed);
    }

    fn reap(&mut self, killed_at_timeout: bool) {
        let mut status = 0;
        // SAFETY: wait4 on our own child; rusage is plain data.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(self.pid as i32, &mut status, 0, &mut ru) };
        assert_eq!(
            r,
            self.pid as i32,
            "wait4 {}: {}",
            self.pid,
            std::io::Error::last_os_error()
        );
        self.reaped = Some(Reaped {
            status,
            max_rss_kib: ru.ru_maxrss as u64,
            killed_at_timeout,
        });
    }

    /// Wait for the end (within the hard timeout), then check the expectations and that nothing
    /// of the run is left.
    pub fn finish(mut self) -> Outcome {
        self.wait(HARD_TIMEOUT);
        let r = self.reaped.unwrap();
        // The pipes close when the child is gone, unless something it started holds them.
        let closed = self.stdout.wait_closed(Duration::from_secs(10))
            & self.stderr.wait_closed(Duration::from_secs(10));
        let (code, signal) = if libc::WIFEXITED(r.status) {
            (libc::WEXITSTATUS(r.status), None)
        } else {
            (-1, Some(libc::WTERMSIG(r.status)))
        };
        let agc = std::mem::replace(&mut self.agc, Agc::new::<&str>(&[]));
        let json_text = agc
            .json
            .then(|| std::fs::read_to_string(agc.json_path()).ok())
            .flatten();
        let junit = agc
            .junit
            .then(|| std::fs::read_to_string(agc.junit_path()).ok())
            .flatten();
        let stdout = self.stdout.text();
        let stderr = self.stderr.text();
        let json: Option<Value> = json_text.as_deref().map(|s| {
            serde_json::from_str(s).unwrap_or_else(|e| {
                panic!("the JSON report does not parse: {e}\n{s}\n--- stderr\n{stderr}")
            })
        });
        let run_id = json
            .as_ref()
            .and_then(|j| j["stage"]["run_id"].as_str().map(String::from))
            .or_else(|| run_id_in(&stderr));
        let o = Outcome {
            code,
            signal,
            pid: self.pid,
            stdout,
            stderr,
            json,
            json_text,
            junit,
            run_id,
            max_rss_kib: r.max_rss_kib,
            dir: agc.dir,
        };

        let mut wrong = Vec::new();
        if r.killed_at_timeout {
            wrong.push(format!(
                "killed after the hard timeout of {:?}",
                agc.hard_timeout
            ));
        }
        if !closed {
            wrong.push("its stdout or stderr stayed open 10 s after it exited".into());
        }
        match agc.exit.as_ref().unwrap() {
            Exit::Code(codes) if signal.is_some() || !codes.contains(&code) => {
                wrong.push(format!("expected exit {codes:?}, got {}", o.status_text()))
            }
            Exit::Signal(s) if signal != Some(*s) => wrong.push(format!(
                "expected death by signal {s}, got {}",
                o.status_text()
            )),
            _ => {}
        }
        if let Some(v) = &agc.verdict {
            match &o.json {
                Some(j) if j["verdict"] == v.as_str() => {}
                Some(j) => wrong.push(format!("expected verdict {v:?}, got {}", j["verdict"])),
                None => wrong.push(format!("expected verdict {v:?}, but no JSON report")),
            }
        }
        if let Some(want) = &agc.disallowed {
            match &o.json {
                Some(_) => {
                    let got = o.disallowed();
                    if &got != want {
                        wrong.push(format!("expected disallowed flows {want:#?}\ngot {got:#?}"));
                    }
                }
                None => wrong.push(format!(
                    "expected disallowed flows {want:?}, but no JSON report"
                )),
            }
        }
        if agc.kept_image {
            match o.run_id.as_deref().map(leftovers::remove_kept_image) {
                Some(Ok(())) => {}
                Some(Err(e)) => wrong.push(format!("expected the run's image kept: {e}")),
                None => wrong.push("expected the run's image kept, but no run id".into()),
            }
        }
        let left = leftovers::find(self.pid, o.run_id.as_deref(), &self.before);
        if !left.is_empty() {
            wrong.push(format!(
                "run {} (pid {}) left behind:\n  {}",
                o.run_id.as_deref().unwrap_or("(no run id)"),
                self.pid,
                left.join("\n  ")
            ));
        }
        assert!(
            wrong.is_empty(),
            "{}\n{}{}\n--- stdout\n{}--- stderr\n{}",
            self.described,
            agc.context
                .iter()
                .map(|c| format!("{c}\n"))
                .collect::<String>(),
            wrong.join("\n"),
            o.stdout,
            o.stderr
        );
        o
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            // SAFETY: a pid we spawned and have not reaped.
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
            let mut status = 0;
            unsafe { libc::waitpid(self.pid as i32, &mut status, 0) };
        }
    }
}

/// The run id a staging run prints first: `run 0123456789ab: …`.
pub fn run_id_in(stderr: &str) -> Option<String> {
    stderr.match_indices("run ").find_map(|(i, _)| {
        let rest = &stderr[i + 4..];
        let id = rest.get(..12)?;
        (id.bytes().all(|b| b.is_ascii_hexdigit()) && rest[12..].starts_with(':'))
            .then(|| id.to_string())
    })
}

/// How a run ended, and what it wrote.
pub struct Outcome {
    /// The exit code; -1 when a signal ended it.
    pub code: i32,
    pub signal: Option<i32>,
    pub pid: u32,
    pub stdout: String,
    pub stderr: String,
    pub json: Option<Value>,
    pub json_text: Option<String>,
    pub junit: Option<String>,
    pub run_id: Option<String>,
    /// Peak resident set of the child, from wait4.
    pub max_rss_kib: u64,
    dir: tempfile::TempDir,
}

impl Outcome {
    fn status_text(&self) -> String {
        match self.signal {
            Some(s) => format!("death by signal {s}"),
            None => format!("exit {}", self.code),
        }
    }

    pub fn json(&self) -> &Value {
        self.json.as_ref().unwrap_or_else(|| {
            panic!(
                "no JSON report; {}\n{}\n{}",
                self.status_text(),
                self.stdout,
                self.stderr
            )
        })
    }

    pub fn flows(&self) -> &Vec<Value> {
        self.json()["flows"].as_array().expect("flows")
    }

    /// The flow to this remote endpoint; panics with the list when absent.
    pub fn flow(&self, proto: &str, remote: &str, port: Option<u16>) -> &Value {
        self.flows()
            .iter()
            .find(|f| {
                f["protocol"] == proto
                    && f["remote"] == remote
                    && f["remote_port"] == port.map_or(Value::Null, Value::from)
            })
            .unwrap_or_else(|| {
                panic!(
                    "no {proto} flow to {remote} {port:?} in {}",
                    serde_json::to_string_pretty(self.flows()).unwrap()
                )
            })
    }

    /// Every disallowed flow, sorted.
    pub fn disallowed(&self) -> Vec<Flow> {
        let mut v: Vec<Flow> = self
            .flows()
            .iter()
            .filter(|f| f["allowed"] == false)
            .map(flow_of)
            .collect();
        v.sort();
        v
    }

    /// The names of every disallowed flow, in the report's order.
    pub fn disallowed_names(&self) -> Vec<Vec<String>> {
        self.flows()
            .iter()
            .filter(|f| f["allowed"] == false)
            .map(|f| {
                f["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    }

    /// (name, exit code) of every phase.
    pub fn phases(&self) -> Vec<(String, Value)> {
        self.json()["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["exit_code"].clone(),
                )
            })
            .collect()
    }

    /// The run's report folder (reports, and files the test put there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn json_path(&self) -> PathBuf {
        self.dir.path().join("r.json")
    }

    pub fn junit_path(&self) -> PathBuf {
        self.dir.path().join("r.xml")
    }

    pub fn pcap_path(&self) -> PathBuf {
        self.dir.path().join("r.pcap")
    }

    /// Validate the JUnit report against the Jenkins xUnit schema with xmllint.
    pub fn assert_junit_valid(&self) {
        assert_junit_valid(&self.junit_path(), self.junit.as_deref());
    }
}
