//! Decoded packets → flows.
//!
//! A flow is keyed by (protocol, src, src_port, dst, dst_port) and directed by its initiator: the
//! sender of a TCP SYN, otherwise the sender of the first packet seen. Packets the other way count
//! into the same flow. Memory grows with flows, not packets: the table holds one small [`Flow`] per
//! flow plus a bounded map of IP fragment ids.
//!
//! Naming ([`crate::flows::naming`]): a TCP flow's first bytes from its initiator are held until they show
//! a TLS ClientHello's server name, an HTTP request, or neither (at most [`MAX_FIRST_BYTES`](crate::flows::MAX_FIRST_BYTES) per
//! flow, [`MAX_PENDING_BYTES`](crate::flows::MAX_PENDING_BYTES) in all); a UDP flow's first datagram is tried as a DNS query on any
//! port; every DNS message to or from port 53 is read into a bounded [`DnsSeen`].

use ahash::AHashMap;

use crate::flows::decode::{Decoded, Housekeeping, IpPacket, Malformed, Transport};
use crate::flows::dns::{DnsSeen, DnsState, SeenDns};
use crate::flows::first_bytes::Pending;
use crate::flows::flow::{bump, namebits, tcpbits, Flow, FlowStats};
use crate::flows::fragments::{FragEntry, FragKey};
use crate::flows::key::{FlowKey, Micros};

/// What the capture held besides flows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Every frame read.
    pub packets: u64,
    /// Bytes on the wire (original lengths).
    pub bytes: u64,
    /// Frames that belong to a flow.
    pub ip_packets: u64,
    pub arp: u64,
    pub ndp: u64,
    pub mld: u64,
    pub igmp: u64,
    /// Well-formed frames of other protocols (LLDP, STP, …).
    pub non_ip: u64,
    /// Frames that end inside a header.
    pub truncated: u64,
    /// Frames whose headers are invalid.
    pub invalid: u64,
    /// IP fragments seen (first and later).
    pub fragments: u64,
    /// Later fragments whose first fragment was never seen (judged as flows with unknown ports).
    pub orphan_fragments: u64,
    /// TCP flows whose first bytes were read for names before they were complete, because
    /// [`MAX_PENDING_BYTES`](crate::flows::MAX_PENDING_BYTES) of first bytes were held already (a flood of unfinished requests).
    pub naming_cut: u64,
}

/// The flow table.
#[derive(Default)]
pub struct FlowTable {
    pub(super) index: AHashMap<FlowKey, u32>,
    pub(super) flows: Vec<Flow>,
    pub(super) frags: AHashMap<FragKey, FragEntry>,
    /// First bytes of TCP flows not named yet, by flow index.
    pub(super) pending: AHashMap<u32, Pending>,
    pub(super) pending_bytes: usize,
    pub(super) dns: DnsState,
    pub(super) seen_dns: AHashMap<Box<[u8]>, SeenDns>,
    pub counts: Counts,
}

impl FlowTable {
    pub fn new() -> FlowTable {
        FlowTable::default()
    }

    /// Account one frame: `wire_len` is its original length, `ts` its timestamp.
    pub fn add(&mut self, ts: Micros, wire_len: u32, decoded: &Decoded<'_>) {
        let c = &mut self.counts;
        c.packets += 1;
        c.bytes += u64::from(wire_len);
        match decoded {
            Decoded::Ip(p) => {
                c.ip_packets += 1;
                self.add_ip(ts, u64::from(wire_len), p);
            }
            Decoded::Housekeeping(Housekeeping::Arp) => c.arp += 1,
            Decoded::Housekeeping(Housekeeping::Ndp) => c.ndp += 1,
            Decoded::Housekeeping(Housekeeping::Mld) => c.mld += 1,
            Decoded::Housekeeping(Housekeeping::Igmp) => c.igmp += 1,
            Decoded::NonIp => c.non_ip += 1,
            Decoded::Malformed(Malformed::Truncated) => c.truncated += 1,
            Decoded::Malformed(Malformed::Invalid) => c.invalid += 1,
        }
    }

    fn add_ip(&mut self, ts: Micros, len: u64, p: &IpPacket<'_>) {
        let frag_key = p.fragment.map(|f| FragKey {
            src: p.src,
            dst: p.dst,
            proto: if p.src.is_ipv4() { p.proto } else { 0 },
            id: f.id,
        });
        if frag_key.is_some() {
            self.counts.fragments += 1;
        }
        let (sport, dport, flags, data) = match p.transport {
            Transport::LaterFragment => {
                // Safe: a later fragment always has fragment info.
                let Some(fk) = frag_key else { return };
                self.later_fragment(fk, p.proto, ts, len);
                return;
            }
            Transport::Tcp {
                src_port,
                dst_port,
                flags,
                payload_len,
                ..
            } => (Some(src_port), Some(dst_port), Some(flags), payload_len > 0),
            Transport::Udp { src_port, dst_port } => (Some(src_port), Some(dst_port), None, false),
            // An ICMP error about a flow we know counts into that flow, as an answer — but only when
            // it goes back to the sender of the packet it quotes, as a real error does (its own
            // sender may be the quoted destination or any router on the way). An "error" sent
            // anywhere else is traffic of its own, whatever it quotes, and is judged as such.
            Transport::Icmp { about: Some(e), .. } if p.dst == e.src => {
                let (sp, dp) = e.ports.map_or((None, None), |(s, d)| (Some(s), Some(d)));
                let about = FlowKey {
                    proto: e.proto,
                    src: e.src,
                    src_port: sp,
                    dst: e.dst,
                    dst_port: dp,
                };
                if let Some(&i) = self.index.get(&about.canonical()) {
                    let flow = &mut self.flows[i as usize];
                    // The error travels towards the quoted packet's sender.
                    let from_initiator = flow.key.src != e.src;
                    bump(&mut flow.stats, ts, len, from_initiator);
                    flow.stats.icmp_errors += 1;
                    return;
                }
                (None, None, None, false)
            }
            Transport::Icmp { .. } | Transport::Unreadable | Transport::Other => {
                (None, None, None, false)
            }
        };
        let key = FlowKey {
            proto: p.proto,
            src: p.src,
            src_port: sport,
            dst: p.dst,
            dst_port: dport,
        };
        let (idx, from_initiator) = self.account(key, ts, len, flags, data);
        if let Some(fk) = frag_key {
            self.first_fragment(fk, idx);
        }
        self.name(idx, from_initiator, ts, p);
    }

    /// Read what a packet says about names: a TCP flow's first bytes, DNS messages.
    #[inline]
    fn name(&mut self, idx: u32, from_initiator: bool, ts: Micros, p: &IpPacket<'_>) {
        let naming = self.flows[idx as usize].stats.naming;
        match p.transport {
            Transport::Tcp {
                src_port,
                dst_port,
                seq,
                payload_len,
                ..
            } if payload_len > 0 => {
                if src_port == 53 || dst_port == 53 {
                    self.dns_over_tcp(idx, from_initiator, ts, p.payload);
                }
                if naming & namebits::DONE == 0 && from_initiator {
                    if p.fragment.is_some() {
                        // The segment goes on in other fragments: the stream has a hole.
                        self.decide(idx, true);
                    } else {
                        self.first_bytes(idx, seq, payload_len as usize, p.payload);
                    }
                }
            }
            Transport::Udp { src_port, dst_port } if p.fragment.is_none() => {
                let first = naming & namebits::DONE == 0 && from_initiator;
                if first {
                    self.flows[idx as usize].stats.naming |= namebits::DONE;
                }
                let port53 = src_port == 53 || dst_port == 53;
                if first || port53 || naming & namebits::ASKED != 0 {
                    self.dns_message(idx, from_initiator, ts, p.payload, first);
                }
            }
            _ => {}
        }
    }

    /// Count one packet into its flow (creating it) and return the flow's index.
    pub(super) fn account(
        &mut self,
        key: FlowKey,
        ts: Micros,
        len: u64,
        flags: Option<crate::flows::decode::TcpFlags>,
        data: bool,
    ) -> (u32, bool) {
        let pure_syn = flags.is_some_and(|f| f.syn && !f.ack);
        let syn_ack = flags.is_some_and(|f| f.syn && f.ack);
        let idx = match self.index.get(&key.canonical()) {
            Some(&i) => i,
            None => {
                // A SYN-ACK seen first means its receiver initiated.
                let oriented = if syn_ack { key.reversed() } else { key };
                let i = self.flows.len() as u32;
                self.flows.push(Flow {
                    key: oriented,
                    stats: FlowStats {
                        first_seen: ts,
                        last_seen: ts,
                        syn_oriented: pure_syn || syn_ack,
                        ..FlowStats::default()
                    },
                    app: None,
                });
                self.index.insert(key.canonical(), i);
                i
            }
        };
        let flow = &mut self.flows[idx as usize];
        let mut from_initiator = flow.key.src == key.src && flow.key.src_port == key.src_port;
        if pure_syn && !flow.stats.syn_oriented {
            flow.stats.syn_oriented = true;
            if !from_initiator {
                flow.key = flow.key.reversed();
                flow.stats.swap_direction();
                from_initiator = true;
            }
        }
        bump(&mut flow.stats, ts, len, from_initiator);
        if let Some(f) = flags {
            use tcpbits::*;
            let mut bits = 0;
            if f.syn && !f.ack {
                bits |= SYN;
            }
            if f.syn && f.ack {
                bits |= SYNACK;
            }
            if f.rst {
                bits |= RST;
            }
            if f.fin {
                bits |= FIN;
            }
            if data {
                bits |= DATA;
            }
            if from_initiator {
                flow.stats.tcp_out |= bits;
            } else {
                flow.stats.tcp_in |= bits;
            }
        }
        (idx, from_initiator)
    }

    /// Finish: resolve pending fragments, name the flows whose first bytes were still incomplete
    /// from what they held, and hand out the flows in first-seen order with what DNS said.
    pub fn finish(mut self) -> (Vec<Flow>, Counts, DnsSeen) {
        self.flush_fragments();
        let mut pending: Vec<u32> = self.pending.keys().copied().collect();
        pending.sort_unstable();
        for idx in pending {
            self.decide(idx, true);
        }
        let mut flows = self.flows;
        flows.sort_by_key(|f| (f.stats.first_seen, f.key));
        let mut queries = self.dns.queries;
        queries.sort_by(|a, b| {
            (a.first_seen, &a.name, &a.qtype).cmp(&(b.first_seen, &b.name, &b.qtype))
        });
        let dns = DnsSeen {
            queries,
            answers: self.dns.answers,
            dropped: self.dns.dropped,
        };
        (flows, self.counts, dns)
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::decode::{decode, LinkKind};
    use crate::flows::{AppInfo, FlowState};
    use etherparse::PacketBuilder;
    use std::net::IpAddr;

    const L: [u8; 4] = [10, 1, 0, 2];
    const R: [u8; 4] = [203, 0, 113, 5];

    fn tcp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, f: &str, data: usize) -> Vec<u8> {
        let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sp, dp, 1, 1000);
        if f.contains('S') {
            b = b.syn();
        }
        if f.contains('A') {
            b = b.ack(1);
        }
        if f.contains('R') {
            b = b.rst();
        }
        let mut v = Vec::new();
        b.write(&mut v, &vec![0u8; data]).unwrap();
        v
    }

    fn feed(t: &mut FlowTable, ts: Micros, f: &[u8]) {
        t.add(ts, f.len() as u32, &decode(LinkKind::RawIp, f));
    }

    #[test]
    fn syn_then_rst_is_refused_and_oriented() {
        let mut t = FlowTable::new();
        feed(&mut t, 1, &tcp(L, R, 41001, 80, "S", 0));
        feed(&mut t, 2, &tcp(R, L, 80, 41001, "RA", 0));
        let (flows, counts, _) = t.finish();
        assert_eq!(flows.len(), 1);
        assert_eq!(counts.packets, 2);
        let f = &flows[0];
        assert_eq!(f.key.src, IpAddr::from(L));
        assert_eq!(f.key.dst_port, Some(80));
        assert_eq!((f.stats.packets_out, f.stats.packets_in), (1, 1));
        assert_eq!(f.state(), FlowState::Refused);
    }

    #[test]
    fn synack_first_orients_to_its_receiver() {
        let mut t = FlowTable::new();
        feed(&mut t, 1, &tcp(R, L, 443, 41000, "SA", 0));
        feed(&mut t, 2, &tcp(L, R, 41000, 443, "A", 10));
        let (flows, _, _) = t.finish();
        assert_eq!(flows[0].key.src, IpAddr::from(L));
        assert_eq!(flows[0].key.dst_port, Some(443));
        assert_eq!(flows[0].state(), FlowState::Data);
    }

    #[test]
    fn late_syn_reorients_a_midstream_flow() {
        let mut t = FlowTable::new();
        feed(&mut t, 1, &tcp(R, L, 443, 41000, "A", 0));
        feed(&mut t, 2, &tcp(L, R, 41000, 443, "S", 0));
        let (flows, _, _) = t.finish();
        assert_eq!(flows[0].key.src, IpAddr::from(L));
        assert_eq!(
            (flows[0].stats.packets_out, flows[0].stats.packets_in),
            (1, 1)
        );
        assert_eq!(flows[0].state(), FlowState::SynOnly);
    }

    fn frag(id: u16, off_units: u16, more: bool, payload: &[u8]) -> Vec<u8> {
        let mut h =
            etherparse::Ipv4Header::new(payload.len() as u16, 64, etherparse::IpNumber::UDP, L, R)
                .unwrap();
        h.identification = id;
        h.more_fragments = more;
        h.fragment_offset = etherparse::IpFragOffset::try_new(off_units).unwrap();
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn later_fragments_join_the_first_even_out_of_order() {
        let mut first = vec![0u8; 24];
        first[0..2].copy_from_slice(&41005u16.to_be_bytes());
        first[2..4].copy_from_slice(&5000u16.to_be_bytes());
        let mut t = FlowTable::new();
        feed(&mut t, 1, &frag(0x1234, 6, false, &[1; 8]));
        feed(&mut t, 2, &frag(0x1234, 0, true, &first));
        feed(&mut t, 3, &frag(0x1234, 3, true, &[2; 24]));
        let (flows, counts, _) = t.finish();
        assert_eq!(flows.len(), 1, "{flows:?}");
        assert_eq!(flows[0].key.dst_port, Some(5000));
        assert_eq!(flows[0].stats.packets(), 3);
        assert_eq!(flows[0].stats.first_seen, 1);
        assert_eq!(counts.fragments, 3);
        assert_eq!(counts.orphan_fragments, 0);
    }

    fn tcp_frag(id: u16, off_units: u16, more: bool, payload: &[u8]) -> Vec<u8> {
        let mut h =
            etherparse::Ipv4Header::new(payload.len() as u16, 64, etherparse::IpNumber::TCP, L, R)
                .unwrap();
        h.identification = id;
        h.more_fragments = more;
        h.fragment_offset = etherparse::IpFragOffset::try_new(off_units).unwrap();
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn a_fragmented_tcp_segment_carries_data() {
        // Handshake, then a 3000-byte segment in fragments: the first holds the TCP header and
        // 1380 bytes of data.
        let mut t = FlowTable::new();
        feed(&mut t, 1, &tcp(L, R, 41000, 443, "S", 0));
        feed(&mut t, 2, &tcp(R, L, 443, 41000, "SA", 0));
        feed(&mut t, 3, &tcp(L, R, 41000, 443, "A", 0));
        let mut first = tcp(L, R, 41000, 443, "A", 1380)[20..].to_vec();
        first[13] |= 0x08; // PSH
        feed(&mut t, 4, &tcp_frag(777, 0, true, &first));
        feed(&mut t, 5, &tcp_frag(777, 175, true, &[b'D'; 1400]));
        feed(&mut t, 6, &tcp_frag(777, 350, false, &[b'D'; 220]));
        let (flows, counts, _) = t.finish();
        assert_eq!(flows.len(), 1, "{flows:?}");
        assert_eq!(flows[0].stats.packets(), 6);
        assert_eq!(flows[0].state(), FlowState::Data);
        assert_eq!(counts.orphan_fragments, 0);
        // Even a first fragment that holds nothing but the TCP header: more follows.
        let mut t = FlowTable::new();
        feed(&mut t, 1, &tcp(L, R, 41000, 443, "S", 0));
        feed(&mut t, 2, &tcp(R, L, 443, 41000, "SA", 0));
        let header_only = tcp(L, R, 41000, 443, "A", 0)[20..].to_vec();
        feed(&mut t, 3, &tcp_frag(778, 0, true, &header_only));
        let (flows, _, _) = t.finish();
        assert_eq!(flows[0].state(), FlowState::Data);
    }

    /// An IPv6 fragment of a UDP datagram whose fragmentable part starts with a destination
    /// options header (RFC 8200 allows it): next header 60 in every fragment header.
    fn v6_frag(offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
        let src: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
        let dst: std::net::Ipv6Addr = "2001:db8::5".parse().unwrap();
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[44, 64]);
        v.extend_from_slice(&src.octets());
        v.extend_from_slice(&dst.octets());
        v.extend_from_slice(&[60, 0]);
        v.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
        v.extend_from_slice(&0x4242u32.to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn ipv6_fragments_join_on_addresses_and_id_alone() {
        let mut first = vec![17, 0, 1, 4, 0, 0, 0, 0]; // destination options: UDP next, PadN
        first.extend_from_slice(&41001u16.to_be_bytes());
        first.extend_from_slice(&4444u16.to_be_bytes());
        first.extend_from_slice(&[0, 56, 0, 0]); // length, checksum
        first.extend_from_slice(&[b'U'; 32]);
        // 'U' is 0x55 = 85: read on as headers, the data looks like protocol 85.
        let later = [b'U'; 16];
        let mut t = FlowTable::new();
        feed(&mut t, 1, &v6_frag(48, false, &later));
        feed(&mut t, 2, &v6_frag(0, true, &first));
        let (flows, counts, _) = t.finish();
        assert_eq!(flows.len(), 1, "{flows:?}");
        assert_eq!(flows[0].key.proto, crate::flows::decode::PROTO_UDP);
        assert_eq!(flows[0].key.dst_port, Some(4444));
        assert_eq!(flows[0].stats.packets(), 2);
        assert_eq!(counts.orphan_fragments, 0);
        // Without its first fragment, a later one is a flow of the protocol its fragment header
        // names (here the destination options header), not of whatever its data looks like.
        let mut t = FlowTable::new();
        feed(&mut t, 1, &v6_frag(48, false, &later));
        let (flows, counts, _) = t.finish();
        assert_eq!((flows.len(), counts.orphan_fragments), (1, 1));
        assert_eq!(flows[0].key.proto, 60);
    }

    #[test]
    fn orphan_fragments_become_a_flow_with_unknown_ports() {
        let mut t = FlowTable::new();
        feed(&mut t, 5, &frag(9, 6, false, &[1; 8]));
        let (flows, counts, _) = t.finish();
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].key.dst, IpAddr::from(R));
        assert_eq!(flows[0].key.dst_port, None);
        assert_eq!(flows[0].stats.packets(), 1);
        assert_eq!(counts.orphan_fragments, 1);
    }

    fn icmp_error(from: [u8; 4], to: [u8; 4], quoted: &[u8], extra: usize) -> Vec<u8> {
        let mut body = quoted[..28].to_vec();
        body.extend(std::iter::repeat_n(b'S', extra));
        let mut v = Vec::new();
        PacketBuilder::ipv4(from, to, 64)
            .icmpv4_raw(3, 3, [0; 4])
            .write(&mut v, &body)
            .unwrap();
        v
    }

    fn udp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4(src, dst, 64)
            .udp(sp, dp)
            .write(&mut v, &[0u8; 20])
            .unwrap();
        v
    }

    #[test]
    fn icmp_errors_fold_only_when_they_go_back_to_the_quoted_sender() {
        const DNS: [u8; 4] = [8, 8, 8, 8];
        const ROUTER: [u8; 4] = [10, 1, 0, 1];
        const ELSEWHERE: [u8; 4] = [203, 0, 113, 99];
        let query = udp(L, DNS, 5353, 53);
        let mut t = FlowTable::new();
        feed(&mut t, 1, &query);
        // A router's (or the resolver's) genuine error back to the querier: part of the DNS flow.
        feed(&mut t, 2, &icmp_error(ROUTER, L, &query, 0));
        feed(&mut t, 3, &icmp_error(DNS, L, &query, 0));
        // The querier "erroring" towards a third host, quoting the allowed flow: its own flow.
        for ts in 4..9 {
            feed(&mut t, ts, &icmp_error(L, ELSEWHERE, &query, 960));
        }
        let (flows, _, _) = t.finish();
        assert_eq!(flows.len(), 2, "{flows:?}");
        let dns = &flows[0];
        assert_eq!(
            (dns.key.dst, dns.key.dst_port),
            (IpAddr::from(DNS), Some(53))
        );
        assert_eq!((dns.stats.packets_out, dns.stats.packets_in), (1, 2));
        assert_eq!(dns.stats.icmp_errors, 2);
        assert_eq!(dns.state(), FlowState::Unreachable);
        let hidden = &flows[1];
        assert_eq!(hidden.key.proto, crate::flows::decode::PROTO_ICMP);
        assert_eq!(
            (hidden.key.src, hidden.key.dst),
            (IpAddr::from(L), IpAddr::from(ELSEWHERE))
        );
        assert_eq!(hidden.stats.packets_out, 5);
    }

    #[test]
    fn many_flows_memory_is_per_flow() {
        let mut t = FlowTable::new();
        for i in 0..10_000u32 {
            let p = tcp(L, R, 40000, (i % 60000) as u16 + 1, "S", 0);
            feed(&mut t, i64::from(i), &p);
            feed(&mut t, i64::from(i), &p);
        }
        assert_eq!(t.len(), 10_000);
    }

    const HELLO: &[u8] = include_bytes!("../../fixtures/buildpacks/leak-tls/bin/clienthello.bin");

    fn seg(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, seq: u32, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4(src, dst, 64)
            .tcp(sp, dp, seq, 1000)
            .ack(1)
            .write(&mut v, data)
            .unwrap();
        v
    }

    fn syn_seq(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, seq: u32) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4(src, dst, 64)
            .tcp(sp, dp, seq, 1000)
            .syn()
            .write(&mut v, &[])
            .unwrap();
        v
    }

    fn app(flows: &[Flow], dport: u16) -> Option<AppInfo> {
        let f = flows
            .iter()
            .find(|f| f.key.dst_port == Some(dport))
            .unwrap();
        f.app.as_deref().cloned()
    }

    #[test]
    fn first_bytes_join_across_segments_and_retransmissions() {
        let mut t = FlowTable::new();
        feed(&mut t, 1, &syn_seq(L, R, 41000, 443, 99));
        feed(&mut t, 2, &seg(L, R, 41000, 443, 100, &HELLO[..100]));
        // The first segment again, then one that overlaps it, then the rest.
        feed(&mut t, 3, &seg(L, R, 41000, 443, 100, &HELLO[..100]));
        feed(&mut t, 4, &seg(L, R, 41000, 443, 150, &HELLO[50..300]));
        assert_eq!(t.pending.len(), 1);
        feed(&mut t, 5, &seg(L, R, 41000, 443, 400, &HELLO[300..]));
        assert!(t.pending.is_empty() && t.pending_bytes == 0);
        // The responder's bytes are never read.
        feed(
            &mut t,
            6,
            &seg(R, L, 443, 41001, 7, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        );
        // A hole: the bytes after it do not join.
        feed(&mut t, 7, &syn_seq(L, R, 41002, 443, 0));
        feed(&mut t, 8, &seg(L, R, 41002, 443, 1, &HELLO[..100]));
        feed(&mut t, 9, &seg(L, R, 41002, 443, 201, &HELLO[200..]));
        // An HTTP request one byte at a time.
        let get = b"GET /x HTTP/1.1\r\nHost: Trickle.Example.org:8080\r\n\r\n";
        feed(&mut t, 10, &syn_seq(L, R, 41003, 80, 0));
        for (i, b) in get.iter().enumerate() {
            feed(&mut t, 11, &seg(L, R, 41003, 80, 1 + i as u32, &[*b]));
        }
        // A request the capture ends in the middle of: what was captured counts.
        feed(&mut t, 12, &syn_seq(L, R, 41004, 8080, 0));
        feed(
            &mut t,
            13,
            &seg(
                L,
                R,
                41004,
                8080,
                1,
                b"POST /up HTTP/1.1\r\nHost: cut.example.org\r\nContent-Le",
            ),
        );
        let (flows, _, _) = t.finish();
        assert_eq!(
            app(&flows, 443).unwrap().sni.as_deref(),
            Some("pkg.example.com")
        );
        assert!(flows
            .iter()
            .all(|f| f.key.src_port != Some(41001) || f.app.is_none()));
        let holed = flows
            .iter()
            .find(|f| f.key.src_port == Some(41002))
            .unwrap();
        assert_eq!(holed.app, None);
        let http = app(&flows, 80).unwrap();
        assert_eq!(http.http_host.as_deref(), Some("trickle.example.org"));
        assert_eq!(http.request().as_deref(), Some("GET /x HTTP/1.1"));
        let cut = app(&flows, 8080).unwrap();
        assert_eq!(cut.http_host.as_deref(), Some("cut.example.org"));
    }

    #[test]
    fn a_host_that_is_an_address_is_not_a_name() {
        let a = AppInfo {
            http_host: Some("169.254.169.254".into()),
            sni: Some("2001:db8::1".into()),
            ..AppInfo::default()
        };
        assert_eq!(a.names().count(), 0);
    }

    fn udp_with(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4(src, dst, 64)
            .udp(sp, dp)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    fn dns_msg(name: &str, answer: Option<[u8; 4]>) -> Vec<u8> {
        use hickory_proto::op::{Message, MessageType, OpCode, Query};
        use hickory_proto::rr::{rdata::A, Name, RData, Record, RecordType};
        let n = Name::from_ascii(name).unwrap();
        let kind = if answer.is_some() {
            MessageType::Response
        } else {
            MessageType::Query
        };
        let mut m = Message::new(1, kind, OpCode::Query);
        m.add_query(Query::query(n.clone(), RecordType::A));
        if let Some(a) = answer {
            m.add_answer(Record::from_rdata(
                n,
                60,
                RData::A(A::new(a[0], a[1], a[2], a[3])),
            ));
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn dns_questions_count_and_answers_only_come_back() {
        const RESOLVER: [u8; 4] = [198, 51, 100, 53];
        let mut t = FlowTable::new();
        // An odd port: the first datagram is a query, so the answer on the way back counts.
        feed(
            &mut t,
            1,
            &udp_with(L, RESOLVER, 40100, 5353, &dns_msg("odd.example.com.", None)),
        );
        feed(
            &mut t,
            2,
            &udp_with(
                RESOLVER,
                L,
                5353,
                40100,
                &dns_msg("odd.example.com.", Some([203, 0, 113, 9])),
            ),
        );
        // Port 53, asked twice.
        feed(
            &mut t,
            3,
            &udp_with(L, RESOLVER, 40101, 53, &dns_msg("pkg.example.com.", None)),
        );
        feed(
            &mut t,
            4,
            &udp_with(L, RESOLVER, 40102, 53, &dns_msg("PKG.example.com.", None)),
        );
        // "Answers" the capture's host sends out itself, unasked, prove nothing.
        feed(
            &mut t,
            5,
            &udp_with(
                L,
                R,
                53,
                40000,
                &dns_msg("evil.example.com.", Some([203, 0, 113, 66])),
            ),
        );
        feed(&mut t, 6, &udp_with(L, R, 40001, 5000, b"not dns at all"));
        feed(
            &mut t,
            7,
            &udp_with(
                R,
                L,
                5000,
                40001,
                &dns_msg("evil.example.com.", Some([203, 0, 113, 67])),
            ),
        );
        // DNS over TCP: a whole length-prefixed message in one segment.
        let mut framed = (dns_msg("tcp.example.com.", None).len() as u16)
            .to_be_bytes()
            .to_vec();
        framed.extend_from_slice(&dns_msg("tcp.example.com.", None));
        feed(&mut t, 8, &syn_seq(L, RESOLVER, 40103, 53, 0));
        feed(&mut t, 9, &seg(L, RESOLVER, 40103, 53, 1, &framed));
        // The same bytes again: read once, counted each time; an answer nobody asked for is not
        // taken, the same answer coming back to a flow that asked is.
        let pkg_answer = dns_msg("pkg.example.com.", Some([203, 0, 113, 5]));
        feed(&mut t, 10, &udp_with(RESOLVER, L, 53, 40200, &pkg_answer));
        assert_eq!(t.dns.answers.len(), 1);
        feed(&mut t, 11, &udp_with(RESOLVER, L, 53, 40101, &pkg_answer));
        feed(
            &mut t,
            12,
            &udp_with(L, RESOLVER, 40104, 53, &dns_msg("pkg.example.com.", None)),
        );
        let (flows, _, dns) = t.finish();
        assert_eq!(
            dns.names_for("203.0.113.5".parse().unwrap())
                .collect::<Vec<_>>(),
            ["pkg.example.com"]
        );
        let asked: Vec<(&str, u64, Micros)> = dns
            .queries
            .iter()
            .map(|q| (q.name.as_str(), q.count, q.first_seen))
            .collect();
        assert_eq!(
            asked,
            [
                ("odd.example.com", 1, 1),
                ("pkg.example.com", 3, 3),
                ("tcp.example.com", 1, 9)
            ]
        );
        assert_eq!(
            dns.names_for("203.0.113.9".parse().unwrap())
                .collect::<Vec<_>>(),
            ["odd.example.com"]
        );
        assert_eq!(
            dns.names_for("::ffff:203.0.113.9".parse().unwrap())
                .collect::<Vec<_>>(),
            ["odd.example.com"]
        );
        assert_eq!(dns.answers.len(), 2, "{:?}", dns.answers);
        let odd = flows.iter().find(|f| f.key.dst_port == Some(5353)).unwrap();
        assert_eq!(
            odd.app.as_ref().and_then(|a| a.request()).as_deref(),
            Some("DNS query A odd.example.com")
        );
        let other = flows.iter().find(|f| f.key.dst_port == Some(5000)).unwrap();
        assert_eq!(other.app, None);
    }
}
