//! Naming: the same bytes read as a DNS message, a TLS ClientHello and an HTTP request (whole and
//! cut short). No panic, and every name is what src/naming.rs promises: printable ASCII,
//! lowercase, without a trailing dot (the DNS root is "."), so a hostile name cannot drive the
//! terminal of whoever reads the report.
#![no_main]

use airgap_check::flows::naming::{dns, http_request, http_request_cut, tls_sni, Http, Sni};
use libfuzzer_sys::fuzz_target;

fn check_name(what: &str, n: &str) {
    assert!(!n.is_empty(), "{what}: empty name");
    assert!(
        n.bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !b.is_ascii_uppercase()),
        "{what}: {n:?} is not lowercase printable ASCII"
    );
    // A dot that ends the text must be escaped (`co\.` is the label "co." and is fine): an odd
    // number of backslashes before it.
    if n != "." {
        if let Some(body) = n.strip_suffix('.') {
            let slashes = body.len() - body.trim_end_matches('\\').len();
            assert!(slashes % 2 == 1, "{what}: {n:?} ends with a dot");
        }
    }
}

fn check_http(what: &str, h: &Http) {
    if let Http::Found { request_line, host } = h {
        assert!(
            !request_line.chars().any(char::is_control),
            "{what}: control character in {request_line:?}"
        );
        assert!(
            request_line.len() <= 2048 + '…'.len_utf8(),
            "{what}: request line too long"
        );
        if let Some(host) = host {
            check_name(what, host);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(m) = dns(data) {
        for (name, qtype) in &m.queries {
            check_name("dns question", name);
            assert!(
                !qtype.is_empty()
                    && qtype
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            );
        }
        assert!(
            m.is_response || m.answers.is_empty(),
            "answers read from a query"
        );
        for (_, names) in &m.answers {
            assert!(!names.is_empty());
            for n in names {
                check_name("dns answer", n);
            }
        }
    }
    if let Sni::Found(name) = tls_sni(data) {
        check_name("sni", &name);
    }
    let whole = http_request(data);
    check_http("http", &whole);
    let cut = http_request_cut(data);
    check_http("http cut", &cut);
    if let Http::Found { .. } = whole {
        assert_eq!(whole, cut, "a whole request reads the same cut short");
    }
});
