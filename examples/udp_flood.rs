//! Sends small UDP datagrams as fast as it can (or at a set rate) for a while, and says how many
//! went out: the sender of `bench/load.sh`, run inside a sealed staging container.
//!
//! Usage: `udp_flood --to ADDR:PORT [--secs 5] [--rate PKTS_PER_S (0: as fast as possible)]
//! [--size PAYLOAD_BYTES]`
//!
//! Built statically so that it runs on the busybox fixture stack. It uses the standard library
//! only, so the bench compiles it with rustc alone (a cargo build for a static target would
//! rebuild every dependency of the crate):
//! `rustc --edition 2021 -O -C target-feature=+crt-static examples/udp_flood.rs -o udp_flood`
//!
//! The socket has IP_RECVERR on, so the kernel reports a datagram it dropped on the way out
//! (e.g. a full backlog behind the veth) as ENOBUFS instead of calling it sent. The last line of
//! output is machine-readable:
//! `FLOOD sent=N enobufs=N refused=N other=N secs=S rate=R`
//! - sent: datagrams the kernel accepted and handed on (what the far end of the link can see);
//! - enobufs: datagrams that left the socket but were dropped on the way out (a capture on the
//!   sending side may still have seen them);
//! - refused: sends that failed with an ICMP error queued from an earlier datagram (nothing sent;
//!   tried again).
//!
//! Every address the sealed container can reach is the sink's: nothing leaves the machine. Do not
//! run it anywhere else.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::exit;
use std::time::{Duration, Instant};

// Linux x86_64/aarch64 values; std links the C library, so no crate is needed for one call.
const IPPROTO_IP: i32 = 0;
const IP_RECVERR: i32 = 11;
const IPPROTO_IPV6: i32 = 41;
const IPV6_RECVERR: i32 = 25;
const ENOBUFS: i32 = 105;
const ECONNREFUSED: i32 = 111;
const EHOSTUNREACH: i32 = 113;

extern "C" {
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const i32, len: u32) -> i32;
}

fn usage() -> ! {
    eprintln!("usage: udp_flood --to ADDR:PORT [--secs 5] [--rate PKTS_PER_S] [--size BYTES]");
    exit(2)
}

fn main() {
    let mut to: Option<SocketAddr> = None;
    let mut secs = 5.0f64;
    let mut rate = 0u64;
    let mut size = 18usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--to" => to = Some(val().parse().unwrap_or_else(|_| usage())),
            "--secs" => secs = val().parse().unwrap_or_else(|_| usage()),
            "--rate" => rate = val().parse().unwrap_or_else(|_| usage()),
            "--size" => size = val().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let Some(to) = to else { usage() };
    let bind: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = UdpSocket::bind(bind).unwrap_or_else(|e| {
        eprintln!("udp_flood: bind: {e}");
        exit(1)
    });
    let (level, opt) = if to.is_ipv4() {
        (IPPROTO_IP, IP_RECVERR)
    } else {
        (IPPROTO_IPV6, IPV6_RECVERR)
    };
    let on: i32 = 1;
    // SAFETY: a valid socket and an int option value of the right size.
    let r = unsafe { setsockopt(sock.as_raw_fd(), level, opt, &on, 4) };
    if r != 0 {
        eprintln!("udp_flood: IP_RECVERR: {}", std::io::Error::last_os_error());
        exit(1);
    }
    let payload: Vec<u8> = b"airgap-check flood "
        .iter()
        .cycle()
        .take(size)
        .copied()
        .collect();
    let (mut sent, mut enobufs, mut refused, mut other) = (0u64, 0u64, 0u64, 0u64);
    let run = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut attempts = 0u64;
    'outer: loop {
        let elapsed = start.elapsed();
        if elapsed >= run {
            break;
        }
        // How many datagrams are due by now (all of them at full speed: a batch between clock
        // reads).
        let due = if rate == 0 {
            attempts + 64
        } else {
            (elapsed.as_nanos() * u128::from(rate) / 1_000_000_000) as u64
        };
        if attempts >= due {
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        while attempts < due {
            attempts += 1;
            match sock.send_to(&payload, to) {
                Ok(_) => sent += 1,
                Err(e) => match e.raw_os_error() {
                    Some(ENOBUFS) => enobufs += 1,
                    // The error of an earlier datagram (an ICMP error from the far end): this
                    // one was not sent, so it does not count as an attempt.
                    Some(ECONNREFUSED) | Some(EHOSTUNREACH) => {
                        refused += 1;
                        attempts -= 1;
                    }
                    _ => {
                        other += 1;
                        if other == 1 {
                            eprintln!("udp_flood: send: {e}");
                        }
                        if other > 1000 && sent == 0 {
                            break 'outer;
                        }
                    }
                },
            }
        }
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "udp_flood: {sent} datagrams sent to {to} in {took:.2} s ({:.0}/s); {enobufs} dropped on the way out (ENOBUFS), {refused} refused, {other} other errors",
        sent as f64 / took
    );
    println!("FLOOD sent={sent} enobufs={enobufs} refused={refused} other={other} secs={took:.3} rate={rate}");
}
