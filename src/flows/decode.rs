//! Frames → IP packet summaries, with etherparse's lax slicing.
//!
//! The link type is checked once per capture ([`LinkKind::from_dlt`]); every frame is then reduced to a
//! [`Decoded`] value: an IP packet with what the flow table needs, link housekeeping (ARP, IPv6
//! neighbour discovery, MLD, IGMP), another protocol that is not IP, or a frame too broken to read.
//! Nothing here panics on any input: every length is checked by etherparse or by `get`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    EtherType, LaxIpPayloadSlice, LaxNetSlice, LaxSlicedPacket, LenSource, TransportSlice,
};

/// The link layers airgap-check reads, by the DLT value libpcap reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    Ethernet,
    LinuxSll,
    LinuxSll2,
    RawIp,
    Ipv4,
    Ipv6,
    /// BSD loopback, address family in the capturing host's byte order.
    Null,
    /// OpenBSD loopback, address family in network byte order.
    Loop,
}

impl LinkKind {
    /// Map libpcap's DLT number to a link kind, or `None` when unsupported.
    pub fn from_dlt(dlt: i32) -> Option<LinkKind> {
        Some(match dlt {
            1 => LinkKind::Ethernet,
            113 => LinkKind::LinuxSll,
            276 => LinkKind::LinuxSll2,
            // DLT_RAW is 12 on most systems and 14 on OpenBSD; LINKTYPE_RAW is 101.
            12 | 14 | 101 => LinkKind::RawIp,
            228 => LinkKind::Ipv4,
            229 => LinkKind::Ipv6,
            0 => LinkKind::Null,
            108 => LinkKind::Loop,
            _ => return None,
        })
    }
}

/// Link housekeeping: counted, never a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Housekeeping {
    Arp,
    /// IPv6 neighbour discovery (router/neighbour solicitation and advertisement, redirect).
    Ndp,
    /// Multicast listener discovery (MLDv1/v2, multicast router discovery).
    Mld,
    Igmp,
}

/// Why a frame could not be read as IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// The frame ends inside a header.
    Truncated,
    /// The bytes do not form a valid header (wrong version, bad lengths).
    Invalid,
}

/// Transport details of one IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: TcpFlags,
        /// The sequence number: where the payload goes in the sender's byte stream.
        seq: u32,
        /// Payload length on the wire (from the IP lengths, so snaplen cuts do not hide data).
        payload_len: u32,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    Icmp {
        icmp_type: u8,
        code: u8,
        /// For ICMP errors: the flow the error is about (the embedded packet's key).
        about: Option<Embedded>,
    },
    /// A fragment that is not the first one: its transport header is in another fragment.
    LaterFragment,
    /// The transport header is cut short; the protocol is known but not its ports.
    Unreadable,
    /// Any other IP protocol (GRE, ESP, SCTP, …): protocol "other" with its number.
    Other,
}

/// TCP flags that matter for flow state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub rst: bool,
    pub fin: bool,
}

impl TcpFlags {
    fn from_byte(b: u8) -> TcpFlags {
        TcpFlags {
            fin: b & 0x01 != 0,
            syn: b & 0x02 != 0,
            rst: b & 0x04 != 0,
            ack: b & 0x10 != 0,
        }
    }
}

/// The packet an ICMP error quotes: who sent it to whom, and on which ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedded {
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ports: Option<(u16, u16)>,
}

/// Fragment identity: later fragments join the flow of the first through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    pub id: u32,
    /// Offset in bytes.
    pub offset: u32,
    /// Whether more fragments follow (MF / M flag).
    pub more: bool,
}

/// One IP packet, reduced to what the flow table and the naming layer need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (after IPv6 extension headers).
    pub proto: u8,
    pub transport: Transport,
    pub fragment: Option<Fragment>,
    /// Transport payload as captured (may be shorter than on the wire).
    pub payload: &'a [u8],
}

/// What one frame turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    Ip(IpPacket<'a>),
    Housekeeping(Housekeeping),
    /// A well-formed frame of a protocol that is not IP (LLDP, STP, …).
    NonIp,
    Malformed(Malformed),
}

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IGMP: u8 = 2;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

/// Decode one frame of the given link type.
pub fn decode(link: LinkKind, frame: &[u8]) -> Decoded<'_> {
    let sliced = match link {
        LinkKind::Ethernet => match LaxSlicedPacket::from_ethernet(frame) {
            Ok(p) => p,
            Err(_) => return Decoded::Malformed(Malformed::Truncated),
        },
        LinkKind::LinuxSll => {
            // 16-byte header, protocol (an EtherType for Ethernet-like devices) at offset 14.
            let Some(proto) = be16(frame, 14) else {
                return Decoded::Malformed(Malformed::Truncated);
            };
            LaxSlicedPacket::from_ether_type(EtherType(proto), &frame[16..])
        }
        LinkKind::LinuxSll2 => {
            // 20-byte header, protocol at offset 0.
            let (Some(proto), true) = (be16(frame, 0), frame.len() >= 20) else {
                return Decoded::Malformed(Malformed::Truncated);
            };
            LaxSlicedPacket::from_ether_type(EtherType(proto), &frame[20..])
        }
        LinkKind::RawIp | LinkKind::Ipv4 | LinkKind::Ipv6 => match frame.first() {
            Some(b) if b >> 4 == 4 => LaxSlicedPacket::from_ether_type(EtherType::IPV4, frame),
            Some(b) if b >> 4 == 6 => LaxSlicedPacket::from_ether_type(EtherType::IPV6, frame),
            Some(_) => return Decoded::Malformed(Malformed::Invalid),
            None => return Decoded::Malformed(Malformed::Truncated),
        },
        LinkKind::Null | LinkKind::Loop => {
            let Some(fam) = frame.get(..4) else {
                return Decoded::Malformed(Malformed::Truncated);
            };
            let fam = [fam[0], fam[1], fam[2], fam[3]];
            // The family is a small number; whichever byte order gives one is the right one.
            let family = match (u32::from_be_bytes(fam), u32::from_le_bytes(fam)) {
                (be, _) if be < 256 => be,
                (_, le) => le,
            };
            let ether_type = match family {
                2 => EtherType::IPV4,
                // AF_INET6: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30.
                10 | 24 | 28 | 30 => EtherType::IPV6,
                _ => return Decoded::NonIp,
            };
            LaxSlicedPacket::from_ether_type(ether_type, &frame[4..])
        }
    };
    from_sliced(&sliced)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The IP layer of a packet, as the transport layer needs it.
struct IpLayer<'a> {
    src: IpAddr,
    dst: IpAddr,
    hop_limit: u8,
    payload: LaxIpPayloadSlice<'a>,
    fragment: Option<Fragment>,
    /// The protocol of a later IPv6 fragment, from its fragment header.
    later_v6_proto: Option<u8>,
}

fn from_sliced<'a>(p: &LaxSlicedPacket<'a>) -> Decoded<'a> {
    let Some(net) = &p.net else {
        return match &p.stop_err {
            Some((err, _)) => Decoded::Malformed(classify(err)),
            None => Decoded::NonIp,
        };
    };
    let ip = match ip_layer(net) {
        Some(ip) => ip,
        None => return Decoded::Housekeeping(Housekeeping::Arp),
    };
    let proto = ip.later_v6_proto.unwrap_or(ip.payload.ip_number.0);
    // IGMP is housekeeping only on its way to a multicast group; to a unicast address it is
    // traffic like any other (protocol other/2) and is judged.
    if proto == PROTO_IGMP && matches!(ip.dst, IpAddr::V4(d) if d.is_multicast()) {
        return Decoded::Housekeeping(Housekeeping::Igmp);
    }
    let mut pkt = IpPacket {
        src: ip.src,
        dst: ip.dst,
        proto,
        transport: Transport::Other,
        fragment: ip.fragment,
        payload: ip.payload.payload,
    };
    if let Some(f) = ip.fragment {
        pkt.transport = if f.offset > 0 {
            Transport::LaterFragment
        } else {
            // First fragment: etherparse does not slice a fragmented transport; read its header
            // here.
            first_fragment_transport(proto, ip.payload.payload, f.more, || {
                ip_payload_wire_len(net, &ip.payload)
            })
        };
        return Decoded::Ip(pkt);
    }
    match &p.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let wire = ip_payload_wire_len(net, &ip.payload);
            pkt.transport = Transport::Tcp {
                src_port: tcp.source_port(),
                dst_port: tcp.destination_port(),
                flags: TcpFlags {
                    syn: tcp.syn(),
                    ack: tcp.ack(),
                    rst: tcp.rst(),
                    fin: tcp.fin(),
                },
                seq: tcp.sequence_number(),
                payload_len: wire.saturating_sub(tcp.header_slice().len()) as u32,
            };
            pkt.payload = tcp.payload();
        }
        Some(TransportSlice::Udp(udp)) => {
            pkt.transport = Transport::Udp {
                src_port: udp.source_port(),
                dst_port: udp.destination_port(),
            };
            pkt.payload = udp.payload();
        }
        Some(TransportSlice::Icmpv4(icmp)) => {
            let t = icmp.type_u8();
            // 3 destination unreachable, 4 source quench, 11 time exceeded, 12 parameter problem.
            let about = matches!(t, 3 | 4 | 11 | 12)
                .then(|| embedded(icmp.payload()))
                .flatten();
            pkt.transport = Transport::Icmp {
                icmp_type: t,
                code: icmp.code_u8(),
                about,
            };
            pkt.payload = icmp.payload();
        }
        Some(TransportSlice::Icmpv6(icmp)) => {
            if let Some(h) = icmpv6_housekeeping(icmp.type_u8(), ip.src, ip.dst, ip.hop_limit) {
                return Decoded::Housekeeping(h);
            }
            let t = icmp.type_u8();
            // 1 destination unreachable, 2 packet too big, 3 time exceeded, 4 parameter problem.
            let about = matches!(t, 1..=4)
                .then(|| embedded(icmp.payload()))
                .flatten();
            pkt.transport = Transport::Icmp {
                icmp_type: t,
                code: icmp.code_u8(),
                about,
            };
            pkt.payload = icmp.payload();
        }
        // IGMP to a multicast group returned above; this one goes to a unicast address.
        Some(TransportSlice::Igmp(_)) => {}
        None => {
            if matches!(proto, PROTO_TCP | PROTO_UDP | PROTO_ICMP | PROTO_ICMPV6) {
                // The IP header was fine but the transport header is cut or broken.
                pkt.transport = Transport::Unreadable;
            }
        }
    }
    Decoded::Ip(pkt)
}

/// The IP layer's addresses, hop limit, payload and fragment; `None` for ARP.
fn ip_layer<'a>(net: &LaxNetSlice<'a>) -> Option<IpLayer<'a>> {
    match net {
        LaxNetSlice::Arp(_) => None,
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            let off = u32::from(h.fragments_offset().value()) * 8;
            let fragment = (h.more_fragments() || off > 0).then(|| Fragment {
                id: u32::from(h.identification()),
                offset: off,
                more: h.more_fragments(),
            });
            Some(IpLayer {
                src: IpAddr::V4(Ipv4Addr::from(h.source())),
                dst: IpAddr::V4(Ipv4Addr::from(h.destination())),
                hop_limit: h.ttl(),
                payload: v4.payload().clone(),
                fragment,
                later_v6_proto: None,
            })
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            let frag = ipv6_fragment(h.next_header().0, v6.extensions().slice());
            Some(IpLayer {
                src: IpAddr::V6(Ipv6Addr::from(h.source())),
                dst: IpAddr::V6(Ipv6Addr::from(h.destination())),
                hop_limit: h.hop_limit(),
                payload: v6.payload().clone(),
                // A later fragment's protocol is whatever its fragment header says; etherparse
                // reads on into the fragment's data and may find anything there.
                later_v6_proto: frag.and_then(|(f, first)| (f.offset > 0).then_some(first)),
                fragment: frag.map(|(f, _)| f),
            })
        }
    }
}

/// Neighbour discovery and MLD are housekeeping only when they stay on the link: sent to a
/// multicast group or a link-local address (NDP also from the unspecified address, as duplicate
/// address detection does, or to a neighbour in the sender's /64), and NDP with the hop limit 255
/// RFC 4861 requires. Otherwise they are ICMPv6 traffic, judged.
fn icmpv6_housekeeping(t: u8, src: IpAddr, dst: IpAddr, hop_limit: u8) -> Option<Housekeeping> {
    let on_link = match dst {
        IpAddr::V6(d) => d.is_multicast() || d.is_unicast_link_local(),
        IpAddr::V4(_) => false,
    };
    // Unicast neighbour solicitations (unreachability detection) and advertisements go to a
    // neighbour's global address, which shares the sender's /64. So do solicitations from a
    // link-local source, which no router forwards.
    let same_64 = match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            s.segments()[..4] == d.segments()[..4] || s.is_unicast_link_local()
        }
        _ => false,
    };
    match t {
        133..=137 if hop_limit == 255 && (on_link || same_64 || src.is_unspecified()) => {
            Some(Housekeeping::Ndp)
        }
        130..=132 | 143 | 151..=153 if on_link => Some(Housekeeping::Mld),
        _ => None,
    }
}

/// The IP payload length on the wire: the IP header's own lengths, so that a capture cut by
/// snaplen still shows that data was sent (never less than what was captured).
fn ip_payload_wire_len(net: &LaxNetSlice<'_>, payload: &LaxIpPayloadSlice<'_>) -> usize {
    let captured = payload.payload.len();
    if payload.len_source != LenSource::Slice {
        return captured;
    }
    let claimed = match net {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            usize::from(h.total_len())
                .saturating_sub(usize::from(h.ihl()) * 4)
                .saturating_sub(v4.extensions().auth.map(|a| a.slice().len()).unwrap_or(0))
        }
        LaxNetSlice::Ipv6(v6) => {
            usize::from(v6.header().payload_length()).saturating_sub(v6.extensions().slice().len())
        }
        LaxNetSlice::Arp(_) => 0,
    };
    claimed.max(captured)
}

/// Find a fragmenting fragment header in an IPv6 extension chain, with its Next Header (the first
/// header of the fragmentable part).
///
/// Walked by hand with checked reads: etherparse 0.21's `Ipv6ExtensionSliceIter` reads out of bounds
/// (an unchecked slice access) on some lax-parsed chains, e.g. the tcpdump corpus's
/// ipv6-next-header-oobr-1.pcap, so it is not used.
fn ipv6_fragment(mut next: u8, mut exts: &[u8]) -> Option<(Fragment, u8)> {
    for _ in 0..16 {
        let len = match next {
            // Hop-by-hop, routing, destination options: (hdr ext len + 1) * 8.
            0 | 43 | 60 => (usize::from(*exts.get(1)?) + 1) * 8,
            // Authentication header: (payload len + 2) * 4.
            51 => (usize::from(*exts.get(1)?) + 2) * 4,
            44 => {
                let off_flags = be16(exts, 2)?;
                let id = u32::from_be_bytes(exts.get(4..8)?.try_into().ok()?);
                let offset = u32::from(off_flags & 0xfff8);
                let more = off_flags & 1 != 0;
                if offset > 0 || more {
                    return Some((Fragment { id, offset, more }, *exts.first()?));
                }
                8
            }
            _ => return None,
        };
        next = *exts.first()?;
        exts = exts.get(len..)?;
    }
    None
}

/// The transport of a first fragment, read by hand. `more` says whether fragments follow;
/// `wire_len` gives this fragment's IP payload length on the wire.
fn first_fragment_transport(
    proto: u8,
    b: &[u8],
    more: bool,
    wire_len: impl FnOnce() -> usize,
) -> Transport {
    let ports = be16(b, 0).zip(be16(b, 2));
    match (proto, ports) {
        (PROTO_TCP, Some((s, d))) => Transport::Tcp {
            src_port: s,
            dst_port: d,
            flags: b
                .get(13)
                .map(|f| TcpFlags::from_byte(*f))
                .unwrap_or_default(),
            seq: b
                .get(4..8)
                .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]])),
            // The segment's data is this fragment's beyond the TCP header, and all of any later
            // fragment: a fragmented segment carries data.
            payload_len: {
                let header = b.get(12).map_or(20, |o| usize::from(o >> 4) * 4).max(20);
                let here = wire_len().saturating_sub(header) as u32;
                if more {
                    here.max(1)
                } else {
                    here
                }
            },
        },
        (PROTO_UDP, Some((s, d))) => Transport::Udp {
            src_port: s,
            dst_port: d,
        },
        (PROTO_ICMP | PROTO_ICMPV6, _) if b.len() >= 2 => Transport::Icmp {
            icmp_type: b[0],
            code: b[1],
            about: None,
        },
        (PROTO_TCP | PROTO_UDP | PROTO_ICMP | PROTO_ICMPV6, _) => Transport::Unreadable,
        _ => Transport::Other,
    }
}

/// Parse the packet quoted by an ICMP error: the original IP header and the first transport bytes.
fn embedded(quoted: &[u8]) -> Option<Embedded> {
    let p = LaxSlicedPacket::from_ip(quoted).ok()?;
    let (src, dst, payload) = match p.net? {
        LaxNetSlice::Ipv4(v4) => (
            IpAddr::V4(Ipv4Addr::from(v4.header().source())),
            IpAddr::V4(Ipv4Addr::from(v4.header().destination())),
            v4.payload().clone(),
        ),
        LaxNetSlice::Ipv6(v6) => (
            IpAddr::V6(Ipv6Addr::from(v6.header().source())),
            IpAddr::V6(Ipv6Addr::from(v6.header().destination())),
            v6.payload().clone(),
        ),
        LaxNetSlice::Arp(_) => return None,
    };
    let proto = payload.ip_number.0;
    let ports = match proto {
        PROTO_TCP | PROTO_UDP => be16(payload.payload, 0).zip(be16(payload.payload, 2)),
        _ => None,
    };
    Some(Embedded {
        proto,
        src,
        dst,
        ports,
    })
}

fn classify(err: &etherparse::err::packet::SliceError) -> Malformed {
    use etherparse::err::packet::SliceError;
    match err {
        SliceError::Len(_) => Malformed::Truncated,
        _ => Malformed::Invalid,
    }
}

/// The protocol's name as the reports write it.
pub fn proto_name(proto: u8) -> &'static str {
    match proto {
        PROTO_TCP => "tcp",
        PROTO_UDP => "udp",
        PROTO_ICMP => "icmp",
        PROTO_ICMPV6 => "icmpv6",
        _ => "other",
    }
}

/// The protocol as people read it: "tcp", …, or "other/47" with the IP protocol number.
pub fn proto_label(proto: u8) -> std::borrow::Cow<'static, str> {
    match proto_name(proto) {
        "other" => format!("other/{proto}").into(),
        n => n.into(),
    }
}

/// Whether flows of this protocol have ports.
pub fn has_ports(proto: u8) -> bool {
    matches!(proto, PROTO_TCP | PROTO_UDP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const A: [u8; 4] = [10, 1, 0, 2];
    const B: [u8; 4] = [203, 0, 113, 5];

    fn eth_tcp_syn() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4(A, B, 64)
            .tcp(41000, 443, 1000, 64240)
            .syn();
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    #[test]
    fn tcp_syn_over_ethernet() {
        let f = eth_tcp_syn();
        let Decoded::Ip(p) = decode(LinkKind::Ethernet, &f) else {
            panic!("not ip")
        };
        assert_eq!(p.src, IpAddr::from(A));
        assert_eq!(p.dst, IpAddr::from(B));
        assert_eq!(p.proto, PROTO_TCP);
        assert!(matches!(
            p.transport,
            Transport::Tcp {
                src_port: 41000,
                dst_port: 443,
                flags: TcpFlags {
                    syn: true,
                    ack: false,
                    ..
                },
                seq: 1000,
                payload_len: 0
            }
        ));
    }

    #[test]
    fn snaplen_cut_tcp_still_counts_wire_payload() {
        let b = PacketBuilder::ethernet2([2; 6], [1; 6])
            .ipv4(A, B, 64)
            .tcp(41010, 443, 1, 1000)
            .ack(5);
        let mut v = Vec::new();
        b.write(&mut v, &[7u8; 100]).unwrap();
        v.truncate(54);
        let Decoded::Ip(p) = decode(LinkKind::Ethernet, &v) else {
            panic!("not ip")
        };
        assert!(matches!(
            p.transport,
            Transport::Tcp {
                payload_len: 100,
                ..
            }
        ));
    }

    #[test]
    fn sll_sll2_raw_null_loop() {
        let eth = eth_tcp_syn();
        let ip = &eth[14..];
        let mut sll = vec![0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(ip);
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 2, 0, 0, 0, 0, 2, 0, 0,
        ];
        sll2.extend_from_slice(ip);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(ip);
        let mut lo = 2u32.to_be_bytes().to_vec();
        lo.extend_from_slice(ip);
        for (k, f) in [
            (LinkKind::LinuxSll, sll),
            (LinkKind::LinuxSll2, sll2),
            (LinkKind::RawIp, ip.to_vec()),
            (LinkKind::Null, null),
            (LinkKind::Loop, lo),
        ] {
            assert!(
                matches!(
                    decode(k, &f),
                    Decoded::Ip(IpPacket {
                        proto: PROTO_TCP,
                        ..
                    })
                ),
                "{k:?}"
            );
        }
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        let mut x: u32 = 0x1234_5678;
        for len in 0..300usize {
            for _ in 0..20 {
                let mut f = Vec::with_capacity(len);
                for _ in 0..len {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    f.push(x as u8);
                }
                if len > 14 {
                    f[12] = 0x08;
                    f[13] = if x & 1 == 0 { 0x00 } else { 0xdd };
                    f[14] = (f[14] & 0x0f) | if x & 2 == 0 { 0x40 } else { 0x60 };
                }
                for k in [
                    LinkKind::Ethernet,
                    LinkKind::LinuxSll,
                    LinkKind::LinuxSll2,
                    LinkKind::RawIp,
                    LinkKind::Null,
                ] {
                    let _ = decode(k, &f);
                }
            }
        }
        assert_eq!(
            decode(LinkKind::Ethernet, &[0u8; 5]),
            Decoded::Malformed(Malformed::Truncated)
        );
    }

    #[test]
    fn housekeeping_is_not_a_flow() {
        // ICMPv6 neighbour solicitation.
        let b = PacketBuilder::ipv6([0xfe; 16], [0xff; 16], 255).icmpv6_raw(135, 0, [0; 4]);
        let mut v = Vec::new();
        b.write(&mut v, &[0u8; 16]).unwrap();
        assert_eq!(
            decode(LinkKind::RawIp, &v),
            Decoded::Housekeeping(Housekeeping::Ndp)
        );
    }

    fn icmpv6(src: &str, dst: &str, hop_limit: u8, icmp_type: u8) -> Vec<u8> {
        let src: Ipv6Addr = src.parse().unwrap();
        let dst: Ipv6Addr = dst.parse().unwrap();
        let mut v = Vec::new();
        PacketBuilder::ipv6(src.octets(), dst.octets(), hop_limit)
            .icmpv6_raw(icmp_type, 0, [0; 4])
            .write(&mut v, &[0x45u8; 120])
            .unwrap();
        v
    }

    fn igmp(dst: [u8; 4]) -> Vec<u8> {
        let body = [0x16u8; 100];
        let h = etherparse::Ipv4Header::new(100, 1, etherparse::IpNumber(2), A, dst).unwrap();
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(&body);
        v
    }

    #[test]
    fn housekeeping_only_when_it_stays_on_the_link() {
        let hk = |f: Vec<u8>| match decode(LinkKind::RawIp, &f) {
            Decoded::Housekeeping(h) => Some(h),
            Decoded::Ip(p) => {
                assert!(matches!(p.proto, PROTO_ICMPV6 | PROTO_IGMP), "{p:?}");
                None
            }
            d => panic!("{d:?}"),
        };
        // NDP: on-link destinations (or from ::) with hop limit 255.
        let ndp = Some(Housekeeping::Ndp);
        assert_eq!(hk(icmpv6("fe80::2", "ff02::1:ff00:1", 255, 135)), ndp);
        assert_eq!(hk(icmpv6("fe80::2", "fe80::1", 255, 136)), ndp);
        assert_eq!(hk(icmpv6("::", "ff02::1:ff00:2", 255, 135)), ndp);
        assert_eq!(hk(icmpv6("fe80::2", "ff02::2", 255, 133)), ndp);
        assert_eq!(hk(icmpv6("fd00::2", "2001:db8::77", 255, 135)), None);
        // A unicast advertisement to a neighbour's global address (same /64) is housekeeping.
        assert_eq!(hk(icmpv6("fd00:99::1", "fd00:99::2", 255, 136)), ndp);
        assert_eq!(hk(icmpv6("fd00:99::1", "fd00:99::2", 64, 136)), None);
        // Unreachability detection: from a link-local source to a neighbour's global address.
        assert_eq!(hk(icmpv6("fe80::1", "fd00:99::2", 255, 135)), ndp);
        assert_eq!(hk(icmpv6("fe80::2", "ff02::1:ff00:1", 64, 135)), None);
        // MLD: to a group or a link-local address.
        let mld = Some(Housekeeping::Mld);
        assert_eq!(hk(icmpv6("fe80::2", "ff02::16", 1, 143)), mld);
        assert_eq!(hk(icmpv6("fe80::2", "ff02::fb", 1, 131)), mld);
        assert_eq!(hk(icmpv6("fe80::2", "fe80::1", 1, 130)), mld);
        assert_eq!(hk(icmpv6("fd00::2", "2001:db8::77", 1, 131)), None);
        assert_eq!(hk(icmpv6("fd00::2", "2001:db8::77", 64, 143)), None);
        assert_eq!(hk(icmpv6("fd00::2", "2001:db8::77", 64, 151)), None);
        // IGMP: to a multicast group only; link-local IPv4 is not enough.
        assert_eq!(hk(igmp([224, 0, 0, 22])), Some(Housekeeping::Igmp));
        assert_eq!(hk(igmp([239, 1, 2, 3])), Some(Housekeeping::Igmp));
        assert_eq!(hk(igmp([203, 0, 113, 77])), None);
        assert_eq!(hk(igmp([169, 254, 1, 1])), None);
        // What is not housekeeping is a judged flow with its protocol.
        let f = igmp([203, 0, 113, 77]);
        let Decoded::Ip(p) = decode(LinkKind::RawIp, &f) else {
            panic!()
        };
        assert_eq!((p.proto, p.transport), (PROTO_IGMP, Transport::Other));
        let f = icmpv6("fd00::2", "2001:db8::77", 255, 135);
        let Decoded::Ip(p) = decode(LinkKind::RawIp, &f) else {
            panic!()
        };
        assert!(matches!(
            p.transport,
            Transport::Icmp { icmp_type: 135, .. }
        ));
    }

    #[test]
    fn icmp_error_quotes_the_original_flow() {
        // Port unreachable from B quoting A:41003 -> B:123/udp.
        let mut quoted = Vec::new();
        PacketBuilder::ipv4(A, B, 64)
            .udp(41003, 123)
            .write(&mut quoted, &[0u8; 48])
            .unwrap();
        quoted.truncate(28);
        let mut v = Vec::new();
        PacketBuilder::ipv4(B, A, 64)
            .icmpv4_raw(3, 3, [0; 4])
            .write(&mut v, &quoted)
            .unwrap();
        let Decoded::Ip(p) = decode(LinkKind::RawIp, &v) else {
            panic!()
        };
        let Transport::Icmp { about: Some(e), .. } = p.transport else {
            panic!("{:?}", p.transport)
        };
        assert_eq!(e.proto, PROTO_UDP);
        assert_eq!(e.src, IpAddr::from(A));
        assert_eq!(e.ports, Some((41003, 123)));
    }
}
