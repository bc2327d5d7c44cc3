//! Decoded packets → flows.
//!
//! A flow is keyed by (protocol, src, src_port, dst, dst_port) and directed by its initiator: the
//! sender of a TCP SYN, otherwise the sender of the first packet seen. Packets the other way count
//! into the same flow. Memory grows with flows, not packets: the table holds one small [`Flow`] per
//! flow plus a bounded map of IP fragment ids.

use std::net::IpAddr;

use ahash::AHashMap;
use ipnet::IpNet;

use crate::decode::{Decoded, Housekeeping, IpPacket, Malformed, Transport, PROTO_TCP};

/// Microseconds since the Unix epoch.
pub type Micros = i64;

/// The flow's identity, oriented from initiator (`src`) to responder (`dst`).
/// Ports are `None` for protocols that have none, and for TCP/UDP packets whose header was unreadable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub proto: u8,
    pub src: IpAddr,
    pub src_port: Option<u16>,
    pub dst: IpAddr,
    pub dst_port: Option<u16>,
}

impl FlowKey {
    fn reversed(self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.dst,
            src_port: self.dst_port,
            dst: self.src,
            dst_port: self.src_port,
        }
    }

    /// The same key for both directions.
    fn canonical(self) -> FlowKey {
        if (self.src, self.src_port) <= (self.dst, self.dst_port) {
            self
        } else {
            self.reversed()
        }
    }
}

/// TCP flags seen from one side, as bits.
mod tcpbits {
    pub const SYN: u8 = 1;
    pub const SYNACK: u8 = 2;
    pub const RST: u8 = 4;
    pub const FIN: u8 = 8;
    pub const DATA: u8 = 16;
}

/// How far a flow got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    /// TCP: only SYNs from the initiator, no answer.
    SynOnly,
    /// TCP: answered by a RST (or an ICMP error) before any handshake.
    Refused,
    /// TCP: SYN answered by SYN-ACK, no payload.
    Handshake,
    /// TCP: payload carried in at least one direction.
    Data,
    /// TCP: neither SYN nor payload seen (the capture started mid-connection).
    Midstream,
    /// Not TCP: the responder sent something back.
    Answered,
    /// Not TCP: nothing came back.
    Unanswered,
    /// An ICMP error answered the flow (port or host unreachable, time exceeded).
    Unreachable,
}

impl FlowState {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::SynOnly => "syn_only",
            FlowState::Refused => "refused",
            FlowState::Handshake => "handshake",
            FlowState::Data => "data",
            FlowState::Midstream => "midstream",
            FlowState::Answered => "answered",
            FlowState::Unanswered => "unanswered",
            FlowState::Unreachable => "unreachable",
        }
    }
}

/// Per-flow statistics: "out" is initiator → responder, "in" the reverse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub first_seen: Micros,
    pub last_seen: Micros,
    tcp_out: u8,
    tcp_in: u8,
    /// ICMP errors received about this flow.
    pub icmp_errors: u32,
    /// Whether the orientation came from a SYN (it will not change again).
    syn_oriented: bool,
}

impl FlowStats {
    pub fn packets(&self) -> u64 {
        self.packets_out + self.packets_in
    }

    pub fn bytes(&self) -> u64 {
        self.bytes_out + self.bytes_in
    }

    fn swap_direction(&mut self) {
        std::mem::swap(&mut self.packets_out, &mut self.packets_in);
        std::mem::swap(&mut self.bytes_out, &mut self.bytes_in);
        std::mem::swap(&mut self.tcp_out, &mut self.tcp_in);
    }
}

/// One flow: its oriented key and its statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub key: FlowKey,
    pub stats: FlowStats,
}

impl Flow {
    pub fn state(&self) -> FlowState {
        use tcpbits::*;
        let s = &self.stats;
        if self.key.proto == PROTO_TCP {
            if (s.tcp_out | s.tcp_in) & DATA != 0 {
                FlowState::Data
            } else if s.tcp_in & SYNACK != 0 {
                FlowState::Handshake
            } else if s.tcp_out & SYN != 0 && (s.tcp_in & RST != 0 || s.icmp_errors > 0) {
                FlowState::Refused
            } else if s.tcp_out & SYN != 0 {
                FlowState::SynOnly
            } else {
                FlowState::Midstream
            }
        } else if s.icmp_errors > 0 {
            FlowState::Unreachable
        } else if s.packets_in > 0 {
            FlowState::Answered
        } else {
            FlowState::Unanswered
        }
    }
}

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
}

/// A datagram's fragments share (src, dst, protocol, id) in IPv4 (RFC 791) and (src, dst, id) in
/// IPv6 (RFC 8200), where the protocol is only known from the first fragment: `proto` is 0 there.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

#[derive(Clone, Copy)]
struct FragEntry {
    flow: Option<u32>,
    /// The protocol of the later fragments seen before any first fragment (for orphan flows).
    proto: u8,
    packets: u64,
    bytes: u64,
    first: Micros,
    last: Micros,
}

/// Fragment ids are held until this many are open, then orphans are turned into flows and the map
/// is emptied: memory stays bounded whatever the capture holds.
const MAX_FRAGMENT_IDS: usize = 65_536;

/// The flow table.
#[derive(Default)]
pub struct FlowTable {
    index: AHashMap<FlowKey, u32>,
    flows: Vec<Flow>,
    frags: AHashMap<FragKey, FragEntry>,
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
        let idx = self.account(key, ts, len, flags, data);
        if let Some(fk) = frag_key {
            self.first_fragment(fk, idx);
        }
    }

    /// Count one packet into its flow (creating it) and return the flow's index.
    fn account(
        &mut self,
        key: FlowKey,
        ts: Micros,
        len: u64,
        flags: Option<crate::decode::TcpFlags>,
        data: bool,
    ) -> u32 {
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
        idx
    }

    fn first_fragment(&mut self, fk: FragKey, idx: u32) {
        let pending = self.frags.insert(
            fk,
            FragEntry {
                flow: Some(idx),
                proto: 0,
                packets: 0,
                bytes: 0,
                first: 0,
                last: 0,
            },
        );
        if let Some(p) = pending.filter(|p| p.flow.is_none()) {
            let flow = &mut self.flows[idx as usize];
            let from_initiator = flow.key.src == fk.src;
            add_many(&mut flow.stats, &p, from_initiator);
        }
        self.bound_fragments();
    }

    fn later_fragment(&mut self, fk: FragKey, proto: u8, ts: Micros, len: u64) {
        let e = self.frags.entry(fk).or_insert(FragEntry {
            flow: None,
            proto,
            packets: 0,
            bytes: 0,
            first: ts,
            last: ts,
        });
        match e.flow {
            Some(i) => {
                let flow = &mut self.flows[i as usize];
                let from_initiator = flow.key.src == fk.src;
                bump(&mut flow.stats, ts, len, from_initiator);
            }
            None => {
                e.packets += 1;
                e.bytes += len;
                e.first = e.first.min(ts);
                e.last = e.last.max(ts);
            }
        }
        self.bound_fragments();
    }

    fn bound_fragments(&mut self) {
        if self.frags.len() > MAX_FRAGMENT_IDS {
            self.flush_fragments();
        }
    }

    /// Turn fragments whose first fragment never came into flows with unknown ports, and forget
    /// all fragment ids.
    fn flush_fragments(&mut self) {
        let frags = std::mem::take(&mut self.frags);
        for (fk, e) in frags {
            if e.flow.is_some() || e.packets == 0 {
                continue;
            }
            self.counts.orphan_fragments += e.packets;
            let key = FlowKey {
                proto: e.proto,
                src: fk.src,
                src_port: None,
                dst: fk.dst,
                dst_port: None,
            };
            let idx = self.account(key, e.first, 0, None, false);
            let flow = &mut self.flows[idx as usize];
            // `account` counted one empty packet for the creation; replace it by the real counts.
            let from_initiator = flow.key.src == fk.src;
            if from_initiator {
                flow.stats.packets_out -= 1;
            } else {
                flow.stats.packets_in -= 1;
            }
            add_many(&mut flow.stats, &e, from_initiator);
        }
    }

    /// Finish: resolve pending fragments and hand out the flows in first-seen order.
    pub fn finish(mut self) -> (Vec<Flow>, Counts) {
        self.flush_fragments();
        let mut flows = self.flows;
        flows.sort_by_key(|f| (f.stats.first_seen, f.key));
        (flows, self.counts)
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

fn bump(s: &mut FlowStats, ts: Micros, len: u64, from_initiator: bool) {
    if from_initiator {
        s.packets_out += 1;
        s.bytes_out += len;
    } else {
        s.packets_in += 1;
        s.bytes_in += len;
    }
    s.first_seen = s.first_seen.min(ts);
    s.last_seen = s.last_seen.max(ts);
}

fn add_many(s: &mut FlowStats, e: &FragEntry, from_initiator: bool) {
    if from_initiator {
        s.packets_out += e.packets;
        s.bytes_out += e.bytes;
    } else {
        s.packets_in += e.packets;
        s.bytes_in += e.bytes;
    }
    if e.packets > 0 {
        s.first_seen = s.first_seen.min(e.first);
        s.last_seen = s.last_seen.max(e.last);
    }
}

/// Whether an address is loopback (127.0.0.0/8, ::1, or ::ffff:127.x.x.x).
pub fn is_loopback(a: IpAddr) -> bool {
    a.to_canonical().is_loopback()
}

/// Whether a flow runs over loopback: it says nothing about which host the capture is from.
pub fn is_loopback_flow(key: &FlowKey) -> bool {
    is_loopback(key.src) || is_loopback(key.dst)
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
            .filter(|a| local.iter().any(|n| crate::policy::net_contains(n, *a)))
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
    use crate::decode::{decode, LinkKind};
    use etherparse::PacketBuilder;

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
        let (flows, counts) = t.finish();
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
        let (flows, _) = t.finish();
        assert_eq!(flows[0].key.src, IpAddr::from(L));
        assert_eq!(flows[0].key.dst_port, Some(443));
        assert_eq!(flows[0].state(), FlowState::Data);
    }

    #[test]
    fn late_syn_reorients_a_midstream_flow() {
        let mut t = FlowTable::new();
        feed(&mut t, 1, &tcp(R, L, 443, 41000, "A", 0));
        feed(&mut t, 2, &tcp(L, R, 41000, 443, "S", 0));
        let (flows, _) = t.finish();
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
        let (flows, counts) = t.finish();
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
        let (flows, counts) = t.finish();
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
        let (flows, _) = t.finish();
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
        let (flows, counts) = t.finish();
        assert_eq!(flows.len(), 1, "{flows:?}");
        assert_eq!(flows[0].key.proto, crate::decode::PROTO_UDP);
        assert_eq!(flows[0].key.dst_port, Some(4444));
        assert_eq!(flows[0].stats.packets(), 2);
        assert_eq!(counts.orphan_fragments, 0);
        // Without its first fragment, a later one is a flow of the protocol its fragment header
        // names (here the destination options header), not of whatever its data looks like.
        let mut t = FlowTable::new();
        feed(&mut t, 1, &v6_frag(48, false, &later));
        let (flows, counts) = t.finish();
        assert_eq!((flows.len(), counts.orphan_fragments), (1, 1));
        assert_eq!(flows[0].key.proto, 60);
    }

    #[test]
    fn orphan_fragments_become_a_flow_with_unknown_ports() {
        let mut t = FlowTable::new();
        feed(&mut t, 5, &frag(9, 6, false, &[1; 8]));
        let (flows, counts) = t.finish();
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
        let (flows, _) = t.finish();
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
        assert_eq!(hidden.key.proto, crate::decode::PROTO_ICMP);
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

    #[test]
    fn local_is_the_address_in_every_flow_per_version() {
        let mut t = FlowTable::new();
        feed(&mut t, 1, &tcp(L, R, 1, 2, "S", 0));
        feed(&mut t, 2, &tcp(L, [8, 8, 8, 8], 3, 4, "S", 0));
        feed(&mut t, 3, &tcp([192, 168, 5, 10], L, 5, 22, "S", 0));
        let (flows, _) = t.finish();
        let local = local_addresses(&flows, &[]);
        assert_eq!(local, vec![IpAddr::from(L)]);
        assert_eq!(
            remote_end(&flows[2].key, &local),
            (IpAddr::from([192, 168, 5, 10]), Some(5))
        );
        // A single flow: both ends are in every flow; the initiator wins.
        let mut t = FlowTable::new();
        feed(&mut t, 1, &tcp(R, L, 443, 1, "SA", 0));
        let (flows, _) = t.finish();
        assert_eq!(local_addresses(&flows, &[]), vec![IpAddr::from(L)]);
    }
}
