//! What the test modules share: the builder every test that drives the binary uses ([`run`]),
//! the leftover check it runs after every run ([`leftovers`]), and the fixture stack ([`stack`]).

pub mod leftovers;
pub mod run;
pub mod stack;

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

pub use run::{flow, flow_, Agc, Flow, Outcome};
pub use stack::{root, STACK_IMAGE};

/// The fixture stack image, built once per test binary.
pub fn ensure_stack() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = BUILT.get_or_init(stack::build_stack) {
        panic!("cannot build the fixture stack: {e}");
    }
}

/// A committed capture, relative to the repository (the binary runs there).
pub fn fixture(name: &str) -> String {
    format!("fixtures/pcap/{name}")
}

/// Validate a JUnit report against the Jenkins xUnit schema with xmllint.
pub fn assert_junit_valid(path: &Path, text: Option<&str>) {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(root().join("tests/schemas/junit-10.xsd"))
        .arg(path)
        .output()
        .expect("xmllint runs (scripts/install-deps.sh installs libxml2-utils)");
    assert!(
        out.status.success(),
        "JUnit invalid: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        text.map_or_else(
            || std::fs::read_to_string(path).unwrap_or_default(),
            String::from
        )
    );
}

/// Held by every test that runs `airgap-check prune` or needs what a killed run left to stay
/// until it prunes it itself: prune removes what any dead airgap-check process left, so two such
/// tests must not overlap.
pub fn prune_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
