//! The integration tests, one binary (as casey/just and ripgrep have it): the real `airgap-check`
//! on committed captures, sealed staging runs (v2 buildpacks in `stage`, Cloud Native Buildpacks
//! in `cnb`) and observe mode against the real Docker engine, the CI integrations in ci/, and the
//! live capture under load. `cargo test --test integration`; filter by module, e.g.
//! `cargo test --test integration stage::`.

mod support;

mod analyze;
mod capture_load;
mod ci;
mod cli;
mod cnb;
mod explain;
mod inspect;
mod observe;
mod scale;
mod stage;
