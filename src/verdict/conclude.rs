//! The one conclusion: what a run observed → the [`Analysis`] and its verdict. analyze, stage
//! (sealed and observe), watch and the fuzz targets all end here, so the naming, the notes and the
//! verdict rule ([`verdict`]) are written once.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::flows::{Counts, DnsSeen, FlowTable};
use crate::verdict::analysis::{
    phase_at, Analysis, CaptureHealth, DnsQueryRecord, Judged, Mode, PhaseRecord, StageInfo,
};
use crate::verdict::judge::{attribute_phases, judge_named, local_notes, names_of};
use crate::verdict::notes::{Impact, Note};
use crate::verdict::policy::Allowlist;
use crate::verdict::Verdict;

/// Everything a run observed, whatever the command.
pub struct Observation<'a> {
    pub mode: Mode,
    /// The capture file, the app, or the container, as the reports name it.
    pub input: String,
    pub allowlist: &'a Allowlist,
    /// Every packet, in flows.
    pub table: FlowTable,
    /// This host's (the container's) addresses; empty: found from the flows.
    pub local: Vec<IpNet>,
    /// Whether `local` was named (--local, or the sensor's own addresses) rather than guessed.
    pub local_given: bool,
    /// Names the sinkhole handed out, with the addresses it gave each.
    pub handed_out: Vec<(String, Vec<IpAddr>)>,
    /// What the capture was and how far it can be trusted.
    pub capture: CaptureHealth,
    /// Staging runs: the phases as they ran.
    pub phases: Vec<PhaseRecord>,
    pub stage: Option<StageInfo>,
    /// What the command knows that the capture does not (a failed phase, a skipped file, …).
    pub notes: Vec<Note>,
}

impl<'a> Observation<'a> {
    /// An observation of `mode` with nothing in it yet.
    pub fn new(mode: Mode, input: String, allowlist: &'a Allowlist, table: FlowTable) -> Self {
        Observation {
            mode,
            input,
            allowlist,
            table,
            local: Vec::new(),
            local_given: false,
            handed_out: Vec::new(),
            capture: CaptureHealth::default(),
            phases: Vec::new(),
            stage: None,
            notes: Vec::new(),
        }
    }
}

/// Judge what was observed: name and judge every flow, give it its phase, gather the notes, and
/// give the verdict.
pub fn conclude(o: Observation<'_>) -> Analysis {
    let (flows, counts, dns) = o.table.finish();
    let (mut flows, local) = judge_named(flows, o.allowlist, &o.local, &|flow, addr| {
        names_of(flow, addr, &dns, &o.handed_out)
    });
    attribute_phases(&mut flows, &o.phases);
    let mut notes = o.notes;
    notes.extend(capture_notes(o.mode, &o.capture, &counts));
    notes.extend(decoding_notes(&counts));
    notes.extend(local_notes(&flows, &local, o.local_given));
    notes.extend(naming_notes(&counts, &dns));
    let verdict = verdict(&flows, &notes);
    Analysis {
        mode: o.mode,
        input: o.input,
        allowlist: o.allowlist.source.clone(),
        local,
        dns_queries: dns_queries(&dns, &o.phases),
        flows,
        counts,
        capture: o.capture,
        verdict,
        notes,
        phases: o.phases,
        stage: o.stage,
    }
}

/// The verdict rule, the only one: a sensor never proven to see the container gives no verdict;
/// a disallowed flow or a failed staging fails; anything that went unseen turns a pass into
/// inconclusive; only then is it a pass.
pub fn verdict(flows: &[Judged], notes: &[Note]) -> Verdict {
    let worst = notes
        .iter()
        .map(Note::impact)
        .max()
        .unwrap_or(Impact::Informational);
    if worst == Impact::Blind {
        Verdict::Inconclusive
    } else if worst == Impact::Fails || flows.iter().any(|f| !f.allowed()) {
        Verdict::Fail
    } else if worst == Impact::Untrusted {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    }
}

/// What the capture's health says, as notes, in the order the reader needs them.
fn capture_notes(mode: Mode, c: &CaptureHealth, counts: &Counts) -> Vec<Note> {
    let mut notes = Vec::new();
    if let Some(msg) = &c.cut_short {
        notes.push(Note::ReadStopped(msg.clone()));
    }
    if c.canary_seen.is_none() && counts.packets == 0 {
        notes.push(Note::NoPackets);
    }
    if c.ts_clamped > 0 {
        notes.push(Note::TimestampsClamped(c.ts_clamped));
    }
    match (c.canary_seen, &c.canary_problem) {
        (Some(false), why) => notes.push(Note::CanaryNotSeen {
            why: why.clone(),
            mode,
        }),
        (None, Some(why)) if mode.is_live() => notes.push(Note::NoCanary(why.clone())),
        _ => {}
    }
    if let Some(e) = &c.error {
        notes.push(Note::CaptureFailed(e.clone()));
    }
    if let Some((path, error)) = &c.save_error {
        notes.push(Note::PcapNotSaved {
            path: path.clone(),
            error: error.clone(),
        });
    }
    if c.unseen > 0 {
        notes.push(Note::Unseen(c.unseen));
    }
    if c.stats_stale {
        notes.push(Note::StatsStale);
    }
    if mode == Mode::Stage && counts.non_ip > 0 {
        notes.push(Note::NonIp(counts.non_ip));
    }
    match c.dropped {
        Some(0) => {}
        Some(packets) => notes.push(Note::Dropped {
            packets,
            by_interface: c.dropped_by_interface,
        }),
        None if mode.is_live() => notes.push(Note::DropsUnknown),
        None => {}
    }
    if let Some(f) = &c.filter {
        notes.push(Note::Filtered(f.clone()));
    }
    notes
}

/// What the frames themselves leave unjudged: frames cut short (a small snaplen) or with invalid
/// headers may have carried anything; a capture where nothing decodes as IP at all (a wrong link
/// type, IP inside PPPoE or MPLS) was not judged, however clean it looks.
pub fn decoding_notes(c: &Counts) -> Vec<Note> {
    let mut notes = Vec::new();
    if c.truncated > 0 {
        notes.push(Note::Truncated(c.truncated));
    }
    if c.invalid > 0 {
        notes.push(Note::Invalid(c.invalid));
    }
    let decoded = c.ip_packets + c.arp + c.ndp + c.mld + c.igmp;
    if decoded == 0 && c.non_ip > 0 {
        notes.push(Note::NothingDecoded {
            frames: c.packets,
            non_ip: c.non_ip,
        });
    }
    notes
}

/// What naming could not hold: DNS names beyond its bound, flows whose first bytes were cut.
fn naming_notes(counts: &Counts, dns: &DnsSeen) -> Vec<Note> {
    let mut notes = Vec::new();
    if dns.dropped > 0 {
        notes.push(Note::DnsNamesDropped(dns.dropped));
    }
    if counts.naming_cut > 0 {
        notes.push(Note::NamingCut(counts.naming_cut));
    }
    notes
}

/// The DNS questions for the reports, each with the phase of its first query ([`phase_at`]).
fn dns_queries(dns: &DnsSeen, phases: &[PhaseRecord]) -> Vec<DnsQueryRecord> {
    dns.queries
        .iter()
        .map(|q| {
            let (phase, phase_buildpack) = phase_at(q.first_seen, phases);
            DnsQueryRecord {
                name: q.name.clone(),
                qtype: q.qtype.clone(),
                count: q.count,
                first_seen: q.first_seen,
                phase,
                phase_buildpack,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::{Flow, FlowKey};

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
                app: None,
            },
            remote_addr: a,
            remote_port: Some(2),
            names: Vec::new(),
            rule: allowed.then(|| "r".into()),
            denied: None,
            phase: None,
            phase_buildpack: None,
        }
    }

    /// The verdict of an offline capture with these flows and counts.
    fn offline(flows: &[Judged], c: Counts) -> Verdict {
        let mut notes = capture_notes(Mode::Analyze, &CaptureHealth::default(), &c);
        notes.extend(decoding_notes(&c));
        verdict(flows, &notes)
    }

    #[test]
    fn undecodable_frames_never_pass() {
        let ip = Counts {
            packets: 10,
            ip_packets: 10,
            ..Counts::default()
        };
        assert_eq!(offline(&[judged(true)], ip), Verdict::Pass);
        // LLDP, STP and the like beside IP traffic are fine.
        let lldp = Counts {
            packets: 12,
            non_ip: 2,
            ..ip
        };
        assert_eq!(offline(&[judged(true)], lldp), Verdict::Pass);
        assert!(decoding_notes(&lldp).is_empty());
        // Link housekeeping alone was decoded.
        let arp = Counts {
            packets: 2,
            arp: 2,
            ..Counts::default()
        };
        assert_eq!(offline(&[], arp), Verdict::Pass);
        // Every frame cut short by the snaplen.
        let cut = Counts {
            packets: 5,
            truncated: 5,
            ..Counts::default()
        };
        assert_eq!(offline(&[], cut), Verdict::Inconclusive);
        assert_eq!(
            decoding_notes(&cut)
                .iter()
                .map(Note::to_string)
                .collect::<Vec<_>>(),
            vec!["5 frames were cut short (snaplen?) and could not be judged"]
        );
        // One broken frame among good ones is enough.
        let one_invalid = Counts {
            packets: 11,
            invalid: 1,
            ..ip
        };
        assert_eq!(offline(&[judged(true)], one_invalid), Verdict::Inconclusive);
        assert_eq!(
            decoding_notes(&one_invalid)[0].to_string(),
            "1 frame had invalid headers and could not be judged"
        );
        // Nothing but frames of other protocols: a wrong link type or an unread encapsulation.
        let pppoe = Counts {
            packets: 5,
            non_ip: 5,
            ..Counts::default()
        };
        assert_eq!(offline(&[], pppoe), Verdict::Inconclusive);
        assert!(decoding_notes(&pppoe)[0]
            .to_string()
            .starts_with("none of the 5 frames decoded as IP"));
        // No packets at all.
        assert_eq!(offline(&[], Counts::default()), Verdict::Inconclusive);
        // A disallowed flow still fails.
        assert_eq!(offline(&[judged(false)], cut), Verdict::Fail);
    }

    #[test]
    fn a_canary_never_seen_gives_no_verdict_and_a_failed_phase_fails() {
        let live = CaptureHealth {
            dropped: Some(0),
            canary_seen: Some(true),
            ..CaptureHealth::default()
        };
        let c = Counts::default();
        let v = |h: &CaptureHealth, extra: Vec<Note>, flows: &[Judged]| {
            let mut notes = extra;
            notes.extend(capture_notes(Mode::Stage, h, &c));
            verdict(flows, &notes)
        };
        // A staging run that sent nothing but the canary passes: the canary proved the sensor.
        assert_eq!(v(&live, vec![], &[]), Verdict::Pass);
        assert_eq!(
            v(
                &live,
                vec![Note::StagingFailed("supply exited 1".into())],
                &[]
            ),
            Verdict::Fail
        );
        let blind = CaptureHealth {
            canary_seen: Some(false),
            ..live.clone()
        };
        assert_eq!(v(&blind, vec![], &[judged(false)]), Verdict::Inconclusive);
        let dropped = CaptureHealth {
            dropped: Some(2),
            ..live.clone()
        };
        assert_eq!(v(&dropped, vec![], &[]), Verdict::Inconclusive);
        assert_eq!(v(&dropped, vec![], &[judged(false)]), Verdict::Fail);
        let unknown = CaptureHealth {
            dropped: None,
            ..live
        };
        assert_eq!(v(&unknown, vec![], &[]), Verdict::Inconclusive);
    }
}
