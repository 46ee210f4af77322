"""A non-browser Alisay Call caller, written from docs/protocol.md and docs/security.md only.

It is the test of those documents: aiortc (PyPI) for WebRTC, aiohttp for HTTP and the
WebSocket, the standard library for the authentication. It shares no code with the browser
client (public/js) and reads nothing of it.

What it does, in the order "Write your own client" in docs/protocol.md gives:

1. Reads the invite link from stdin (never from its arguments: a room token must not appear
   in a process list), takes the token after `#` and the room id `sha256(token text)`.
2. With --register, registers the room: `POST /rooms` with `Origin: <origin>` and
   `Content-Type: application/json`, body `{"roomId": ...}`.
3. Opens `GET /ws` (no query) with `Origin`, sends `join {roomId}`, waits for `joined`;
   liveness is left to the WebSocket pings (aiohttp answers them), no `heartbeat` is sent.
4. Makes its media (a moving test pattern and silence), sends `ready`.
5. On `start {polite}`: the impolite side offers at once, the polite side waits for the offer.
   Every `offer`/`answer` it sends carries `auth` (HMAC over its fingerprints, its type and
   the sender's role); every one it receives is verified before use, and a bad one ends the
   call (`hangup`). Candidates: aiortc puts its own in the SDP (it does not trickle) and sends
   `ice {candidate: null}` after each description; the peer's trickled `ice` messages are
   added as they come.
6. Once connected, computes the safety code from the description it sent (exactly as sent)
   and the one it received and verified (exactly as received), counts the video frames it
   receives, then hangs up and prints one JSON object on stdout (no token, no room id, no SDP).

Options: --register (create the room), --reorder-fingerprints (send its `a=fingerprint` lines
in reverse order, which a receiver must normalize), --tamper-auth (send a
wrong `auth`: a correct peer must refuse), --frames N (video frames to receive), --timeout S.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import re
import sys
import time

import aiohttp
import numpy
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import AudioStreamTrack
from aiortc.sdp import candidate_from_sdp
from av import VideoFrame


def log(*parts):
    print("[aiortc-client]", *parts, file=sys.stderr, flush=True)


# ---- docs/protocol.md "Authenticated descriptions" ----------------------------------------

FINGERPRINT_LINE = re.compile(r"^\s*a=fingerprint:", re.IGNORECASE)
FINGERPRINT_ATTR = re.compile(
    r"^a=fingerprint:([A-Za-z0-9-]{1,32}) +([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){0,63})$",
    re.IGNORECASE,
)


def hkdf_sha256(ikm, salt, info, length=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + block, i + 1
    return out[:length]


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def fingerprints(sdp):
    """Normalized, deduplicated, sorted fingerprints; None if any line is unreadable or none."""
    found = set()
    for line in re.split(r"\r\n|\n|\r", sdp):
        if not FINGERPRINT_LINE.match(line):
            continue
        m = FINGERPRINT_ATTR.match(line.rstrip(" \t"))
        if not m:
            return None
        found.add(m.group(1).lower() + " " + m.group(2).upper())
    return sorted(found) or None


def ascii_lines(items):
    return "".join(item + "\n" for item in items).encode("ascii")


class RoomKey:
    def __init__(self, token):
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if len(raw) != 32:
            raise ValueError("a room token is 32 bytes")
        self.k = hkdf_sha256(raw, b"alisay", b"dtls-auth v1")

    def tag(self, kind, sender_polite, sdp):
        fps = fingerprints(sdp)
        if fps is None:
            raise ValueError("no readable a=fingerprint")
        role = "polite" if sender_polite else "impolite"
        transcript = ascii_lines(["alisay dtls-auth v1", kind, role] + fps)
        return b64url(hmac.new(self.k, transcript, hashlib.sha256).digest())

    def verify(self, kind, sender_polite, sdp, auth):
        if not isinstance(auth, str) or not re.fullmatch(r"[A-Za-z0-9_-]{43}", auth):
            return False
        try:
            return hmac.compare_digest(self.tag(kind, sender_polite, sdp), auth)
        except ValueError:
            return False

    def safety_code(self, sent_sdp, verified_sdp):
        both = sorted(set(fingerprints(sent_sdp)) | set(fingerprints(verified_sdp)))
        mac = hmac.new(self.k, ascii_lines(["safety v1"] + both), hashlib.sha256).digest()
        return "%06d" % (int.from_bytes(mac[:4], "big") % 1000000)


# ---- media -------------------------------------------------------------------------------


class PatternTrack(VideoStreamTrack):
    """A 320x240 test pattern whose bar moves, 15 frames per second."""

    def __init__(self):
        super().__init__()
        self.n = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        img = numpy.zeros((240, 320, 3), numpy.uint8)
        x = (self.n * 8) % 320
        img[:, x : x + 16] = (255, 255, 255)
        img[::32, :] = (0, 160, 255)
        self.n += 1
        frame = VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def reorder_fingerprints(sdp):
    """The same SDP with each block of a=fingerprint lines in reverse order (sha-512 first).

    The hex stays uppercase: RFC 4572's grammar is UHEX, and Firefox refuses a description
    with lowercase fingerprint hex (OperationError), although docs/protocol.md's
    normalization reads either case.
    """
    lines = sdp.split("\r\n")
    out, block = [], []
    for line in lines + [None]:
        if line is not None and line.startswith("a=fingerprint:"):
            block.append(line)
            continue
        out.extend(reversed(block))
        block = []
        if line is not None:
            out.append(line)
    return "\r\n".join(out)


# ---- the call ----------------------------------------------------------------------------


class Client:
    def __init__(self, args, link):
        self.args = args
        self.origin = args.origin.rstrip("/")
        base, sep, token = link.strip().partition("#")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]{43}", token):
            raise SystemExit("the invite link has no 43-character token after #")
        self.token = token
        self.room_id = hashlib.sha256(token.encode("ascii")).hexdigest()
        self.key = RoomKey(token)
        self.result = {
            "admitted": False,
            "polite": None,
            "sentDescriptions": 0,
            "verifiedDescriptions": 0,
            "refusedDescriptions": 0,
            "connected": False,
            "framesReceived": 0,
            "safety": None,
            "peerLeft": False,
            "fingerprintLinesSent": 0,
        }
        self.pc = None
        self.polite = None
        self.sent_sdp = None
        self.verified_sdp = None
        self.connected = asyncio.Event()
        self.enough_frames = asyncio.Event()
        self.ended = asyncio.Event()
        self.ws = None
        self.tracks_added = False

    async def send(self, msg):
        await self.ws.send_str(json.dumps(msg))

    async def register(self, http):
        async with http.post(
            self.origin + "/rooms",
            data=json.dumps({"roomId": self.room_id}),
            headers={"Origin": self.origin, "Content-Type": "application/json"},
        ) as r:
            if r.status not in (200, 201):
                raise SystemExit(f"POST /rooms answered {r.status}")
            log("room registered:", r.status)

    def make_pc(self, ice_servers):
        servers = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in ice_servers
        ]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))

        @pc.on("connectionstatechange")
        async def on_state():
            log("connection state:", pc.connectionState)
            if pc.connectionState == "connected":
                self.connected.set()
            elif pc.connectionState in ("failed", "closed"):
                self.ended.set()

        @pc.on("track")
        def on_track(track):
            log("remote track:", track.kind)
            if track.kind == "video":
                asyncio.ensure_future(self.count_frames(track))

        return pc

    async def count_frames(self, track):
        try:
            while True:
                await track.recv()
                self.result["framesReceived"] += 1
                if self.result["framesReceived"] >= self.args.frames:
                    self.enough_frames.set()
        except Exception:  # the track ended
            return

    def add_tracks(self):
        if not self.tracks_added:
            self.tracks_added = True
            self.pc.addTrack(AudioStreamTrack())
            self.pc.addTrack(PatternTrack())

    async def send_description(self):
        desc = self.pc.localDescription
        sdp = desc.sdp
        if self.args.reorder_fingerprints:
            sdp = reorder_fingerprints(sdp)
        auth = self.key.tag(desc.type, self.polite, sdp)
        if self.args.tamper_auth:
            auth = auth[:-1] + ("A" if auth[-1] != "A" else "B")
        await self.send({"type": desc.type, "sdp": sdp, "auth": auth})
        # aiortc gathers before setLocalDescription returns: every candidate is in the SDP.
        await self.send({"type": "ice", "candidate": None})
        self.sent_sdp = sdp
        self.result["sentDescriptions"] += 1
        self.result["fingerprintLinesSent"] = sum(
            1 for line in sdp.split("\r\n") if line.startswith("a=fingerprint:")
        )

    async def offer(self):
        self.add_tracks()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.send_description()

    async def on_description(self, msg):
        sender_polite = not self.polite
        if not self.key.verify(msg["type"], sender_polite, msg.get("sdp", ""), msg.get("auth")):
            self.result["refusedDescriptions"] += 1
            log("refused a description whose auth does not verify")
            await self.send({"type": "hangup"})
            self.ended.set()
            return
        self.result["verifiedDescriptions"] += 1
        self.verified_sdp = msg["sdp"]
        if msg["type"] == "offer" and self.pc.signalingState != "stable":
            # Glare: this simple client is always the one that gives way.
            log("offer while not stable: rolling back is not supported; answering anyway")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type=msg["type"]))
        if msg["type"] == "offer":
            self.add_tracks()
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self.send_description()

    async def on_ice(self, msg):
        c = msg.get("candidate")
        if c is None:
            return  # end of candidates: nothing to do for aiortc
        text = c.get("candidate", "")
        if not text:
            return
        cand = candidate_from_sdp(text.split(":", 1)[1] if text.startswith("candidate:") else text)
        cand.sdpMid = c.get("sdpMid")
        cand.sdpMLineIndex = c.get("sdpMLineIndex")
        await self.pc.addIceCandidate(cand)

    async def handle(self, msg):
        t = msg.get("type")
        if t == "joined":
            self.result["admitted"] = True
            self.pc = self.make_pc(msg.get("iceServers", []))
            await self.send({"type": "ready"})
        elif t == "start":
            self.polite = bool(msg["polite"])
            self.result["polite"] = self.polite
            if not self.polite:
                await self.offer()
        elif t in ("offer", "answer"):
            await self.on_description(msg)
        elif t == "ice":
            await self.on_ice(msg)
        elif t in ("peer-left", "hangup"):
            self.result["peerLeft"] = True
            self.ended.set()
        elif t == "error":
            self.result["error"] = msg.get("code")
            if msg.get("code") != "not-ready":
                self.ended.set()

    async def read_loop(self):
        async for m in self.ws:
            if m.type != aiohttp.WSMsgType.TEXT:
                break
            msg = json.loads(m.data)
            log("in:", msg.get("type"))
            await self.handle(msg)
        self.ended.set()

    async def run(self):
        t0 = time.monotonic()
        async with aiohttp.ClientSession() as http:
            if self.args.register:
                await self.register(http)
            ws_url = self.origin.replace("http", "ws", 1) + "/ws"
            self.ws = await http.ws_connect(ws_url, origin=self.origin, autoping=True)
            await self.send({"type": "join", "roomId": self.room_id})
            reader = asyncio.ensure_future(self.read_loop())
            waits = [asyncio.ensure_future(e.wait()) for e in (self.connected, self.ended)]
            await asyncio.wait(waits, timeout=self.args.timeout, return_when=asyncio.FIRST_COMPLETED)
            if self.connected.is_set() and not self.ended.is_set():
                self.result["connected"] = True
                self.result["connectMs"] = round((time.monotonic() - t0) * 1000)
                self.result["safety"] = self.key.safety_code(self.sent_sdp, self.verified_sdp)
                frames = asyncio.ensure_future(self.enough_frames.wait())
                ended = asyncio.ensure_future(self.ended.wait())
                await asyncio.wait([frames, ended], timeout=self.args.timeout, return_when=asyncio.FIRST_COMPLETED)
                if not self.ended.is_set() and self.args.hold > 0:
                    await asyncio.wait([ended], timeout=self.args.hold)
            for w in waits:
                w.cancel()
            if not self.ws.closed:
                if not self.ended.is_set():
                    await self.send({"type": "hangup"})
                await self.ws.close()
            reader.cancel()
            if self.pc:
                await self.pc.close()
        return self.result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--origin", required=True, help="the deployment's public origin")
    p.add_argument("--register", action="store_true", help="register the room (POST /rooms)")
    p.add_argument("--reorder-fingerprints", action="store_true")
    p.add_argument("--tamper-auth", action="store_true")
    p.add_argument("--frames", type=int, default=30, help="video frames to receive")
    p.add_argument("--hold", type=float, default=0, help="seconds to stay in the call after")
    p.add_argument("--timeout", type=float, default=30)
    args = p.parse_args()
    link = sys.stdin.readline()
    result = asyncio.run(Client(args, link).run())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
