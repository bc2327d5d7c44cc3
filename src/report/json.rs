//! The JSON report. Its schema is documented in the README ("JSON report"); `schema_version` changes
//! when a field changes meaning or disappears.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::Serialize;

use crate::capture::attribution::Process;
use crate::flows::decode::{has_ports, proto_name};
use crate::flows::{Counts, FlowState};
use crate::report::redact::{redact_argv, redact_request, redact_uri};
use crate::report::timestamp;
use crate::verdict::analysis::{by_destination, Analysis, Judged, Mode, PhaseRecord};
use crate::verdict::explain::MatchedBy;
use crate::verdict::Verdict;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct JsonReport<'a> {
    pub schema_version: u32,
    pub tool: Tool,
    pub mode: Mode,
    pub input: &'a str,
    pub verdict: Verdict,
    pub allowlist: &'a str,
    pub local: &'a [IpAddr],
    pub summary: Summary,
    pub capture: Capture<'a>,
    pub notes: Vec<String>,
    /// Staging runs only: what was staged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<JsonStage<'a>>,
    /// Cloud Native Buildpack runs only: the group, the processes and the layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnb: Option<&'a crate::staging::cnb::Record>,
    /// Staging runs only: the lifecycle phases in the order they ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<Vec<JsonPhase<'a>>>,
    /// Every name and type asked of DNS, in order of first query.
    pub dns_queries: Vec<JsonDnsQuery<'a>>,
    /// Staging runs: one per buildpack with a readable manifest.yml, for the run's stack.
    pub manifests: Vec<JsonManifest<'a>>,
    pub flows: Vec<JsonFlow<'a>>,
}

#[derive(Serialize)]
pub struct JsonManifest<'a> {
    pub buildpack: usize,
    pub stack: &'a str,
    /// How many dependencies it lists for the stack.
    pub dependencies: usize,
    /// How many of them the buildpack holds.
    pub cached: usize,
    pub missing: Vec<JsonMissing<'a>>,
}

#[derive(Serialize)]
pub struct JsonMissing<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// Its credentials redacted ([`redact_uri`]).
    pub uri: Cow<'a, str>,
}

/// The manifest entry behind a flow.
#[derive(Serialize)]
pub struct JsonDependency<'a> {
    pub buildpack: usize,
    pub name: &'a str,
    pub version: &'a str,
    /// Its credentials redacted ([`redact_uri`]).
    pub uri: Cow<'a, str>,
    pub cached: bool,
    /// "url" (the HTTP request's), "command" (named in the process's argv) or "host".
    pub matched_by: MatchedBy,
}

#[derive(Serialize)]
pub struct JsonDnsQuery<'a> {
    pub name: &'a str,
    #[serde(rename = "type")]
    pub qtype: &'a str,
    pub count: u64,
    pub first_seen: String,
    /// The staging phase of the first query; null for analyze.
    pub phase: Option<&'a str>,
    /// The buildpack (0-based) whose phase that was; null when unknown.
    pub phase_buildpack: Option<usize>,
}

#[derive(Serialize)]
pub struct JsonStage<'a> {
    pub run_id: &'a str,
    pub stack_image: &'a str,
    pub stack: &'a str,
    pub buildpacks: &'a [String],
    pub user: &'a str,
    /// "sealed", or the Docker network the phases ran on (observe mode).
    pub network: &'a str,
    /// How the app and the buildpacks reached the container: "mount" or "copy".
    pub context: &'a str,
    /// `copy`: the Dockerfile the staging image was built with; null when mounted.
    pub dockerfile: Option<&'a str>,
    /// `mount`: the container's mounts, "target ← source (how)".
    pub mounts: &'a [String],
}

#[derive(Serialize)]
pub struct JsonPhase<'a> {
    pub name: &'a str,
    pub buildpack: usize,
    pub buildpack_name: &'a str,
    pub started: String,
    pub ended: String,
    pub duration_seconds: f64,
    /// null when the phase did not finish (timeout).
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    /// Whether a non-zero exit fails staging (false for detect).
    pub must_succeed: bool,
    /// The out-of-memory killer killed a process of the container during the phase.
    pub oom_killed: bool,
    pub failed: bool,
    pub disallowed_flows: usize,
    pub output_tail: &'a [String],
}

#[derive(Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Serialize)]
pub struct Summary {
    pub flows: usize,
    pub allowed: usize,
    pub disallowed: usize,
    pub destinations_disallowed: usize,
}

#[derive(Serialize)]
pub struct Capture<'a> {
    pub link_type: &'a str,
    pub packets: u64,
    pub bytes: u64,
    /// Packets the capture dropped; null when not measured (offline analysis).
    pub dropped: Option<u64>,
    /// Whether the canary was seen; null when not applicable (offline analysis).
    pub canary_seen: Option<bool>,
    /// libpcap's message when the file ended mid-record; null otherwise.
    pub cut_short: Option<&'a str>,
    pub first_packet: Option<String>,
    /// Where the packets were captured: a file, or an interface and its namespace.
    pub point: &'a str,
    /// The libpcap filter expression the capture was limited to; null when none.
    pub filter: Option<&'a str>,
    pub housekeeping: Housekeeping,
    pub non_ip: u64,
    pub truncated: u64,
    pub invalid: u64,
    pub fragments: u64,
    pub orphan_fragments: u64,
}

#[derive(Serialize)]
pub struct Housekeeping {
    pub arp: u64,
    pub ndp: u64,
    pub mld: u64,
    pub igmp: u64,
}

#[derive(Serialize)]
pub struct JsonFlow<'a> {
    pub protocol: &'static str,
    pub protocol_number: u8,
    pub src: IpAddr,
    pub src_port: Option<u16>,
    pub dst: IpAddr,
    pub dst_port: Option<u16>,
    pub remote: IpAddr,
    pub remote_port: Option<u16>,
    pub packets: u64,
    pub bytes: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub state: FlowState,
    pub names: &'a [String],
    /// The HTTP request line, or "DNS query A name" for DNS; null when the flow sent neither.
    pub request: Option<String>,
    pub allowed: bool,
    pub rule: Option<&'a str>,
    /// The deny rule that disallowed the flow whatever allowed it; null when none matched.
    pub denied_by: Option<&'a str>,
    pub phase: Option<&'a str>,
    /// The buildpack (0-based) whose phase that was; null when unknown.
    pub phase_buildpack: Option<usize>,
    /// The container process that made it (`pid`, `command`, `parent`); null when not told.
    pub process: Option<JsonProcess>,
    /// The manifest entry it was after; null when none matches.
    pub dependency: Option<JsonDependency<'a>>,
    /// How many manifest entries matched.
    pub candidates: usize,
}

/// A container process, its argv and its parent's with their credentials redacted
/// ([`redact_argv`]).
#[derive(Serialize)]
pub struct JsonProcess {
    pub pid: u32,
    pub command: Vec<String>,
    pub parent: Option<Vec<String>>,
}

impl JsonProcess {
    fn new(p: &Process) -> JsonProcess {
        JsonProcess {
            pid: p.pid,
            command: redact_argv(&p.command),
            parent: p.parent.as_deref().map(redact_argv),
        }
    }
}

impl<'a> JsonReport<'a> {
    pub fn new(a: &'a Analysis) -> JsonReport<'a> {
        let disallowed = a.flows.iter().filter(|f| !f.allowed()).count();
        let destinations_disallowed = by_destination(&a.flows)
            .iter()
            .filter(|(_, fs)| fs.iter().any(|f| !f.allowed()))
            .count();
        JsonReport {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "airgap-check",
                version: env!("CARGO_PKG_VERSION"),
            },
            mode: a.mode,
            input: &a.input,
            verdict: a.verdict,
            allowlist: &a.allowlist,
            local: &a.local,
            summary: Summary {
                flows: a.flows.len(),
                allowed: a.flows.len() - disallowed,
                disallowed,
                destinations_disallowed,
            },
            capture: Capture::new(a),
            notes: a.note_texts(),
            stage: a.stage.as_ref().map(|st| JsonStage {
                run_id: &st.run_id,
                stack_image: &st.stack_image,
                stack: &st.stack,
                buildpacks: &st.buildpacks,
                user: &st.user,
                network: &st.network,
                context: &st.context,
                dockerfile: st.dockerfile.as_deref(),
                mounts: &st.mounts,
            }),
            cnb: a.stage.as_ref().and_then(|st| st.cnb.as_ref()),
            phases: a
                .stage
                .as_ref()
                .map(|_| a.phases.iter().map(|p| JsonPhase::new(a, p)).collect()),
            dns_queries: a
                .dns_queries
                .iter()
                .map(|q| JsonDnsQuery {
                    name: &q.name,
                    qtype: &q.qtype,
                    count: q.count,
                    first_seen: timestamp(q.first_seen),
                    phase: q.phase.as_deref(),
                    phase_buildpack: q.phase_buildpack,
                })
                .collect(),
            manifests: a
                .manifests
                .iter()
                .map(|m| JsonManifest {
                    buildpack: m.buildpack,
                    stack: &m.stack,
                    dependencies: m.dependencies.len(),
                    cached: m.cached(),
                    missing: m
                        .missing()
                        .map(|d| JsonMissing {
                            name: &d.name,
                            version: &d.version,
                            uri: redact_uri(&d.uri),
                        })
                        .collect(),
                })
                .collect(),
            flows: a.flows.iter().map(JsonFlow::new).collect(),
        }
    }
}

impl<'a> Capture<'a> {
    fn new(a: &'a Analysis) -> Capture<'a> {
        let c: &Counts = &a.counts;
        Capture {
            link_type: &a.capture.link_type,
            packets: c.packets,
            bytes: c.bytes,
            dropped: a.capture.dropped,
            canary_seen: a.capture.canary_seen,
            cut_short: a.capture.cut_short.as_deref(),
            first_packet: a.capture.first_ts.map(timestamp),
            point: &a.capture.point,
            filter: a.capture.filter.as_deref(),
            housekeeping: Housekeeping {
                arp: c.arp,
                ndp: c.ndp,
                mld: c.mld,
                igmp: c.igmp,
            },
            non_ip: c.non_ip,
            truncated: c.truncated,
            invalid: c.invalid,
            fragments: c.fragments,
            orphan_fragments: c.orphan_fragments,
        }
    }
}

impl<'a> JsonPhase<'a> {
    fn new(a: &Analysis, p: &'a PhaseRecord) -> JsonPhase<'a> {
        JsonPhase {
            name: &p.name,
            buildpack: p.buildpack,
            buildpack_name: &p.buildpack_name,
            started: timestamp(p.started),
            ended: timestamp(p.ended),
            duration_seconds: ((p.ended - p.started) as f64 / 1e3).round() / 1e3,
            exit_code: p.exit_code,
            timed_out: p.timed_out,
            must_succeed: p.must_succeed,
            oom_killed: p.oom_killed,
            failed: p.failed(),
            disallowed_flows: a
                .flows
                .iter()
                .filter(|f| {
                    !f.allowed()
                        && f.phase.as_deref() == Some(p.name.as_str())
                        && f.phase_buildpack == Some(p.buildpack)
                })
                .count(),
            output_tail: &p.output_tail,
        }
    }
}

impl<'a> JsonFlow<'a> {
    fn new(j: &'a Judged) -> JsonFlow<'a> {
        let k = &j.flow.key;
        let s = &j.flow.stats;
        let ports = has_ports(k.proto);
        JsonFlow {
            protocol: proto_name(k.proto),
            protocol_number: k.proto,
            src: k.src,
            src_port: k.src_port.filter(|_| ports),
            dst: k.dst,
            dst_port: k.dst_port.filter(|_| ports),
            remote: j.remote_addr,
            remote_port: j.remote_port.filter(|_| ports),
            packets: s.packets(),
            bytes: s.bytes(),
            packets_out: s.packets_out,
            bytes_out: s.bytes_out,
            packets_in: s.packets_in,
            bytes_in: s.bytes_in,
            first_seen: timestamp(s.first_seen),
            last_seen: timestamp(s.last_seen),
            state: j.flow.state(),
            names: &j.names,
            request: j
                .flow
                .app
                .as_ref()
                .and_then(|a| a.request())
                .map(|r| redact_request(&r).into_owned()),
            allowed: j.allowed(),
            rule: j.rule.as_deref(),
            denied_by: j.denied.as_deref(),
            phase: j.phase.as_deref(),
            phase_buildpack: j.phase_buildpack,
            process: j.process.as_deref().map(JsonProcess::new),
            dependency: j.dependency.as_ref().map(|d| JsonDependency {
                buildpack: d.buildpack,
                name: &d.name,
                version: &d.version,
                uri: redact_uri(&d.uri),
                cached: d.cached,
                matched_by: d.matched_by,
            }),
            candidates: j.candidates,
        }
    }
}

/// Several apps' runs: the verdict of them all, and each app's report.
#[derive(Serialize)]
pub struct JsonRuns<'a> {
    pub schema_version: u32,
    pub tool: Tool,
    pub mode: Mode,
    pub verdict: Verdict,
    pub summary: RunsSummary,
    pub runs: Vec<JsonRun<'a>>,
}

#[derive(Serialize)]
pub struct RunsSummary {
    pub runs: usize,
    pub pass: usize,
    pub fail: usize,
    pub inconclusive: usize,
}

/// One app's run: the app, then the fields of a single-app report.
#[derive(Serialize)]
pub struct JsonRun<'a> {
    pub app: &'a str,
    #[serde(flatten)]
    pub report: JsonReport<'a>,
}

impl<'a> JsonRuns<'a> {
    pub fn new(runs: &'a [Analysis]) -> JsonRuns<'a> {
        let count = |v: Verdict| runs.iter().filter(|a| a.verdict == v).count();
        JsonRuns {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "airgap-check",
                version: env!("CARGO_PKG_VERSION"),
            },
            mode: runs.first().map_or(Mode::Stage, |a| a.mode),
            verdict: Verdict::of_all(runs.iter().map(|a| a.verdict)),
            summary: RunsSummary {
                runs: runs.len(),
                pass: count(Verdict::Pass),
                fail: count(Verdict::Fail),
                inconclusive: count(Verdict::Inconclusive),
            },
            runs: runs
                .iter()
                .map(|a| JsonRun {
                    app: &a.input,
                    report: JsonReport::new(a),
                })
                .collect(),
        }
    }
}

/// Several apps' runs as pretty JSON with a trailing newline.
pub fn write_runs(runs: &[Analysis], w: &mut dyn std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, &JsonRuns::new(runs))?;
    w.write_all(b"\n")
}

/// Serialize the report as pretty JSON with a trailing newline.
pub fn write(a: &Analysis, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, &JsonReport::new(a))?;
    w.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_in_uris_and_commands() {
        use crate::report::github::tests::{hostile, SECRETS};
        let mut out = Vec::new();
        write(&hostile(), &mut out).unwrap();
        let json = String::from_utf8(out).unwrap();
        for s in SECRETS {
            assert!(!json.contains(s), "{s} in {json}");
        }
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let flow = &v["flows"][1];
        assert_eq!(
            flow["dependency"]["uri"],
            "https://-redacted-@pkg.example.com/x.tgz?token=REDACTED&v=1"
        );
        assert_eq!(
            v["manifests"][0]["missing"][0]["uri"],
            flow["dependency"]["uri"]
        );
        assert_eq!(flow["process"]["pid"], 7);
        assert_eq!(flow["process"]["command"][2], "REDACTED");
        assert_eq!(flow["process"]["command"][4], "Authorization: REDACTED");
        assert_eq!(
            flow["process"]["parent"][2],
            "curl -u REDACTED https://-redacted-@h/x"
        );
        // JSON keeps the text itself (its own escaping makes it safe); only credentials go.
        assert_eq!(
            flow["dependency"]["name"],
            format!("name{}", crate::report::github::tests::HOSTILE)
        );
    }
}
