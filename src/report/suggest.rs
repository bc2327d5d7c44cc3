//! `--suggest-allowlist FILE`: the allowlist that would make this run pass.
//!
//! The base allowlist's rules come first, as they were (comments in its file are not kept), then
//! one rule per disallowed (name or address, protocol, port), each after a comment that says when
//! and how often it was contacted. A destination is named by a host when the flow has a name an
//! allowlist can hold, by its address otherwise. Every string is written as a double-quoted YAML
//! scalar with everything but printable ASCII escaped, so no name can break out of its value.
//! The run's deny rules follow, as they were: a flow one of them denied gets no suggestion (deny
//! rules win), and the file says so. The file reads back with
//! [`Allowlist::load`](crate::verdict::policy::Allowlist::load) (tested).

use std::io::{self, Write};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::flows::decode::{proto_label, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::flows::Micros;
use crate::report::{relative, timestamp};
use crate::verdict::analysis::{Analysis, Judged};
use crate::verdict::policy::{Allowlist, HostPattern, PortRange, Protocol, Remote, Rule};

/// Beyond this many suggested rules, ports are merged per destination; beyond it again, the rest
/// is left out (and the file says so): an allowlist must stay under 1 MiB to be read back.
const MAX_RULES: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Target {
    Host(String),
    Net(IpNet),
}

struct Suggestion {
    target: Target,
    proto: u8,
    ports: Vec<u16>,
    /// Whether some flow to it had no port (an unreadable header, an orphan fragment).
    portless: bool,
    flows: u64,
    packets: u64,
    first: Micros,
    phases: Vec<String>,
    addrs: Vec<IpAddr>,
}

/// One end of a disallowed flow that the allowlist must let through.
struct End<'a> {
    f: &'a Judged,
    addr: IpAddr,
    port: Option<u16>,
    names: &'a [String],
}

/// Write the suggested allowlist for `a`, whose run was judged against `base`.
pub fn write(a: &Analysis, base: &Allowlist, w: &mut dyn Write) -> io::Result<()> {
    let (suggestions, left_out) = suggest(a, base);
    writeln!(
        w,
        "# Suggested by airgap-check {} {}: the allowlist that would make this run pass.",
        a.mode,
        a.input.escape_debug()
    )?;
    writeln!(
        w,
        "# The run's allowlist comes first: {}, {} rule{} (comments in it are not kept).",
        base.source.escape_debug(),
        base.allow.len(),
        if base.allow.len() == 1 { "" } else { "s" },
    )?;
    writeln!(
        w,
        "# Then one rule per destination the run contacted that it did not allow. Review each before use."
    )?;
    if left_out > 0 {
        writeln!(
            w,
            "# {left_out} more destinations were left out (more than {MAX_RULES} rules): this file does NOT make the run pass."
        )?;
    }
    let denied = a.flows.iter().filter(|f| f.denied.is_some()).count();
    if denied > 0 {
        writeln!(
            w,
            "# {denied} flow{} matched a deny rule: none is suggested for them (deny rules win), so this file does NOT make the run pass.",
            if denied == 1 { "" } else { "s" }
        )?;
    }
    if base.allow.is_empty() && suggestions.is_empty() {
        writeln!(w, "allow: []")?;
        return write_deny(w, base);
    }
    writeln!(w, "allow:")?;
    for r in &base.allow {
        write_rule(w, r)?;
    }
    let start = a.start_ts();
    for s in &suggestions {
        writeln!(w)?;
        let phases = if s.phases.is_empty() {
            "no phase".to_string()
        } else {
            format!(
                "phase{} {}",
                if s.phases.len() == 1 { "" } else { "s" },
                s.phases.join(", ")
            )
        };
        let mut addrs: Vec<String> = s.addrs.iter().take(5).map(IpAddr::to_string).collect();
        if s.addrs.len() > 5 {
            addrs.push(format!("and {} more", s.addrs.len() - 5));
        }
        writeln!(
            w,
            "  # {}; {} packet{} in {} flow{}; first seen {} ({}); address{} {}",
            phases,
            s.packets,
            if s.packets == 1 { "" } else { "s" },
            s.flows,
            if s.flows == 1 { "" } else { "s" },
            timestamp(s.first),
            relative(s.first, start),
            if s.addrs.len() == 1 { "" } else { "es" },
            addrs.join(", ")
        )?;
        if !matches!(s.proto, PROTO_TCP | PROTO_UDP | PROTO_ICMP | PROTO_ICMPV6) {
            writeln!(
                w,
                "  # protocol {} cannot be named in an allowlist: this rule allows every protocol",
                proto_label(s.proto)
            )?;
        }
        write_rule(w, &to_rule(s))?;
    }
    write_deny(w, base)
}

/// The run's deny rules, as they were.
fn write_deny(w: &mut dyn Write, base: &Allowlist) -> io::Result<()> {
    if base.deny.is_empty() {
        return Ok(());
    }
    writeln!(w, "deny:")?;
    for r in &base.deny {
        write_rule(w, r)?;
    }
    Ok(())
}

fn suggest(a: &Analysis, base: &Allowlist) -> (Vec<Suggestion>, usize) {
    let mut ends: Vec<End<'_>> = Vec::new();
    // A denied flow stays disallowed whatever the allow rules say: nothing to suggest.
    for f in a
        .flows
        .iter()
        .filter(|f| !f.allowed() && f.denied.is_none())
    {
        ends.push(End {
            f,
            addr: f.remote_addr,
            port: f.remote_port,
            names: &f.names,
        });
        // With neither end local, both ends must pass: the other one too, unless it does already.
        let k = &f.flow.key;
        if !a.local.contains(&k.src) && !a.local.contains(&k.dst) {
            let (addr, port) = if f.remote_addr == k.dst && f.remote_port == k.dst_port {
                (k.src, k.src_port)
            } else {
                (k.dst, k.dst_port)
            };
            let remote = Remote {
                proto: k.proto,
                addr,
                port,
                names: &[],
                other_protocol: f.flow.carries_other_than_dns(),
            };
            if base.judge(&remote).is_none() {
                ends.push(End {
                    f,
                    addr,
                    port,
                    names: &[],
                });
            }
        }
    }
    let by_port = group(&ends, true);
    if by_port.len() <= MAX_RULES {
        return (by_port, 0);
    }
    let mut merged = group(&ends, false);
    let left_out = merged.len().saturating_sub(MAX_RULES);
    merged.truncate(MAX_RULES);
    (merged, left_out)
}

/// Suggestions in order of first contact: one per (target, protocol, port), or per (target,
/// protocol) with every port when `per_port` is false.
fn group(ends: &[End<'_>], per_port: bool) -> Vec<Suggestion> {
    let mut out: Vec<Suggestion> = Vec::new();
    let mut index: ahash::AHashMap<(Target, u8, Option<u16>), usize> = ahash::AHashMap::new();
    for e in ends {
        let target = e
            .names
            .iter()
            .find_map(|n| match HostPattern::parse(n) {
                Ok(HostPattern::Exact(h)) => Some(Target::Host(h)),
                _ => None,
            })
            .unwrap_or_else(|| Target::Net(IpNet::from(e.addr)));
        let proto = e.f.flow.key.proto;
        let port = e.port.filter(|_| matches!(proto, PROTO_TCP | PROTO_UDP));
        let key = (target.clone(), proto, if per_port { port } else { None });
        let i = *index.entry(key).or_insert_with(|| {
            out.push(Suggestion {
                target,
                proto,
                ports: Vec::new(),
                portless: false,
                flows: 0,
                packets: 0,
                first: e.f.flow.stats.first_seen,
                phases: Vec::new(),
                addrs: Vec::new(),
            });
            out.len() - 1
        });
        let s = &mut out[i];
        match port {
            Some(p) if !s.ports.contains(&p) => s.ports.push(p),
            Some(_) => {}
            None => s.portless = true,
        }
        s.flows += 1;
        s.packets += e.f.flow.stats.packets();
        s.first = s.first.min(e.f.flow.stats.first_seen);
        if let Some(p) = &e.f.phase {
            let p = match e.f.phase_buildpack {
                Some(b) => format!("{p} (buildpack {b})"),
                None => p.clone(),
            };
            if !s.phases.contains(&p) {
                s.phases.push(p);
            }
        }
        if !s.addrs.contains(&e.addr) {
            s.addrs.push(e.addr);
        }
    }
    out
}

fn to_rule(s: &Suggestion) -> Rule {
    let protocol = match s.proto {
        PROTO_TCP => Some(Protocol::Tcp),
        PROTO_UDP => Some(Protocol::Udp),
        PROTO_ICMP => Some(Protocol::Icmp),
        PROTO_ICMPV6 => Some(Protocol::Icmpv6),
        _ => None,
    };
    // A flow with no port matches only a rule that states none.
    let ports = if s.portless {
        Vec::new()
    } else {
        ranges(&s.ports)
    };
    let (cidrs, hosts, what) = match &s.target {
        Target::Host(h) => (Vec::new(), vec![HostPattern::Exact(h.clone())], h.clone()),
        Target::Net(n) => (vec![*n], Vec::new(), n.addr().to_string()),
    };
    let port_text = match s.ports.as_slice() {
        [p] if !s.portless => format!(" port {p}"),
        [] => String::new(),
        _ if s.portless => String::new(),
        _ => " ports".to_string(),
    };
    Rule {
        name: format!("suggested: {}{} to {what}", proto_label(s.proto), port_text),
        cidrs,
        protocol,
        ports,
        hosts,
        content: None,
    }
}

/// Sorted ports as ranges: [80, 81, 82, 443] → 80-82, 443.
fn ranges(ports: &[u16]) -> Vec<PortRange> {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<PortRange> = Vec::new();
    for p in sorted {
        match out.last_mut() {
            Some(r) if r.hi.checked_add(1) == Some(p) => r.hi = p,
            _ => out.push(PortRange { lo: p, hi: p }),
        }
    }
    out
}

fn write_rule(w: &mut dyn Write, r: &Rule) -> io::Result<()> {
    writeln!(w, "  - name: {}", quote(&r.name))?;
    if let Some(p) = r.protocol {
        writeln!(w, "    protocol: {}", p.as_str())?;
    }
    if !r.cidrs.is_empty() {
        let c: Vec<String> = r.cidrs.iter().map(|n| quote(&n.to_string())).collect();
        writeln!(w, "    cidrs: [{}]", c.join(", "))?;
    }
    if !r.ports.is_empty() {
        let p: Vec<String> = r
            .ports
            .iter()
            .map(|p| {
                if p.lo == p.hi {
                    p.to_string()
                } else {
                    quote(&p.to_string())
                }
            })
            .collect();
        writeln!(w, "    ports: [{}]", p.join(", "))?;
    }
    if !r.hosts.is_empty() {
        let h: Vec<String> = r.hosts.iter().map(|h| quote(&h.to_string())).collect();
        writeln!(w, "    hosts: [{}]", h.join(", "))?;
    }
    if r.content == Some(crate::verdict::policy::Content::Dns) {
        writeln!(w, "    content: dns")?;
    }
    if r.protocol.is_none() && r.cidrs.is_empty() && r.ports.is_empty() && r.hosts.is_empty() {
        // `protocol: any` alone is read back as no criterion; it must be said.
        writeln!(w, "    protocol: any")?;
    }
    Ok(())
}

/// A double-quoted YAML scalar: printable ASCII as it is (but `"` and `\`), everything else
/// escaped, so the value can hold nothing that ends it or the line.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xffff => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_read_back_as_they_were() {
        for s in [
            "plain",
            "with \"quotes\" and \\ backslash",
            "new\nline\r\ttab\u{0}nul\u{1b}[31m",
            "é 中 🦀 \u{85} \u{2028} \u{feff}",
            "# not a comment: [x] {y} *z &a !t %p @q `r",
            "",
        ] {
            let yaml = format!("v: {}\n", quote(s));
            let back: std::collections::BTreeMap<String, String> =
                serde_norway::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(back["v"], s, "{yaml}");
            assert!(!quote(s).contains('\n'));
        }
    }

    #[test]
    fn base_rules_are_written_back_as_they_were() {
        let base = Allowlist::parse(
            "allow:\n  - name: \"we\\\"ird\"\n    cidrs: [10.0.0.0/8, fc00::/7]\n    protocol: udp\n    ports: [53, \"8000-8099\"]\n  - name: all\n    protocol: any\n  - name: h\n    hosts: [\"*.example.com\", pkg.example.org]\n",
            "t",
        )
        .unwrap();
        let mut out = Vec::new();
        for r in &base.allow {
            write_rule(&mut out, r).unwrap();
        }
        let text = format!("allow:\n{}", String::from_utf8(out).unwrap());
        let back = Allowlist::parse(&text, "t").unwrap();
        assert_eq!(back.allow, base.allow, "{text}");
    }

    #[test]
    fn ports_become_ranges() {
        let r = ranges(&[443, 80, 82, 81, 65535, 65534]);
        let shown: Vec<String> = r.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["80-82", "443", "65534-65535"]);
    }
}
