//! Alisay Call: a self-hosted, two-person WebRTC call appliance.
//!
//! One binary serves the browser client, the signaling WebSocket and a few HTTP endpoints, and
//! renders every other artifact a host needs (Nginx site, coturn config, systemd units) from the
//! same `alisay.yaml`. `docs/architecture.md` follows a join, a relayed offer and a render
//! through this code.
//!
//! # Layout
//! - [`config`]: the YAML schema, loading (figment) and validation.
//! - [`signaling`]: protocol types (`protocol`), close codes and their names (`close`), the
//!   I/O-free room logic (`hub`, admission in `hub::admission`), token buckets.
//! - [`turn`]: TURN REST ephemeral credentials and the secret file.
//! - [`http`]: warp filters: static client, `/healthz`, `POST /rooms`, `/turn-credentials`, and
//!   `/ws` with its socket runtime (`http::ws`: upgrade, session, switchboard, timers, closing;
//!   framing in `http::frame`).
//! - [`server`]: binds, runs and gracefully shuts down the whole service.
//! - [`render`]: the Nginx site, coturn config and systemd units.
//! - [`room`]: room tokens, invite links and [`room::RoomId`], the room id parsed once.
//! - [`probe`]: `alisay probe`, the post-deploy check of a running site (with a STUN/TURN client).
//! - [`cli`]: the `alisay` command line.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod http;
pub mod probe;
pub mod reach;
pub mod render;
pub mod room;
pub mod server;
pub mod signaling;
pub mod turn;
