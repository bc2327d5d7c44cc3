//! Deterministic generator for the capture fixtures in `fixtures/pcap/`.
//!
//! Usage: `cargo run --example gen_fixtures -- fixtures/pcap`
//!
//! Every file is byte-for-byte reproducible: timestamps start at
//! 2026-01-01T00:00:00Z (1767225600 s) and advance by fixed microsecond steps,
//! pcap files are written little-endian with microsecond timestamps, and the
//! only "random" bytes come from a fixed-seed xorshift PRNG.
//!
//! Addresses: local host 10.1.0.2 / fd00:1::2 / fe80::2 (MAC 02:00:00:00:00:02),
//! gateway and DNS resolver 10.1.0.1 (MAC 02:00:00:00:00:01, also used as the
//! next-hop MAC for IPv6). Ethernet frames have no FCS and are not padded to
//! 60 bytes (as seen when capturing on the sending host).
//!
//! # Files
//!
//! `clean.pcap` (Ethernet, 29 packets, 500 us apart) — nothing leaves the
//! allowlist:
//! - ARP request who-has 10.1.0.1 tell 10.1.0.2, and the ARP reply (2 packets)
//! - UDP DNS 10.1.0.2:40000 -> 10.1.0.1:53, A? example.org (id 0x1111), and the
//!   response with one answer A 10.1.0.80 (2)
//! - TCP 10.1.0.2:40001 -> 192.168.5.10:8080: handshake, client sends
//!   `GET / HTTP/1.1` with `Host: app.internal`, server ACKs, server sends
//!   `HTTP/1.1 200 OK` with `Content-Length: 0`, client ACKs, FIN/ACK both ways,
//!   final ACK (10)
//! - TCP fd00:1::2:40002 -> [fd00:2::10]:443 SYN, SYN-ACK, ACK (3)
//! - IGMPv2 membership report for group 224.0.0.22 sent to 224.0.0.22, TTL 1,
//!   with the 4-byte Router Alert IPv4 option (1)
//! - ICMPv6 neighbour solicitation (135) fe80::2 -> ff02::1:ff00:1 for target
//!   fd00:1::1, hop limit 255, with a source link-layer address option (1)
//! - MLDv2 report (ICMPv6 143) fe80::2 -> ff02::16, hop limit 1, behind an IPv6
//!   hop-by-hop header carrying a Router Alert option; one record
//!   CHANGE_TO_EXCLUDE ff02::fb (1)
//! - TCP DNS 10.1.0.2:40003 -> 10.1.0.1:53: handshake, 2-byte length-prefixed
//!   query A? example.org (id 0x2222), length-prefixed response
//!   (A 10.1.0.80), client ACK, FIN/ACK both ways, final ACK (9)
//!
//! Expected judgement: 4 flows (udp 10.1.0.1:53, tcp 192.168.5.10:8080,
//! tcp [fd00:2::10]:443, tcp 10.1.0.1:53); housekeeping arp 2, igmp 1, ndp 1,
//! mld 1.
//!
//! `leaky.pcap` (Ethernet, 31 packets, 500 us apart except where noted), in
//! order (packet numbers are 1-based frame numbers as shown by tshark):
//! 1. #1-3: TCP SYN 10.1.0.2:41000 -> 203.0.113.5:443 at t=0, retransmitted
//!    (identical bytes) at t=+1 s and t=+3 s; never answered.
//! 2. #4-5: TCP SYN 10.1.0.2:41001 -> 198.51.100.7:80, answered by RST+ACK.
//! 3. #6-12: TCP 10.1.0.2:41002 -> 169.254.169.254:80, 7 packets: SYN,
//!    SYN-ACK, ACK, client `GET /latest/meta-data/ HTTP/1.1` (Host
//!    169.254.169.254), server ACK, server `HTTP/1.1 200 OK`, client ACK.
//! 4. #13: UDP 10.1.0.2:41003 -> 8.8.8.8:123, 48-byte NTPv4 client request
//!    (first byte 0x23); no answer.
//! 5. #14-15: ICMP echo request 10.1.0.2 -> 198.51.100.10 (id 7, seq 1, 32-byte
//!    payload) and its echo reply.
//! 6. #16: IPv6 TCP SYN fd00:1::2:41004 -> [2001:db8::7]:80 with a hop-by-hop
//!    extension header (one PadN option) between IPv6 and TCP.
//! 7. #17-19: UDP 10.1.0.2:41005 -> 203.0.113.9:5000, 3000-byte payload (UDP
//!    length 3008) as three IPv4 fragments, IP id 0x1234, byte offsets 0,
//!    1480, 2960 (MF on the first two), written last fragment first, then the
//!    first, then the middle one. Only the first fragment has the UDP header.
//! 8. #20: 802.1Q VLAN 100: UDP 10.1.0.2:41006 -> 192.0.2.50:514,
//!    payload `<14>test syslog`.
//! 9. #21: GRE (IPv4 protocol 47) 10.1.0.2 -> 203.0.113.20, 4-byte GRE header
//!    (protocol 0x0800) carrying an inner IPv4 ICMP echo request
//!    10.255.0.1 -> 10.255.0.2.
//! 10. #22-24: incoming TCP 192.168.5.10:50000 -> 10.1.0.2:22 SYN, SYN-ACK, ACK.
//! 11. #25-26: UDP DNS 10.1.0.2:41007 -> 10.1.0.1:53, A? pkg.example.com
//!     (id 0x3333), response A 203.0.113.5.
//! 12. #27: IPv6 UDP DNS fd00:1::2:41008 -> [2001:db8::53]:53,
//!     AAAA? example.net (id 0x4444); no answer.
//! 13. #28: TCP ACK 10.1.0.2:41010 -> 203.0.113.5:443 with 100 payload bytes,
//!     cut by the snaplen: orig len 154, captured 54 (Ethernet+IPv4+TCP).
//! 14. #29: truncated frame: Ethernet (type IPv4) + the first 10 bytes of an
//!     IPv4 header; caplen = orig len = 24.
//! 15. #30: garbage: Ethernet (type IPv4) + 46 PRNG bytes, the first forced to
//!     0x00 (IP version 0).
//! 16. #31: LLDP (ethertype 0x88cc, dst 01:80:c2:00:00:0e) with chassis id,
//!     port id, TTL and end TLVs.
//!
//! (That is 31 packets in total.) Expected judgement with the default
//! allowlist (internal 10/8, 172.16/12, 192.168/16, fc00::/7; DNS udp/tcp 53
//! anywhere): disallowed tcp 203.0.113.5:443 (two flows: :41000 SYN-only,
//! 3 packets, and :41010), tcp 198.51.100.7:80 (refused),
//! tcp 169.254.169.254:80, udp 8.8.8.8:123, icmp 198.51.100.10,
//! tcp [2001:db8::7]:80, udp 203.0.113.9:5000 (3 packets),
//! udp 192.0.2.50:514, other/47 203.0.113.20; allowed: tcp 192.168.5.10
//! (incoming to :22), udp 10.1.0.1:53, udp [2001:db8::53]:53.
//!
//! `leaky.pcapng`: the same 31 packets (same bytes, timestamps and lengths) as
//! pcapng: one SHB (little-endian), one IDB (Ethernet, snaplen 65535,
//! if_tsresol = 9, i.e. nanoseconds, because pcap-file 2.0 writes EPB
//! timestamps in nanoseconds), then one EPB per packet.
//!
//! Other link types, each with the same three packets, 500 us apart:
//! TCP SYN 10.1.0.2:42000 -> 203.0.113.5:443; UDP DNS 10.1.0.2:42001 ->
//! 10.1.0.1:53 (A? example.org, id 0x5555); IPv6 TCP SYN fd00:1::2:42002 ->
//! [2001:db8::7]:80.
//! - `sll.pcap`: LINKTYPE_LINUX_SLL (113), 16-byte header: packet type 4
//!   (outgoing), ARPHRD 1, address length 6, local MAC + 2 zero bytes,
//!   protocol 0x0800 / 0x86dd.
//! - `sll2.pcap`: LINKTYPE_LINUX_SLL2 (276), 20-byte header: protocol,
//!   reserved 0, ifindex 2, ARPHRD 1, packet type 4, address length 6, local
//!   MAC + 2 zero bytes.
//! - `raw.pcap`: LINKTYPE_RAW (101), bare IP packets.
//! - `null.pcap`: LINKTYPE_NULL (0), 4-byte little-endian family: 2 (IPv4),
//!   30 (IPv6, Darwin's AF_INET6).
//! - `loop.pcap`: LINKTYPE_LOOP (108), 4-byte big-endian family: 2 (IPv4),
//!   24 (IPv6).
//! - `vlan-qinq.pcap`: Ethernet, 802.1ad outer tag (0x88a8, VLAN 200) +
//!   802.1Q inner tag (VLAN 100).
//!
//! Edge files:
//! - `unsupported-linktype.pcap`: LINKTYPE_USER0 (147), one 20-byte packet.
//! - `empty.pcap`: Ethernet pcap header only, no packets.
//! - `not-a-capture.pcap`: the text `this is not a capture file\n`.
//! - `scan.pcap` (Ethernet, 2002 packets, 100 us apart): 10.1.0.2:43000 sends
//!   a TCP SYN to 198.51.100.20 ports 1..=1000 in order; each is answered by
//!   RST+ACK except ports 22 and 443, which answer SYN-ACK and get a RST from
//!   the scanner.
//!
//! Review fixtures (generated after the others, so they do not shift them):
//! - `future.pcapng`: one Ethernet interface with if_tsresol = 0 (whole
//!   seconds) and two EPBs whose raw timestamps are 2^62 and 2^62 + 1
//!   seconds, far past year 9999: TCP SYN 10.1.0.2:44000 -> 203.0.113.5:443
//!   and UDP DNS 10.1.0.2:44001 -> 10.1.0.1:53.
//! - `out-of-order.pcap` (Ethernet): records not in time order, as mergecap -a
//!   or two interfaces leave them: UDP DNS 10.1.0.2:44002 -> 10.1.0.1:53 at
//!   t0 = start + 10 s, TCP SYN 10.1.0.2:44003 -> 203.0.113.5:443 at
//!   t0 - 0.5 s, TCP SYN 10.1.0.2:44004 -> 198.51.100.7:443 at t0 - 3.25 s.
//! - `multi-link.pcapng`: interface 0 Ethernet, one EPB (UDP DNS
//!   10.1.0.2:44005 -> 10.1.0.1:53), then interface 1 raw IP (LINKTYPE_RAW)
//!   with one EPB (TCP SYN 10.1.0.2:44006 -> 203.0.113.5:443), then one more
//!   EPB on interface 0 (the same DNS query). libpcap refuses the second
//!   interface's link type.
//! - `snaplen14.pcap` (Ethernet, snaplen 14): five TCP SYNs 10.1.0.2:44010-44014
//!   -> 203.0.113.5:443 of which only the 14-byte Ethernet header was kept.
//! - `pppoe.pcap` (Ethernet): five PPPoE session frames (ethertype 0x8864,
//!   session 1, PPP protocol 0x0021) carrying TCP SYNs 10.1.0.2:44020-44024 ->
//!   203.0.113.5:443: nothing in it decodes as IP.
//! - `disguised.pcap` (Ethernet): traffic dressed up as housekeeping or as
//!   ICMP errors: UDP DNS 10.1.0.2:44030 -> 8.8.8.8:53 and its answer; three
//!   ICMP port unreachable 10.1.0.2 -> 203.0.113.99 quoting that DNS query,
//!   each with 200 more bytes; IGMP (IP protocol 2) 10.1.0.2 -> 203.0.113.77
//!   with 100 bytes; an ICMPv6 neighbour solicitation fd00:1::2 ->
//!   2001:db8::77 (hop limit 255) and an MLDv1 report (131) fd00:1::2 ->
//!   2001:db8::77 (hop limit 1); finally a genuine port unreachable from the
//!   router 10.1.0.1 -> 10.1.0.2 quoting the DNS query.
//! - `any-lo.pcap` (Linux SLL, as `tcpdump -i any` writes): TCP SYN and SYN-ACK
//!   127.0.0.1:45000 <-> 127.0.0.1:5432 on the loopback device; UDP DNS
//!   10.1.0.2:44040 -> 10.1.0.1:53 and its answer; an inbound connection
//!   198.51.100.9:50000 -> 10.1.0.2:8080 (SYN, SYN-ACK, 1000 bytes of data
//!   from 10.1.0.2).
//!
//! Naming fixture (generated last):
//! - `names.pcap` (Ethernet, 19 packets, 500 us apart):
//!   1. UDP DNS 10.1.0.2:46001 -> 10.1.0.1:53, A? pkg.example.com (id 0x7001),
//!      and the response A 203.0.113.5.
//!   2. TCP 10.1.0.2:46002 -> 203.0.113.5:443: SYN, SYN-ACK, ACK, then one
//!      segment with the TLS ClientHello of
//!      fixtures/buildpacks/leak-tls/bin/clienthello.bin (517 bytes, SNI
//!      pkg.example.com).
//!   3. UDP DNS 10.1.0.2:46003 -> 10.1.0.1:53, A? www.example.com (id 0x7003),
//!      and the response CNAME cdn.example.net, A 203.0.113.7 (for
//!      cdn.example.net).
//!   4. TCP SYN 10.1.0.2:46004 -> 203.0.113.7:443.
//!   5. TCP 10.1.0.2:46005 -> 198.51.100.60:80: SYN, SYN-ACK, ACK, then
//!      `GET /dl/go1.22.tgz HTTP/1.1` with `Host: mirror.example.org` (no DNS
//!      for it).
//!   6. TCP 10.1.0.2:46006 -> 198.51.100.61:443: SYN, SYN-ACK, ACK, then the
//!      same ClientHello in two segments, split at byte 100.
//!   7. UDP 10.1.0.2:40100 -> 198.51.100.53:5353 carrying a standard query
//!      A? odd.example.com (id 0x7007): DNS on an odd port, no answer.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use etherparse::{
    ip_number, ArpHardwareId, ArpOperation, ArpPacket, EtherType, IcmpEchoHeader, Icmpv4Type,
    Icmpv6Type, IgmpType, IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv6Extensions,
    Ipv6Header, Ipv6RawExtHeader, PacketBuilder, TcpHeader, TcpOptionElement, UdpHeader,
};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{PcapNgBlock, PcapNgWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Wraps a bare IP packet in a link-layer header.
type LinkWrap = fn(&[u8]) -> Vec<u8>;

/// 2026-01-01T00:00:00Z
const START_US: u64 = 1_767_225_600 * 1_000_000;

const LOCAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const LOCAL4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const GW4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const LOCAL6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2);
const LINK_LOCAL6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_LLDP: u16 = 0x88cc;

// TCP flag bits (as in the TCP header's flags byte).
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// Tiny xorshift64 PRNG; the only source of "random" bytes.
struct XorShift64(u64);

impl XorShift64 {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Shared generator state: the IPv4 identification counter.
struct Gen {
    ip_id: u16,
}

impl Gen {
    fn new() -> Self {
        Gen { ip_id: 0x4a00 }
    }

    fn next_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    /// IP header template for `src -> dst`; lengths, protocol and checksums are
    /// filled in by `PacketBuilder`.
    fn ip(&mut self, src: IpAddr, dst: IpAddr, ttl: u8) -> IpHeaders {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => IpHeaders::Ipv4(
                Ipv4Header {
                    source: s.octets(),
                    destination: d.octets(),
                    time_to_live: ttl,
                    identification: self.next_id(),
                    dont_fragment: true,
                    ..Default::default()
                },
                Default::default(),
            ),
            (IpAddr::V6(s), IpAddr::V6(d)) => IpHeaders::Ipv6(
                Ipv6Header {
                    source: s.octets(),
                    destination: d.octets(),
                    hop_limit: ttl,
                    ..Default::default()
                },
                Default::default(),
            ),
            _ => panic!("address family mismatch: {src} -> {dst}"),
        }
    }

    fn udp(&mut self, src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ip(self.ip(src, dst, ttl_from(src)))
            .udp(sport, dport)
            .write(&mut out, payload)
            .expect("build udp");
        out
    }
}

fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

fn v6(a: Ipv6Addr) -> IpAddr {
    IpAddr::V6(a)
}

fn ip4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn is_local(a: IpAddr) -> bool {
    a == v4(LOCAL4) || a == v6(LOCAL6) || a == v6(LINK_LOCAL6)
}

/// TTL / hop limit as seen on the local host: 64 for packets it sends, that
/// come from the same subnet or over loopback, 63 for other internal hosts
/// (one router away), 57 for the Internet.
fn ttl_from(src: IpAddr) -> u8 {
    let internal = match src {
        IpAddr::V4(a) => a.is_private(),
        IpAddr::V6(a) => a.octets()[0] & 0xfe == 0xfc,
    };
    if is_local(src) || src == v4(GW4) || src.is_loopback() {
        64
    } else if internal {
        63
    } else {
        57
    }
}

/// One TCP segment of a conversation.
struct Seg<'a> {
    flags: u8,
    payload: &'a [u8],
    options: &'a [TcpOptionElement],
}

fn seg(flags: u8, payload: &[u8]) -> Seg<'_> {
    Seg {
        flags,
        payload,
        options: &[],
    }
}

const MSS: &[TcpOptionElement] = &[TcpOptionElement::MaximumSegmentSize(1460)];

/// A TCP conversation that tracks sequence numbers for both sides.
struct TcpConv {
    client: IpAddr,
    cport: u16,
    server: IpAddr,
    sport: u16,
    /// Next sequence number the client will send.
    c_next: u32,
    /// Next sequence number the server will send.
    s_next: u32,
    /// Optional IPv6 extension headers for client packets.
    client_exts: Option<Ipv6Extensions>,
}

impl TcpConv {
    fn new(client: IpAddr, cport: u16, server: IpAddr, sport: u16, c_isn: u32, s_isn: u32) -> Self {
        TcpConv {
            client,
            cport,
            server,
            sport,
            c_next: c_isn,
            s_next: s_isn,
            client_exts: None,
        }
    }

    fn client(&mut self, g: &mut Gen, s: Seg) -> Vec<u8> {
        self.segment(g, true, s)
    }

    fn server(&mut self, g: &mut Gen, s: Seg) -> Vec<u8> {
        self.segment(g, false, s)
    }

    fn syn(&mut self, g: &mut Gen) -> Vec<u8> {
        self.client(
            g,
            Seg {
                flags: SYN,
                payload: &[],
                options: MSS,
            },
        )
    }

    fn syn_ack(&mut self, g: &mut Gen) -> Vec<u8> {
        self.server(
            g,
            Seg {
                flags: SYN | ACK,
                payload: &[],
                options: MSS,
            },
        )
    }

    fn segment(&mut self, g: &mut Gen, from_client: bool, s: Seg) -> Vec<u8> {
        let (src, sport, dst, dport) = if from_client {
            (self.client, self.cport, self.server, self.sport)
        } else {
            (self.server, self.sport, self.client, self.cport)
        };
        let (seq, ack) = if from_client {
            (self.c_next, self.s_next)
        } else {
            (self.s_next, self.c_next)
        };
        let window = match (from_client, s.flags & SYN != 0) {
            _ if s.flags & RST != 0 => 0,
            (true, true) => 64240,
            (false, true) => 65160,
            (true, false) => 64128,
            (false, false) => 65024,
        };
        let mut h = TcpHeader::new(sport, dport, seq, window);
        h.fin = s.flags & FIN != 0;
        h.syn = s.flags & SYN != 0;
        h.rst = s.flags & RST != 0;
        h.psh = s.flags & PSH != 0;
        if s.flags & ACK != 0 {
            h.ack = true;
            h.acknowledgment_number = ack;
        }
        h.set_options(s.options).expect("tcp options");

        let mut ip = g.ip(src, dst, ttl_from(src));
        if from_client {
            if let (Some(exts), IpHeaders::Ipv6(_, e)) = (&self.client_exts, &mut ip) {
                *e = exts.clone();
            }
        }
        let mut out = Vec::new();
        PacketBuilder::ip(ip)
            .tcp_header(h)
            .write(&mut out, s.payload)
            .expect("build tcp");

        let consumed =
            s.payload.len() as u32 + u32::from(s.flags & SYN != 0) + u32::from(s.flags & FIN != 0);
        if from_client {
            self.c_next = self.c_next.wrapping_add(consumed);
        } else {
            self.s_next = self.s_next.wrapping_add(consumed);
        }
        out
    }
}

/// Encodes a DNS name as a sequence of labels.
fn dns_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

const QTYPE_A: u16 = 1;
const QTYPE_AAAA: u16 = 28;

/// A recursive DNS query with one question (class IN).
fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1 AN=0 NS=0 AR=0
    out.extend_from_slice(&dns_name(name));
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // IN
    out
}

/// The response to `dns_query(id, name, A)` with one A record.
fn dns_response_a(id: u16, name: &str, addr: Ipv4Addr) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x8180u16.to_be_bytes()); // QR RD RA, NOERROR
    out.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]); // QD=1 AN=1
    out.extend_from_slice(&dns_name(name));
    out.extend_from_slice(&QTYPE_A.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&0xc00cu16.to_be_bytes()); // pointer to the question name
    out.extend_from_slice(&QTYPE_A.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&300u32.to_be_bytes()); // TTL
    out.extend_from_slice(&4u16.to_be_bytes());
    out.extend_from_slice(&addr.octets());
    out
}

/// DNS over TCP: a 2-byte big-endian length prefix.
fn length_prefixed(msg: &[u8]) -> Vec<u8> {
    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    out
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + payload.len());
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn ip_version(ip: &[u8]) -> u8 {
    ip[0] >> 4
}

fn ethertype_of(ip: &[u8]) -> u16 {
    match ip_version(ip) {
        4 => ETH_IPV4,
        6 => ETH_IPV6,
        v => panic!("not an IP packet (version {v})"),
    }
}

fn ip_src_dst(ip: &[u8]) -> (IpAddr, IpAddr) {
    match ip_version(ip) {
        4 => {
            let s: [u8; 4] = ip[12..16].try_into().unwrap();
            let d: [u8; 4] = ip[16..20].try_into().unwrap();
            (IpAddr::from(s), IpAddr::from(d))
        }
        _ => {
            let s: [u8; 16] = ip[8..24].try_into().unwrap();
            let d: [u8; 16] = ip[24..40].try_into().unwrap();
            (IpAddr::from(s), IpAddr::from(d))
        }
    }
}

/// Ethernet source/destination MACs for an IP packet: outgoing packets go
/// from the local MAC to the gateway (or to the multicast MAC), incoming ones
/// come from the gateway.
fn macs_for(ip: &[u8]) -> ([u8; 6], [u8; 6]) {
    let (src, dst) = ip_src_dst(ip);
    if !is_local(src) {
        return (LOCAL_MAC, GW_MAC);
    }
    let dst_mac = match dst {
        IpAddr::V4(d) if d.is_multicast() => {
            let o = d.octets();
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
        }
        IpAddr::V6(d) if d.is_multicast() => {
            let o = d.octets();
            [0x33, 0x33, o[12], o[13], o[14], o[15]]
        }
        _ => GW_MAC,
    };
    (dst_mac, LOCAL_MAC)
}

/// Wraps an IP packet in an Ethernet II header.
fn eth_ip(ip: &[u8]) -> Vec<u8> {
    let (dst, src) = macs_for(ip);
    eth(dst, src, ethertype_of(ip), ip)
}

/// Wraps an IP packet in Ethernet + one 802.1Q tag.
fn eth_vlan(vlan: u16, ip: &[u8]) -> Vec<u8> {
    let mut tagged = vlan.to_be_bytes().to_vec();
    tagged.extend_from_slice(&ethertype_of(ip).to_be_bytes());
    tagged.extend_from_slice(ip);
    let (dst, src) = macs_for(ip);
    eth(dst, src, ETH_VLAN, &tagged)
}

/// Wraps an IP packet in Ethernet + 802.1ad outer tag + 802.1Q inner tag.
fn eth_qinq(outer: u16, inner: u16, ip: &[u8]) -> Vec<u8> {
    let mut tagged = outer.to_be_bytes().to_vec();
    tagged.extend_from_slice(&ETH_VLAN.to_be_bytes());
    tagged.extend_from_slice(&inner.to_be_bytes());
    tagged.extend_from_slice(&ethertype_of(ip).to_be_bytes());
    tagged.extend_from_slice(ip);
    let (dst, src) = macs_for(ip);
    eth(dst, src, ETH_QINQ, &tagged)
}

fn sll(ip: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + ip.len());
    out.extend_from_slice(&4u16.to_be_bytes()); // outgoing
    out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    out.extend_from_slice(&6u16.to_be_bytes());
    out.extend_from_slice(&LOCAL_MAC);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&ethertype_of(ip).to_be_bytes());
    out.extend_from_slice(ip);
    out
}

fn sll2(ip: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + ip.len());
    out.extend_from_slice(&ethertype_of(ip).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes()); // reserved
    out.extend_from_slice(&2u32.to_be_bytes()); // ifindex
    out.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    out.push(4); // outgoing
    out.push(6);
    out.extend_from_slice(&LOCAL_MAC);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(ip);
    out
}

fn null_lo(ip: &[u8]) -> Vec<u8> {
    let family: u32 = if ip_version(ip) == 4 { 2 } else { 30 };
    let mut out = family.to_le_bytes().to_vec();
    out.extend_from_slice(ip);
    out
}

fn loop_lo(ip: &[u8]) -> Vec<u8> {
    let family: u32 = if ip_version(ip) == 4 { 2 } else { 24 };
    let mut out = family.to_be_bytes().to_vec();
    out.extend_from_slice(ip);
    out
}

struct Frame {
    ts_us: u64,
    orig_len: u32,
    data: Vec<u8>,
}

/// An in-memory capture: frames with timestamps from a fixed clock.
struct Cap {
    frames: Vec<Frame>,
    t_us: u64,
    step_us: u64,
}

impl Cap {
    fn new(step_us: u64) -> Self {
        Cap {
            frames: Vec::new(),
            t_us: START_US,
            step_us,
        }
    }

    /// Adds a frame at the current time, then advances the clock one step.
    fn push(&mut self, data: Vec<u8>) {
        let orig_len = data.len() as u32;
        self.push_snapped(data, orig_len);
    }

    /// Adds a frame whose original length is `orig_len` but of which only
    /// `data` was captured.
    fn push_snapped(&mut self, data: Vec<u8>, orig_len: u32) {
        self.frames.push(Frame {
            ts_us: self.t_us,
            orig_len,
            data,
        });
        self.t_us += self.step_us;
    }
}

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    Ok(BufWriter::new(File::create(dir.join(name))?))
}

fn write_pcap(dir: &Path, name: &str, datalink: DataLink, frames: &[Frame]) -> Result<()> {
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: 65535,
        datalink,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    };
    let mut w = PcapWriter::with_header(create(dir, name)?, header)?;
    for f in frames {
        w.write_packet(&PcapPacket::new(
            Duration::from_micros(f.ts_us),
            f.orig_len,
            &f.data,
        ))?;
    }
    w.into_writer().flush()?;
    Ok(())
}

fn write_pcapng(dir: &Path, name: &str, frames: &[Frame]) -> Result<()> {
    let mut w = PcapNgWriter::with_endianness(create(dir, name)?, Endianness::Little)?;
    let idb = InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 65535,
        // pcap-file 2.0 writes EPB timestamps in nanoseconds, so declare it.
        options: vec![InterfaceDescriptionOption::IfTsResol(9)],
    };
    w.write_block(&idb.into_block())?;
    for f in frames {
        let epb = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_micros(f.ts_us),
            original_len: f.orig_len,
            data: f.data.as_slice().into(),
            options: vec![],
        };
        w.write_block(&epb.into_block())?;
    }
    w.into_inner().flush()?;
    Ok(())
}

fn arp(op: ArpOperation, sender: ([u8; 6], Ipv4Addr), target: ([u8; 6], Ipv4Addr)) -> ArpPacket {
    ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        op,
        &sender.0,
        &sender.1.octets(),
        &target.0,
        &target.1.octets(),
    )
    .expect("arp")
}

fn clean(g: &mut Gen) -> Cap {
    let mut cap = Cap::new(500);

    // ARP who-has 10.1.0.1 tell 10.1.0.2, and the reply.
    let mut out = Vec::new();
    PacketBuilder::ethernet2(LOCAL_MAC, [0xff; 6])
        .arp(arp(
            ArpOperation::REQUEST,
            (LOCAL_MAC, LOCAL4),
            ([0; 6], GW4),
        ))
        .write(&mut out)
        .expect("arp request");
    cap.push(out);
    let mut out = Vec::new();
    PacketBuilder::ethernet2(GW_MAC, LOCAL_MAC)
        .arp(arp(ArpOperation::REPLY, (GW_MAC, GW4), (LOCAL_MAC, LOCAL4)))
        .write(&mut out)
        .expect("arp reply");
    cap.push(out);

    // UDP DNS.
    let q = dns_query(0x1111, "example.org", QTYPE_A);
    cap.push(eth_ip(&g.udp(v4(LOCAL4), 40000, v4(GW4), 53, &q)));
    let r = dns_response_a(0x1111, "example.org", Ipv4Addr::new(10, 1, 0, 80));
    cap.push(eth_ip(&g.udp(v4(GW4), 53, v4(LOCAL4), 40000, &r)));

    // TCP HTTP to an internal host.
    let mut c = TcpConv::new(
        v4(LOCAL4),
        40001,
        ip4(192, 168, 5, 10),
        8080,
        0x1a2b_3c4d,
        0x7e57_0001,
    );
    cap.push(eth_ip(&c.syn(g)));
    cap.push(eth_ip(&c.syn_ack(g)));
    cap.push(eth_ip(&c.client(g, seg(ACK, &[]))));
    let req = b"GET / HTTP/1.1\r\nHost: app.internal\r\n\r\n";
    cap.push(eth_ip(&c.client(g, seg(PSH | ACK, req))));
    cap.push(eth_ip(&c.server(g, seg(ACK, &[]))));
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    cap.push(eth_ip(&c.server(g, seg(PSH | ACK, resp))));
    cap.push(eth_ip(&c.client(g, seg(ACK, &[]))));
    cap.push(eth_ip(&c.client(g, seg(FIN | ACK, &[]))));
    cap.push(eth_ip(&c.server(g, seg(FIN | ACK, &[]))));
    cap.push(eth_ip(&c.client(g, seg(ACK, &[]))));

    // IPv6 TCP handshake to an internal (ULA) host.
    let mut c = TcpConv::new(
        v6(LOCAL6),
        40002,
        "fd00:2::10".parse().unwrap(),
        443,
        0x0bad_cafe,
        0x5eed_0001,
    );
    cap.push(eth_ip(&c.syn(g)));
    cap.push(eth_ip(&c.syn_ack(g)));
    cap.push(eth_ip(&c.client(g, seg(ACK, &[]))));

    // IGMPv2 membership report with the Router Alert option, TTL 1.
    let ip = Ipv4Header {
        source: LOCAL4.octets(),
        destination: [224, 0, 0, 22],
        time_to_live: 1,
        identification: g.next_id(),
        options: [0x94, 0x04, 0x00, 0x00][..].try_into().expect("ip options"),
        ..Default::default()
    };
    let mut out = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv4(ip, Default::default()))
        .igmp(IgmpType::MembershipReportV2(
            etherparse::igmp::MembershipReportV2Type {
                group_address: [224, 0, 0, 22].into(),
            },
        ))
        .write(&mut out, &[])
        .expect("igmp");
    cap.push(eth_ip(&out));

    // ICMPv6 neighbour solicitation for fd00:1::1.
    let ip = Ipv6Header {
        source: LINK_LOCAL6.octets(),
        destination: "ff02::1:ff00:1".parse::<Ipv6Addr>().unwrap().octets(),
        hop_limit: 255,
        ..Default::default()
    };
    let mut body = "fd00:1::1".parse::<Ipv6Addr>().unwrap().octets().to_vec();
    body.extend_from_slice(&[1, 1]); // source link-layer address option
    body.extend_from_slice(&LOCAL_MAC);
    let mut out = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv6(ip, Default::default()))
        .icmpv6(Icmpv6Type::NeighborSolicitation)
        .write(&mut out, &body)
        .expect("ns");
    cap.push(eth_ip(&out));

    // MLDv2 report behind a hop-by-hop header with Router Alert.
    let ip = Ipv6Header {
        source: LINK_LOCAL6.octets(),
        destination: "ff02::16".parse::<Ipv6Addr>().unwrap().octets(),
        hop_limit: 1,
        ..Default::default()
    };
    let exts = Ipv6Extensions {
        // Router Alert (type 5, len 2, value 0 = MLD) + PadN (type 1, len 0).
        hop_by_hop_options: Some(
            Ipv6RawExtHeader::new_raw(ip_number::IPV6_ICMP, &[5, 2, 0, 0, 1, 0]).expect("hbh"),
        ),
        ..Default::default()
    };
    // One record: CHANGE_TO_EXCLUDE_MODE (4), no aux data, no sources, ff02::fb.
    let mut record = vec![4, 0, 0, 0];
    record.extend_from_slice(&"ff02::fb".parse::<Ipv6Addr>().unwrap().octets());
    let mut out = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv6(ip, exts))
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: 143,
            code_u8: 0,
            bytes5to8: [0, 0, 0, 1], // reserved, 1 multicast address record
        })
        .write(&mut out, &record)
        .expect("mld");
    cap.push(eth_ip(&out));

    // DNS over TCP.
    let mut c = TcpConv::new(v4(LOCAL4), 40003, v4(GW4), 53, 0x2d4e_6f80, 0x3c00_0001);
    cap.push(eth_ip(&c.syn(g)));
    cap.push(eth_ip(&c.syn_ack(g)));
    cap.push(eth_ip(&c.client(g, seg(ACK, &[]))));
    let q = length_prefixed(&dns_query(0x2222, "example.org", QTYPE_A));
    cap.push(eth_ip(&c.client(g, seg(PSH | ACK, &q))));
    let r = length_prefixed(&dns_response_a(
        0x2222,
        "example.org",
        Ipv4Addr::new(10, 1, 0, 80),
    ));
    cap.push(eth_ip(&c.server(g, seg(PSH | ACK, &r))));
    cap.push(eth_ip(&c.client(g, seg(ACK, &[]))));
    cap.push(eth_ip(&c.client(g, seg(FIN | ACK, &[]))));
    cap.push(eth_ip(&c.server(g, seg(FIN | ACK, &[]))));
    cap.push(eth_ip(&c.client(g, seg(ACK, &[]))));

    cap
}

fn leaky(g: &mut Gen, rng: &mut XorShift64) -> Cap {
    let mut cap = Cap::new(500);

    // 1. Unanswered SYN, retransmitted at +1 s and +3 s.
    let mut c = TcpConv::new(v4(LOCAL4), 41000, ip4(203, 0, 113, 5), 443, 0x6a1b_0001, 0);
    let syn = eth_ip(&c.syn(g));
    let t0 = cap.t_us;
    cap.push(syn.clone());
    cap.t_us = t0 + 1_000_000;
    cap.push(syn.clone());
    cap.t_us = t0 + 3_000_000;
    cap.push(syn);

    // 2. Refused connection: SYN answered by RST+ACK.
    let mut c = TcpConv::new(v4(LOCAL4), 41001, ip4(198, 51, 100, 7), 80, 0x6a1b_1001, 0);
    cap.push(eth_ip(&c.syn(g)));
    cap.push(eth_ip(&c.server(g, seg(RST | ACK, &[]))));

    // 3. Cloud metadata service.
    let mut c = TcpConv::new(
        v4(LOCAL4),
        41002,
        ip4(169, 254, 169, 254),
        80,
        0x6a1b_2001,
        0x1d5e_0001,
    );
    cap.push(eth_ip(&c.syn(g)));
    cap.push(eth_ip(&c.syn_ack(g)));
    cap.push(eth_ip(&c.client(g, seg(ACK, &[]))));
    let req = b"GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n";
    cap.push(eth_ip(&c.client(g, seg(PSH | ACK, req))));
    cap.push(eth_ip(&c.server(g, seg(ACK, &[]))));
    cap.push(eth_ip(
        &c.server(g, seg(PSH | ACK, b"HTTP/1.1 200 OK\r\n\r\n")),
    ));
    cap.push(eth_ip(&c.client(g, seg(ACK, &[]))));

    // 4. NTP client request, no answer.
    let mut ntp = [0u8; 48];
    ntp[0] = 0x23; // LI 0, VN 4, mode 3 (client)
    let ntp_secs = (START_US / 1_000_000 + 2_208_988_800) as u32;
    ntp[40..44].copy_from_slice(&ntp_secs.to_be_bytes()); // transmit timestamp
    cap.push(eth_ip(&g.udp(
        v4(LOCAL4),
        41003,
        ip4(8, 8, 8, 8),
        123,
        &ntp,
    )));

    // 5. ICMP echo request and reply.
    let ping: Vec<u8> = (0..32u8).map(|i| b'a' + (i % 23)).collect();
    let mut out = Vec::new();
    PacketBuilder::ip(g.ip(v4(LOCAL4), ip4(198, 51, 100, 10), 64))
        .icmpv4_echo_request(7, 1)
        .write(&mut out, &ping)
        .expect("echo request");
    cap.push(eth_ip(&out));
    let mut out = Vec::new();
    PacketBuilder::ip(g.ip(ip4(198, 51, 100, 10), v4(LOCAL4), 57))
        .icmpv4_echo_reply(7, 1)
        .write(&mut out, &ping)
        .expect("echo reply");
    cap.push(eth_ip(&out));

    // 6. IPv6 SYN behind a hop-by-hop header (PadN with 4 bytes).
    let mut c = TcpConv::new(
        v6(LOCAL6),
        41004,
        "2001:db8::7".parse().unwrap(),
        80,
        0x6a1b_4001,
        0,
    );
    c.client_exts = Some(Ipv6Extensions {
        hop_by_hop_options: Some(
            Ipv6RawExtHeader::new_raw(ip_number::TCP, &[1, 4, 0, 0, 0, 0]).expect("hbh"),
        ),
        ..Default::default()
    });
    cap.push(eth_ip(&c.syn(g)));

    // 7. Fragmented UDP datagram, fragments out of order (last, first, middle).
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let dst = [203, 0, 113, 9];
    let full_ip = Ipv4Header::new(0, 64, ip_number::UDP, LOCAL4.octets(), dst).expect("ipv4");
    let udp = UdpHeader::with_ipv4_checksum(41005, 5000, &full_ip, &payload).expect("udp checksum");
    assert_eq!(udp.length, 3008);
    let mut datagram = udp.to_bytes().to_vec();
    datagram.extend_from_slice(&payload);
    let frag = |offset: usize, end: usize| -> Vec<u8> {
        let part = &datagram[offset..end];
        let mut h = Ipv4Header::new(part.len() as u16, 64, ip_number::UDP, LOCAL4.octets(), dst)
            .expect("ipv4");
        h.identification = 0x1234;
        h.dont_fragment = false;
        h.more_fragments = end < datagram.len();
        h.fragment_offset = IpFragOffset::try_new((offset / 8) as u16).expect("offset");
        h.header_checksum = h.calc_header_checksum();
        let mut ip = h.to_bytes().to_vec();
        ip.extend_from_slice(part);
        eth_ip(&ip)
    };
    cap.push(frag(2960, 3008));
    cap.push(frag(0, 1480));
    cap.push(frag(1480, 2960));

    // 8. 802.1Q VLAN 100 syslog.
    let ip = g.udp(
        v4(LOCAL4),
        41006,
        ip4(192, 0, 2, 50),
        514,
        b"<14>test syslog",
    );
    cap.push(eth_vlan(100, &ip));

    // 9. GRE carrying an inner IPv4 ICMP echo request.
    let mut inner = Vec::new();
    PacketBuilder::ipv4([10, 255, 0, 1], [10, 255, 0, 2], 64)
        .icmpv4(Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 1, seq: 1 }))
        .write(&mut inner, b"gre inner payload")
        .expect("inner");
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&inner);
    let mut h = Ipv4Header::new(
        gre.len() as u16,
        64,
        IpNumber(47),
        LOCAL4.octets(),
        [203, 0, 113, 20],
    )
    .expect("ipv4");
    h.identification = g.next_id();
    h.dont_fragment = true;
    h.header_checksum = h.calc_header_checksum();
    let mut ip = h.to_bytes().to_vec();
    ip.extend_from_slice(&gre);
    cap.push(eth_ip(&ip));

    // 10. Incoming SSH handshake.
    let mut c = TcpConv::new(
        ip4(192, 168, 5, 10),
        50000,
        v4(LOCAL4),
        22,
        0x55aa_0001,
        0x6a1b_a001,
    );
    cap.push(eth_ip(&c.syn(g)));
    cap.push(eth_ip(&c.syn_ack(g)));
    cap.push(eth_ip(&c.client(g, seg(ACK, &[]))));

    // 11. DNS resolving a public address.
    let q = dns_query(0x3333, "pkg.example.com", QTYPE_A);
    cap.push(eth_ip(&g.udp(v4(LOCAL4), 41007, v4(GW4), 53, &q)));
    let r = dns_response_a(0x3333, "pkg.example.com", Ipv4Addr::new(203, 0, 113, 5));
    cap.push(eth_ip(&g.udp(v4(GW4), 53, v4(LOCAL4), 41007, &r)));

    // 12. IPv6 DNS query to a public resolver, unanswered.
    let q = dns_query(0x4444, "example.net", QTYPE_AAAA);
    let resolver: IpAddr = "2001:db8::53".parse().unwrap();
    cap.push(eth_ip(&g.udp(v6(LOCAL6), 41008, resolver, 53, &q)));

    // 13. Snaplen-truncated data segment: only the headers were captured.
    let mut c = TcpConv::new(
        v4(LOCAL4),
        41010,
        ip4(203, 0, 113, 5),
        443,
        0x6a1b_c001,
        0x2f00_0001,
    );
    let data: Vec<u8> = (0..100u8).collect();
    let frame = eth_ip(&c.client(g, seg(ACK, &data)));
    let orig_len = frame.len() as u32;
    cap.push_snapped(frame[..54].to_vec(), orig_len);

    // 14. Truncated frame: only 10 bytes of an IPv4 header.
    let ip = g.udp(v4(LOCAL4), 41011, ip4(203, 0, 113, 77), 9999, b"x");
    cap.push(eth(GW_MAC, LOCAL_MAC, ETH_IPV4, &ip[..10]));

    // 15. Garbage after an IPv4 ethertype (IP version 0).
    let mut junk = [0u8; 46];
    rng.fill(&mut junk);
    junk[0] = 0x00;
    cap.push(eth(GW_MAC, LOCAL_MAC, ETH_IPV4, &junk));

    // 16. LLDP.
    let mut tlvs = Vec::new();
    let tlv = |t: u16, v: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(&((t << 9) | v.len() as u16).to_be_bytes());
        out.extend_from_slice(v);
    };
    let mut chassis = vec![4]; // subtype: MAC address
    chassis.extend_from_slice(&LOCAL_MAC);
    tlv(1, &chassis, &mut tlvs);
    tlv(2, b"\x05eth0", &mut tlvs); // subtype: interface name
    tlv(3, &120u16.to_be_bytes(), &mut tlvs);
    tlv(0, &[], &mut tlvs);
    cap.push(eth(
        [0x01, 0x80, 0xc2, 0, 0, 0x0e],
        LOCAL_MAC,
        ETH_LLDP,
        &tlvs,
    ));

    cap
}

/// The three IP packets shared by the link-type fixtures.
fn three_flows(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut tcp4 = TcpConv::new(v4(LOCAL4), 42000, ip4(203, 0, 113, 5), 443, 0x7c00_0001, 0);
    let q = dns_query(0x5555, "example.org", QTYPE_A);
    let mut tcp6 = TcpConv::new(
        v6(LOCAL6),
        42002,
        "2001:db8::7".parse().unwrap(),
        80,
        0x7c00_2001,
        0,
    );
    vec![
        tcp4.syn(g),
        g.udp(v4(LOCAL4), 42001, v4(GW4), 53, &q),
        tcp6.syn(g),
    ]
}

fn scan(g: &mut Gen) -> Cap {
    let mut cap = Cap::new(100);
    let target = ip4(198, 51, 100, 20);
    for port in 1..=1000u16 {
        let isn = 0x5ca0_0000 + u32::from(port);
        let s_isn = if port == 22 || port == 443 {
            0x9000_0000 + u32::from(port) * 7919
        } else {
            0
        };
        let mut c = TcpConv::new(v4(LOCAL4), 43000, target, port, isn, s_isn);
        cap.push(eth_ip(&c.client(g, seg(SYN, &[]))));
        if s_isn != 0 {
            cap.push(eth_ip(&c.syn_ack(g)));
            cap.push(eth_ip(&c.client(g, seg(RST, &[]))));
        } else {
            cap.push(eth_ip(&c.server(g, seg(RST | ACK, &[]))));
        }
    }
    cap
}

fn main() -> Result<()> {
    let dir: PathBuf = match std::env::args_os().nth(1) {
        Some(d) => d.into(),
        None => {
            eprintln!("usage: gen_fixtures OUTDIR");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&dir)?;
    let dir = dir.as_path();
    let mut g = Gen::new();
    let mut rng = XorShift64(0x9e37_79b9_7f4a_7c15);

    let cap = clean(&mut g);
    write_pcap(dir, "clean.pcap", DataLink::ETHERNET, &cap.frames)?;

    let cap = leaky(&mut g, &mut rng);
    write_pcap(dir, "leaky.pcap", DataLink::ETHERNET, &cap.frames)?;
    write_pcapng(dir, "leaky.pcapng", &cap.frames)?;

    let packets = three_flows(&mut g);
    let linktypes: [(&str, DataLink, LinkWrap); 6] = [
        ("sll.pcap", DataLink::LINUX_SLL, sll),
        ("sll2.pcap", DataLink::LINUX_SLL2, sll2),
        ("raw.pcap", DataLink::RAW, |ip| ip.to_vec()),
        ("null.pcap", DataLink::NULL, null_lo),
        ("loop.pcap", DataLink::LOOP, loop_lo),
        ("vlan-qinq.pcap", DataLink::ETHERNET, |ip| {
            eth_qinq(200, 100, ip)
        }),
    ];
    for (name, datalink, wrap) in linktypes {
        let mut cap = Cap::new(500);
        for ip in &packets {
            cap.push(wrap(ip));
        }
        write_pcap(dir, name, datalink, &cap.frames)?;
    }

    let mut cap = Cap::new(500);
    cap.push(b"opaque user0 payload".to_vec());
    write_pcap(
        dir,
        "unsupported-linktype.pcap",
        DataLink::USER0,
        &cap.frames,
    )?;

    write_pcap(dir, "empty.pcap", DataLink::ETHERNET, &[])?;

    std::fs::write(
        dir.join("not-a-capture.pcap"),
        b"this is not a capture file\n",
    )?;

    let cap = scan(&mut g);
    write_pcap(dir, "scan.pcap", DataLink::ETHERNET, &cap.frames)?;

    review_fixtures(dir, &mut g)?;

    let cap = names(&mut g);
    write_pcap(dir, "names.pcap", DataLink::ETHERNET, &cap.frames)?;

    Ok(())
}

/// The ClientHello the leak-tls buildpack sends (SNI pkg.example.com).
const CLIENT_HELLO: &[u8] = include_bytes!("../fixtures/buildpacks/leak-tls/bin/clienthello.bin");

/// The response to `dns_query(id, name, A)`: `name` CNAME `cname`, `cname` A `addr`.
fn dns_response_cname_a(id: u16, name: &str, cname: &str, addr: Ipv4Addr) -> Vec<u8> {
    const QTYPE_CNAME: u16 = 5;
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x8180u16.to_be_bytes()); // QR RD RA, NOERROR
    out.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 0]); // QD=1 AN=2
    out.extend_from_slice(&dns_name(name));
    out.extend_from_slice(&QTYPE_A.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&0xc00cu16.to_be_bytes()); // the question's name
    out.extend_from_slice(&QTYPE_CNAME.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&300u32.to_be_bytes());
    let target = dns_name(cname);
    out.extend_from_slice(&(target.len() as u16).to_be_bytes());
    let target_at = out.len() as u16;
    out.extend_from_slice(&target);
    out.extend_from_slice(&(0xc000 | target_at).to_be_bytes()); // the CNAME's target
    out.extend_from_slice(&QTYPE_A.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&300u32.to_be_bytes());
    out.extend_from_slice(&4u16.to_be_bytes());
    out.extend_from_slice(&addr.octets());
    out
}

fn names(g: &mut Gen) -> Cap {
    let mut cap = Cap::new(500);
    let local = v4(LOCAL4);
    let resolver = v4(GW4);
    let handshake = |g: &mut Gen, cap: &mut Cap, c: &mut TcpConv| {
        cap.push(eth_ip(&c.syn(g)));
        cap.push(eth_ip(&c.syn_ack(g)));
        cap.push(eth_ip(&c.client(g, seg(ACK, &[]))));
    };

    // 1-2: a lookup, then TLS to the address it gave.
    let q = dns_query(0x7001, "pkg.example.com", QTYPE_A);
    cap.push(eth_ip(&g.udp(local, 46001, resolver, 53, &q)));
    let r = dns_response_a(0x7001, "pkg.example.com", Ipv4Addr::new(203, 0, 113, 5));
    cap.push(eth_ip(&g.udp(resolver, 53, local, 46001, &r)));
    let mut c = TcpConv::new(
        local,
        46002,
        ip4(203, 0, 113, 5),
        443,
        0x4600_0001,
        0x5600_0001,
    );
    handshake(g, &mut cap, &mut c);
    cap.push(eth_ip(&c.client(g, seg(PSH | ACK, CLIENT_HELLO))));

    // 3-4: a lookup answered through a CNAME, then a SYN to its address.
    let q = dns_query(0x7003, "www.example.com", QTYPE_A);
    cap.push(eth_ip(&g.udp(local, 46003, resolver, 53, &q)));
    let r = dns_response_cname_a(
        0x7003,
        "www.example.com",
        "cdn.example.net",
        Ipv4Addr::new(203, 0, 113, 7),
    );
    cap.push(eth_ip(&g.udp(resolver, 53, local, 46003, &r)));
    let mut c = TcpConv::new(local, 46004, ip4(203, 0, 113, 7), 443, 0x4600_0003, 0);
    cap.push(eth_ip(&c.syn(g)));

    // 5: plain HTTP by address: the Host header names it.
    let mut c = TcpConv::new(
        local,
        46005,
        ip4(198, 51, 100, 60),
        80,
        0x4600_0005,
        0x5600_0005,
    );
    handshake(g, &mut cap, &mut c);
    let get = b"GET /dl/go1.22.tgz HTTP/1.1\r\nHost: mirror.example.org\r\n\r\n";
    cap.push(eth_ip(&c.client(g, seg(PSH | ACK, get))));

    // 6: the ClientHello in two segments.
    let mut c = TcpConv::new(
        local,
        46006,
        ip4(198, 51, 100, 61),
        443,
        0x4600_0006,
        0x5600_0006,
    );
    handshake(g, &mut cap, &mut c);
    cap.push(eth_ip(&c.client(g, seg(ACK, &CLIENT_HELLO[..100]))));
    cap.push(eth_ip(&c.client(g, seg(PSH | ACK, &CLIENT_HELLO[100..]))));

    // 7: DNS to a resolver on an odd port.
    let q = dns_query(0x7007, "odd.example.com", QTYPE_A);
    cap.push(eth_ip(&g.udp(
        local,
        40100,
        ip4(198, 51, 100, 53),
        5353,
        &q,
    )));
    cap
}

/// One packet of a pcapng file written with raw interface ids and timestamps.
struct NgPacket {
    interface: u32,
    /// In the interface's if_tsresol units.
    raw_ts: u64,
    data: Vec<u8>,
}

fn write_pcapng_raw(
    dir: &Path,
    name: &str,
    interfaces: &[(DataLink, u8)],
    blocks: &[(Option<usize>, Option<NgPacket>)],
) -> Result<()> {
    let mut w = PcapNgWriter::with_endianness(create(dir, name)?, Endianness::Little)?;
    for (iface, packet) in blocks {
        if let Some(i) = iface {
            let (linktype, tsresol) = interfaces[*i];
            let idb = InterfaceDescriptionBlock {
                linktype,
                snaplen: 65535,
                options: vec![InterfaceDescriptionOption::IfTsResol(tsresol)],
            };
            w.write_block(&idb.into_block())?;
        }
        if let Some(p) = packet {
            let epb = EnhancedPacketBlock {
                interface_id: p.interface,
                // pcap-file writes the Duration's nanoseconds as the raw value.
                timestamp: Duration::from_nanos(p.raw_ts),
                original_len: p.data.len() as u32,
                data: p.data.as_slice().into(),
                options: vec![],
            };
            w.write_block(&epb.into_block())?;
        }
    }
    w.into_inner().flush()?;
    Ok(())
}

fn syn4(g: &mut Gen, sport: u16, dst: IpAddr, dport: u16) -> Vec<u8> {
    let mut c = TcpConv::new(
        v4(LOCAL4),
        sport,
        dst,
        dport,
        0x4400_0000 + u32::from(sport),
        0,
    );
    c.syn(g)
}

fn dns4(g: &mut Gen, sport: u16, resolver: IpAddr) -> Vec<u8> {
    let q = dns_query(0x6600 ^ sport, "example.org", QTYPE_A);
    g.udp(v4(LOCAL4), sport, resolver, 53, &q)
}

fn review_fixtures(dir: &Path, g: &mut Gen) -> Result<()> {
    // future.pcapng: timestamps in whole seconds, far past year 9999.
    let syn = eth_ip(&syn4(g, 44000, ip4(203, 0, 113, 5), 443));
    let dns = eth_ip(&dns4(g, 44001, v4(GW4)));
    write_pcapng_raw(
        dir,
        "future.pcapng",
        &[(DataLink::ETHERNET, 0)],
        &[
            (
                Some(0),
                Some(NgPacket {
                    interface: 0,
                    raw_ts: 1 << 62,
                    data: syn,
                }),
            ),
            (
                None,
                Some(NgPacket {
                    interface: 0,
                    raw_ts: (1 << 62) + 1,
                    data: dns,
                }),
            ),
        ],
    )?;

    // out-of-order.pcap: the second and third records are earlier than the first.
    let t0 = START_US + 10_000_000;
    let mut cap = Cap::new(0);
    cap.t_us = t0;
    cap.push(eth_ip(&dns4(g, 44002, v4(GW4))));
    cap.t_us = t0 - 500_000;
    cap.push(eth_ip(&syn4(g, 44003, ip4(203, 0, 113, 5), 443)));
    cap.t_us = t0 - 3_250_000;
    cap.push(eth_ip(&syn4(g, 44004, ip4(198, 51, 100, 7), 443)));
    write_pcap(dir, "out-of-order.pcap", DataLink::ETHERNET, &cap.frames)?;

    // multi-link.pcapng: a second interface with another link type.
    let dns = eth_ip(&dns4(g, 44005, v4(GW4)));
    let raw_syn = syn4(g, 44006, ip4(203, 0, 113, 5), 443);
    let ns = |us: u64| us * 1000;
    write_pcapng_raw(
        dir,
        "multi-link.pcapng",
        &[(DataLink::ETHERNET, 9), (DataLink::RAW, 9)],
        &[
            (
                Some(0),
                Some(NgPacket {
                    interface: 0,
                    raw_ts: ns(START_US),
                    data: dns.clone(),
                }),
            ),
            (
                Some(1),
                Some(NgPacket {
                    interface: 1,
                    raw_ts: ns(START_US + 500),
                    data: raw_syn,
                }),
            ),
            (
                None,
                Some(NgPacket {
                    interface: 0,
                    raw_ts: ns(START_US + 1000),
                    data: dns,
                }),
            ),
        ],
    )?;

    // snaplen14.pcap: only the Ethernet header of each frame was kept.
    let mut cap = Cap::new(500);
    for port in 44010..44015 {
        let f = eth_ip(&syn4(g, port, ip4(203, 0, 113, 5), 443));
        cap.push_snapped(f[..14].to_vec(), f.len() as u32);
    }
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: 14,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    };
    let mut w = PcapWriter::with_header(create(dir, "snaplen14.pcap")?, header)?;
    for f in &cap.frames {
        w.write_packet(&PcapPacket::new(
            Duration::from_micros(f.ts_us),
            f.orig_len,
            &f.data,
        ))?;
    }
    w.into_writer().flush()?;

    // pppoe.pcap: IP inside PPPoE sessions, which the decoder does not unwrap.
    let mut cap = Cap::new(500);
    for port in 44020..44025 {
        let ip = syn4(g, port, ip4(203, 0, 113, 5), 443);
        let mut body = vec![0x11, 0x00, 0x00, 0x01]; // version/type, code 0 (session), session 1
        body.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
        body.extend_from_slice(&0x0021u16.to_be_bytes()); // PPP: IPv4
        body.extend_from_slice(&ip);
        cap.push(eth(GW_MAC, LOCAL_MAC, 0x8864, &body));
    }
    write_pcap(dir, "pppoe.pcap", DataLink::ETHERNET, &cap.frames)?;

    // disguised.pcap: traffic dressed up as ICMP errors and link housekeeping.
    let mut cap = Cap::new(500);
    let q = dns_query(0x7777, "example.org", QTYPE_A);
    let query = g.udp(v4(LOCAL4), 44030, ip4(8, 8, 8, 8), 53, &q);
    cap.push(eth_ip(&query));
    let r = dns_response_a(0x7777, "example.org", Ipv4Addr::new(10, 1, 0, 80));
    cap.push(eth_ip(&g.udp(ip4(8, 8, 8, 8), 53, v4(LOCAL4), 44030, &r)));
    let mut quoted = query[..28].to_vec();
    quoted.extend(std::iter::repeat_n(b'S', 200));
    for _ in 0..3 {
        let mut out = Vec::new();
        PacketBuilder::ip(g.ip(v4(LOCAL4), ip4(203, 0, 113, 99), 64))
            .icmpv4_raw(3, 3, [0; 4])
            .write(&mut out, &quoted)
            .expect("icmp error");
        cap.push(eth_ip(&out));
    }
    let body = b"EXFIL".repeat(20);
    let mut h = Ipv4Header::new(
        body.len() as u16,
        64,
        IpNumber(2),
        LOCAL4.octets(),
        [203, 0, 113, 77],
    )
    .expect("ipv4");
    h.identification = g.next_id();
    h.header_checksum = h.calc_header_checksum();
    let mut ip = h.to_bytes().to_vec();
    ip.extend_from_slice(&body);
    cap.push(eth_ip(&ip));
    let target: Ipv6Addr = "2001:db8::77".parse().unwrap();
    for (icmp_type, hop_limit) in [(135u8, 255u8), (131, 1)] {
        let ip = Ipv6Header {
            source: LOCAL6.octets(),
            destination: target.octets(),
            hop_limit,
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut payload = target.octets().to_vec();
        payload.extend_from_slice(&body);
        PacketBuilder::ip(IpHeaders::Ipv6(ip, Default::default()))
            .icmpv6(Icmpv6Type::Unknown {
                type_u8: icmp_type,
                code_u8: 0,
                bytes5to8: [0; 4],
            })
            .write(&mut out, &payload)
            .expect("icmpv6");
        cap.push(eth_ip(&out));
    }
    let mut out = Vec::new();
    PacketBuilder::ip(g.ip(v4(GW4), v4(LOCAL4), 64))
        .icmpv4_raw(3, 3, [0; 4])
        .write(&mut out, &query[..28])
        .expect("icmp error");
    cap.push(eth_ip(&out));
    write_pcap(dir, "disguised.pcap", DataLink::ETHERNET, &cap.frames)?;

    // any-lo.pcap: a capture on "any" with a database on the loopback device.
    let mut cap = Cap::new(500);
    let lo = ip4(127, 0, 0, 1);
    let mut c = TcpConv::new(lo, 45000, lo, 5432, 0x1000_0001, 0x2000_0001);
    cap.push(sll(&c.syn(g)));
    cap.push(sll(&c.syn_ack(g)));
    cap.push(sll(&dns4(g, 44040, v4(GW4))));
    let r = dns_response_a(0x6600 ^ 44040, "example.org", Ipv4Addr::new(10, 1, 0, 80));
    cap.push(sll(&g.udp(v4(GW4), 53, v4(LOCAL4), 44040, &r)));
    let mut c = TcpConv::new(
        ip4(198, 51, 100, 9),
        50000,
        v4(LOCAL4),
        8080,
        0x3000_0001,
        0x4000_0001,
    );
    cap.push(sll(&c.syn(g)));
    cap.push(sll(&c.syn_ack(g)));
    cap.push(sll(&c.server(g, seg(PSH | ACK, &[b'S'; 1000]))));
    write_pcap(dir, "any-lo.pcap", DataLink::LINUX_SLL, &cap.frames)?;

    Ok(())
}
