//! Flows → judged flows: which end of each flow is this host, which is the remote one, the names
//! of that end, and the allowlist rule (if any) that allows it.

use std::net::IpAddr;

use ahash::AHashMap;
use ipnet::IpNet;

use crate::flows::{is_loopback_flow, DnsSeen, Flow, FlowKey};
use crate::verdict::analysis::{phase_at, Judged, PhaseRecord};
use crate::verdict::notes::{IpVersion, Note};
use crate::verdict::policy::{Allowlist, Remote, Ruling};

/// The names of a flow's end `addr`, for judging and the reports: when `addr` is the flow's
/// responder, the names its own first bytes gave it (TLS SNI, HTTP Host); then the names DNS
/// answers gave `addr`; then the names the sinkhole handed out for it (`handed_out`: name and
/// the addresses it was given), should a DNS exchange have been missed. Lowercase, without
/// duplicates, in that order. This is the whole naming step.
pub fn names_of(
    flow: &Flow,
    addr: IpAddr,
    dns: &DnsSeen,
    handed_out: &[(String, Vec<IpAddr>)],
) -> Vec<String> {
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
    for (name, addrs) in handed_out {
        if addrs.contains(&addr) && !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// Judge every flow on its remote end, with no names known. `local_nets` overrides the
/// local-address guess.
pub fn judge(
    flows: Vec<Flow>,
    allowlist: &Allowlist,
    local_nets: &[IpNet],
) -> (Vec<Judged>, Vec<IpAddr>) {
    judge_named(flows, allowlist, local_nets, &|_, _| Vec::new())
}

/// Judge every flow on its remote end, with the names known for one end of a flow
/// (`names_of(flow, addr)`, normally [`names_of`]): a flow carries the names of its remote end,
/// and `hosts:` rules match them.
///
/// When neither end of a flow is local (no address of its IP version is known, or --local names
/// neither), either end could be the remote one: the flow is allowed only when both ends are, the
/// responder's rule names the reason, and the remote end reported is the responder — or the
/// initiator when only the initiator is disallowed, so the reader sees the end that failed.
pub fn judge_named(
    flows: Vec<Flow>,
    allowlist: &Allowlist,
    local_nets: &[IpNet],
    names_of: &dyn Fn(&Flow, IpAddr) -> Vec<String>,
) -> (Vec<Judged>, Vec<IpAddr>) {
    let local = local_addresses(&flows, local_nets);
    let judged = flows
        .into_iter()
        .map(|flow| judge_one(flow, allowlist, &local, names_of))
        .collect();
    (judged, local)
}

fn judge_one(
    flow: Flow,
    allowlist: &Allowlist,
    local: &[IpAddr],
    names_of: &dyn Fn(&Flow, IpAddr) -> Vec<String>,
) -> Judged {
    let k = &flow.key;
    let other_protocol = flow.carries_other_than_dns();
    let rule_for = |addr: IpAddr, port: Option<u16>, names: &[String]| {
        Said::from(allowlist.ruling(&Remote {
            proto: k.proto,
            addr,
            port,
            names,
            other_protocol,
        }))
    };
    let ((addr, port), said) = if local.contains(&k.src) || local.contains(&k.dst) {
        let (addr, port) = remote_end(k, local);
        ((addr, port), rule_for(addr, port, &names_of(&flow, addr)))
    } else {
        let responder = rule_for(k.dst, k.dst_port, &names_of(&flow, k.dst));
        let initiator = rule_for(k.src, k.src_port, &names_of(&flow, k.src));
        // Both ends must pass; the end reported is the one that failed (a denied one first).
        match (responder, initiator) {
            (r @ Said::Allowed(_), Said::Allowed(_)) => ((k.dst, k.dst_port), r),
            (r @ Said::Denied(_), _) => ((k.dst, k.dst_port), r),
            (_, i @ Said::Denied(_)) => ((k.src, k.src_port), i),
            (Said::Allowed(_), i) => ((k.src, k.src_port), i),
            (r, _) => ((k.dst, k.dst_port), r),
        }
    };
    let (rule, denied) = match said {
        Said::Allowed(r) => (Some(r), None),
        Said::Denied(r) => (None, Some(r)),
        Said::Unmatched => (None, None),
    };
    Judged {
        names: names_of(&flow, addr),
        flow,
        remote_addr: addr,
        remote_port: port,
        rule,
        denied,
        phase: None,
        phase_buildpack: None,
    }
}

/// A [`Ruling`] with the rule's name.
enum Said {
    Allowed(String),
    Denied(String),
    Unmatched,
}

impl From<Ruling<'_>> for Said {
    fn from(r: Ruling<'_>) -> Said {
        match r {
            Ruling::Allowed(rule) => Said::Allowed(rule.name.clone()),
            Ruling::Denied(rule) => Said::Denied(rule.name.clone()),
            Ruling::Unmatched => Said::Unmatched,
        }
    }
}

/// Give each flow the phase it started in ([`phase_at`] its first packet).
pub fn attribute_phases(flows: &mut [Judged], phases: &[PhaseRecord]) {
    for f in flows {
        (f.phase, f.phase_buildpack) = phase_at(f.flow.stats.first_seen, phases);
    }
}

/// Notes for the IP versions where some flow has no local end and so was judged on both ends.
/// `local_given` says whether the local addresses were named (--local, or the sensor's own).
pub fn local_notes(flows: &[Judged], local: &[IpAddr], local_given: bool) -> Vec<Note> {
    let mut notes = Vec::new();
    for (v4, version) in [(true, IpVersion::V4), (false, IpVersion::V6)] {
        let unknown = flows
            .iter()
            .filter(|f| f.flow.key.src.is_ipv4() == v4 && !is_loopback_flow(&f.flow.key))
            .filter(|f| !local.contains(&f.flow.key.src) && !local.contains(&f.flow.key.dst))
            .count();
        if unknown == 0 {
            continue;
        }
        let has_local = local.iter().any(|a| a.is_ipv4() == v4);
        notes.push(if has_local {
            Note::NeitherEndLocal {
                version,
                flows: unknown,
            }
        } else {
            Note::NoLocalAddress {
                version,
                given: local_given,
            }
        });
    }
    notes
}

/// Which addresses are "local": those in `local` when given (an IPv4 prefix also names the
/// IPv4-mapped IPv6 form of its addresses), otherwise, per IP version, the address present in every
/// flow of that version (ties go to the one that initiated most, then the lowest). Loopback flows
/// are left out of that count: a capture on "any" sees them beside the host's own traffic. A
/// version with no such address has no local address; see [`remote_end`] for what that means.
pub fn local_addresses(flows: &[Flow], local: &[IpNet]) -> Vec<IpAddr> {
    if !local.is_empty() {
        let mut out: Vec<IpAddr> = flows
            .iter()
            .flat_map(|f| [f.key.src, f.key.dst])
            .filter(|a| {
                local
                    .iter()
                    .any(|n| crate::verdict::policy::net_contains(n, *a))
            })
            .collect();
        out.sort();
        out.dedup();
        return out;
    }
    let mut seen: AHashMap<IpAddr, (u64, u64)> = AHashMap::new();
    let (mut v4, mut v6) = (0u64, 0u64);
    for f in flows.iter().filter(|f| !is_loopback_flow(&f.key)) {
        if f.key.src.is_ipv4() {
            v4 += 1;
        } else {
            v6 += 1;
        }
        let e = seen.entry(f.key.src).or_default();
        e.0 += 1;
        e.1 += 1;
        if f.key.dst != f.key.src {
            seen.entry(f.key.dst).or_default().0 += 1;
        }
    }
    let mut out = Vec::new();
    for (want_v4, total) in [(true, v4), (false, v6)] {
        if total == 0 {
            continue;
        }
        let best = seen
            .iter()
            .filter(|(a, (n, _))| a.is_ipv4() == want_v4 && *n == total)
            .max_by(|(a, (_, ia)), (b, (_, ib))| ia.cmp(ib).then(b.cmp(a)));
        if let Some((a, _)) = best {
            out.push(*a);
        }
    }
    out
}

/// The remote end of a flow (address, port): the end that is not local; when both or neither are,
/// the responder. When neither end is local the judge holds both ends against the allowlist
/// (`analysis::judge`), since either could be the remote one.
pub fn remote_end(key: &FlowKey, local: &[IpAddr]) -> (IpAddr, Option<u16>) {
    let src_local = local.contains(&key.src);
    let dst_local = local.contains(&key.dst);
    if dst_local && !src_local {
        (key.src, key.src_port)
    } else {
        (key.dst, key.dst_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::decode::{decode, LinkKind};
    use crate::flows::{FlowTable, Micros};
    use crate::verdict::policy::Allowlist;
    use etherparse::PacketBuilder;

    const L: [u8; 4] = [10, 1, 0, 2];
    const R: [u8; 4] = [203, 0, 113, 5];

    fn syn(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, ack: bool) -> Vec<u8> {
        let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sp, dp, 1, 1000).syn();
        if ack {
            b = b.ack(1);
        }
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    fn feed(t: &mut FlowTable, ts: Micros, f: &[u8]) {
        t.add(ts, f.len() as u32, &decode(LinkKind::RawIp, f));
    }

    #[test]
    fn local_is_the_address_in_every_flow_per_version() {
        let mut t = FlowTable::new();
        feed(&mut t, 1, &syn(L, R, 1, 2, false));
        feed(&mut t, 2, &syn(L, [8, 8, 8, 8], 3, 4, false));
        feed(&mut t, 3, &syn([192, 168, 5, 10], L, 5, 22, false));
        let (flows, _, _) = t.finish();
        let local = local_addresses(&flows, &[]);
        assert_eq!(local, vec![IpAddr::from(L)]);
        assert_eq!(
            remote_end(&flows[2].key, &local),
            (IpAddr::from([192, 168, 5, 10]), Some(5))
        );
        // A single flow: both ends are in every flow; the initiator wins.
        let mut t = FlowTable::new();
        feed(&mut t, 1, &syn(R, L, 443, 1, true));
        let (flows, _, _) = t.finish();
        assert_eq!(local_addresses(&flows, &[]), vec![IpAddr::from(L)]);
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
        assert!(notes[0]
            .to_string()
            .starts_with("no IPv6 address is present in every IPv6 flow"));
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
    fn a_denied_end_is_reported_whichever_end_it_is() {
        let a = Allowlist::parse(
            "allow:\n  - name: private\n    cidrs: [10.0.0.0/8, fc00::/7]\ndeny:\n  - name: imds6\n    cidrs: [\"fd00:ec2::254/128\"]\n",
            "t",
        )
        .unwrap();
        // Local end known: the remote end is denied though a private range allows it.
        let flows = flows_of(&[tcp("fd00:99::2", "fd00:ec2::254", 40000, 80, true, false)]);
        let nets = ["fd00:99::2/128".parse().unwrap()];
        let (judged, _) = judge(flows, &a, &nets);
        assert!(!judged[0].allowed());
        assert_eq!(judged[0].denied.as_deref(), Some("imds6"));
        assert_eq!(judged[0].rule, None);
        // Neither end local: the denied end is the one reported, even as the initiator.
        let flows = flows_of(&[
            tcp("fd00:ec2::254", "fd12::9", 80, 40000, true, false),
            tcp("fd12::7", "fd12::8", 80, 40001, true, false),
        ]);
        let (judged, local) = judge(flows, &a, &[]);
        assert!(local.is_empty());
        assert_eq!(
            judged[0].remote_addr,
            "fd00:ec2::254".parse::<IpAddr>().unwrap()
        );
        assert_eq!(judged[0].denied.as_deref(), Some("imds6"));
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
}
