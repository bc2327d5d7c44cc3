//! The live capture under load, without Docker: a process in a network namespace of its own stands
//! in for the staging container, sealed into a sink like a staging run's, and sends a burst. Every
//! packet stays in those two namespaces. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW).

use std::net::UdpSocket;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

// The one module, with support/stack.rs, that uses airgap-check's own modules: it tests the
// capture itself, without the binary.
use airgap_check::capture::live::CaptureSpec;
use airgap_check::capture::sandbox::{in_netns, Sandbox};
use airgap_check::capture::LiveCapture;

use crate::support::leftovers;

/// A `sleep` in a new network namespace, killed on drop.
struct Stand(Child);

impl Stand {
    fn new() -> Stand {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "120"])
            .spawn()
            .expect("unshare --net sleep");
        let stand = Stand(child);
        // unshare creates the namespace just before it runs sleep: until then the child is still in
        // ours, and sealing it would rewire this host's namespace.
        let ours = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let theirs = std::fs::metadata(format!("/proc/{}/ns/net", stand.0.id()))
                .unwrap()
                .ino();
            if theirs != ours {
                return stand;
            }
            assert!(Instant::now() < until, "the child never left our namespace");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Stand {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_burst_of_small_datagrams_is_captured_whole() {
    let stand = Stand::new();
    let sandbox = Sandbox::seal(stand.0.id(), "tload").expect("seal");
    let capture = LiveCapture::start(CaptureSpec {
        ns: Some(sandbox.sink.try_clone().unwrap()),
        iface: sandbox.sink_if.clone(),
        canary: None,
        save: None,
        filter: None,
        sender: None,
    })
    .expect("capture");

    // As fast as the kernel takes them: far faster than one capture frame per packet could hold.
    const N: u64 = 20_000;
    in_netns(&sandbox.container, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..N {
            s.send_to(b"burst", "10.200.0.1:7777").unwrap();
        }
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let live = capture.finish(None).expect("finish");
    drop(sandbox);
    drop(stand);
    // The veth pair lived in the two namespaces only, never in this one.
    assert_eq!(leftovers::agc_interfaces(), Vec::<String>::new());

    assert_eq!(live.error, None);
    assert_eq!(live.dropped, Some(0), "the capture dropped packets");
    let (flows, _, _) = live.table.finish();
    let burst: u64 = flows
        .iter()
        .filter(|f| f.key.proto == 17 && f.key.dst_port == Some(7777))
        .map(|f| f.stats.packets_out)
        .sum();
    assert_eq!(burst, N);
}
