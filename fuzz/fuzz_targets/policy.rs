//! The allowlist parser: any bytes as an allowlist file. No panic, no hang; what parses is judged
//! against a few remote ends, and reads back unchanged from the suggested allowlist that carries
//! it (src/report/suggest.rs writes the run's rules first, "as they were").
#![no_main]

use std::net::IpAddr;

use airgap_check::flows::Counts;
use airgap_check::report::suggest;
use airgap_check::verdict::analysis::{Analysis, CaptureHealth, Mode};
use airgap_check::verdict::policy::{Allowlist, Remote};
use airgap_check::verdict::Verdict;
use libfuzzer_sys::fuzz_target;

fn remotes() -> Vec<(u8, IpAddr, Option<u16>, Vec<String>, bool)> {
    let a = |s: &str| s.parse::<IpAddr>().unwrap();
    vec![
        (17, a("10.0.0.53"), Some(53), vec![], false),
        (
            6,
            a("203.0.113.5"),
            Some(443),
            vec!["example.com".into()],
            true,
        ),
        (
            6,
            a("::ffff:192.168.1.1"),
            Some(80),
            vec!["a.b.example.org".into()],
            true,
        ),
        (1, a("8.8.8.8"), None, vec![], false),
        (58, a("fe80::1"), None, vec![], false),
        (47, a("2001:db8::1"), None, vec![".".into()], false),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(list) = Allowlist::parse(text, "fuzz") else {
        return;
    };
    for (proto, addr, port, names, other_protocol) in remotes() {
        let r = Remote {
            proto,
            addr,
            port,
            names: &names,
            other_protocol,
        };
        if let Some(rule) = list.judge(&r) {
            assert!(rule.matches(&r));
        }
    }
    let empty = Analysis {
        mode: Mode::Analyze,
        input: "fuzz".into(),
        allowlist: list.source.clone(),
        local: Vec::new(),
        flows: Vec::new(),
        counts: Counts::default(),
        capture: CaptureHealth::default(),
        verdict: Verdict::Pass,
        notes: Vec::new(),
        phases: Vec::new(),
        stage: None,
        dns_queries: Vec::new(),
    };
    let mut out = Vec::new();
    suggest::write(&empty, &list, &mut out).unwrap();
    let out = String::from_utf8(out).expect("the suggested allowlist is UTF-8");
    let back = Allowlist::parse(&out, "suggested")
        .unwrap_or_else(|e| panic!("the suggested allowlist does not read back: {e}\n{out}"));
    assert_eq!(
        back.allow, list.allow,
        "rules changed on the way back:\n{out}"
    );
    assert_eq!(
        back.deny, list.deny,
        "deny rules changed on the way back:\n{out}"
    );
});
