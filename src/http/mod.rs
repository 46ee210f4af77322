//! HTTP surface (warp): routes in `routes.rs`, the WebSocket session in `ws.rs`.
