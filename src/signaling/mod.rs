//! Signaling: the protocol types ([`protocol`]), the close codes and their names ([`close`]),
//! the I/O-free room logic ([`hub`]) and token buckets ([`rate`]).

pub mod close;
pub mod hub;
pub mod protocol;
pub mod rate;
