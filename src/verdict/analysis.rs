//! Flows → verdicts: the judged result every report is written from.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::flows::{
    is_loopback_flow, Counts, DnsSeen, Flow, Micros, MAX_DNS_NAMES, MAX_PENDING_BYTES,
};
use crate::verdict::judge::{local_addresses, remote_end};
use crate::verdict::policy::{Allowlist, Remote};
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
    /// Where the packets were captured (an interface and its namespace, or a file).
    pub point: String,
    /// The libpcap filter the capture was limited to, if any.
    pub filter: Option<String>,
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
    /// The DNS questions the capture holds, in order of first query ([`dns_queries`]).
    pub dns_queries: Vec<DnsQueryRecord>,
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
    /// "sealed", or the Docker network the phases ran on (observe mode).
    pub network: String,
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

/// Give each flow the phase it started in ([`phase_at`] its first packet).
pub fn attribute_phases(flows: &mut [Judged], phases: &[PhaseRecord]) {
    for f in flows {
        (f.phase, f.phase_buildpack) = phase_at(f.flow.stats.first_seen, phases);
    }
}

/// The DNS questions for the reports, each with the phase of its first query ([`phase_at`]; pass
/// no phases for analyze).
pub fn dns_queries(dns: &DnsSeen, phases: &[PhaseRecord]) -> Vec<DnsQueryRecord> {
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

/// The names of a flow's end `addr`, for judging and the reports: when `addr` is the flow's
/// responder, the names its own first bytes gave it (TLS SNI, HTTP Host); then the names DNS
/// answers gave `addr`. Lowercase, without duplicates, in that order. This is the whole naming
/// step: analyze and staging runs both judge with it.
pub fn names_of(flow: &Flow, addr: IpAddr, dns: &DnsSeen) -> Vec<String> {
    let own = flow
        .app
        .as_deref()
        .filter(|_| addr == flow.key.dst)
        .into_iter()
        .flat_map(|a| a.names());
    let mut names: Vec<String> = Vec::new();
    for n in own.chain(dns.names_for(addr)) {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// Notes on what naming could not hold: DNS names beyond [`MAX_DNS_NAMES`], flows whose first
/// bytes were cut by [`MAX_PENDING_BYTES`].
pub fn naming_notes(counts: &Counts, dns: &DnsSeen) -> Vec<String> {
    let mut notes = Vec::new();
    if dns.dropped > 0 {
        notes.push(format!(
            "{} DNS name{} not recorded: at most {MAX_DNS_NAMES} are held, so some questions are missing from dns_queries and some addresses may lack their names",
            dns.dropped,
            if dns.dropped == 1 { " was" } else { "s were" }
        ));
    }
    if counts.naming_cut > 0 {
        notes.push(format!(
            "{} TCP flow{} named from incomplete first bytes: {} MiB of unfinished requests were held already, so their TLS server name or HTTP Host may be missing",
            counts.naming_cut,
            if counts.naming_cut == 1 { " was" } else { "s were" },
            MAX_PENDING_BYTES >> 20
        ));
    }
    notes
}

/// Judge every flow on its remote end. `local_nets` overrides the local-address guess.
///
/// When neither end of a flow is local (no address of its IP version is known, or --local names
/// neither), either end could be the remote one: the flow is allowed only when both ends are, the
/// responder's rule names the reason, and the remote end reported is the responder — or the
/// initiator when only the initiator is disallowed, so the reader sees the end that failed.
pub fn judge(
    flows: Vec<Flow>,
    allowlist: &Allowlist,
    local_nets: &[IpNet],
) -> (Vec<Judged>, Vec<IpAddr>) {
    judge_named(flows, allowlist, local_nets, &|_, _| Vec::new())
}

/// As [`judge`], with the names known for one end of a flow (`names_of(flow, addr)`: DNS answers,
/// SNI, Host; normally [`names_of`]): a flow carries the names of its remote end, and `hosts:`
/// rules match them.
pub fn judge_named(
    flows: Vec<Flow>,
    allowlist: &Allowlist,
    local_nets: &[IpNet],
    names_of: &dyn Fn(&Flow, IpAddr) -> Vec<String>,
) -> (Vec<Judged>, Vec<IpAddr>) {
    let local = local_addresses(&flows, local_nets);
    let judged = flows
        .into_iter()
        .map(|flow| {
            let k = &flow.key;
            let other_protocol = flow.carries_other_than_dns();
            let rule_for = |addr: IpAddr, port: Option<u16>, names: &[String]| {
                allowlist
                    .judge(&Remote {
                        proto: k.proto,
                        addr,
                        port,
                        names,
                        other_protocol,
                    })
                    .map(|r| r.name.clone())
            };
            let ((addr, port), rule) = if local.contains(&k.src) || local.contains(&k.dst) {
                let (addr, port) = remote_end(k, &local);
                ((addr, port), rule_for(addr, port, &names_of(&flow, addr)))
            } else {
                let responder = rule_for(k.dst, k.dst_port, &names_of(&flow, k.dst));
                let initiator = rule_for(k.src, k.src_port, &names_of(&flow, k.src));
                match (responder, initiator) {
                    (Some(_), None) => ((k.src, k.src_port), None),
                    (Some(r), Some(_)) => ((k.dst, k.dst_port), Some(r)),
                    (None, _) => ((k.dst, k.dst_port), None),
                }
            };
            Judged {
                names: names_of(&flow, addr),
                flow,
                remote_addr: addr,
                remote_port: port,
                rule,
                phase: None,
                phase_buildpack: None,
            }
        })
        .collect();
    (judged, local)
}

/// Notes for the IP versions where some flow has no local end and so was judged on both ends.
/// `local_given` says whether --local named the local addresses.
pub fn local_notes(flows: &[Judged], local: &[IpAddr], local_given: bool) -> Vec<String> {
    let mut notes = Vec::new();
    for (v4, name) in [(true, "IPv4"), (false, "IPv6")] {
        let unknown = flows
            .iter()
            .filter(|f| f.flow.key.src.is_ipv4() == v4 && !is_loopback_flow(&f.flow.key))
            .filter(|f| !local.contains(&f.flow.key.src) && !local.contains(&f.flow.key.dst))
            .count();
        if unknown == 0 {
            continue;
        }
        let has_local = local.iter().any(|a| a.is_ipv4() == v4);
        notes.push(match (has_local, local_given) {
            (false, false) => format!(
                "no {name} address is present in every {name} flow, so this host's {name} address is unknown: each {name} flow is allowed only when both of its ends are (name this host with --local)"
            ),
            (false, true) => format!(
                "--local names no {name} address seen in the capture: each {name} flow is allowed only when both of its ends are"
            ),
            (true, _) => format!(
                "{unknown} {name} flow{} neither end in --local: {} allowed only when both of {} ends are",
                if unknown == 1 { " has" } else { "s have" },
                if unknown == 1 { "it is" } else { "each is" },
                if unknown == 1 { "its" } else { "their" },
            ),
        });
    }
    notes
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
    use crate::flows::FlowKey;

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
            phase: None,
            phase_buildpack: None,
        }
    }

    fn tcp(src: &str, dst: &str, sp: u16, dp: u16, syn: bool, ack: bool) -> Vec<u8> {
        let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        let b = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                etherparse::PacketBuilder::ipv4(s.octets(), d.octets(), 64)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                etherparse::PacketBuilder::ipv6(s.octets(), d.octets(), 64)
            }
            _ => panic!("mixed families"),
        };
        let mut b = b.tcp(sp, dp, 1, 1000);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(1);
        }
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    fn flows_of(packets: &[Vec<u8>]) -> Vec<Flow> {
        let mut t = crate::flows::FlowTable::new();
        for (i, p) in packets.iter().enumerate() {
            let d = crate::flows::decode::decode(crate::flows::decode::LinkKind::RawIp, p);
            t.add(i as i64, p.len() as u32, &d);
        }
        t.finish().0
    }

    fn find(judged: &[Judged], dst_port: u16) -> &Judged {
        judged
            .iter()
            .find(|j| j.flow.key.dst_port == Some(dst_port))
            .unwrap()
    }

    #[test]
    fn with_no_local_end_both_ends_must_pass() {
        let default = Allowlist::default_list();
        // IPv6: an mDNS announcement from a link-local address, then an inbound connection from
        // the Internet to fd00::2:8080. No IPv6 address is in every IPv6 flow.
        let flows = flows_of(&[
            tcp("10.1.0.2", "10.1.0.1", 5000, 53, true, false),
            tcp("fe80::2", "ff02::fb", 5353, 5353, false, false),
            tcp("2001:db8::9", "fd00::2", 50000, 8080, true, false),
            tcp("fd00::2", "2001:db8::9", 8080, 50000, true, true),
        ]);
        let (judged, local) = judge(flows, &default, &[]);
        assert_eq!(local, vec!["10.1.0.2".parse::<IpAddr>().unwrap()]);
        let inbound = find(&judged, 8080);
        // Judged on its responder alone (fd00::2, private) it passed; the initiator does not.
        assert!(!inbound.allowed());
        assert_eq!(
            (inbound.remote_addr, inbound.remote_port),
            ("2001:db8::9".parse().unwrap(), Some(50000))
        );
        assert!(find(&judged, 53).allowed());
        let notes = local_notes(&judged, &local, false);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("no IPv6 address is present in every IPv6 flow"));
        // Both ends private: allowed, and the responder is the remote end.
        let flows = flows_of(&[
            tcp("10.9.9.9", "192.168.1.1", 40000, 443, true, false),
            tcp("10.8.8.8", "192.168.1.2", 40001, 443, true, false),
        ]);
        let (judged, local) = judge(flows, &default, &[]);
        assert!(local.is_empty());
        assert!(judged.iter().all(Judged::allowed));
        assert_eq!(
            judged[0].remote_addr,
            "192.168.1.1".parse::<IpAddr>().unwrap()
        );
        // Both ends public: the responder is reported.
        let flows = flows_of(&[
            tcp("198.51.100.1", "203.0.113.5", 40000, 443, true, false),
            tcp("198.51.100.2", "203.0.113.6", 40000, 443, true, false),
        ]);
        let (judged, _) = judge(flows, &default, &[]);
        assert!(!judged[0].allowed());
        assert_eq!(
            judged[0].remote_addr,
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn loopback_flows_do_not_hide_the_local_address() {
        // A capture on "any": a database on lo beside the host's own traffic.
        let flows = flows_of(&[
            tcp("127.0.0.1", "127.0.0.1", 45000, 5432, true, false),
            tcp("10.1.0.2", "10.1.0.1", 5000, 53, true, false),
            tcp("198.51.100.9", "10.1.0.2", 50000, 8080, true, false),
            tcp("::1", "::1", 45001, 6379, true, false),
        ]);
        let (judged, local) = judge(flows, &Allowlist::default_list(), &[]);
        assert_eq!(local, vec!["10.1.0.2".parse::<IpAddr>().unwrap()]);
        let inbound = find(&judged, 8080);
        assert!(!inbound.allowed());
        assert_eq!(
            inbound.remote_addr,
            "198.51.100.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(find(&judged, 5432).rule.as_deref(), Some("loopback"));
        assert_eq!(find(&judged, 6379).rule.as_deref(), Some("loopback"));
        assert!(local_notes(&judged, &local, false).is_empty());
    }

    #[test]
    fn local_option_covers_ipv4_mapped_addresses() {
        let flows = flows_of(&[
            tcp(
                "::ffff:10.1.0.2",
                "::ffff:203.0.113.5",
                41000,
                443,
                true,
                false,
            ),
            tcp(
                "::ffff:203.0.113.7",
                "::ffff:10.1.0.2",
                41001,
                22,
                true,
                false,
            ),
        ]);
        let nets = ["10.1.0.0/24".parse().unwrap()];
        let (judged, local) = judge(flows, &Allowlist::default_list(), &nets);
        assert_eq!(local, vec!["::ffff:10.1.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            judged[1].remote_addr,
            "::ffff:203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert!(local_notes(&judged, &local, true).is_empty());
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
