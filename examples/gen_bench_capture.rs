//! Streams a large synthetic Ethernet pcap for benchmarking.
//!
//! Usage:
//! `cargo run --release --example gen_bench_capture -- --packets 5000000 --flows 20000 --out /tmp/x.pcap [--seed N]`
//!
//! The capture looks like a busy host 10.1.0.2 (fd00:1::2): about 85% IPv4
//! TCP (a handshake the first time a flow is used, then data both ways with
//! 0..=1200 payload bytes, and now and then a FIN exchange after which the
//! same 5-tuple is reopened with a fresh handshake), 8% IPv4 UDP (half of it
//! DNS to 10.1.0.1:53), 3% ICMP echo, ~4% IPv6 TCP/UDP and a sprinkle of ARP.
//! About 10% of the remote addresses are public (203.0.113.0/24,
//! 198.51.100.0/24, 2001:db8::/32); the rest are internal (10/8, 172.16/12,
//! 192.168/16, fd00::/8). Timestamps start at 2026-01-01T00:00:00Z and advance
//! 10 us per packet. Exactly `--packets` packets are written; output is a
//! pure function of the arguments (same seed, same bytes). Packets are
//! streamed through a `BufWriter`, never held in memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::exit;
use std::time::{Duration, Instant};

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, IpHeaders, Ipv4Header, Ipv6Header,
    PacketBuilder, TcpHeader,
};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// 2026-01-01T00:00:00Z
const START_US: u64 = 1_767_225_600 * 1_000_000;
const STEP_US: u64 = 10;

const LOCAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const LOCAL4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const GW4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const LOCAL6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2);

const TCP_PORTS: [u16; 10] = [443, 443, 443, 80, 8080, 5432, 6379, 9200, 3306, 8443];
const UDP_PORTS: [u16; 5] = [443, 8125, 5000, 9000, 10000];

/// DNS query for `registry.internal` (A), id at bytes 0..2.
const DNS_QUERY: &[u8] = b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
\x08registry\x08internal\x00\x00\x01\x00\x01";
/// Matching response with one A record (10.1.0.80), id at bytes 0..2.
const DNS_RESPONSE: &[u8] = b"\x00\x00\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\
\x08registry\x08internal\x00\x00\x01\x00\x01\
\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x0a\x01\x00\x50";

/// Tiny xorshift64 PRNG.
struct XorShift64(u64);

impl XorShift64 {
    fn new(seed: u64) -> Self {
        // Scramble the seed so small seeds give unrelated streams; never 0.
        let s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
        XorShift64(if s == 0 { 1 } else { s })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform-ish value in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp4,
    Udp4,
    Dns,
    Icmp,
    Tcp6,
    Udp6,
}

/// TCP connection state (for the next packet to emit).
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    SynSent,
    SynReceived,
    Established,
    FinSent,
    FinAcked,
}

struct Flow {
    kind: Kind,
    remote: IpAddr,
    lport: u16,
    rport: u16,
    /// Next sequence number from the local side (TCP) / query id (DNS) /
    /// echo sequence (ICMP).
    l_next: u32,
    /// Next sequence number from the remote side.
    r_next: u32,
    state: State,
    /// UDP/DNS/ICMP: whether the next packet is the answer.
    reply_next: bool,
    used: bool,
}

struct Args {
    packets: u64,
    flows: usize,
    out: String,
    seed: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: gen_bench_capture --packets N --flows N --out FILE [--seed N]\n\
         (flows must be at least 6)"
    );
    exit(2)
}

fn parse_args() -> Args {
    let mut packets = None;
    let mut flows = None;
    let mut out = None;
    let mut seed = 1;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--packets" => packets = val().parse().ok(),
            "--flows" => flows = val().parse().ok(),
            "--out" => out = Some(val()),
            "--seed" => seed = val().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    match (packets, flows, out) {
        (Some(packets), Some(flows), Some(out)) if flows >= 6 => Args {
            packets,
            flows,
            out,
            seed,
        },
        _ => usage(),
    }
}

fn remote_v4(rng: &mut XorShift64) -> IpAddr {
    let r = rng.next_u32().to_be_bytes();
    let host = r[3].clamp(1, 254);
    let a = match rng.below(20) {
        0 => [203, 0, 113, host],
        1 => [198, 51, 100, host],
        2..=9 => [10, r[1].max(2), r[2], host],
        10..=14 => [172, 16 + (r[1] & 0x0f), r[2], host],
        _ => [192, 168, r[2], host],
    };
    IpAddr::V4(Ipv4Addr::from(a))
}

fn remote_v6(rng: &mut XorShift64) -> IpAddr {
    let r = rng.next_u64();
    let (hi, lo) = ((r >> 48) as u16, r as u16 | 1);
    let a = if rng.below(10) == 0 {
        Ipv6Addr::new(0x2001, 0xdb8, hi, 0, 0, 0, 0, lo)
    } else {
        Ipv6Addr::new(0xfd00, hi | 0x100, 0, 0, 0, 0, 0, lo)
    };
    IpAddr::V6(a)
}

fn make_flows(n: usize, rng: &mut XorShift64) -> Vec<Flow> {
    // Share of flows per kind (the packet mix is chosen separately).
    let count = |pct: usize| (n * pct / 100).max(1);
    let (udp, dns, icmp, tcp6, udp6) = (count(4), count(4), count(3), count(2), count(2));
    let tcp4 = n - udp - dns - icmp - tcp6 - udp6;
    let kinds = [
        (Kind::Tcp4, tcp4),
        (Kind::Udp4, udp),
        (Kind::Dns, dns),
        (Kind::Icmp, icmp),
        (Kind::Tcp6, tcp6),
        (Kind::Udp6, udp6),
    ];
    let mut flows = Vec::with_capacity(n);
    for (kind, k) in kinds {
        for _ in 0..k {
            let i = flows.len();
            let lport = 32768 + (i % 28000) as u16;
            let (remote, rport) = match kind {
                Kind::Tcp4 => (remote_v4(rng), TCP_PORTS[rng.below(10) as usize]),
                Kind::Udp4 => (remote_v4(rng), UDP_PORTS[rng.below(5) as usize]),
                Kind::Dns => (IpAddr::V4(GW4), 53),
                Kind::Icmp => (remote_v4(rng), 0),
                Kind::Tcp6 => (remote_v6(rng), TCP_PORTS[rng.below(10) as usize]),
                Kind::Udp6 => (remote_v6(rng), UDP_PORTS[rng.below(5) as usize]),
            };
            flows.push(Flow {
                kind,
                remote,
                lport,
                rport,
                l_next: rng.next_u32(),
                r_next: rng.next_u32(),
                state: State::Closed,
                reply_next: false,
                used: false,
            });
        }
    }
    flows
}

/// Index ranges of each kind in the flow table.
struct Pools {
    ranges: [(usize, usize); 6],
}

impl Pools {
    fn new(flows: &[Flow]) -> Self {
        let order = [
            Kind::Tcp4,
            Kind::Udp4,
            Kind::Dns,
            Kind::Icmp,
            Kind::Tcp6,
            Kind::Udp6,
        ];
        let mut ranges = [(0, 0); 6];
        for (slot, kind) in order.iter().enumerate() {
            let start = flows.iter().position(|f| f.kind == *kind).unwrap();
            let len = flows[start..]
                .iter()
                .take_while(|f| f.kind == *kind)
                .count();
            ranges[slot] = (start, len);
        }
        Pools { ranges }
    }

    fn pick(&self, slot: usize, rng: &mut XorShift64) -> usize {
        let (start, len) = self.ranges[slot];
        start + rng.below(len as u64) as usize
    }
}

/// Payload length for a TCP data packet: mostly pure ACKs and small
/// segments, a quarter of them large (up to 1200 bytes).
fn tcp_payload_len(rng: &mut XorShift64) -> usize {
    match rng.below(20) {
        0..=6 => 0,
        7..=14 => 1 + rng.below(256) as usize,
        _ => 257 + rng.below(944) as usize,
    }
}

struct Builder {
    ip_id: u16,
    buf: Vec<u8>,
    pattern: Vec<u8>,
}

impl Builder {
    fn ip(&mut self, src: IpAddr, dst: IpAddr) -> IpHeaders {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                self.ip_id = self.ip_id.wrapping_add(1);
                IpHeaders::Ipv4(
                    Ipv4Header {
                        source: s.octets(),
                        destination: d.octets(),
                        time_to_live: if s == LOCAL4 { 64 } else { 60 },
                        identification: self.ip_id,
                        dont_fragment: true,
                        ..Default::default()
                    },
                    Default::default(),
                )
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => IpHeaders::Ipv6(
                Ipv6Header {
                    source: s.octets(),
                    destination: d.octets(),
                    hop_limit: if s == LOCAL6 { 64 } else { 60 },
                    ..Default::default()
                },
                Default::default(),
            ),
            _ => unreachable!("address family mismatch"),
        }
    }

    fn macs(outgoing: bool) -> ([u8; 6], [u8; 6]) {
        if outgoing {
            (LOCAL_MAC, GW_MAC)
        } else {
            (GW_MAC, LOCAL_MAC)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        f: &Flow,
        outgoing: bool,
        seq: u32,
        ack: Option<u32>,
        syn: bool,
        fin: bool,
        len: usize,
    ) {
        let local = local_addr(f.remote);
        let (src, dst, sport, dport) = if outgoing {
            (local, f.remote, f.lport, f.rport)
        } else {
            (f.remote, local, f.rport, f.lport)
        };
        let mut h = TcpHeader::new(sport, dport, seq, if outgoing { 64128 } else { 65024 });
        h.syn = syn;
        h.fin = fin;
        h.psh = len > 0;
        if let Some(a) = ack {
            h.ack = true;
            h.acknowledgment_number = a;
        }
        let (s_mac, d_mac) = Self::macs(outgoing);
        let ip = self.ip(src, dst);
        self.buf.clear();
        PacketBuilder::ethernet2(s_mac, d_mac)
            .ip(ip)
            .tcp_header(h)
            .write(&mut self.buf, &self.pattern[..len])
            .expect("build tcp");
    }

    fn udp(&mut self, f: &Flow, outgoing: bool, payload: Payload) {
        let local = local_addr(f.remote);
        let (src, dst, sport, dport) = if outgoing {
            (local, f.remote, f.lport, f.rport)
        } else {
            (f.remote, local, f.rport, f.lport)
        };
        let (s_mac, d_mac) = Self::macs(outgoing);
        let ip = self.ip(src, dst);
        let mut dns = [0u8; 64];
        let data: &[u8] = match payload {
            Payload::Pattern(len) => &self.pattern[..len],
            Payload::Dns { id, response } => {
                let tpl = if response { DNS_RESPONSE } else { DNS_QUERY };
                dns[..tpl.len()].copy_from_slice(tpl);
                dns[..2].copy_from_slice(&id.to_be_bytes());
                &dns[..tpl.len()]
            }
        };
        self.buf.clear();
        PacketBuilder::ethernet2(s_mac, d_mac)
            .ip(ip)
            .udp(sport, dport)
            .write(&mut self.buf, data)
            .expect("build udp");
    }

    fn icmp(&mut self, f: &Flow, id: u16, seq: u16, reply: bool) {
        let (s_mac, d_mac) = Self::macs(!reply);
        let ip = if reply {
            self.ip(f.remote, IpAddr::V4(LOCAL4))
        } else {
            self.ip(IpAddr::V4(LOCAL4), f.remote)
        };
        let step = PacketBuilder::ethernet2(s_mac, d_mac).ip(ip);
        let step = if reply {
            step.icmpv4_echo_reply(id, seq)
        } else {
            step.icmpv4_echo_request(id, seq)
        };
        self.buf.clear();
        step.write(&mut self.buf, &self.pattern[..56])
            .expect("build icmp");
    }

    fn arp(&mut self, reply: bool, target: Ipv4Addr) {
        let (op, s_mac, d_mac, sender, tgt) = if reply {
            (
                ArpOperation::REPLY,
                GW_MAC,
                LOCAL_MAC,
                (GW_MAC, target),
                (LOCAL_MAC, LOCAL4),
            )
        } else {
            (
                ArpOperation::REQUEST,
                LOCAL_MAC,
                [0xff; 6],
                (LOCAL_MAC, LOCAL4),
                ([0; 6], target),
            )
        };
        let arp = ArpPacket::new(
            ArpHardwareId::ETHERNET,
            EtherType::IPV4,
            op,
            &sender.0,
            &sender.1.octets(),
            &tgt.0,
            &tgt.1.octets(),
        )
        .expect("arp");
        self.buf.clear();
        PacketBuilder::ethernet2(s_mac, d_mac)
            .arp(arp)
            .write(&mut self.buf)
            .expect("build arp");
    }
}

enum Payload {
    Pattern(usize),
    Dns { id: u16, response: bool },
}

fn local_addr(remote: IpAddr) -> IpAddr {
    match remote {
        IpAddr::V4(_) => IpAddr::V4(LOCAL4),
        IpAddr::V6(_) => IpAddr::V6(LOCAL6),
    }
}

/// Emits the next packet of TCP flow `f` into `b.buf`.
fn next_tcp(b: &mut Builder, f: &mut Flow, rng: &mut XorShift64) {
    match f.state {
        State::Closed => {
            f.l_next = rng.next_u32();
            f.r_next = rng.next_u32();
            b.tcp(f, true, f.l_next, None, true, false, 0);
            f.l_next = f.l_next.wrapping_add(1);
            f.state = State::SynSent;
        }
        State::SynSent => {
            b.tcp(f, false, f.r_next, Some(f.l_next), true, false, 0);
            f.r_next = f.r_next.wrapping_add(1);
            f.state = State::SynReceived;
        }
        State::SynReceived => {
            b.tcp(f, true, f.l_next, Some(f.r_next), false, false, 0);
            f.state = State::Established;
        }
        State::Established => {
            if rng.below(400) == 0 {
                b.tcp(f, true, f.l_next, Some(f.r_next), false, true, 0);
                f.l_next = f.l_next.wrapping_add(1);
                f.state = State::FinSent;
            } else {
                let len = tcp_payload_len(rng);
                // Responses (downloads) are a bit more common than requests.
                if rng.below(5) < 2 {
                    b.tcp(f, true, f.l_next, Some(f.r_next), false, false, len);
                    f.l_next = f.l_next.wrapping_add(len as u32);
                } else {
                    b.tcp(f, false, f.r_next, Some(f.l_next), false, false, len);
                    f.r_next = f.r_next.wrapping_add(len as u32);
                }
            }
        }
        State::FinSent => {
            b.tcp(f, false, f.r_next, Some(f.l_next), false, true, 0);
            f.r_next = f.r_next.wrapping_add(1);
            f.state = State::FinAcked;
        }
        State::FinAcked => {
            b.tcp(f, true, f.l_next, Some(f.r_next), false, false, 0);
            f.state = State::Closed;
        }
    }
}

fn run(args: &Args) -> Result<(u64, usize, u64)> {
    let mut rng = XorShift64::new(args.seed);
    let mut flows = make_flows(args.flows, &mut rng);
    let pools = Pools::new(&flows);
    let mut b = Builder {
        ip_id: 0,
        buf: Vec::with_capacity(2048),
        pattern: (0..1500u32)
            .map(|i| b"abcdefghijklmnop"[(i % 16) as usize])
            .collect(),
    };

    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: 65535,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    };
    let file = BufWriter::with_capacity(1 << 20, File::create(&args.out)?);
    let mut w = PcapWriter::with_header(file, header)?;
    let mut bytes = 24u64;
    let mut arp_reply_next = false;

    for n in 0..args.packets {
        let r = rng.below(10_000);
        if r >= 9_980 || arp_reply_next {
            // ~0.2% ARP, each request followed by its reply.
            let target = if rng.below(2) == 0 {
                GW4
            } else {
                Ipv4Addr::new(10, 1, 0, 3 + rng.below(250) as u8)
            };
            b.arp(arp_reply_next, target);
            arp_reply_next = !arp_reply_next;
        } else {
            let slot = match r {
                0..=8_499 => 0, // TCP
                8_500..=8_899 => 1,
                8_900..=9_299 => 2, // DNS
                9_300..=9_599 => 3, // ICMP
                9_600..=9_819 => 4, // TCP over IPv6
                _ => 5,             // UDP over IPv6
            };
            let i = pools.pick(slot, &mut rng);
            let f = &mut flows[i];
            f.used = true;
            match f.kind {
                Kind::Tcp4 | Kind::Tcp6 => next_tcp(&mut b, f, &mut rng),
                Kind::Udp4 | Kind::Udp6 => {
                    let len = 20 + rng.below(1181) as usize;
                    let outgoing = rng.below(2) == 0;
                    b.udp(f, outgoing, Payload::Pattern(len));
                }
                Kind::Dns => {
                    let response = f.reply_next;
                    if !response {
                        f.l_next = f.l_next.wrapping_add(1);
                    }
                    b.udp(
                        f,
                        !response,
                        Payload::Dns {
                            id: f.l_next as u16,
                            response,
                        },
                    );
                    f.reply_next = !response;
                }
                Kind::Icmp => {
                    let reply = f.reply_next;
                    if !reply {
                        f.l_next = f.l_next.wrapping_add(1);
                    }
                    b.icmp(f, (i & 0xffff) as u16, f.l_next as u16, reply);
                    f.reply_next = !reply;
                }
            }
        }
        let ts = Duration::from_micros(START_US + n * STEP_US);
        bytes += w.write_packet(&PcapPacket::new(ts, b.buf.len() as u32, &b.buf))? as u64;
    }
    w.into_writer().flush()?;
    let used = flows.iter().filter(|f| f.used).count();
    Ok((args.packets, used, bytes))
}

fn main() {
    let args = parse_args();
    let started = Instant::now();
    match run(&args) {
        Ok((packets, flows, bytes)) => eprintln!(
            "gen_bench_capture: wrote {packets} packets, {flows} flows, {bytes} bytes to {} in {:.1?}",
            args.out,
            started.elapsed()
        ),
        Err(e) => {
            eprintln!("gen_bench_capture: {e}");
            exit(1);
        }
    }
}
