//! The staging machinery: the Docker [`engine`], the image's [`build_context`], and the
//! buildpack [`lifecycle`].

pub mod build_context;
pub mod engine;
pub mod lifecycle;
