//! Admission: `POST /rooms` reservations, `join` and `resume`, and the per-IP limits they
//! count against (SPEC §5). Part of [`Hub`]; the parent module has the rules.

use std::net::{IpAddr, Ipv6Addr};

use tokio::time::Instant;

use super::{
    Action, Hub, Origin, Output, Peer, PeerId, REFRESH_RATE, Registration, Room, Slot, fail, later,
    unix_at,
};
use crate::room::RoomId;
use crate::signaling::close::CloseCode;
use crate::signaling::protocol::{ByeReason, ErrorCode, ServerMsg};
use crate::signaling::rate::TokenBucket;

impl Hub {
    /// `POST /rooms`: reserve `room_id` (already validated as 64 lowercase hex) for `ip`.
    pub fn register_room(&mut self, room_id: &str, ip: IpAddr, now: Instant) -> Registration {
        let ip = limit_key(ip);
        let Ok(key) = RoomId::parse(room_id) else {
            return Registration::Full;
        };
        if !self.take_join_token(ip, now) {
            return Registration::RateLimited;
        }
        let ttl = self.cfg.reservation_ttl;
        if let Some(room) = self.rooms.get(&key) {
            let until = room
                .reserved_until
                .unwrap_or_else(|| later(room.last_activity, self.cfg.idle_ttl));
            return Registration::Exists {
                expires_at: unix_at(until, now),
            };
        }
        if self.cfg.allowlist.contains(&key) {
            return Registration::Exists {
                expires_at: unix_at(later(now, ttl), now),
            };
        }
        if self.generated_per_ip.get(&ip).copied().unwrap_or(0) >= self.cfg.per_ip {
            return Registration::PerIpCap;
        }
        if self.rooms.len() >= self.cfg.max_active {
            return Registration::Full;
        }
        *self.generated_per_ip.entry(ip).or_default() += 1;
        self.rooms.insert(
            key,
            Room {
                origin: Origin::Generated(ip),
                slots: Vec::with_capacity(2),
                started: false,
                last_activity: now,
                reserved_until: Some(later(now, ttl)),
            },
        );
        Registration::Created {
            expires_at: unix_at(later(now, ttl), now),
        }
    }

    fn take_join_token(&mut self, ip: IpAddr, now: Instant) -> bool {
        let rate = self.cfg.join_rate;
        self.join_buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(rate, now))
            .try_take(now)
    }

    /// `join` (or `resume`): admission; returns whether `peer` was admitted.
    pub(super) fn join(
        &mut self,
        peer: PeerId,
        key: RoomId,
        resume: Option<&str>,
        ip: IpAddr,
        now: Instant,
        out: &mut Vec<Output>,
    ) -> bool {
        if !self.take_join_token(ip, now) {
            fail(
                out,
                peer,
                ErrorCode::RateLimited,
                "too many joins from your address",
            );
            return false;
        }
        let resume = resume.and_then(|s| {
            let mut b = [0u8; 16];
            hex::decode_to_slice(s, &mut b).ok().map(|()| b)
        });
        // Resume: take back our own slot in this room (never another room's, never a stranger's).
        if let (Some(session), Some(room)) = (resume, self.rooms.get_mut(&key))
            && let Some(slot) = room.slots.iter_mut().find(|s| s.session == session)
        {
            let old = slot.peer;
            slot.peer = peer;
            slot.ready = false;
            room.started = false;
            room.last_activity = now;
            let peer_present = room.slots.len() == 2;
            if let Some(old_state) = self.peers.remove(&old) {
                self.peers.insert(peer, old_state);
            }
            out.push((
                old,
                Action::Send(ServerMsg::Bye {
                    reason: ByeReason::Replaced,
                }),
            ));
            out.push((old, Action::Close(CloseCode::Replaced)));
            self.admitted(peer, session, peer_present, out);
            return true;
        }
        let room = match self.rooms.get_mut(&key) {
            Some(room) => room,
            None => {
                let origin = if self.cfg.allowlist.contains(&key) {
                    Origin::Allowlisted
                } else if self.cfg.allow_open_rooms {
                    Origin::Open
                } else {
                    fail(
                        out,
                        peer,
                        ErrorCode::RoomNotAllowed,
                        "this room does not exist",
                    );
                    return false;
                };
                if self.rooms.len() >= self.cfg.max_active {
                    fail(
                        out,
                        peer,
                        ErrorCode::ServerBusy,
                        "the server is at capacity",
                    );
                    return false;
                }
                self.rooms.entry(key).or_insert(Room {
                    origin,
                    slots: Vec::with_capacity(2),
                    started: false,
                    last_activity: now,
                    reserved_until: None,
                })
            }
        };
        if room.slots.len() >= 2 {
            fail(
                out,
                peer,
                ErrorCode::RoomFull,
                "this room already has two people",
            );
            return false;
        }
        let session: [u8; 16] = rand::random();
        self.next_seq += 1;
        room.slots.push(Slot {
            peer,
            session,
            ready: false,
            seq: self.next_seq,
        });
        room.reserved_until = None;
        room.last_activity = now;
        let other = room.slots.iter().find(|s| s.peer != peer).map(|s| s.peer);
        let label = hex::encode(rand::random::<[u8; 8]>());
        self.peers.insert(
            peer,
            Peer {
                room: key,
                label,
                refresh: TokenBucket::new(REFRESH_RATE, now),
            },
        );
        self.admitted(peer, session, other.is_some(), out);
        if let Some(other) = other {
            out.push((other, Action::Send(ServerMsg::PeerJoined)));
        }
        true
    }

    fn admitted(&self, peer: PeerId, session: [u8; 16], peer_present: bool, out: &mut Vec<Output>) {
        let label = self.peers.get(&peer).map_or("", |p| p.label.as_str());
        let (ice_servers, credential_expires_at) = self.ice_servers(label);
        out.push((
            peer,
            Action::Send(ServerMsg::Joined {
                session_id: hex::encode(session),
                peer_present,
                ice_servers,
                relay_available: self.relay_available(),
                credential_expires_at,
                heartbeat_seconds: self.cfg.heartbeat_seconds,
            }),
        ));
    }
}

/// What per-IP limits count under: the IPv4 address, or the /64 of an IPv6 address. One IPv6
/// host normally holds a whole /64 and could otherwise rotate through it to escape the caps.
pub(super) fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        v4 => v4,
    }
}
