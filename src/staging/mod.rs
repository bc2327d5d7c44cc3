//! The staging machinery, one step per module: the run's [`config`], its [`run`] id and labels,
//! the Docker [`engine`] (its objects held as guards), the [`build_context`] and [`image`], the
//! idle [`container`], the buildpack [`lifecycle`] and its [`phases`], and what the phases leave
//! running ([`linger`]). Cloud Native Buildpacks have their kind, descriptor, phases and platform
//! in [`cnb`].

pub mod build_context;
pub mod buildpack;
pub mod cnb;
pub mod config;
pub mod container;
pub mod engine;
pub mod image;
pub mod lifecycle;
pub mod linger;
pub mod phases;
pub mod run;
pub mod tree;
pub mod user;
pub mod workspace;
pub mod zip_cache;
