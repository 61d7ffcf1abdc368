//! filled in once kit lands
