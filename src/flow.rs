//! Decoded packets → flows.
//!
//! A flow is keyed by (protocol, src, src_port, dst, dst_port) and directed by its initiator: the
//! sender of a TCP SYN, otherwise the sender of the first packet seen. Packets the other way count
//! into the same flow. Memory grows with flows, not packets: the table holds one small [`Flow`] per
//! flow plus a bounded map of IP fragment ids.
//!
//! Naming ([`crate::naming`]): a TCP flow's first bytes from its initiator are held until they show
//! a TLS ClientHello's server name, an HTTP request, or neither (at most [`MAX_FIRST_BYTES`] per
//! flow, [`MAX_PENDING_BYTES`] in all); a UDP flow's first datagram is tried as a DNS query on any
//! port; every DNS message to or from port 53 is read into a bounded [`DnsSeen`].

use std::net::IpAddr;

use ahash::AHashMap;
use ipnet::IpNet;

use crate::decode::{Decoded, Housekeeping, IpPacket, Malformed, Transport, PROTO_TCP};
use crate::naming::{self, Http, Sni};

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
    /// Naming progress, [`namebits`].
    naming: u8,
}

/// Naming progress of a flow, as bits.
mod namebits {
    /// The first bytes were read (or cannot be): nothing more to look at for SNI, Host or a query.
    pub const DONE: u8 = 1;
    /// The initiator sent a DNS query: DNS responses coming back on this flow are read.
    pub const ASKED: u8 = 2;
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

/// One flow: its oriented key, its statistics, and what its first bytes named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub key: FlowKey,
    pub stats: FlowStats,
    /// What the initiator's first bytes said; `None` when they named nothing (most flows: boxed so
    /// that they cost one pointer).
    pub app: Option<Box<AppInfo>>,
}

/// What a flow's first bytes from its initiator said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppInfo {
    /// TLS: the ClientHello's server name.
    pub sni: Option<String>,
    /// HTTP: the Host header (lowercase, no port).
    pub http_host: Option<String>,
    /// HTTP: the request line, "GET /dl/go1.22.tgz HTTP/1.1".
    pub request_line: Option<String>,
    /// DNS (UDP on any port, or TCP port 53): the first question the initiator asked, as
    /// (type, name): ("A", "odd.example.com").
    pub dns_query: Option<(String, String)>,
}

impl Flow {
    /// Whether the flow's own first bytes show a protocol that is not DNS: a TLS ClientHello or an
    /// HTTP request (DNS rules with `content: dns` then do not match it).
    pub fn carries_other_than_dns(&self) -> bool {
        self.app
            .as_deref()
            .is_some_and(|a| a.sni.is_some() || a.http_host.is_some() || a.request_line.is_some())
    }
}

impl AppInfo {
    /// The request as the reports show it: the HTTP request line, or "DNS query A name".
    pub fn request(&self) -> Option<String> {
        self.request_line.clone().or_else(|| {
            self.dns_query
                .as_ref()
                .map(|(t, n)| format!("DNS query {t} {n}"))
        })
    }

    /// The names the flow gave its responder: SNI, then Host; an address written as a name
    /// ("Host: 169.254.169.254") names nothing the address does not.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sni
            .iter()
            .chain(&self.http_host)
            .map(String::as_str)
            .filter(|n| n.parse::<IpAddr>().is_err())
    }
}

/// One name and type the capture asked DNS for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsQuery {
    /// Lowercase, no trailing dot.
    pub name: String,
    /// "A", "AAAA", … ("TYPE65534" when unknown).
    pub qtype: String,
    /// How many queries asked it.
    pub count: u64,
    pub first_seen: Micros,
}

/// What DNS said in the capture: the questions asked, and which names lead to which addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsSeen {
    /// In order of first query.
    pub queries: Vec<DnsQuery>,
    /// Each address DNS answers gave, with the names that led to it (the name asked first, then
    /// each CNAME on the way), lowercase.
    pub answers: AHashMap<IpAddr, Vec<String>>,
    /// Query names and answer names not recorded because [`MAX_DNS_NAMES`] were held already.
    pub dropped: u64,
}

impl DnsSeen {
    /// The names DNS gave this address (an IPv4-mapped IPv6 address also gets its IPv4 address's).
    pub fn names_for(&self, addr: IpAddr) -> impl Iterator<Item = &str> {
        let canonical = addr.to_canonical();
        let mapped = (canonical != addr).then(|| self.answers.get(&canonical));
        self.answers
            .get(&addr)
            .into_iter()
            .chain(mapped.flatten())
            .flatten()
            .map(String::as_str)
    }
}

/// The most DNS names held (query entries plus answer names), whatever the capture holds.
pub const MAX_DNS_NAMES: usize = 100_000;
/// The most names held for one address.
const MAX_NAMES_PER_ADDRESS: usize = 32;
/// A TCP flow's first bytes are read for names up to this many bytes.
pub const MAX_FIRST_BYTES: usize = 16 * 1024;
/// First bytes held at once over all flows; a flow that would go beyond is read as it stands.
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// A TCP flow's first bytes while they are not enough to tell.
struct Pending {
    buf: Vec<u8>,
    /// The sequence number the next new byte has.
    next_seq: u32,
    /// The buffer's length at the last attempt: the next comes once it has doubled, so a flow
    /// that trickles in byte by byte costs linear, not quadratic, time.
    tried: usize,
}

#[derive(Default)]
struct DnsState {
    index: AHashMap<(String, String), u32>,
    queries: Vec<DnsQuery>,
    answers: AHashMap<IpAddr, Vec<String>>,
    names: usize,
    dropped: u64,
}

impl DnsState {
    /// The entry for a question, made (with no query counted yet) when new; `None` when
    /// [`MAX_DNS_NAMES`] are held already.
    fn entry(&mut self, name: String, qtype: String, ts: Micros) -> Option<u32> {
        let key = (name, qtype);
        if let Some(&i) = self.index.get(&key) {
            return Some(i);
        }
        if self.names >= MAX_DNS_NAMES {
            return None;
        }
        self.names += 1;
        let i = self.queries.len() as u32;
        self.index.insert(key.clone(), i);
        self.queries.push(DnsQuery {
            name: key.0,
            qtype: key.1,
            count: 0,
            first_seen: ts,
        });
        Some(i)
    }

    /// Count one query of the question at `entry` (a dropped one when `None`).
    fn count(&mut self, entry: Option<u32>, ts: Micros) {
        match entry.and_then(|i| self.queries.get_mut(i as usize)) {
            Some(q) => {
                q.count += 1;
                q.first_seen = q.first_seen.min(ts);
            }
            None => self.dropped += 1,
        }
    }

    #[cfg(test)]
    fn query(&mut self, name: String, qtype: String, ts: Micros) {
        let e = self.entry(name, qtype, ts);
        self.count(e, ts);
    }

    fn answer(&mut self, addr: IpAddr, names: &[String]) {
        let held = self.answers.entry(addr).or_default();
        for n in names {
            if held.contains(n) {
                continue;
            }
            if self.names >= MAX_DNS_NAMES || held.len() >= MAX_NAMES_PER_ADDRESS {
                self.dropped += 1;
                continue;
            }
            self.names += 1;
            held.push(n.clone());
        }
    }
}

/// A DNS message as read once: the same bytes (after the ID) come again and again in a capture
/// (retries, A and AAAA, every build asking for the same mirror), and reading one costs about a
/// microsecond, so [`FlowTable`] keeps what the last few thousand said.
enum SeenDns {
    /// A query with questions: the first as (type, name), and each one's entry in the DNS state.
    Query {
        first: (String, String),
        entries: Vec<Option<u32>>,
    },
    /// A response; `taken` once its answers were taken in (taking them again changes nothing).
    Response {
        answers: Vec<(IpAddr, Vec<String>)>,
        taken: bool,
    },
    /// Not DNS, or a query without a question.
    Other,
}

/// DNS messages remembered at most (then forgotten all at once), and the longest remembered.
const MAX_SEEN_DNS: usize = 4096;
const MAX_SEEN_DNS_BYTES: usize = 512;

fn read_dns(dns: &mut DnsState, payload: &[u8], ts: Micros) -> SeenDns {
    match naming::dns(payload) {
        Some(m) if !m.is_response && !m.queries.is_empty() => SeenDns::Query {
            first: (m.queries[0].1.clone(), m.queries[0].0.clone()),
            entries: m
                .queries
                .into_iter()
                .map(|(name, qtype)| dns.entry(name, qtype, ts))
                .collect(),
        },
        Some(m) if m.is_response => SeenDns::Response {
            answers: m.answers,
            taken: false,
        },
        _ => SeenDns::Other,
    }
}

/// Take in one DNS message of a flow. Questions count wherever they go; answers only when they
/// come back to the initiator of a flow that asked (a response the capture's host sends out on
/// its own proves nothing about the names of addresses).
fn take_dns(
    dns: &mut DnsState,
    flow: &mut Flow,
    seen: &mut SeenDns,
    from_initiator: bool,
    first: bool,
    ts: Micros,
) {
    match seen {
        SeenDns::Query { first: q, entries } => {
            if from_initiator {
                flow.stats.naming |= namebits::ASKED;
                let app = flow.app.get_or_insert_with(Default::default);
                if app.dns_query.is_none() {
                    app.dns_query = Some(q.clone());
                }
            }
            for e in entries.iter() {
                dns.count(*e, ts);
            }
        }
        SeenDns::Response { answers, taken }
            if !*taken && !from_initiator && !first && flow.stats.naming & namebits::ASKED != 0 =>
        {
            for (addr, names) in answers.iter() {
                dns.answer(*addr, names);
            }
            *taken = true;
        }
        _ => {}
    }
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
    /// TCP flows whose first bytes were read for names before they were complete, because
    /// [`MAX_PENDING_BYTES`] of first bytes were held already (a flood of unfinished requests).
    pub naming_cut: u64,
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
    /// First bytes of TCP flows not named yet, by flow index.
    pending: AHashMap<u32, Pending>,
    pending_bytes: usize,
    dns: DnsState,
    seen_dns: AHashMap<Box<[u8]>, SeenDns>,
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

    /// One DNS message of a flow ([`take_dns`]). Only the first datagram of a UDP flow that is not
    /// on port 53 is taken as DNS, and only as a query with a question.
    fn dns_message(
        &mut self,
        idx: u32,
        from_initiator: bool,
        ts: Micros,
        payload: &[u8],
        first: bool,
    ) {
        let Some(after_id) = payload.get(2..) else {
            return;
        };
        let Some(flow) = self.flows.get_mut(idx as usize) else {
            return;
        };
        if payload.len() > MAX_SEEN_DNS_BYTES {
            let mut seen = read_dns(&mut self.dns, payload, ts);
            return take_dns(&mut self.dns, flow, &mut seen, from_initiator, first, ts);
        }
        if !self.seen_dns.contains_key(after_id) {
            let seen = read_dns(&mut self.dns, payload, ts);
            if self.seen_dns.len() >= MAX_SEEN_DNS {
                self.seen_dns.clear();
            }
            self.seen_dns.insert(after_id.into(), seen);
        }
        if let Some(seen) = self.seen_dns.get_mut(after_id) {
            take_dns(&mut self.dns, flow, seen, from_initiator, first, ts);
        }
    }

    /// DNS over TCP: each whole length-prefixed message the segment holds.
    fn dns_over_tcp(&mut self, idx: u32, from_initiator: bool, ts: Micros, mut data: &[u8]) {
        while let [hi, lo, rest @ ..] = data {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            let Some(msg) = rest.get(..len) else { return };
            self.dns_message(idx, from_initiator, ts, msg, false);
            data = &rest[len..];
        }
    }

    /// Add a data segment of the initiator's to the flow's first bytes and try to name the flow.
    fn first_bytes(&mut self, idx: u32, seq: u32, wire_len: usize, data: &[u8]) {
        let p = self.pending.entry(idx).or_insert_with(|| Pending {
            buf: Vec::new(),
            next_seq: seq,
            tried: 0,
        });
        // A retransmission repeats bytes already held: keep only what is new. A segment ahead of
        // the next byte expected leaves a hole (a segment lost or reordered): the bytes would not
        // join, so the flow is named from what it holds.
        let behind = p.next_seq.wrapping_sub(seq);
        if behind >= 1 << 31 {
            return self.decide(idx, true);
        }
        let skip = behind as usize;
        if skip >= wire_len {
            return;
        }
        let new_len = wire_len - skip;
        let data = data.get(skip..).unwrap_or_default();
        let cut_short = data.len() < new_len;
        let room = MAX_FIRST_BYTES - p.buf.len();
        let take = data.len().min(room);
        if self.pending_bytes + take > MAX_PENDING_BYTES {
            self.counts.naming_cut += 1;
            return self.decide(idx, true);
        }
        let before = p.buf.len();
        p.buf.extend_from_slice(&data[..take]);
        p.next_seq = p.next_seq.wrapping_add(new_len as u32);
        self.pending_bytes += take;
        if cut_short || p.buf.len() >= MAX_FIRST_BYTES {
            // Captured shorter than sent (snaplen), or enough read: what there is is all there is.
            return self.decide(idx, true);
        }
        // Try again when the bytes have doubled, or when they may now be whole: a TLS record as
        // long as its header says, HTTP headers that have ended.
        let whole = p.buf.len() >= tls_need(&p.buf)
            || p.buf[before.saturating_sub(3)..]
                .windows(2)
                .any(|w| w == b"\n\n" || w == b"\n\r");
        if whole || p.buf.len() >= 2 * p.tried {
            p.tried = p.buf.len();
            self.decide(idx, false);
        }
    }

    /// Try the held first bytes of a flow; `last` when no more will come. A flow that is decided
    /// gets its names and loses its buffer.
    fn decide(&mut self, idx: u32, last: bool) {
        let buf = self.pending.get(&idx).map_or(&[][..], |p| &p.buf[..]);
        let app = match naming::tls_sni(buf) {
            Sni::Found(name) => Some(Some(AppInfo {
                sni: Some(name),
                ..AppInfo::default()
            })),
            sni => match (
                sni,
                if last {
                    naming::http_request_cut(buf)
                } else {
                    naming::http_request(buf)
                },
            ) {
                (_, Http::Found { request_line, host }) => Some(Some(AppInfo {
                    http_host: host,
                    request_line: Some(request_line),
                    ..AppInfo::default()
                })),
                (Sni::NeedMore, _) | (_, Http::NeedMore) if !last => None,
                _ => Some(None),
            },
        };
        let Some(app) = app else { return };
        if let Some(p) = self.pending.remove(&idx) {
            self.pending_bytes -= p.buf.len();
        }
        let flow = &mut self.flows[idx as usize];
        flow.stats.naming |= namebits::DONE;
        if let Some(app) = app {
            flow.app = Some(Box::new(app));
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
            let (idx, _) = self.account(key, e.first, 0, None, false);
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

/// How many bytes a TLS ClientHello that starts `b` takes, from its record and handshake headers;
/// `usize::MAX` when `b` does not show one (only when to try again depends on it).
fn tls_need(b: &[u8]) -> usize {
    match b {
        [0x16, _, _, r0, r1, 1, h0, h1, h2, ..] => {
            let record = 5 + usize::from(u16::from_be_bytes([*r0, *r1]));
            let message = 9 + usize::from_be_bytes([0, 0, 0, 0, 0, *h0, *h1, *h2]);
            record.max(message)
        }
        [0x16, _, _, r0, r1, ..] => 5 + usize::from(u16::from_be_bytes([*r0, *r1])),
        _ => usize::MAX,
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
        assert_eq!(flows[0].key.proto, crate::decode::PROTO_UDP);
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

    const HELLO: &[u8] = include_bytes!("../fixtures/buildpacks/leak-tls/bin/clienthello.bin");

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

    #[test]
    fn dns_names_are_bounded() {
        let mut d = DnsState::default();
        for i in 0..MAX_DNS_NAMES {
            d.query(format!("n{i}.example"), "A".into(), 1);
        }
        d.query("n0.example".into(), "A".into(), 0);
        assert_eq!(
            (d.queries.len(), d.dropped, d.queries[0].count),
            (MAX_DNS_NAMES, 0, 2)
        );
        d.query("one-more.example".into(), "A".into(), 2);
        d.answer("192.0.2.1".parse().unwrap(), &["x.example".into()]);
        assert_eq!(d.dropped, 2);
        let mut d = DnsState::default();
        let names: Vec<String> = (0..40).map(|i| format!("cdn{i}.example")).collect();
        d.answer("192.0.2.1".parse().unwrap(), &names);
        assert_eq!(
            (d.names, d.dropped),
            (MAX_NAMES_PER_ADDRESS, 40 - MAX_NAMES_PER_ADDRESS as u64)
        );
    }

    #[test]
    fn local_is_the_address_in_every_flow_per_version() {
        let mut t = FlowTable::new();
        feed(&mut t, 1, &tcp(L, R, 1, 2, "S", 0));
        feed(&mut t, 2, &tcp(L, [8, 8, 8, 8], 3, 4, "S", 0));
        feed(&mut t, 3, &tcp([192, 168, 5, 10], L, 5, 22, "S", 0));
        let (flows, _, _) = t.finish();
        let local = local_addresses(&flows, &[]);
        assert_eq!(local, vec![IpAddr::from(L)]);
        assert_eq!(
            remote_end(&flows[2].key, &local),
            (IpAddr::from([192, 168, 5, 10]), Some(5))
        );
        // A single flow: both ends are in every flow; the initiator wins.
        let mut t = FlowTable::new();
        feed(&mut t, 1, &tcp(R, L, 443, 1, "SA", 0));
        let (flows, _, _) = t.finish();
        assert_eq!(local_addresses(&flows, &[]), vec![IpAddr::from(L)]);
    }
}
