//! Names from what a flow carries: DNS messages, the server name of a TLS ClientHello (SNI) and
//! the Host of an HTTP request.
//!
//! Pure functions over bytes that never panic, whatever the input: the parsing is done by
//! hickory-proto (DNS), tls-parser (TLS) and httparse (HTTP), which read with checked lengths. The
//! only hand-written reading here is:
//! - a 12-byte DNS header plausibility check before hickory sees a payload (hickory reserves
//!   memory for as many questions as the header claims: up to 65,535 on garbage), and
//! - the reassembly of a handshake message that spans several TLS records: tls-parser parses one
//!   record at a time and refuses a message cut at a record boundary, so the records' bodies are
//!   joined here (with tls-parser's own record parser) and the message parsed from the join.
//!
//! Every name returned is printable ASCII, lowercase, without a trailing dot: bytes that no DNS
//! name holds are escaped (`\xNN`) so a hostile name cannot drive the terminal of whoever reads
//! the report.

use std::borrow::Cow;
use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::{Name, RData, RecordType};

/// A DNS message, reduced to what naming needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsMessage {
    pub is_response: bool,
    /// The questions: (name, type), the name lowercase without its trailing dot ("." for the root),
    /// the type as written in zone files ("A", "AAAA", "TYPE65534" when unknown).
    pub queries: Vec<(String, String)>,
    /// Each address an A or AAAA answer gave, with the names that lead to it: the question's name,
    /// then each CNAME on the way (www.example.com → cdn.example.net → 203.0.113.7 gives
    /// 203.0.113.7 → [www.example.com, cdn.example.net]). Answers that no question leads to are
    /// left out: a resolver has no business vouching for names nobody asked about.
    pub answers: Vec<(IpAddr, Vec<String>)>,
}

/// The longest CNAME chain followed (resolvers stop near 8-16 too).
const MAX_CNAME_CHAIN: usize = 16;

/// Parse a DNS message (without the TCP length prefix). `None` when the bytes are not one.
pub fn dns(payload: &[u8]) -> Option<DnsMessage> {
    if !plausible_dns_header(payload) {
        return None;
    }
    let m = Message::from_vec(payload).ok()?;
    let is_response = m.metadata.message_type == MessageType::Response;
    let queries: Vec<(String, String)> = m
        .queries
        .iter()
        .map(|q| (name_text(&q.name), type_text(q.query_type)))
        .collect();
    let mut answers: Vec<(IpAddr, Vec<String>)> = Vec::new();
    if is_response {
        let cnames: Vec<(String, String)> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::CNAME(c) => Some((name_text(&r.name), name_text(&c.0))),
                _ => None,
            })
            .collect();
        for r in &m.answers {
            let addr = match &r.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => continue,
            };
            let owner = name_text(&r.name);
            let Some(chain) = queries
                .iter()
                .find_map(|(q, _)| chain_to(q, &owner, &cnames))
            else {
                continue;
            };
            match answers.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, names)) => {
                    for n in chain {
                        if !names.contains(&n) {
                            names.push(n);
                        }
                    }
                }
                None => answers.push((addr, chain)),
            }
        }
    }
    Some(DnsMessage {
        is_response,
        queries,
        answers,
    })
}

/// The names from `from` to `to` through CNAMEs, both included; `None` when `to` is not reached.
fn chain_to(from: &str, to: &str, cnames: &[(String, String)]) -> Option<Vec<String>> {
    let mut chain = vec![from.to_string()];
    let mut cur = from;
    for _ in 0..MAX_CNAME_CHAIN {
        if cur == to {
            return Some(chain);
        }
        let (_, next) = cnames.iter().find(|(owner, _)| owner == cur)?;
        if chain.contains(next) {
            return None;
        }
        chain.push(next.clone());
        cur = next;
    }
    (cur == to).then_some(chain)
}

/// Whether the 12-byte header could start a DNS message of this length: each question takes at
/// least 5 bytes and each record 11, so counts beyond what the payload can hold are garbage.
fn plausible_dns_header(b: &[u8]) -> bool {
    let Some(h) = b.get(..12) else { return false };
    let count = |i: usize| usize::from(u16::from_be_bytes([h[i], h[i + 1]]));
    let need = count(4) * 5 + (count(6) + count(8) + count(10)) * 11;
    need <= b.len() - 12
}

fn name_text(n: &Name) -> String {
    let s = n.to_ascii();
    let s = s.strip_suffix('.').unwrap_or(&s);
    if s.is_empty() {
        ".".into()
    } else {
        s.to_ascii_lowercase()
    }
}

fn type_text(t: RecordType) -> String {
    match t {
        RecordType::Unknown(n) => format!("TYPE{n}"),
        t => <&'static str>::from(t).to_string(),
    }
}

/// The server name of a TLS ClientHello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sni {
    /// The name the client asked for (lowercase, no trailing dot).
    Found(String),
    /// A TLS handshake record that is not complete yet: the ClientHello goes on in later segments.
    NeedMore,
    /// Not a TLS ClientHello that names a server (other data, another TLS message, or a
    /// ClientHello without the server_name extension): more bytes will not change that.
    NotTls,
}

/// Handshake messages larger than this are not ClientHellos anyone sends.
const MAX_HANDSHAKE: usize = 1 << 16;

/// The SNI of the ClientHello the bytes start with: the first bytes a TLS client sends.
pub fn tls_sni(payload: &[u8]) -> Sni {
    use tls_parser::{
        parse_tls_extensions, parse_tls_message_handshake, parse_tls_raw_record, SNIType,
        TlsExtension, TlsMessage, TlsMessageHandshake, TlsRecordType,
    };
    // Content type 22 (handshake), then the record version's major byte, 3.
    match payload {
        [] | [0x16] => return Sni::NeedMore,
        [0x16, 3, ..] => {}
        _ => return Sni::NotTls,
    }
    // The handshake message, joined from as many records as it spans.
    let mut joined: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut rest = payload;
    let message = loop {
        match parse_tls_raw_record(rest) {
            Ok((r, rec)) => {
                if rec.hdr.record_type != TlsRecordType::Handshake || rec.hdr.version.0 >> 8 != 3 {
                    return Sni::NotTls;
                }
                rest = r;
                joined = if joined.is_empty() {
                    Cow::Borrowed(rec.data)
                } else {
                    let mut v = joined.into_owned();
                    v.extend_from_slice(rec.data);
                    Cow::Owned(v)
                };
            }
            Err(tls_parser::Err::Incomplete(_)) => return Sni::NeedMore,
            Err(_) => return Sni::NotTls,
        }
        let Some(h) = joined.get(..4) else { continue };
        // Handshake type 1: ClientHello.
        if h[0] != 1 {
            return Sni::NotTls;
        }
        let len = 4 + usize::from_be_bytes([0, 0, 0, 0, 0, h[1], h[2], h[3]]);
        if len > MAX_HANDSHAKE {
            return Sni::NotTls;
        }
        if joined.len() >= len {
            break joined;
        }
    };
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)))) =
        parse_tls_message_handshake(&message)
    else {
        return Sni::NotTls;
    };
    let Some(Ok((_, extensions))) = hello.ext.map(parse_tls_extensions) else {
        return Sni::NotTls;
    };
    extensions
        .iter()
        .find_map(|e| match e {
            TlsExtension::SNI(names) => names
                .iter()
                .find(|(t, _)| *t == SNIType::HostName)
                .and_then(|(_, n)| clean_name(n)),
            _ => None,
        })
        .map_or(Sni::NotTls, Sni::Found)
}

/// The first HTTP/1.x request of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Http {
    Found {
        /// "GET /dl/go1.22.tgz HTTP/1.1" (through the terminal escaper, `report::text`, at most 2,048 characters).
        request_line: String,
        /// The Host header, lowercase, without its port; `None` when the request has none.
        host: Option<String>,
    },
    /// A request whose headers have not ended yet.
    NeedMore,
    NotHttp,
}

/// The longest request line kept.
const MAX_REQUEST_LINE: usize = 2048;

/// The longest method taken for one: registered methods have at most 17 characters
/// ("UPDATEREDIRECTREF"). httparse reads a method token of any length as a request still coming,
/// so text without a space would be held to the end of the buffer.
const MAX_METHOD: usize = 24;

/// Parse the HTTP request the bytes start with.
pub fn http_request(payload: &[u8]) -> Http {
    if payload.len() > MAX_METHOD && !payload[..=MAX_METHOD].contains(&b' ') {
        return Http::NotHttp;
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    match parse_http(payload, &mut headers) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut many = vec![httparse::EMPTY_HEADER; 1024];
            parse_http(payload, &mut many).unwrap_or(Http::NotHttp)
        }
        r => r.unwrap_or(Http::NotHttp),
    }
}

/// As [`http_request`], for a request cut short (the capture ended, or the buffer limit): the
/// headers up to the last complete line count as all the headers there are.
pub fn http_request_cut(payload: &[u8]) -> Http {
    match http_request(payload) {
        Http::NeedMore => {
            let Some(end) = payload.iter().rposition(|&b| b == b'\n') else {
                return Http::NotHttp;
            };
            let mut whole = payload[..=end].to_vec();
            whole.extend_from_slice(b"\r\n");
            match http_request(&whole) {
                found @ Http::Found { .. } => found,
                _ => Http::NotHttp,
            }
        }
        r => r,
    }
}

fn parse_http<'b>(
    payload: &'b [u8],
    headers: &mut [httparse::Header<'b>],
) -> Result<Http, httparse::Error> {
    let mut req = httparse::Request::new(headers);
    if req.parse(payload)?.is_partial() {
        return Ok(Http::NeedMore);
    }
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Ok(Http::NotHttp);
    };
    let line = format!("{method} {path} HTTP/1.{version}");
    let mut request_line = crate::report::text::terminal_safe(&line).into_owned();
    if request_line.len() > MAX_REQUEST_LINE {
        let mut cut = MAX_REQUEST_LINE;
        while !request_line.is_char_boundary(cut) {
            cut -= 1;
        }
        request_line.truncate(cut);
        request_line.push('…');
    }
    let host = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .and_then(|h| clean_name(strip_port(h.value.trim_ascii())));
    Ok(Http::Found { request_line, host })
}

/// "example.org:8080" → "example.org"; "[2001:db8::1]:80" → "2001:db8::1".
fn strip_port(host: &[u8]) -> &[u8] {
    if let Some(inner) = host.strip_prefix(b"[") {
        return match inner.iter().position(|&b| b == b']') {
            Some(end) => &inner[..end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        // One colon followed by digits: a port. More colons: a bare IPv6 address.
        Some(i)
            if host[..i].iter().all(|&b| b != b':')
                && host[i + 1..].iter().all(u8::is_ascii_digit) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

/// The longest name kept (DNS names have at most 253 characters).
const MAX_NAME: usize = 255;

/// A name from the wire as the reports show it: lowercase printable ASCII without a trailing dot,
/// other bytes escaped; `None` when empty. The root's dot is dropped ("example.com." is
/// example.com); a dot still last after that, or after the cut at [`MAX_NAME`], is escaped
/// (`\x2e`), so the name neither ends with a dot nor passes for the one without it.
fn clean_name(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    let raw = &raw[..raw.len().min(MAX_NAME)];
    if raw.is_empty() {
        return None;
    }
    let mut s = String::with_capacity(raw.len());
    for (i, &b) in raw.iter().enumerate() {
        let last_dot = b == b'.' && i + 1 == raw.len();
        if b.is_ascii_graphic() && b != b'\\' && !last_dot {
            s.push(b.to_ascii_lowercase() as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{OpCode, Query};
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};
    use hickory_proto::rr::Record;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn query(id: u16, q: &str, t: RecordType) -> Message {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(name(q), t));
        m
    }

    #[test]
    fn dns_query_and_answer_with_a_cname_chain() {
        let q = query(7, "WWW.Example.com.", RecordType::A);
        let parsed = dns(&q.to_vec().unwrap()).unwrap();
        assert!(!parsed.is_response);
        assert_eq!(parsed.queries, vec![("www.example.com".into(), "A".into())]);
        assert!(parsed.answers.is_empty());

        let mut r = query(7, "www.example.com.", RecordType::A);
        r.metadata.message_type = MessageType::Response;
        r.add_answer(Record::from_rdata(
            name("www.example.com."),
            60,
            RData::CNAME(CNAME(name("cdn.example.net."))),
        ));
        r.add_answer(Record::from_rdata(
            name("cdn.example.net."),
            60,
            RData::A(A::new(203, 0, 113, 7)),
        ));
        // Not led to by the question: left out.
        r.add_answer(Record::from_rdata(
            name("elsewhere.example.org."),
            60,
            RData::A(A::new(203, 0, 113, 66)),
        ));
        let parsed = dns(&r.to_vec().unwrap()).unwrap();
        assert!(parsed.is_response);
        assert_eq!(
            parsed.answers,
            vec![(
                "203.0.113.7".parse().unwrap(),
                vec!["www.example.com".to_string(), "cdn.example.net".to_string()]
            )]
        );
    }

    #[test]
    fn dns_aaaa_and_unknown_types() {
        let mut r = query(1, "pkg.example.com.", RecordType::AAAA);
        r.metadata.message_type = MessageType::Response;
        r.add_answer(Record::from_rdata(
            name("pkg.example.com."),
            60,
            RData::AAAA(AAAA("2001:db8::5".parse().unwrap())),
        ));
        let parsed = dns(&r.to_vec().unwrap()).unwrap();
        assert_eq!(parsed.queries[0].1, "AAAA");
        assert_eq!(
            parsed.answers[0].0,
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        let q = query(1, "x.example.", RecordType::Unknown(65534));
        assert_eq!(dns(&q.to_vec().unwrap()).unwrap().queries[0].1, "TYPE65534");
        // The root.
        let q = query(1, ".", RecordType::NS);
        assert_eq!(dns(&q.to_vec().unwrap()).unwrap().queries[0].0, ".");
    }

    #[test]
    fn dns_cname_loops_end() {
        let mut r = query(2, "a.example.", RecordType::A);
        r.metadata.message_type = MessageType::Response;
        for (from, to) in [("a.example.", "b.example."), ("b.example.", "a.example.")] {
            r.add_answer(Record::from_rdata(
                name(from),
                1,
                RData::CNAME(CNAME(name(to))),
            ));
        }
        r.add_answer(Record::from_rdata(
            name("c.example."),
            1,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        assert!(dns(&r.to_vec().unwrap()).unwrap().answers.is_empty());
    }

    #[test]
    fn dns_garbage_truncation_and_compression_loops_do_not_panic() {
        let q = query(9, "pkg.example.com.", RecordType::A)
            .to_vec()
            .unwrap();
        for n in 0..q.len() {
            let _ = dns(&q[..n]);
        }
        assert!(dns(&q[..q.len() - 1]).is_none());
        // A name that points at itself, and two that point at each other.
        let mut looped = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(dns(&looped).is_none());
        let mut pair = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        pair.extend_from_slice(&[1, b'a', 0xc0, 16, 1, b'b', 0xc0, 12, 0, 1, 0, 1]);
        assert!(dns(&pair).is_none());
        // Counts no payload can hold.
        assert!(dns(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        // Pseudo-random bytes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..600 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = dns(&bytes);
            let _ = tls_sni(&bytes);
            let _ = http_request(&bytes);
            let _ = http_request_cut(&bytes);
        }
        // Odd bytes in a label are escaped, never passed through.
        let mut odd = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        odd.extend_from_slice(&[4, 0x1b, b'[', b'2', b'J', 0, 0, 1, 0, 1]);
        let name = &dns(&odd).unwrap().queries[0].0;
        assert!(name.bytes().all(|b| b.is_ascii_graphic()), "{name}");
    }

    const HELLO: &[u8] = include_bytes!("../../fixtures/buildpacks/leak-tls/bin/clienthello.bin");

    #[test]
    fn sni_from_a_whole_and_a_split_client_hello() {
        assert_eq!(tls_sni(HELLO), Sni::Found("pkg.example.com".into()));
        for cut in [0, 1, 2, 5, 100, HELLO.len() - 1] {
            assert_eq!(tls_sni(&HELLO[..cut]), Sni::NeedMore, "cut at {cut}");
        }
        // The same ClientHello in two records (a handshake message split at a record boundary).
        let body = &HELLO[5..];
        let mut two = Vec::new();
        for part in [&body[..50], &body[50..]] {
            two.extend_from_slice(&[0x16, 3, 1]);
            two.extend_from_slice(&(part.len() as u16).to_be_bytes());
            two.extend_from_slice(part);
        }
        assert_eq!(tls_sni(&two), Sni::Found("pkg.example.com".into()));
        assert_eq!(tls_sni(&two[..60]), Sni::NeedMore);
        // Trailing bytes after the record (the client's next flight) do not matter.
        let mut more = HELLO.to_vec();
        more.extend_from_slice(&[0x14, 3, 3, 0, 1, 1]);
        assert_eq!(tls_sni(&more), Sni::Found("pkg.example.com".into()));
    }

    #[test]
    fn not_tls() {
        assert_eq!(tls_sni(b"GET / HTTP/1.1\r\n"), Sni::NotTls);
        assert_eq!(tls_sni(&[0x16, 0x2e]), Sni::NotTls);
        // An alert record, and a ServerHello-typed handshake.
        assert_eq!(tls_sni(&[0x15, 3, 3, 0, 2, 2, 40]), Sni::NotTls);
        assert_eq!(tls_sni(&[0x16, 3, 3, 0, 4, 2, 0, 0, 0]), Sni::NotTls);
        // A handshake that claims to be huge.
        assert_eq!(
            tls_sni(&[0x16, 3, 3, 0, 4, 1, 0xff, 0xff, 0xff]),
            Sni::NotTls
        );
        // A ClientHello with its extensions cut off at the end: garbage.
        let mut broken = HELLO.to_vec();
        let n = broken.len();
        broken[n - 20..].fill(0xff);
        assert!(matches!(tls_sni(&broken), Sni::NotTls | Sni::Found(_)));
    }

    #[test]
    fn http_request_line_and_host() {
        let r =
            b"GET /dl/go1.22.tgz HTTP/1.1\r\nHost: Mirror.Example.org:8080\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            http_request(r),
            Http::Found {
                request_line: "GET /dl/go1.22.tgz HTTP/1.1".into(),
                host: Some("mirror.example.org".into())
            }
        );
        for cut in [0, 3, 20, 40, r.len() - 1] {
            assert_eq!(http_request(&r[..cut]), Http::NeedMore, "cut at {cut}");
        }
        // Cut inside the headers: what was captured counts.
        assert!(matches!(
            http_request_cut(&r[..62]),
            Http::Found { host: Some(h), .. } if h == "mirror.example.org"
        ));
        assert_eq!(http_request_cut(&r[..10]), Http::NotHttp);
        assert_eq!(
            http_request(b"GET / HTTP/1.0\r\n\r\n"),
            Http::Found {
                request_line: "GET / HTTP/1.0".into(),
                host: None
            }
        );
        assert!(matches!(
            http_request(b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:DB8::1]:443\r\n\r\n"),
            Http::Found { host: Some(h), .. } if h == "2001:db8::1"
        ));
        assert_eq!(http_request(b"\x16\x03\x01\x02\x00"), Http::NotHttp);
        assert_eq!(http_request(b"HTTP/1.1 200 OK\r\n\r\n"), Http::NotHttp);
        assert_eq!(http_request(b"hello world\r\n"), Http::NotHttp);
        // A token that goes on and on is not a method.
        assert_eq!(http_request(&b"abcdefghijklmnop".repeat(4)), Http::NotHttp);
        assert_eq!(http_request(&b"abcdefghijklmnop"[..]), Http::NeedMore);
        assert!(matches!(
            http_request(b"UPDATEREDIRECTREF /x HTTP/1.1\r\n\r\n"),
            Http::Found { .. }
        ));
        // Many headers.
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            big.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        big.extend_from_slice(b"Host: late.example.org\r\n\r\n");
        assert!(matches!(
            http_request(&big),
            Http::Found { host: Some(h), .. } if h == "late.example.org"
        ));
        // A hostile Host: escaped.
        let Http::Found { host: Some(h), .. } =
            http_request(b"GET / HTTP/1.1\r\nHost: a\xffb\\c\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(h, "a\\xffb\\x5cc");
    }

    /// Found by the naming fuzz target (fuzz/corpus/naming/host-trailing-dots): a Host that ends
    /// in two dots, or whose 255-byte cut ends in one, kept a trailing dot.
    #[test]
    fn names_never_end_with_a_dot() {
        let host = |raw: &[u8]| {
            let mut r = b"GET / HTTP/1.1\r\nHost: ".to_vec();
            r.extend_from_slice(raw);
            r.extend_from_slice(b"\r\n\r\n");
            match http_request(&r) {
                Http::Found { host, .. } => host,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(host(b"example.com.").as_deref(), Some("example.com"));
        // The second dot is not the root's: kept, escaped, so the name stays distinct.
        assert_eq!(host(b"example.com..").as_deref(), Some("example.com\\x2e"));
        assert_eq!(host(b".").as_deref(), None);
        assert_eq!(host(b"..").as_deref(), Some("\\x2e"));
        let mut long = vec![b'a'; MAX_NAME - 1];
        long.extend_from_slice(b".example.com");
        let h = host(&long).unwrap();
        assert!(h.ends_with("a\\x2e") && h.len() == MAX_NAME - 1 + 4, "{h}");
    }
}
