//! `rawrelay`: the smallest tokio-tungstenite relay that speaks the subset of
//! `docs/protocol.md` the load generator uses (`join`/`joined`/`peer-joined`, `ready`/`start`,
//! relayed `ice`/`offer`/`answer`, `heartbeat`/`heartbeat-ack`, `hangup`, `peer-left`). It is
//! the *limit* `alisay serve` is measured against: same runtime, same WebSocket library, same
//! shape (one task per socket, a bounded outbox, rooms under one mutex), and none of the work
//! alisay does on top (HTTP routing, Origin checks, strict typed validation, limits, rate
//! buckets, liveness pings, TURN credentials, logging).
//!
//! By default it reads only each message's `type` (and `roomId`), as a minimal relay must to
//! route, and forwards the client's bytes unchanged. With `--validate` it parses every message
//! into a `serde_json::Value` and forwards the re-serialized value instead: the cheapest
//! "parse and re-serialize" a validating relay could do.
//!
//! ```text
//! rawrelay --listen 127.0.0.1:18702 [--read-buffer 4096] [--validate]
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

#[derive(Parser, Debug)]
#[command(about = "Minimal tokio-tungstenite relay (the limit alisay is compared with)")]
struct Args {
    /// A loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1:18702")]
    listen: SocketAddr,
    /// tungstenite's read buffer per socket, in bytes.
    #[arg(long, default_value_t = 4096)]
    read_buffer: usize,
    /// Parse every message fully and forward the re-serialized value.
    #[arg(long)]
    validate: bool,
}

/// What a socket's task is asked to send.
enum Out {
    Text(Utf8Bytes),
    Close,
}

struct Member {
    id: u64,
    tx: mpsc::Sender<Out>,
    ready: bool,
}

#[derive(Default)]
struct Relay {
    rooms: Mutex<HashMap<String, Vec<Member>>>,
    next_id: AtomicU64,
    validate: bool,
}

/// The fields a router needs; serde skips (but still checks the syntax of) the rest.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "roomId", default)]
    room: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.listen.ip().is_loopback(), "listen on loopback only");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.listen).await?;
        let relay = Arc::new(Relay {
            validate: args.validate,
            ..Relay::default()
        });
        let config = WebSocketConfig::default()
            .read_buffer_size(args.read_buffer)
            .write_buffer_size(0)
            .max_message_size(Some(64 << 10));
        println!("rawrelay listening on {}", args.listen);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let relay = relay.clone();
            tokio::spawn(async move { session(relay, stream, config).await });
        }
    })
}

fn lock(relay: &Relay) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Member>>> {
    relay
        .rooms
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn text(s: &'static str) -> Out {
    Out::Text(Utf8Bytes::from_static(s))
}

async fn session(relay: Arc<Relay>, stream: TcpStream, config: WebSocketConfig) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let id = relay.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Out>(32);
    let mut room: Option<String> = None;
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Text(t)) => {
                    if ws.send(Message::Text(t)).await.is_err() {
                        break;
                    }
                }
                Some(Out::Close) | None => {
                    let _ = ws
                        .close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() }))
                        .await;
                    while let Some(Ok(_)) = ws.next().await {}
                    break;
                }
            },
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let reply = handle(&relay, id, &tx, &mut room, t);
                    if let Some(reply) = reply {
                        let _ = tx.try_send(reply);
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                _ => break,
            },
        }
    }
    if let Some(key) = room {
        leave(&relay, id, &key);
    }
}

/// Handles one client message; returns an answer for the client itself.
fn handle(
    relay: &Relay,
    id: u64,
    tx: &mpsc::Sender<Out>,
    room: &mut Option<String>,
    t: Utf8Bytes,
) -> Option<Out> {
    let (head, forward) = if relay.validate {
        let value: serde_json::Value = serde_json::from_str(&t).ok()?;
        let head = Head::deserialize(&value).ok()?;
        (head, Utf8Bytes::from(serde_json::to_string(&value).ok()?))
    } else {
        (serde_json::from_str::<Head>(&t).ok()?, t)
    };
    match head.kind.as_str() {
        "join" => {
            let key = head.room?;
            let mut rooms = lock(relay);
            let members = rooms.entry(key.clone()).or_default();
            if members.len() >= 2 {
                return Some(Out::Close);
            }
            let present = !members.is_empty();
            for m in members.iter() {
                let _ = m.tx.try_send(text(r#"{"type":"peer-joined"}"#));
            }
            members.push(Member {
                id,
                tx: tx.clone(),
                ready: false,
            });
            *room = Some(key);
            Some(Out::Text(Utf8Bytes::from(format!(
                r#"{{"type":"joined","sessionId":"{id:032x}","peerPresent":{present},"iceServers":[],"relayAvailable":false,"credentialExpiresAt":null,"heartbeatSeconds":20}}"#
            ))))
        }
        "ready" => {
            let mut rooms = lock(relay);
            let members = rooms.get_mut(room.as_ref()?)?;
            for m in members.iter_mut().filter(|m| m.id == id) {
                m.ready = true;
            }
            if members.len() == 2 && members.iter().all(|m| m.ready) {
                for (i, m) in members.iter().enumerate() {
                    let polite = if i == 1 { "true" } else { "false" };
                    let _ = m.tx.try_send(Out::Text(Utf8Bytes::from(format!(
                        r#"{{"type":"start","polite":{polite}}}"#
                    ))));
                }
            }
            None
        }
        "ice" | "offer" | "answer" => {
            let rooms = lock(relay);
            for m in rooms.get(room.as_ref()?)?.iter().filter(|m| m.id != id) {
                let _ = m.tx.try_send(Out::Text(forward.clone()));
            }
            None
        }
        "heartbeat" => Some(text(r#"{"type":"heartbeat-ack"}"#)),
        "hangup" => {
            if let Some(key) = room.take() {
                let rooms = lock(relay);
                for m in rooms.get(&key).into_iter().flatten().filter(|m| m.id != id) {
                    let _ = m.tx.try_send(text(r#"{"type":"hangup"}"#));
                }
                drop(rooms);
                leave(relay, id, &key);
            }
            Some(Out::Close)
        }
        _ => Some(Out::Close),
    }
}

fn leave(relay: &Relay, id: u64, key: &str) {
    let mut rooms = lock(relay);
    if let Some(members) = rooms.get_mut(key) {
        members.retain(|m| m.id != id);
        for m in members.iter() {
            let _ = m.tx.try_send(text(r#"{"type":"peer-left"}"#));
        }
        if members.is_empty() {
            rooms.remove(key);
        }
    }
}
