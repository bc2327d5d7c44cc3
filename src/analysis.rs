//! Flows → verdicts: the judged result every report is written from.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::flow::{local_addresses, remote_end, Counts, Flow, Micros};
use crate::policy::{Allowlist, Remote};
use crate::verdict::Verdict;

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
    /// The staging phase the flow started in, when known.
    pub phase: Option<String>,
    /// The buildpack (0-based) whose phase that was, when known.
    pub phase_buildpack: Option<usize>,
}

impl Judged {
    pub fn allowed(&self) -> bool {
        self.rule.is_some()
    }
}

/// How far the capture itself can be trusted.
#[derive(Clone, Debug, Default)]
pub struct CaptureHealth {
    pub link_type: String,
    /// Packets the capture dropped (live runs); `None` when not measured.
    pub dropped: Option<u64>,
    /// Whether the canary packet was seen (live runs); `None` when not applicable.
    pub canary_seen: Option<bool>,
    /// libpcap's message when the capture file ends mid-record.
    pub cut_short: Option<String>,
    /// Timestamp of the earliest frame; times in the console are relative to the earliest of it
    /// and every flow's first packet (see [`Analysis::start_ts`]).
    pub first_ts: Option<Micros>,
    /// A live capture error that ended the capture early.
    pub error: Option<String>,
}

/// The whole judged result.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// "analyze" or "stage".
    pub mode: &'static str,
    /// The capture file (analyze) or the app (stage).
    pub input: String,
    pub allowlist: String,
    pub local: Vec<IpAddr>,
    pub flows: Vec<Judged>,
    pub counts: Counts,
    pub capture: CaptureHealth,
    pub verdict: Verdict,
    /// Things the reader must know (a capture cut short, no packets, no local address found).
    pub notes: Vec<String>,
    /// Staging runs: the lifecycle phases, in the order they ran.
    pub phases: Vec<PhaseRecord>,
    /// Staging runs: what was staged and how.
    pub stage: Option<StageInfo>,
}

impl Analysis {
    /// Whether the capture itself leaves something unseen — cut short, packets dropped, the canary
    /// missing, a capture error, frames that could not be decoded, or an inconclusive verdict —
    /// whatever the verdict says about the flows that were seen.
    pub fn capture_untrusted(&self) -> bool {
        let c = &self.capture;
        self.verdict == Verdict::Inconclusive
            || c.cut_short.is_some()
            || c.error.is_some()
            || c.dropped.is_some_and(|d| d > 0)
            || c.canary_seen == Some(false)
            || !decoding_problems(&self.counts).is_empty()
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
    /// The last lines of its output (stdout and stderr together).
    pub output_tail: Vec<String>,
}

impl PhaseRecord {
    pub fn failed(&self) -> bool {
        self.must_succeed && (self.timed_out || self.exit_code != Some(0))
    }

    /// "supply (buildpack 0: go-buildpack)".
    pub fn label(&self) -> String {
        format!(
            "{} (buildpack {}: {})",
            self.name, self.buildpack, self.buildpack_name
        )
    }
}

/// Give each flow the phase it started in: the last phase that had started by its first packet;
/// flows before the first phase are "setup".
pub fn attribute_phases(flows: &mut [Judged], phases: &[PhaseRecord]) {
    for f in flows {
        let t = f.flow.stats.first_seen;
        match phases.iter().rev().find(|p| p.started <= t) {
            Some(p) => {
                f.phase = Some(p.name.clone());
                f.phase_buildpack = Some(p.buildpack);
            }
            None if !phases.is_empty() => f.phase = Some("setup".into()),
            None => {}
        }
    }
}

/// Judge every flow on its remote end. `local_nets` overrides the local-address guess.
pub fn judge(
    flows: Vec<Flow>,
    allowlist: &Allowlist,
    local_nets: &[IpNet],
) -> (Vec<Judged>, Vec<IpAddr>) {
    let local = local_addresses(&flows, local_nets);
    let judged = flows
        .into_iter()
        .map(|flow| {
            let (addr, port) = remote_end(&flow.key, &local);
            let names = Vec::new();
            let rule = allowlist
                .judge(&Remote {
                    proto: flow.key.proto,
                    addr,
                    port,
                    names: &names,
                })
                .map(|r| r.name.clone());
            Judged {
                flow,
                remote_addr: addr,
                remote_port: port,
                names,
                rule,
                phase: None,
                phase_buildpack: None,
            }
        })
        .collect();
    (judged, local)
}

/// The verdict for judged flows and a capture of the given health: any disallowed flow is a fail;
/// otherwise a capture that cannot be trusted is inconclusive, never a pass.
pub fn verdict_for(flows: &[Judged], capture: &CaptureHealth) -> Verdict {
    verdict_with_staging(flows, capture, false)
}

/// As [`verdict_for`], for staging runs: a canary that was never seen means nothing ran and nothing
/// can be said; a failed phase is a fail.
pub fn verdict_with_staging(
    flows: &[Judged],
    capture: &CaptureHealth,
    staging_failed: bool,
) -> Verdict {
    if capture.canary_seen == Some(false) {
        return Verdict::Inconclusive;
    }
    if staging_failed || flows.iter().any(|f| !f.allowed()) {
        return Verdict::Fail;
    }
    let untrusted = capture.cut_short.is_some()
        || capture.error.is_some()
        || capture.dropped.is_some_and(|d| d > 0)
        || capture.canary_seen == Some(false);
    if untrusted {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    }
}

/// What the frames themselves leave unjudged, as notes for the reader; empty when every frame was
/// read. Frames cut short (a small snaplen) or with invalid headers may have carried anything;
/// a capture where nothing decodes as IP at all (a wrong link type, IP inside PPPoE or MPLS) was
/// not judged, however clean it looks.
pub fn decoding_problems(c: &Counts) -> Vec<String> {
    let frames = |n: u64| format!("{n} frame{}", if n == 1 { "" } else { "s" });
    let were = |n: u64| if n == 1 { "was" } else { "were" };
    let mut notes = Vec::new();
    if c.truncated > 0 {
        notes.push(format!(
            "{} {} cut short (snaplen?) and could not be judged",
            frames(c.truncated),
            were(c.truncated)
        ));
    }
    if c.invalid > 0 {
        notes.push(format!(
            "{} had invalid headers and could not be judged",
            frames(c.invalid)
        ));
    }
    let decoded = c.ip_packets + c.arp + c.ndp + c.mld + c.igmp;
    if decoded == 0 && c.non_ip > 0 {
        notes.push(format!(
            "none of the {} decoded as IP ({} of another protocol: a wrong link type, or IP inside PPPoE, MPLS or another encapsulation airgap-check does not read), so nothing could be judged",
            frames(c.packets),
            c.non_ip
        ));
    }
    notes
}

/// The verdict for a capture file: as [`verdict_for`], and a capture with no packets, or with
/// frames that could not be decoded ([`decoding_problems`]), is at best inconclusive; a
/// disallowed flow still fails.
pub fn verdict_for_capture(flows: &[Judged], capture: &CaptureHealth, counts: &Counts) -> Verdict {
    match verdict_for(flows, capture) {
        Verdict::Pass if counts.packets == 0 || !decoding_problems(counts).is_empty() => {
            Verdict::Inconclusive
        }
        v => v,
    }
}

/// A destination: what JUnit reports one testcase for in analyze mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    pub proto: u8,
    pub addr: IpAddr,
    pub port: Option<u16>,
}

impl Judged {
    pub fn destination(&self) -> Destination {
        Destination {
            proto: self.flow.key.proto,
            addr: self.remote_addr,
            port: self.remote_port,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowKey;

    fn judged(allowed: bool) -> Judged {
        let a: IpAddr = "10.1.0.2".parse().unwrap();
        Judged {
            flow: Flow {
                key: FlowKey {
                    proto: 6,
                    src: a,
                    src_port: Some(1),
                    dst: a,
                    dst_port: Some(2),
                },
                stats: Default::default(),
            },
            remote_addr: a,
            remote_port: Some(2),
            names: Vec::new(),
            rule: allowed.then(|| "r".into()),
            phase: None,
            phase_buildpack: None,
        }
    }

    #[test]
    fn undecodable_frames_never_pass() {
        let ok = CaptureHealth::default();
        let ip = Counts {
            packets: 10,
            ip_packets: 10,
            ..Counts::default()
        };
        let v = |flows: &[Judged], c: Counts| verdict_for_capture(flows, &ok, &c);
        assert_eq!(v(&[judged(true)], ip), Verdict::Pass);
        // LLDP, STP and the like beside IP traffic are fine.
        let lldp = Counts {
            packets: 12,
            non_ip: 2,
            ..ip
        };
        assert_eq!(v(&[judged(true)], lldp), Verdict::Pass);
        assert!(decoding_problems(&lldp).is_empty());
        // Link housekeeping alone was decoded.
        let arp = Counts {
            packets: 2,
            arp: 2,
            ..Counts::default()
        };
        assert_eq!(v(&[], arp), Verdict::Pass);
        // Every frame cut short by the snaplen.
        let cut = Counts {
            packets: 5,
            truncated: 5,
            ..Counts::default()
        };
        assert_eq!(v(&[], cut), Verdict::Inconclusive);
        assert_eq!(
            decoding_problems(&cut),
            vec!["5 frames were cut short (snaplen?) and could not be judged"]
        );
        // One broken frame among good ones is enough.
        let one_invalid = Counts {
            packets: 11,
            invalid: 1,
            ..ip
        };
        assert_eq!(v(&[judged(true)], one_invalid), Verdict::Inconclusive);
        assert_eq!(
            decoding_problems(&one_invalid),
            vec!["1 frame had invalid headers and could not be judged"]
        );
        // Nothing but frames of other protocols: a wrong link type or an unread encapsulation.
        let pppoe = Counts {
            packets: 5,
            non_ip: 5,
            ..Counts::default()
        };
        assert_eq!(v(&[], pppoe), Verdict::Inconclusive);
        assert!(decoding_problems(&pppoe)[0].starts_with("none of the 5 frames decoded as IP"));
        // No packets at all.
        assert_eq!(v(&[], Counts::default()), Verdict::Inconclusive);
        // A disallowed flow still fails.
        assert_eq!(v(&[judged(false)], cut), Verdict::Fail);
    }
}
