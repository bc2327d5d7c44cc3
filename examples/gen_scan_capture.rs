//! Streams a synthetic Ethernet pcap of a TCP SYN port scan with a given number of distinct flows,
//! for `bench/scan.sh`.
//!
//! Usage: `cargo run --release --example gen_scan_capture -- --flows 100000 --out /tmp/scan.pcap`
//!
//! Host 10.1.0.2 scans 1,000 ports (1000-1999) on each of as many addresses of 198.18.0.0/15 as it
//! takes: flow i goes to 198.18.0.0 + 1 + i / 1000, port 1000 + i % 1000, from a source port that
//! cycles through 32768-60999. Each flow is the SYN and the target's answer: a RST-ACK (a closed port),
//! or for one port in ten a SYN-ACK after which the scanner sends a RST (2.1 packets a flow). Every
//! flow is a distinct destination (protocol, address, port) too. Timestamps start at 2026-01-01T00:00:00Z and advance
//! 10 us per packet. Output is a pure function of the arguments; packets are streamed, never held.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::process::exit;
use std::time::Duration;

use etherparse::{PacketBuilder, TcpHeader};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

/// 2026-01-01T00:00:00Z
const START_US: u64 = 1_767_225_600 * 1_000_000;
const STEP_US: u64 = 10;
const LOCAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const PORTS_PER_HOST: u64 = 1000;

fn usage() -> ! {
    eprintln!("usage: gen_scan_capture --flows N --out FILE");
    exit(2)
}

fn main() {
    let mut flows: Option<u64> = None;
    let mut out: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--flows" => flows = val().parse().ok(),
            "--out" => out = Some(val()),
            _ => usage(),
        }
    }
    let (Some(flows), Some(out)) = (flows, out) else {
        usage()
    };
    // 198.18.0.0/15 has 131,070 host addresses.
    if flows == 0 || flows > 131_000 * PORTS_PER_HOST {
        usage()
    }
    match run(flows, &out) {
        Ok(packets) => {
            eprintln!("gen_scan_capture: wrote {packets} packets, {flows} flows to {out}")
        }
        Err(e) => {
            eprintln!("gen_scan_capture: {e}");
            exit(1);
        }
    }
}

fn run(flows: u64, out: &str) -> Result<u64, Box<dyn std::error::Error>> {
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
    let file = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let mut w = PcapWriter::with_header(file, header)?;
    let mut buf = Vec::with_capacity(128);
    let mut n = 0u64;
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    for i in 0..flows {
        let remote = Ipv4Addr::from(base + 1 + (i / PORTS_PER_HOST) as u32);
        let rport = 1000 + (i % PORTS_PER_HOST) as u16;
        let lport = 32768 + (i % 28_232) as u16;
        let seq = (i as u32).wrapping_mul(2_654_435_761);
        // (outgoing, seq, ack, syn, rst)
        let syn = (true, seq, None, true, false);
        let probe: &[(bool, u32, Option<u32>, bool, bool)] = if i % 10 == 0 {
            // Open: SYN-ACK, and the scanner resets.
            &[
                syn,
                (false, !seq, Some(seq.wrapping_add(1)), true, false),
                (true, seq.wrapping_add(1), None, false, true),
            ]
        } else {
            // Closed: RST-ACK.
            &[syn, (false, 0, Some(seq.wrapping_add(1)), false, true)]
        };
        for &(outgoing, s, ack, syn, rst) in probe {
            let (sport, dport, src, dst, smac, dmac) = if outgoing {
                (lport, rport, LOCAL, remote, LOCAL_MAC, GW_MAC)
            } else {
                (rport, lport, remote, LOCAL, GW_MAC, LOCAL_MAC)
            };
            let mut h = TcpHeader::new(sport, dport, s, 64240);
            h.syn = syn;
            h.rst = rst;
            if let Some(a) = ack {
                h.ack = true;
                h.acknowledgment_number = a;
            }
            buf.clear();
            PacketBuilder::ethernet2(smac, dmac)
                .ipv4(src.octets(), dst.octets(), if outgoing { 64 } else { 60 })
                .tcp_header(h)
                .write(&mut buf, &[])?;
            let ts = Duration::from_micros(START_US + n * STEP_US);
            w.write_packet(&PcapPacket::new(ts, buf.len() as u32, &buf))?;
            n += 1;
        }
    }
    w.into_writer().flush()?;
    Ok(n)
}
