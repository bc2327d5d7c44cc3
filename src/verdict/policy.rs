//! The allowlist: YAML → rules, and the judge that holds each flow's remote end against them.
//!
//! A flow is allowed when one `allow:` rule matches every criterion that rule states and no
//! `deny:` rule does; the first matching deny rule, or else the first matching allow rule, names
//! the reason. Invalid input is refused with the file, line and offending value.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::flows::decode::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};

/// The default allowlist, also shipped as allowlists/default.yaml.
pub const DEFAULT_ALLOWLIST: &str = include_str!("../../allowlists/default.yaml");

/// Protocol criterion of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Any,
}

impl Protocol {
    /// The spelling the allowlist uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Icmpv6 => "icmpv6",
            Protocol::Any => "any",
        }
    }

    fn matches(self, proto: u8) -> bool {
        match self {
            Protocol::Tcp => proto == PROTO_TCP,
            Protocol::Udp => proto == PROTO_UDP,
            Protocol::Icmp => proto == PROTO_ICMP,
            Protocol::Icmpv6 => proto == PROTO_ICMPV6,
            Protocol::Any => true,
        }
    }
}

/// An inclusive port range; a single port is `lo == hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

/// A CIDR; a bare address is read as a host prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

/// A DNS name pattern: exact, or "*.suffix" (which matches names below suffix, not suffix itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    Suffix(String),
}

impl HostPattern {
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        match self {
            HostPattern::Exact(h) => name.eq_ignore_ascii_case(h),
            HostPattern::Suffix(s) => {
                name.len() > s.len() + 1
                    && name.as_bytes()[name.len() - s.len() - 1] == b'.'
                    && name[name.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

/// One allow rule, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub cidrs: Vec<IpNet>,
    pub protocol: Option<Protocol>,
    pub ports: Vec<PortRange>,
    pub hosts: Vec<HostPattern>,
    /// `content: dns`: the rule does not match a flow whose own bytes show another protocol (a TLS
    /// ClientHello, an HTTP request), so DNS rules judged by port cannot carry other traffic.
    pub content: Option<Content>,
}

/// What a flow must carry for a rule to match it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Content {
    Dns,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    cidrs: Option<Vec<Cidr>>,
    #[serde(default)]
    protocol: Option<Protocol>,
    #[serde(default)]
    ports: Option<Vec<PortRange>>,
    #[serde(default)]
    hosts: Option<Vec<HostPattern>>,
    #[serde(default)]
    content: Option<Content>,
}

/// Rules are validated inside the deserializer's visit of their own mapping, so that a rule's
/// error carries that rule's position and path ("line 5 column 5: allow[1] (rule "b"): …")
/// rather than the position of the whole `allow:` sequence.
impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Rule, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Rule;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rule: a mapping with a name and at least one of cidrs, protocol, ports, hosts")
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Rule, A::Error> {
                let raw = RawRule::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Rule::try_from(raw).map_err(de::Error::custom)
            }
        }
        d.deserialize_map(V)
    }
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    /// Errors start with "(rule NAME): " — the deserializer puts the rule's path (allow[i]) first.
    fn try_from(r: RawRule) -> std::result::Result<Rule, String> {
        if r.name.trim().is_empty() {
            return Err(
                "(rule with an empty name): expected a short description as the name".into(),
            );
        }
        let stated = [
            r.cidrs.is_some(),
            r.protocol.is_some(),
            r.ports.is_some(),
            r.hosts.is_some(),
        ];
        if !stated.contains(&true) {
            return Err(format!(
                "(rule {:?}): states no criterion: expected at least one of cidrs, protocol, ports, hosts",
                r.name
            ));
        }
        for (key, empty) in [
            ("cidrs", r.cidrs.as_ref().is_some_and(Vec::is_empty)),
            ("ports", r.ports.as_ref().is_some_and(Vec::is_empty)),
            ("hosts", r.hosts.as_ref().is_some_and(Vec::is_empty)),
        ] {
            if empty {
                return Err(format!(
                    "(rule {:?}): `{key}` is an empty list: expected at least one entry, or leave the key out",
                    r.name
                ));
            }
        }
        if r.ports.is_some() && matches!(r.protocol, Some(Protocol::Icmp | Protocol::Icmpv6)) {
            return Err(format!(
                "(rule {:?}): `ports` with protocol {}: expected protocol tcp, udp or any (ICMP has no ports)",
                r.name,
                r.protocol.unwrap_or(Protocol::Any).as_str()
            ));
        }
        Ok(Rule {
            name: r.name,
            cidrs: r
                .cidrs
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.0)
                .collect(),
            protocol: r.protocol.filter(|p| *p != Protocol::Any),
            ports: r.ports.unwrap_or_default(),
            hosts: r.hosts.unwrap_or_default(),
            content: r.content,
        })
    }
}

/// The whole allowlist.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowlist {
    pub allow: Vec<Rule>,
    /// Rules that disallow a flow whatever allows it (the cloud metadata endpoints inside the
    /// private ranges, …): same keys as `allow`.
    #[serde(default)]
    pub deny: Vec<Rule>,
    /// Where it came from: a path, or "(default)".
    #[serde(skip)]
    pub source: String,
}

/// What the allowlist says of one remote end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ruling<'a> {
    /// This allow rule matches, and no deny rule does.
    Allowed(&'a Rule),
    /// This deny rule matches: disallowed whatever allows it.
    Denied(&'a Rule),
    /// No rule matches: disallowed.
    Unmatched,
}

/// What a flow's remote end looks like to the judge.
#[derive(Clone, Copy, Debug)]
pub struct Remote<'a> {
    pub proto: u8,
    pub addr: IpAddr,
    pub port: Option<u16>,
    /// Names known for the remote end (DNS answers, SNI, Host); empty when unknown.
    pub names: &'a [String],
    /// The flow's own bytes show a protocol that is not DNS (TLS, HTTP).
    pub other_protocol: bool,
}

impl Rule {
    pub fn matches(&self, r: &Remote<'_>) -> bool {
        if self.content == Some(Content::Dns) && r.other_protocol {
            return false;
        }
        if let Some(p) = self.protocol {
            if !p.matches(r.proto) {
                return false;
            }
        }
        if !self.cidrs.is_empty() && !self.cidrs.iter().any(|n| net_contains(n, r.addr)) {
            return false;
        }
        if !self.ports.is_empty() {
            let Some(port) = r.port else { return false };
            if !self.ports.iter().any(|pr| pr.lo <= port && port <= pr.hi) {
                return false;
            }
        }
        if !self.hosts.is_empty()
            && !r
                .names
                .iter()
                .any(|n| self.hosts.iter().any(|h| h.matches(n)))
        {
            return false;
        }
        true
    }
}

/// Whether `net` holds `addr`; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is also matched as the
/// IPv4 address it carries, so IPv4 rules (and --local) cover it.
pub fn net_contains(net: &IpNet, addr: IpAddr) -> bool {
    net.contains(&addr)
        || match addr {
            IpAddr::V6(a) => a
                .to_ipv4_mapped()
                .is_some_and(|v4| net.contains(&IpAddr::V4(v4))),
            IpAddr::V4(_) => false,
        }
}

impl Allowlist {
    /// The built-in default.
    pub fn default_list() -> Allowlist {
        let mut a = Allowlist::parse(DEFAULT_ALLOWLIST, "(default)")
            .expect("the embedded default allowlist is valid (tested)");
        a.source = "(default)".into();
        a
    }

    /// Read and validate an allowlist file (at most [`MAX_ALLOWLIST_BYTES`]).
    pub fn load(path: &Path) -> Result<Allowlist> {
        use std::io::Read;
        let unreadable = |e: std::io::Error| Error::Read {
            path: path.to_path_buf(),
            source: e,
        };
        // Read one byte past the limit, whatever the file claims to be (a FIFO, /dev/zero).
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| {
                f.take(MAX_ALLOWLIST_BYTES as u64 + 1)
                    .read_to_end(&mut bytes)
            })
            .map_err(unreadable)?;
        let source = path.display().to_string();
        check_size(bytes.len(), &source)?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Allowlist {
            path: source.clone(),
            message: format!(
                "not UTF-8 text (invalid byte at offset {}): expected a YAML file",
                e.utf8_error().valid_up_to()
            ),
        })?;
        Allowlist::parse(&text, &source)
    }

    /// Parse allowlist text; `source` names it in errors. Text over [`MAX_ALLOWLIST_BYTES`] or
    /// nested deeper than [`MAX_NESTING`] is refused before the YAML parser sees it: the parser
    /// takes quadratic time on deep nesting (a 400 KB file of '[' took minutes).
    pub fn parse(text: &str, source: &str) -> Result<Allowlist> {
        check_size(text.len(), source)?;
        if let Some(line) = too_deep(text) {
            return Err(Error::Allowlist {
                path: source.to_string(),
                message: format!(
                    "line {line}: nested more than {MAX_NESTING} levels deep: an allowlist needs 4 (allow, rule, list, entry)"
                ),
            });
        }
        let mut a: Allowlist = serde_norway::from_str(text).map_err(|e| Error::Allowlist {
            path: source.to_string(),
            message: describe_yaml_error(&e),
        })?;
        a.source = source.to_string();
        Ok(a)
    }

    /// The first rule that allows this remote end, if any (and no deny rule matches it).
    pub fn judge(&self, r: &Remote<'_>) -> Option<&Rule> {
        match self.ruling(r) {
            Ruling::Allowed(rule) => Some(rule),
            Ruling::Denied(_) | Ruling::Unmatched => None,
        }
    }

    /// What the allowlist says of this remote end: a deny rule first, whatever allows it; then
    /// the first allow rule.
    pub fn ruling(&self, r: &Remote<'_>) -> Ruling<'_> {
        if let Some(rule) = self.deny.iter().find(|rule| rule.matches(r)) {
            return Ruling::Denied(rule);
        }
        self.allow
            .iter()
            .find(|rule| rule.matches(r))
            .map_or(Ruling::Unmatched, Ruling::Allowed)
    }
}

/// The largest allowlist accepted: real ones are a few hundred bytes.
pub const MAX_ALLOWLIST_BYTES: usize = 1 << 20;

/// The deepest nesting accepted (an allowlist needs 4).
pub const MAX_NESTING: usize = 64;

fn check_size(len: usize, source: &str) -> Result<()> {
    if len > MAX_ALLOWLIST_BYTES {
        return Err(Error::Allowlist {
            path: source.to_string(),
            message: format!(
                "larger than {} MiB: an allowlist is a short list of rules (refused before parsing)",
                MAX_ALLOWLIST_BYTES >> 20
            ),
        });
    }
    Ok(())
}

/// A cheap upper bound of the YAML nesting depth, without parsing: block indentation levels, plus
/// "- " / "? " items opened on one line, plus open flow brackets. Returns the first line (1-based)
/// where it exceeds [`MAX_NESTING`]. Quoted scalars and comments are skipped; over-counting an odd
/// plain scalar only matters past 64 levels.
pub(crate) fn too_deep(text: &str) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    let mut block = 0usize;
    let mut flow = 0usize;
    // An open quoted scalar (they may span lines): its quote character.
    let mut quote: Option<char> = None;
    // Lines as libyaml breaks them (a lone CR, NEL, LS and PS included: `str::lines` would hide
    // nesting behind them), a BOM at a line's start skipped as one column, as libyaml skips it.
    let text = if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    };
    for (n, line) in text
        .split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
        .enumerate()
    {
        let (bom, line) = line.strip_prefix('\u{feff}').map_or((0, line), |l| (1, l));
        let body = line.trim_start_matches(' ');
        if quote.is_none() && flow == 0 && !body.is_empty() && !body.starts_with('#') {
            let indent = bom + line.len() - body.len();
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
            let mut rest = body;
            let mut compact = 0;
            while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("? ")) {
                compact += 1;
                rest = r.trim_start();
            }
            block = indents.len() + compact;
        }
        // A flow collection or a quoted scalar begins only where a value may begin; a comment
        // only after white space.
        let mut value_start = true;
        let mut after_space = true;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if let Some(q) = quote {
                // An escape ("\x") or a doubled single quote ('it''s') does not end the scalar.
                let escaped =
                    (c == '\\' && q == '"') || (c == q && q == '\'' && chars.peek() == Some(&'\''));
                if escaped {
                    chars.next();
                } else if c == q {
                    quote = None;
                    value_start = false;
                    after_space = false;
                }
                continue;
            }
            let space = c == ' ' || c == '\t';
            let mut opened = false;
            match c {
                '#' if after_space => break,
                '"' | '\'' if value_start => quote = Some(c),
                '[' | '{' if value_start || flow > 0 => {
                    flow += 1;
                    opened = true;
                    if block + flow > MAX_NESTING {
                        return Some(n + 1);
                    }
                }
                ']' | '}' if flow > 0 => flow -= 1,
                _ => {}
            }
            value_start = match c {
                _ if space => value_start,
                ':' | '-' | '?' => true,
                ',' => flow > 0,
                _ => opened,
            };
            after_space = space;
        }
        if block + flow > MAX_NESTING {
            return Some(n + 1);
        }
    }
    None
}

/// "line 4 column 7: invalid CIDR …" from serde_norway's error (whose Display puts the position last).
pub(crate) fn describe_yaml_error(e: &serde_norway::Error) -> String {
    let text = e.to_string();
    let text = match e.location() {
        Some(loc) => {
            // Drop serde_norway's own " at line L column C" so the position is said once, first.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let msg = text.replace(&suffix, "");
            format!("line {} column {}: {}", loc.line(), loc.column(), msg)
        }
        None => text,
    };
    // A rule's own errors start "(rule NAME): " after its path: "allow[1] (rule "b"): …".
    text.replacen("]: (rule ", "] (rule ", 1)
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        if let Ok(n) = t.parse::<IpNet>() {
            return Ok(Cidr(n.trunc()));
        }
        if let Ok(a) = t.parse::<IpAddr>() {
            return Ok(Cidr(IpNet::from(a)));
        }
        Err(de::Error::custom(format!(
            "invalid CIDR {s:?}: expected an address with a prefix length such as 10.0.0.0/8 or fc00::/7"
        )))
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<PortRange, D::Error> {
        struct V;
        const EXPECTED: &str = "expected a port 0-65535 or a range \"a-b\" with a <= b";
        fn one<E: de::Error>(v: u64, shown: &str) -> std::result::Result<u16, E> {
            u16::try_from(v).map_err(|_| E::custom(format!("invalid port {shown}: {EXPECTED}")))
        }
        impl Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<PortRange, E> {
                let p = one(v, &v.to_string())?;
                Ok(PortRange { lo: p, hi: p })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<PortRange, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format!("invalid port {v}: {EXPECTED}"))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<PortRange, E> {
                Err(E::custom(format!("invalid port {v}: {EXPECTED}")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<PortRange, E> {
                let bad = || E::custom(format!("invalid port {s:?}: {EXPECTED}"));
                let parse = |x: &str| x.trim().parse::<u64>().map_err(|_| bad());
                let (lo, hi) = match s.split_once('-') {
                    Some((a, b)) => (parse(a)?, parse(b)?),
                    None => {
                        let p = parse(s)?;
                        (p, p)
                    }
                };
                let (lo, hi) = (
                    one::<E>(lo, &format!("{s:?}"))?,
                    one::<E>(hi, &format!("{s:?}"))?,
                );
                if lo > hi {
                    return Err(bad());
                }
                Ok(PortRange { lo, hi })
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<HostPattern, D::Error> {
        let s = String::deserialize(d)?;
        HostPattern::parse(&s).map_err(de::Error::custom)
    }
}

impl HostPattern {
    /// Read a host pattern as allowlists write it: "pkg.example.com" or "*.example.com".
    pub fn parse(s: &str) -> std::result::Result<HostPattern, String> {
        let t = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let (wild, body) = match t.strip_prefix("*.") {
            Some(b) => (true, b.to_string()),
            None => (false, t.clone()),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if body.is_empty() || body.len() > 253 || !body.split('.').all(label_ok) {
            return Err(format!(
                "invalid host {s:?}: expected a DNS name such as pkg.example.com or a wildcard such as *.example.com"
            ));
        }
        Ok(if wild {
            HostPattern::Suffix(body)
        } else {
            HostPattern::Exact(body)
        })
    }
}

/// As allowlists write it: "pkg.example.com", "*.example.com".
impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Suffix(s) => write!(f, "*.{s}"),
        }
    }
}

/// As allowlists write it: "443", "8000-8099".
impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(proto: u8, addr: &str, port: Option<u16>) -> Remote<'static> {
        Remote {
            proto,
            addr: addr.parse().unwrap(),
            port,
            names: &[],
            other_protocol: false,
        }
    }

    #[test]
    fn dns_rules_do_not_carry_other_protocols_on_port_53() {
        let a = Allowlist::default_list();
        let mut r = remote(PROTO_TCP, "203.0.113.40", Some(53));
        assert_eq!(a.judge(&r).map(|r| r.name.as_str()), Some("dns over tcp"));
        r.other_protocol = true; // an HTTP request or a ClientHello on port 53
        assert!(a.judge(&r).is_none());
        // `content` must be a known kind.
        let e = Allowlist::parse(
            "allow:\n  - name: x\n    ports: [53]\n    content: http\n",
            "x.yaml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("http"), "{e}");
    }

    #[test]
    fn default_allows_private_and_dns_only() {
        let a = Allowlist::default_list();
        let judge = |p, a_: &str, port| a.judge(&remote(p, a_, port)).map(|r| r.name.clone());
        assert_eq!(
            judge(PROTO_TCP, "10.9.9.9", Some(443)).as_deref(),
            Some("internal networks")
        );
        assert_eq!(
            judge(PROTO_TCP, "fd12::1", Some(80)).as_deref(),
            Some("internal networks")
        );
        assert_eq!(
            judge(PROTO_UDP, "8.8.8.8", Some(53)).as_deref(),
            Some("dns")
        );
        assert_eq!(
            judge(PROTO_TCP, "8.8.8.8", Some(53)).as_deref(),
            Some("dns over tcp")
        );
        assert_eq!(judge(PROTO_TCP, "203.0.113.5", Some(443)), None);
        assert_eq!(judge(PROTO_TCP, "169.254.169.254", Some(80)), None);
        assert_eq!(judge(PROTO_UDP, "100.64.0.1", Some(123)), None);
        assert_eq!(judge(PROTO_ICMP, "198.51.100.10", None), None);
        assert_eq!(judge(PROTO_UDP, "8.8.8.8", Some(853)), None);
        // Loopback: a capture on "any" sees local databases and caches.
        assert_eq!(
            judge(PROTO_TCP, "127.0.0.1", Some(5432)).as_deref(),
            Some("loopback")
        );
        assert_eq!(
            judge(PROTO_TCP, "127.8.9.10", Some(6379)).as_deref(),
            Some("loopback")
        );
        assert_eq!(
            judge(PROTO_TCP, "::1", Some(5432)).as_deref(),
            Some("loopback")
        );
        // Multicast stays disallowed (mDNS, SSDP and the like are findings).
        assert_eq!(judge(PROTO_UDP, "224.0.0.251", Some(5353)), None);
        assert_eq!(judge(PROTO_UDP, "ff02::fb", Some(5353)), None);
    }

    #[test]
    fn deny_rules_win_over_every_allow_rule() {
        let a = Allowlist::parse(
            "allow:\n  - name: private\n    cidrs: [fc00::/7]\ndeny:\n  - name: imds\n    cidrs: [\"fd00:ec2::254/128\"]\n    protocol: tcp\n",
            "t",
        )
        .unwrap();
        let imds = remote(PROTO_TCP, "fd00:ec2::254", Some(80));
        assert!(matches!(a.ruling(&imds), Ruling::Denied(r) if r.name == "imds"));
        assert!(a.judge(&imds).is_none());
        // Only what the deny rule states: UDP to it, or its neighbour, is up to the allow rules.
        let udp = remote(PROTO_UDP, "fd00:ec2::254", Some(123));
        assert!(matches!(a.ruling(&udp), Ruling::Allowed(r) if r.name == "private"));
        let next = remote(PROTO_TCP, "fd00:ec2::255", Some(80));
        assert!(matches!(a.ruling(&next), Ruling::Allowed(_)));
        let public = remote(PROTO_TCP, "203.0.113.5", Some(80));
        assert_eq!(a.ruling(&public), Ruling::Unmatched);
        // A deny rule is checked like an allow rule, and its errors name it.
        let e = err("allow: []\ndeny:\n  - name: x\n    cidrs: []\n");
        assert!(
            e.starts_with(
                "allowlist x.yaml: line 3 column 5: deny[0] (rule \"x\"): `cidrs` is an empty list"
            ),
            "{e}"
        );
    }

    #[test]
    fn shipped_allowlists_deny_the_cloud_metadata_endpoints() {
        let strict = Allowlist::parse(include_str!("../../allowlists/strict.yaml"), "s").unwrap();
        for a in [Allowlist::default_list(), strict] {
            let denied = |p, addr: &str, port| match a.ruling(&remote(p, addr, port)) {
                Ruling::Denied(r) => Some(r.name.clone()),
                _ => None,
            };
            // The false pass this closes: inside fc00::/7, which the default allows.
            assert!(denied(PROTO_TCP, "fd00:ec2::254", Some(80))
                .unwrap()
                .contains("AWS EC2 IMDS over IPv6"));
            for (addr, port) in [
                ("169.254.169.254", 80),
                ("::ffff:169.254.169.254", 80),
                ("169.254.170.2", 80),
                ("169.254.170.23", 80),
                ("fd00:ec2::23", 80),
                ("fd20:ce::254", 80),
                ("100.100.100.200", 80),
                ("fd00:c1::a9fe:a9fe", 80),
                ("192.0.0.192", 80),
                ("fe80::a9fe:a9fe", 80),
                ("168.63.129.16", 32526),
                ("fd00:42::42", 80),
            ] {
                assert!(denied(PROTO_TCP, addr, Some(port)).is_some(), "{addr}");
            }
            // DNS to resolvers that share those addresses stays with the DNS rules.
            assert!(denied(PROTO_UDP, "169.254.169.254", Some(53)).is_none());
            assert!(denied(PROTO_TCP, "169.254.169.254", Some(53)).is_none());
            assert!(denied(PROTO_UDP, "168.63.129.16", Some(53)).is_none());
            // By name, wherever it resolved to.
            let names = vec!["metadata.google.internal".to_string()];
            let r = Remote {
                names: &names,
                ..remote(PROTO_TCP, "198.18.0.9", Some(80))
            };
            assert!(matches!(a.ruling(&r), Ruling::Denied(_)));
        }
        let a = Allowlist::default_list();
        assert_eq!(
            a.judge(&remote(PROTO_UDP, "169.254.169.254", Some(53)))
                .map(|r| r.name.as_str()),
            Some("dns")
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_addresses_match_ipv4_rules() {
        let a = Allowlist::default_list();
        let judge = |p, a_: &str, port| a.judge(&remote(p, a_, port)).map(|r| r.name.clone());
        assert_eq!(
            judge(PROTO_TCP, "::ffff:192.168.1.1", Some(8080)).as_deref(),
            Some("internal networks")
        );
        assert_eq!(
            judge(PROTO_TCP, "::ffff:127.0.0.1", Some(8080)).as_deref(),
            Some("loopback")
        );
        assert_eq!(judge(PROTO_TCP, "::ffff:203.0.113.5", Some(443)), None);
        // Only mapped addresses: the IPv4-compatible form (::a.b.c.d) is not IPv4.
        assert_eq!(judge(PROTO_TCP, "::192.168.1.1", Some(8080)), None);
    }

    #[test]
    fn strict_allows_dns_to_private_resolvers_only() {
        let a = Allowlist::parse(include_str!("../../allowlists/strict.yaml"), "strict").unwrap();
        assert!(a.judge(&remote(PROTO_UDP, "10.1.0.1", Some(53))).is_some());
        assert!(a.judge(&remote(PROTO_TCP, "fd00::53", Some(53))).is_some());
        assert!(a.judge(&remote(PROTO_UDP, "8.8.8.8", Some(53))).is_none());
        assert!(a.judge(&remote(PROTO_TCP, "10.1.0.1", Some(443))).is_none());
    }

    #[test]
    fn ports_ranges_and_every_criterion() {
        let a = Allowlist::parse(
            "allow:\n  - name: web\n    cidrs: [203.0.113.0/24]\n    protocol: tcp\n    ports: [80, \"8000-8099\"]\n",
            "t",
        )
        .unwrap();
        assert!(a
            .judge(&remote(PROTO_TCP, "203.0.113.5", Some(8050)))
            .is_some());
        assert!(a
            .judge(&remote(PROTO_TCP, "203.0.113.5", Some(443)))
            .is_none());
        assert!(a
            .judge(&remote(PROTO_UDP, "203.0.113.5", Some(80)))
            .is_none());
        assert!(a
            .judge(&remote(PROTO_TCP, "198.51.100.1", Some(80)))
            .is_none());
    }

    #[test]
    fn hosts_match_names_exactly_or_by_suffix() {
        let a = Allowlist::parse(
            "allow:\n  - name: mirror\n    hosts: [\"*.example.com\", pkg.example.org]\n",
            "t",
        )
        .unwrap();
        let names = vec!["a.b.Example.com".to_string()];
        let r = Remote {
            proto: PROTO_TCP,
            addr: "203.0.113.5".parse().unwrap(),
            port: Some(443),
            names: &names,
            other_protocol: false,
        };
        assert!(a.judge(&r).is_some());
        let names = vec!["example.com".to_string()];
        assert!(a.judge(&Remote { names: &names, ..r }).is_none());
        let names = vec!["pkg.example.org.".to_string()];
        assert!(a.judge(&Remote { names: &names, ..r }).is_some());
        // No names known: a host rule cannot match.
        assert!(a.judge(&Remote { names: &[], ..r }).is_none());
    }

    fn err(yaml: &str) -> String {
        match Allowlist::parse(yaml, "x.yaml") {
            Err(e) => e.to_string(),
            Ok(a) => panic!("accepted: {a:?}"),
        }
    }

    #[test]
    fn errors_name_file_line_and_value() {
        let e = err("allow:\n  - name: a\n    cidrs: [10.0.0.0/33]\n");
        assert!(e.starts_with("allowlist x.yaml: line 3"), "{e}");
        assert!(e.contains("10.0.0.0/33"), "{e}");
        let e = err("allow:\n  - name: a\n    ports: [70000]\n");
        assert!(e.contains("line 3") && e.contains("70000"), "{e}");
        let e = err("allow:\n  - name: a\n    ports: [\"90-80\"]\n");
        assert!(e.contains("90-80"), "{e}");
        let e = err("allow:\n  - name: a\n    protocl: tcp\n");
        assert!(e.contains("line 3") && e.contains("protocl"), "{e}");
        let e = err("allow:\n  - name: a\n    protocol: sctp\n");
        assert!(e.contains("sctp"), "{e}");
        let e = err("allow:\n  - name: a\n");
        assert!(e.contains("states no criterion"), "{e}");
        let e = err("allow:\n  - name: a\n    protocol: icmp\n    ports: [1]\n");
        assert!(e.contains("ICMP has no ports"), "{e}");
        assert!(e.contains("protocol icmp:") && !e.contains("Icmp"), "{e}");
        let e = err("allow: [\n");
        assert!(e.starts_with("allowlist x.yaml: line"), "{e}");
        let e = err("alow: []\n");
        assert!(e.contains("alow"), "{e}");
        let e = err("allow:\n  - name: a\n    hosts: [\"bad host\"]\n");
        assert!(e.contains("bad host"), "{e}");
        assert!(!err("").is_empty());
    }

    #[test]
    fn rule_errors_name_the_rule_and_its_line() {
        let two = "allow:\n  - name: a\n    protocol: udp\n    ports: [53]\n  - name: b\n";
        let e = err(&format!("{two}    cidrs: []\n"));
        assert_eq!(
            e,
            "allowlist x.yaml: line 5 column 5: allow[1] (rule \"b\"): `cidrs` is an empty list: expected at least one entry, or leave the key out"
        );
        let e = err(two);
        assert!(
            e.starts_with(
                "allowlist x.yaml: line 5 column 5: allow[1] (rule \"b\"): states no criterion"
            ),
            "{e}"
        );
        let e = err(&format!("{two}    protocol: icmpv6\n    ports: [1]\n"));
        assert!(
            e.starts_with("allowlist x.yaml: line 5 column 5: allow[1] (rule \"b\"): `ports` with protocol icmpv6:"),
            "{e}"
        );
        // Flow style too.
        let e = err("allow: [{name: a, protocol: udp}, {name: b}]\n");
        assert!(
            e.contains("allow[1] (rule \"b\"): states no criterion"),
            "{e}"
        );
        // Errors inside a rule keep their own position and path.
        let e = err(&format!("{two}    cidrs: [10.0.0.0/8, nope]\n"));
        assert!(
            e.starts_with("allowlist x.yaml: line 6 column 12: allow[1].cidrs: invalid CIDR"),
            "{e}"
        );
    }

    #[test]
    fn huge_or_deeply_nested_allowlists_are_refused_before_parsing() {
        // 5000 levels of '[': the YAML parser is quadratic in the depth.
        let e = err(&format!("allow: {}", "[".repeat(5000)));
        assert!(e.contains("line 1: nested more than 64 levels deep"), "{e}");
        let e = err(&format!(
            "allow:\n  - name: a\n    cidrs: {}\n",
            "{a: ".repeat(100)
        ));
        assert!(e.contains("line 3: nested more than 64 levels deep"), "{e}");
        // Block nesting, by indentation or by compact "- - -" items.
        let mut deep = String::from("allow:\n");
        for i in 0..70 {
            deep.push_str(&" ".repeat(i + 1));
            deep.push_str("- x:\n");
        }
        assert!(err(&deep).contains("nested more than 64 levels deep"));
        let e = err(&format!("allow:\n  {}x\n", "- ".repeat(70)));
        assert!(e.contains("line 2: nested more than 64 levels deep"), "{e}");
        // Too big.
        let big = format!("allow: []\n#{}\n", "x".repeat(MAX_ALLOWLIST_BYTES));
        let e = err(&big);
        assert!(e.contains("larger than 1 MiB"), "{e}");
        // What real allowlists look like is fine: brackets in quotes, comments and plain scalars
        // do not count, and moderate nesting passes through to the parser.
        let ok = format!(
            "# [[[[ {}\nallow:\n  - name: \"{}\" # {}\n    cidrs: ['10.0.0.0/8', \"fc00::/7\"]\n  - name: it's a[1]{}\n    protocol: udp\n",
            "[".repeat(100),
            "[{".repeat(100),
            "{".repeat(100),
            "[".repeat(100),
        );
        let a = Allowlist::parse(&ok, "ok").unwrap();
        assert_eq!(a.allow.len(), 2);
        assert!(too_deep(DEFAULT_ALLOWLIST).is_none());
        assert!(too_deep(include_str!("../../allowlists/strict.yaml")).is_none());
        assert!(too_deep(&format!("a: {}1{}", "[".repeat(60), "]".repeat(60))).is_none());
        // Nesting behind line breaks other than \n, or behind a BOM, is seen as libyaml sees it.
        for brk in ["\r", "\r\n", "\u{85}", "\u{2028}", "\u{2029}"] {
            let deep: String = (0..70)
                .map(|i| format!("{}k:{brk}", " ".repeat(i)))
                .collect();
            assert_eq!(too_deep(&deep), Some(65), "{brk:?}");
        }
        assert_eq!(too_deep(&format!("\u{feff}{}", "[".repeat(70))), Some(1));
        let boms: String = (0..70)
            .map(|i| format!("\u{feff}{}k:\n", " ".repeat(i)))
            .collect();
        assert_eq!(too_deep(&boms), Some(65));
    }
}
