//! Seed inputs for the fuzz targets in fuzz/, from the committed fixtures (deterministic).
//!
//! Usage: `cargo run --example fuzz_seeds -- fuzz/corpus`
//!
//! - `decode/`: one file per distinct frame of the small captures in fixtures/pcap, the first byte
//!   naming the link type (the order of `LINKS` in fuzz/fuzz_targets/decode.rs), then the frame.
//! - `flow/`: the small capture files themselves (pcap and pcapng; the flow target reads both).
//! - `naming/`: the distinct TCP and UDP payloads of those captures (DNS messages, TLS
//!   ClientHellos, HTTP requests), as decoded by airgap-check itself.
//! - `policy/`: allowlists/*.yaml and a few rules that use every criterion.

use std::collections::BTreeSet;
use std::path::Path;

use airgap_check::flows::decode::{decode, Decoded, LinkKind};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

/// The fuzz decode target's link order.
const LINKS: [i32; 8] = [1, 113, 276, 101, 228, 229, 0, 108];

/// Captures larger than this are left out: seeds should be small.
const MAX_CAPTURE: u64 = 8 << 10;

const POLICIES: &[(&str, &str)] = &[
    (
        "every-criterion.yaml",
        "allow:\n  - name: \"mirror \\u00e9\"\n    protocol: tcp\n    ports: [443, \"8000-8080\"]\n    hosts: [mirror.example.com, \"*.cdn.example.com\"]\n    cidrs: [\"203.0.113.0/24\", \"2001:db8::/32\"]\n  - name: dns\n    protocol: any\n    ports: [53]\n    content: dns\n  - name: ping\n    protocol: icmpv6\n",
    ),
    ("empty.yaml", "allow: []\n"),
    (
        "flow-style.yaml",
        "{allow: [{name: a, protocol: udp, ports: [1-2]}, {name: 'b''c', cidrs: [::/0]}]}\n",
    ),
];

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: fuzz_seeds OUT_DIR (fuzz/corpus)");
    let out = Path::new(&out);
    for t in ["decode", "flow", "naming", "policy"] {
        std::fs::create_dir_all(out.join(t)).unwrap();
    }
    let mut captures: Vec<_> = std::fs::read_dir("fixtures/pcap")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() <= MAX_CAPTURE)
        .collect();
    captures.sort();
    let (mut frames, mut payloads) = (BTreeSet::new(), BTreeSet::new());
    for path in &captures {
        let data = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(out.join("flow").join(&name), &data).unwrap();
        let Some((dlt, list)) = read_frames(&data) else {
            continue;
        };
        let Some(sel) = LINKS.iter().position(|&l| l == dlt) else {
            continue;
        };
        let link = LinkKind::from_dlt(dlt).unwrap();
        for f in list {
            if let Decoded::Ip(p) = decode(link, &f) {
                if !p.payload.is_empty() {
                    payloads.insert(p.payload.to_vec());
                }
            }
            let mut seed = vec![sel as u8];
            seed.extend_from_slice(&f);
            frames.insert(seed);
        }
    }
    for (i, f) in frames.iter().enumerate() {
        std::fs::write(out.join("decode").join(format!("frame-{i:03}")), f).unwrap();
    }
    for (i, p) in payloads.iter().enumerate() {
        std::fs::write(out.join("naming").join(format!("payload-{i:03}")), p).unwrap();
    }
    let mut allowlists: Vec<_> = std::fs::read_dir("allowlists")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    allowlists.sort();
    for p in allowlists {
        std::fs::copy(&p, out.join("policy").join(p.file_name().unwrap())).unwrap();
    }
    for (name, text) in POLICIES {
        std::fs::write(out.join("policy").join(name), text).unwrap();
    }
    println!(
        "{} captures, {} frames, {} payloads, {} policies",
        captures.len(),
        frames.len(),
        payloads.len(),
        std::fs::read_dir(out.join("policy")).unwrap().count()
    );
}

/// The link type and frames of a pcap or pcapng capture (its first interface's link type).
fn read_frames(data: &[u8]) -> Option<(i32, Vec<Vec<u8>>)> {
    let mut frames = Vec::new();
    if let Ok(mut r) = PcapReader::new(data) {
        let dlt = u32::from(r.header().datalink) as i32;
        while let Some(Ok(p)) = r.next_packet() {
            frames.push(p.data.into_owned());
        }
        return Some((dlt, frames));
    }
    let mut r = PcapNgReader::new(data).ok()?;
    let mut dlt = None;
    while let Some(Ok(b)) = r.next_block() {
        match b {
            Block::InterfaceDescription(i) if dlt.is_none() => {
                dlt = Some(u32::from(i.linktype) as i32)
            }
            Block::EnhancedPacket(p) if p.interface_id == 0 => frames.push(p.data.into_owned()),
            _ => {}
        }
    }
    Some((dlt?, frames))
}
