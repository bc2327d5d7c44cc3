//! Running a list of commands through one `docker exec`: a small POSIX shell script (the driver)
//! runs them one after another, each when told to, and says after each that it ended and how.
//!
//! Why: on Engine 26 an exec costs about 40 ms to start, as much as the rest of a tiny buildpack's
//! four phases together; one exec for all of them brings a sealed run close to the bare minimum (a
//! single `docker run` of the phases). What stays as with one exec per command: each command runs
//! as the same user with the same environment and working folder, its stdin is /dev/null, its
//! exit status is the shell's `$?` (126 not executable, 127 not found, 128+n killed by signal n),
//! and it starts only when `run_next` is called, so the phase's start time is taken before any of
//! its packets.
//!
//! The protocol. The driver reads a tag (random, per run) from its stdin, then for each command
//! reads a line: `go` runs the command, anything else (or the end of stdin) ends the driver. After
//! a command it prints `TAG INDEX STATUS` on stdout and on stderr: each stream is a pipe, so once
//! both markers are read, everything the command wrote on either is too. A command could print a
//! marker of its own (it inherits the driver's stdout and stderr, and a process of the staging
//! user might read the tag from the driver's memory): the driver prints exactly one marker per
//! stream per command, so a forged marker shows as one too many, or out of order, or as a driver
//! that did not end as it must. Any of these makes the run's phases untrustworthy, and `finish`
//! says so (staging fails; the flows are judged as always).

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::ExecConfig;
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::Result;
use crate::staging::engine::exec::{start_attached, ExecOutcome, Input, Output, MAX_LINE};
use crate::staging::engine::EngineError;

/// The commands to run, and as whom.
pub struct Script<'a> {
    pub commands: &'a [Vec<String>],
    /// A user name or `uid[:gid]`; empty: the container's default.
    pub user: &'a str,
    pub env: &'a [String],
    pub working_dir: &'a str,
}

/// The driver, started in the container and waiting for its first `go`.
pub struct Driver {
    docker: Docker,
    exec_id: String,
    input: Input,
    output: Output,
    output_open: bool,
    tag: String,
    /// The index of the next command to run.
    next: usize,
    count: usize,
    deadline: tokio::time::Instant,
    /// Whatever broke the protocol, first: the phases' ends and statuses cannot be trusted.
    broken: Option<String>,
    /// The driver's own exit status, once it has ended.
    ended: Option<i64>,
}

/// One command's end, as the driver said it (or as its own end implied).
enum Marker {
    Ended { index: usize, status: i64 },
    Bad,
}

/// The shell script: variables of its own (unset first, so that none is taken from, or exported
/// into, the commands' environment), every argument single-quoted.
fn script(commands: &[Vec<String>]) -> String {
    let mut s = String::from("unset __agc_t __agc_go __agc_rc\nIFS= read -r __agc_t || exit 0\n");
    for (i, argv) in commands.iter().enumerate() {
        let quoted: Vec<String> = argv.iter().map(|a| quote(a)).collect();
        s.push_str(&format!(
            "IFS= read -r __agc_go || exit 0\n[ \"$__agc_go\" = go ] || exit 0\n{} </dev/null\n__agc_rc=$?\nprintf '%s {i} %s\\n' \"$__agc_t\" \"$__agc_rc\"\nprintf '%s {i} %s\\n' \"$__agc_t\" \"$__agc_rc\" >&2\n",
            quoted.join(" ")
        ));
    }
    s.push_str("exit 0\n");
    s
}

/// A word the shell takes as it is.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Sixteen random bytes in hex.
fn new_tag() -> String {
    let mut b = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    if read.is_err() {
        // Not secret then, only unlikely: forging is still caught by counting (see the module).
        let t = crate::flows::now_micros() as u128 ^ (u128::from(std::process::id()) << 64);
        b = t.to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Driver {
    /// Start the driver in the container; nothing of the commands runs yet.
    pub async fn start(
        docker: &Docker,
        container: &str,
        s: &Script<'_>,
        deadline: tokio::time::Instant,
    ) -> Result<Driver> {
        let cfg = ExecConfig {
            cmd: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                script(s.commands),
                "airgap-check-phases".into(),
            ]),
            env: Some(s.env.to_vec()),
            user: (!s.user.is_empty()).then(|| s.user.to_string()),
            working_dir: Some(s.working_dir.into()),
            ..ExecConfig::default()
        };
        let (exec_id, output, input) = start_attached(docker, container, cfg, true).await?;
        let mut d = Driver {
            docker: docker.clone(),
            exec_id,
            input,
            output,
            output_open: true,
            tag: new_tag(),
            next: 0,
            count: s.commands.len(),
            deadline,
            broken: None,
            ended: None,
        };
        let tag_line = format!("{}\n", d.tag);
        d.send(&tag_line).await?;
        Ok(d)
    }

    /// Whether the protocol broke (then no further command can be run through it).
    pub fn broken(&self) -> bool {
        self.broken.is_some() || self.ended.is_some()
    }

    async fn send(&mut self, line: &str) -> Result<()> {
        self.input
            .write_all(line.as_bytes())
            .await
            .and(self.input.flush().await)
            .map_err(|source| EngineError::ExecInput { source }.into())
    }

    /// Run the next command, feeding its output lines to `on_line`, until the driver says it
    /// ended, the driver itself ends, or the deadline passes (`exit_code: None`).
    pub async fn run_next(&mut self, on_line: impl FnMut(&str)) -> Result<ExecOutcome> {
        let index = self.next;
        self.next += 1;
        if index >= self.count || self.ended.is_some() {
            return Err(EngineError::DriverDone.into());
        }
        self.send("go\n").await?;
        let mut lines = StreamLines::new(on_line, &self.tag);
        let status = self.follow(index, &mut lines).await?;
        lines.flush();
        Ok(ExecOutcome { exit_code: status })
    }

    /// Read the output until both markers of command `index` are in, or the driver ends, or the
    /// deadline passes.
    async fn follow<F: FnMut(&str)>(
        &mut self,
        index: usize,
        lines: &mut StreamLines<F>,
    ) -> Result<Option<i64>> {
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.reset(); // the first look at the driver after 100 ms, not at once
        let mut seen: [Option<i64>; 2] = [None, None];
        loop {
            if let [Some(a), Some(b)] = seen {
                if a != b {
                    self.break_protocol("its two markers give different statuses");
                }
                return Ok(Some(a));
            }
            tokio::select! {
                chunk = self.output.next(), if self.output_open => match chunk {
                    Some(Ok(log)) => {
                        for (stream, marker) in lines.push(log) {
                            self.on_marker(index, stream, marker, &mut seen);
                        }
                    }
                    _ => self.output_open = false,
                },
                _ = poll.tick() => {
                    if let Some(status) = self.driver_ended().await? {
                        // Ended in the middle of a command (killed: by the kernel for lack of
                        // memory, by a process of the command): that command's status is the
                        // driver's. Markers still in the pipes are read first.
                        self.drain(lines, index, &mut seen).await;
                        if let [Some(a), _] | [_, Some(a)] = seen {
                            return Ok(Some(a));
                        }
                        self.break_protocol(&format!("it ended (status {status}) in the middle of a phase"));
                        return Ok(Some(status));
                    }
                    if tokio::time::Instant::now() >= self.deadline {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn on_marker(&mut self, index: usize, stream: usize, m: Marker, seen: &mut [Option<i64>; 2]) {
        if !accept(index, stream, m, seen) {
            self.break_protocol("a phase printed a marker of its own");
        }
    }

    fn break_protocol(&mut self, why: &str) {
        self.broken.get_or_insert_with(|| why.to_string());
    }

    /// The driver's exit status if it has ended.
    async fn driver_ended(&mut self) -> Result<Option<i64>> {
        if self.ended.is_none() {
            let i = self
                .docker
                .inspect_exec(&self.exec_id)
                .await
                .map_err(|source| EngineError::InspectExec { source })?;
            if i.running == Some(false) {
                self.ended = i.exit_code;
            }
        }
        Ok(self.ended)
    }

    /// What is still in the pipes once the driver has ended (a daemon a command left may hold
    /// them open: not waited on for long).
    async fn drain<F: FnMut(&str)>(
        &mut self,
        lines: &mut StreamLines<F>,
        index: usize,
        seen: &mut [Option<i64>; 2],
    ) {
        let until = tokio::time::Instant::now() + Duration::from_millis(300);
        while self.output_open {
            match tokio::time::timeout_at(until, self.output.next()).await {
                Ok(Some(Ok(log))) => {
                    for (stream, marker) in lines.push(log) {
                        self.on_marker(index, stream, marker, seen);
                    }
                }
                _ => self.output_open = false,
            }
        }
    }

    /// End the driver (no more commands run) and say whether the protocol held: `Some(why)` when
    /// it did not. After a timeout this does not wait: the container is stopped next anyway.
    pub async fn finish(mut self, timed_out: bool) -> Result<Option<String>> {
        if timed_out {
            return Ok(self.broken);
        }
        // Closed or not (the driver may have ended), the driver gets no further `go`.
        let _ = self.send("end\n").await;
        let _ = self.input.shutdown().await;
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut sink = StreamLines::new(|_: &str| {}, &self.tag);
        loop {
            if let Some(status) = self.driver_ended().await? {
                let mut none = [None, None];
                self.drain(&mut sink, usize::MAX, &mut none).await;
                if status != 0 && self.broken.is_none() {
                    self.broken = Some(format!("it ended with status {status}"));
                }
                return Ok(self.broken);
            }
            if tokio::time::Instant::now() >= until {
                return Ok(Some("it did not end when told to".into()));
            }
            // Markers printed after the last phase (forged ones) are read as they come.
            if let Ok(Some(Ok(log))) =
                tokio::time::timeout(Duration::from_millis(10), self.output.next()).await
            {
                if !sink.push(log).is_empty() {
                    self.break_protocol("a phase printed a marker of its own");
                }
            }
        }
    }
}

/// Output chunks of the two streams → lines (each stream its own partial line, never unbounded),
/// the markers taken out.
struct StreamLines<F: FnMut(&str)> {
    partial: [String; 2],
    on_line: F,
    tag: String,
}

impl<F: FnMut(&str)> StreamLines<F> {
    fn new(on_line: F, tag: &str) -> Self {
        StreamLines {
            partial: [String::new(), String::new()],
            on_line,
            tag: tag.to_string(),
        }
    }

    /// Take a chunk; the markers it completed, with their stream (0 stdout, 1 stderr).
    fn push(&mut self, log: LogOutput) -> Vec<(usize, Marker)> {
        let (stream, bytes) = match log {
            LogOutput::StdErr { message } => (1, message),
            other => (0, other.into_bytes()),
        };
        let mut found = Vec::new();
        self.partial[stream].push_str(&String::from_utf8_lossy(&bytes));
        while let Some(nl) = self.partial[stream].find('\n') {
            let line: String = self.partial[stream].drain(..=nl).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            match line.find(self.tag.as_str()) {
                None => (self.on_line)(line),
                Some(at) => {
                    if at > 0 {
                        (self.on_line)(&line[..at]);
                    }
                    found.push((stream, parse_marker(&line[at + self.tag.len()..])));
                }
            }
        }
        if self.partial[stream].len() > MAX_LINE {
            let long = std::mem::take(&mut self.partial[stream]);
            (self.on_line)(&long);
        }
        found
    }

    fn flush(&mut self) {
        for p in &mut self.partial {
            if !p.is_empty() {
                (self.on_line)(&std::mem::take(p));
            }
        }
    }
}

/// Take a marker of command `index` on `stream` into `seen`: false when the driver cannot have
/// printed it (another command's, a second one on the stream, a malformed one).
fn accept(index: usize, stream: usize, m: Marker, seen: &mut [Option<i64>; 2]) -> bool {
    match m {
        Marker::Ended { index: i, status } if i == index && seen[stream].is_none() => {
            seen[stream] = Some(status);
            true
        }
        _ => false,
    }
}

/// " INDEX STATUS" after the tag.
fn parse_marker(rest: &str) -> Marker {
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let index = words.next().and_then(|w| w.parse().ok());
    let status = words.next().and_then(|w| w.parse().ok());
    match (index, status, words.next()) {
        (Some(index), Some(status), None) => Marker::Ended { index, status },
        _ => Marker::Bad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_quotes_every_argument_and_keeps_its_variables_out_of_the_environment() {
        let s = script(&[
            vec!["/tmp/buildpacks/0/bin/detect".into(), "/tmp/app".into()],
            vec!["/x/it's".into(), "$HOME".into()],
        ]);
        assert!(s.starts_with("unset __agc_t __agc_go __agc_rc\n"));
        assert!(s.contains("'/tmp/buildpacks/0/bin/detect' '/tmp/app' </dev/null\n"));
        assert!(s.contains(r"'/x/it'\''s' '$HOME' </dev/null"));
        assert_eq!(s.matches("printf").count(), 4);
        assert!(s.ends_with("exit 0\n"));
    }

    #[test]
    fn markers_are_taken_out_of_the_lines_and_a_partial_line_before_one_is_kept() {
        let mut shown = Vec::new();
        let tag = "abc123";
        let markers = {
            let mut l = StreamLines::new(|line: &str| shown.push(line.to_string()), tag);
            let mut m = l.push(LogOutput::StdOut {
                message: "one\ntwo, no newline".into(),
            });
            m.extend(l.push(LogOutput::StdOut {
                message: "abc123 0 7\n".into(),
            }));
            m.extend(l.push(LogOutput::StdErr {
                message: "abc123 0 7\nabc123 zero\n".into(),
            }));
            m
        };
        assert_eq!(shown, ["one", "two, no newline"]);
        let got: Vec<_> = markers
            .iter()
            .map(|(s, m)| match m {
                Marker::Ended { index, status } => format!("{s}:{index}:{status}"),
                Marker::Bad => format!("{s}:bad"),
            })
            .collect();
        assert_eq!(got, ["0:0:7", "1:0:7", "1:bad"]);
    }

    #[test]
    fn only_one_marker_per_stream_of_the_running_command_is_accepted() {
        let ended = |index, status| Marker::Ended { index, status };
        let mut seen = [None, None];
        assert!(accept(2, 0, ended(2, 0), &mut seen));
        // A second on the same stream, another command's, a malformed one: forged.
        assert!(!accept(2, 0, ended(2, 0), &mut seen));
        assert!(!accept(2, 1, ended(3, 0), &mut seen));
        assert!(!accept(2, 1, Marker::Bad, &mut seen));
        assert!(accept(2, 1, ended(2, 1), &mut seen));
        assert_eq!(seen, [Some(0), Some(1)]);
    }
}
