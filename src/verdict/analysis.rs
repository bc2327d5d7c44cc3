//! The analysis: the judged result of a run, the one model every report is written from (the
//! writers live in [`crate::report`]). [`super::conclude`] makes it.

use std::fmt;
use std::net::IpAddr;

use std::sync::Arc;

use crate::capture::attribution::Process;
use crate::flows::{Counts, Flow, Micros};
use crate::manifest::StackDeps;
use crate::verdict::explain::DependencyRef;
use crate::verdict::notes::Note;
use crate::verdict::Verdict;

/// Which command made the analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A saved capture.
    Analyze,
    /// A staging run, sealed or observed.
    Stage,
    /// A running container, watched.
    Watch,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Analyze => "analyze",
            Mode::Stage => "stage",
            Mode::Watch => "watch",
        }
    }

    /// Whether packets came from a live capture (drops and the canary can be measured).
    pub fn is_live(self) -> bool {
        self != Mode::Analyze
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One flow with its judgement.
#[derive(Clone, Debug)]
pub struct Judged {
    pub flow: Flow,
    pub remote_addr: IpAddr,
    pub remote_port: Option<u16>,
    /// Names known for the remote end (DNS, SNI, Host); empty when unknown.
    pub names: Vec<String>,
    /// The allowing rule's name, or `None` when the flow is disallowed.
    pub rule: Option<String>,
    /// The deny rule that disallowed the flow, whatever allows it; `None` when none matched.
    pub denied: Option<String>,
    /// The staging phase the flow started in, when known.
    pub phase: Option<String>,
    /// The buildpack (0-based) whose phase that was, when known.
    pub phase_buildpack: Option<usize>,
    /// The container process that made it, when the sinkhole could tell (sealed runs).
    pub process: Option<Arc<Process>>,
    /// The manifest dependency it was after, when one matches.
    pub dependency: Option<DependencyRef>,
    /// How many manifest entries matched (the chosen one among them).
    pub candidates: usize,
}

impl Judged {
    pub fn allowed(&self) -> bool {
        self.rule.is_some()
    }

    pub fn destination(&self) -> Destination {
        Destination {
            proto: self.flow.key.proto,
            addr: self.remote_addr,
            port: self.remote_port,
        }
    }
}

/// What the capture was and how far it can be trusted, as measured. The conclusion turns these
/// facts into notes ([`Note`]); the reports show them.
#[derive(Clone, Debug, Default)]
pub struct CaptureHealth {
    pub link_type: String,
    /// Packets the capture dropped (live runs); `None` when not measured.
    pub dropped: Option<u64>,
    /// Of `dropped`: dropped by the container's interface before the capture.
    pub dropped_by_interface: u64,
    /// Of `dropped`: frames the container sent past a capture inside its namespace.
    pub unseen: u64,
    /// The drop counters are the last reading before the interface went away.
    pub stats_stale: bool,
    /// Whether the canary was seen (live runs); `None` when none was sent.
    pub canary_seen: Option<bool>,
    /// Why the canary was not seen, or why none was sent.
    pub canary_problem: Option<String>,
    /// libpcap's message when the capture file ends mid-record.
    pub cut_short: Option<String>,
    /// Frames whose timestamps were clamped into years 0000-9999.
    pub ts_clamped: u64,
    /// Timestamp of the earliest frame; times in the console are relative to the earliest of it
    /// and every flow's first packet (see [`Analysis::start_ts`]).
    pub first_ts: Option<Micros>,
    /// A live capture error that ended the capture early.
    pub error: Option<String>,
    /// The --pcap file that could not be written whole, and why.
    pub save_error: Option<(String, String)>,
    /// Where the packets were captured (an interface and its namespace, or a file).
    pub point: String,
    /// The libpcap filter the capture was limited to, if any.
    pub filter: Option<String>,
}

/// The whole judged result.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub mode: Mode,
    /// The capture file (analyze), the app (stage), or the container (watch).
    pub input: String,
    pub allowlist: String,
    pub local: Vec<IpAddr>,
    pub flows: Vec<Judged>,
    pub counts: Counts,
    pub capture: CaptureHealth,
    pub verdict: Verdict,
    /// Things the reader must know, in the order they are shown.
    pub notes: Vec<Note>,
    /// Staging runs: the lifecycle phases, in the order they ran.
    pub phases: Vec<PhaseRecord>,
    /// Staging runs: what was staged and how.
    pub stage: Option<StageInfo>,
    /// The DNS questions the capture holds, in order of first query.
    pub dns_queries: Vec<DnsQueryRecord>,
    /// Staging runs: the manifest of each buildpack that has a readable one, for the run's stack.
    pub manifests: Vec<StackDeps>,
}

/// One name and type asked of DNS, with the phase of its first query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsQueryRecord {
    pub name: String,
    pub qtype: String,
    pub count: u64,
    pub first_seen: Micros,
    /// The staging phase of the first query (`setup` before the first phase); `None` for analyze.
    pub phase: Option<String>,
    pub phase_buildpack: Option<usize>,
}

impl Analysis {
    /// The analysis of a run that failed before it could observe anything (one app of several):
    /// no verdict can be given.
    pub fn failed(
        mode: Mode,
        input: &std::path::Path,
        allowlist: &crate::verdict::policy::Allowlist,
        error: &crate::error::Error,
    ) -> Analysis {
        let notes = vec![Note::RunFailed(error.to_string())];
        Analysis {
            mode,
            input: input.display().to_string(),
            allowlist: allowlist.source.clone(),
            local: Vec::new(),
            flows: Vec::new(),
            counts: Counts::default(),
            capture: CaptureHealth::default(),
            verdict: crate::verdict::conclude::verdict(&[], &notes),
            notes,
            phases: Vec::new(),
            stage: None,
            dns_queries: Vec::new(),
            manifests: Vec::new(),
        }
    }

    /// Several runs as one, for what looks across them (the suggested allowlist): every flow
    /// and DNS question of each.
    pub fn merged(runs: &[Analysis]) -> Analysis {
        let mut all = runs.first().cloned().unwrap_or_else(|| {
            Analysis::failed(
                Mode::Stage,
                std::path::Path::new(""),
                &crate::verdict::policy::Allowlist::default_list(),
                &crate::error::Error::Internal("no runs".into()),
            )
        });
        all.input = format!("{} apps", runs.len());
        for a in runs.iter().skip(1) {
            all.flows.extend(a.flows.iter().cloned());
            all.dns_queries.extend(a.dns_queries.iter().cloned());
        }
        all
    }

    /// Whether the capture itself leaves something unseen (a note says what), whatever the verdict
    /// says about the flows that were seen.
    pub fn capture_untrusted(&self) -> bool {
        self.verdict == Verdict::Inconclusive || self.notes.iter().any(Note::undermines_the_capture)
    }

    /// The notes as the sentences the reports show.
    pub fn note_texts(&self) -> Vec<String> {
        self.notes.iter().map(Note::to_string).collect()
    }

    /// Where relative times ("+1.500s") count from: the earliest timestamp known, so that no offset
    /// is negative even when the capture's records are not in time order.
    pub fn start_ts(&self) -> Option<Micros> {
        let flows = self.flows.iter().map(|f| f.flow.stats.first_seen);
        self.capture.first_ts.into_iter().chain(flows).min()
    }
}

/// What a staging run was asked to do.
#[derive(Clone, Debug, Default)]
pub struct StageInfo {
    /// The run's id: the value of the io.airgap-check.run label on what it created.
    pub run_id: String,
    pub stack_image: String,
    pub stack: String,
    pub buildpacks: Vec<String>,
    pub user: String,
    /// "sealed", or the Docker network the phases ran on (observe mode).
    pub network: String,
    /// How the app and the buildpacks reached the container: "mount" or "copy".
    pub context: String,
    /// `copy`: the Dockerfile the staging image was built with.
    pub dockerfile: Option<String>,
    /// `mount`: the container's mounts, "target ← source (how)".
    pub mounts: Vec<String>,
    /// Cloud Native Buildpacks: the group and what its builds declared.
    pub cnb: Option<crate::staging::cnb::Record>,
}

/// One lifecycle phase as it ran.
#[derive(Clone, Debug)]
pub struct PhaseRecord {
    /// detect, supply, finalize, compile or release.
    pub name: String,
    pub buildpack: usize,
    pub buildpack_name: String,
    pub started: Micros,
    pub ended: Micros,
    /// `None` when it did not finish (timeout).
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    /// Whether a non-zero exit fails staging (detect's does not).
    pub must_succeed: bool,
    /// The kernel's out-of-memory killer killed a process of the container during the phase.
    pub oom_killed: bool,
    /// The last lines of its output (stdout and stderr together).
    pub output_tail: Vec<String>,
}

impl PhaseRecord {
    pub fn failed(&self) -> bool {
        self.must_succeed && (self.timed_out || self.exit_code != Some(0))
    }

    /// "exited 1", or "exited 137 (out of memory)" when the OOM killer struck during the phase.
    pub fn exited(&self) -> String {
        let c = self.exit_code.unwrap_or(-1);
        if self.oom_killed {
            format!("exited {c} (out of memory: the kernel killed a process for lack of memory)")
        } else {
            format!("exited {c}")
        }
    }

    /// "supply (buildpack 0: go-buildpack)".
    pub fn label(&self) -> String {
        format!(
            "{} (buildpack {}: {})",
            self.name, self.buildpack, self.buildpack_name
        )
    }
}

/// The phase something that happened at `t` belongs to, and its buildpack: the last phase that
/// had started by then; "setup" (no buildpack) before the first phase; nothing when there are no
/// phases (analyze).
pub fn phase_at(t: Micros, phases: &[PhaseRecord]) -> (Option<String>, Option<usize>) {
    match phases.iter().rev().find(|p| p.started <= t) {
        Some(p) => (Some(p.name.clone()), Some(p.buildpack)),
        None if !phases.is_empty() => (Some("setup".into()), None),
        None => (None, None),
    }
}

/// A destination: what JUnit reports one testcase for in analyze mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    pub proto: u8,
    pub addr: IpAddr,
    pub port: Option<u16>,
}

/// Flows grouped by destination, in order of each destination's first flow.
pub fn by_destination(flows: &[Judged]) -> Vec<(Destination, Vec<&Judged>)> {
    let mut order: Vec<(Destination, Vec<&Judged>)> = Vec::new();
    let mut index = ahash::AHashMap::new();
    for f in flows {
        let d = f.destination();
        let i = *index.entry(d).or_insert_with(|| {
            order.push((d, Vec::new()));
            order.len() - 1
        });
        order[i].1.push(f);
    }
    order
}
