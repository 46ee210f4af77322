//! Signaling: the protocol types ([`protocol`]), the I/O-free room logic ([`hub`]) and
//! token buckets ([`rate`]).

pub mod hub;
pub mod protocol;
pub mod rate;
