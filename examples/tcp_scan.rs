//! A TCP connect scan of `--hosts` addresses from `--base` times `--ports` ports from 1000: one
//! non-blocking connect() per (address, port) pair, closed at once. In the sealed run the sink
//! accepts every connection and, over the veth, the handshake completes within connect(), so each
//! pair is a whole connection: SYN, SYN-ACK, ACK, then FIN both ways (six packets). The sender of `bench/scan.sh`, run inside
//! a sealed staging container, where every address is the sink's: nothing leaves the machine. Do
//! not run it anywhere else.
//!
//! Usage: `tcp_scan [--base 198.18.0.1] [--hosts 100] [--ports 1000]`
//!
//! Standard library only, so it builds static with rustc alone:
//! `rustc --edition 2021 -O -C target-feature=+crt-static examples/tcp_scan.rs -o tcp_scan`
//!
//! The last line of output is machine-readable: `SCAN pairs=N started=N failed=N secs=S`
//! (started: connects that sent their SYN, i.e. returned EINPROGRESS or connected).

use std::net::Ipv4Addr;
use std::process::exit;
use std::time::Instant;

// Linux x86_64/aarch64 values; std links the C library, so no crate is needed.
const AF_INET: i32 = 2;
const SOCK_STREAM: i32 = 1;
const SOCK_NONBLOCK: i32 = 0o4000;
const EINPROGRESS: i32 = 115;

#[repr(C)]
struct SockaddrIn {
    family: u16,
    port: [u8; 2],
    addr: [u8; 4],
    zero: [u8; 8],
}

extern "C" {
    fn socket(domain: i32, ty: i32, protocol: i32) -> i32;
    fn connect(fd: i32, addr: *const SockaddrIn, len: u32) -> i32;
    fn close(fd: i32) -> i32;
}

fn usage() -> ! {
    eprintln!("usage: tcp_scan [--base ADDR] [--hosts N] [--ports N]");
    exit(2)
}

fn main() {
    let mut base = Ipv4Addr::new(198, 18, 0, 1);
    let mut hosts = 100u32;
    let mut ports = 1000u32;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--base" => base = val().parse().unwrap_or_else(|_| usage()),
            "--hosts" => hosts = val().parse().unwrap_or_else(|_| usage()),
            "--ports" => ports = val().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if ports == 0 || ports > 64_000 {
        usage()
    }
    let start = Instant::now();
    let (mut started, mut failed) = (0u64, 0u64);
    for h in 0..hosts {
        let addr = Ipv4Addr::from(u32::from(base).wrapping_add(h));
        for p in 0..ports {
            let sa = SockaddrIn {
                family: AF_INET as u16,
                port: (1000 + p as u16).to_be_bytes(),
                addr: addr.octets(),
                zero: [0; 8],
            };
            // SAFETY: plain socket calls on a descriptor this loop owns and closes.
            unsafe {
                let fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                if fd < 0 {
                    failed += 1;
                    if failed == 1 {
                        eprintln!("tcp_scan: socket: {}", std::io::Error::last_os_error());
                    }
                    continue;
                }
                let r = connect(fd, &sa, std::mem::size_of::<SockaddrIn>() as u32);
                let err = std::io::Error::last_os_error();
                if r == 0 || err.raw_os_error() == Some(EINPROGRESS) {
                    started += 1;
                } else {
                    failed += 1;
                    if failed == 1 {
                        eprintln!("tcp_scan: connect {addr}:{}: {err}", 1000 + p);
                    }
                }
                close(fd);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let pairs = u64::from(hosts) * u64::from(ports);
    println!(
        "tcp_scan: {started} of {pairs} connects sent their SYN in {secs:.2} s ({:.0}/s); {failed} failed",
        started as f64 / secs
    );
    println!("SCAN pairs={pairs} started={started} failed={failed} secs={secs:.3}");
}
