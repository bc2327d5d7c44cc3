//! A buildpack's manifest.yml and its cache: which dependencies the buildpack declares for a stack
//! ([`read`], [`versions`]), which of them it holds ([`cache`], read from its [`tree`]: a folder or
//! a zip), as the [`stack`] view that a staging run explains its flows with and `inspect` checks
//! ([`inspect`]).

pub mod anchors;
pub mod cache;
pub mod inspect;
pub mod read;
pub mod stack;
pub mod tree;
pub mod versions;

pub use read::{Entry, Manifest};
pub use stack::{
    read_all, Aside, Dependency, ManifestRead, Manifests, NoneForStack, StackDeps, Unreadable,
};
pub use tree::Tree;
