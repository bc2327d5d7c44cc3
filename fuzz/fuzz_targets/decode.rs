//! The frame decoder: the first byte picks the link type, the rest is one frame.
//! Whatever the bytes, `decode` returns (no panic, no overflow), and what it returns holds together.
#![no_main]

use airgap_check::flows::decode::{decode, has_ports, proto_label, Decoded, LinkKind, Transport};
use libfuzzer_sys::fuzz_target;

const LINKS: [LinkKind; 8] = [
    LinkKind::Ethernet,
    LinkKind::LinuxSll,
    LinkKind::LinuxSll2,
    LinkKind::RawIp,
    LinkKind::Ipv4,
    LinkKind::Ipv6,
    LinkKind::Null,
    LinkKind::Loop,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(sel) % LINKS.len()];
    if let Decoded::Ip(p) = decode(link, frame) {
        // The payload is a slice of the frame, never of anything else.
        let (f, q) = (frame.as_ptr_range(), p.payload.as_ptr_range());
        assert!(p.payload.is_empty() || (f.start <= q.start && q.end <= f.end));
        assert_eq!(
            p.src.is_ipv4(),
            p.dst.is_ipv4(),
            "one IP version per packet"
        );
        let _ = proto_label(p.proto);
        if let Transport::Tcp { .. } | Transport::Udp { .. } = p.transport {
            assert!(has_ports(p.proto), "ports for protocol {}", p.proto);
        }
        if let Transport::Icmp { about: Some(e), .. } = p.transport {
            assert_eq!(e.src.is_ipv4(), e.dst.is_ipv4());
        }
    }
});
