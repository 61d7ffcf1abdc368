//! The library side of `kit`: pieces the `kit` binary and the e2e tests
//! share.

/// The namespace NAT network of `kit bench nat` and the NAT e2e tests.
pub mod netns;

/// Profile settings of every guest build (`kit b` and the e2e tests).
pub mod build_profile;
