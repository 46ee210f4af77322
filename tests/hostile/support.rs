//! Helpers shared by `tests/hostile.rs` and `tests/privacy.rs`: installed programs, a test CA,
//! the rendered nginx site in front of a running `alisay serve`, and raw TLS requests.

#![allow(dead_code)] // each test binary uses a different subset
