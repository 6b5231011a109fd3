#!/usr/bin/env python3
"""A loopback HTTP proxy that injects S3-style faults, for testing retry paths for real.

It forwards every request to an upstream S3 endpoint (moto) unchanged -- same method, path,
query and headers, Host included, so SigV4 signatures still verify upstream -- and for a seeded
share of requests answers 503 instead:

  * half of the faults are answered *before* forwarding, with an S3 `SlowDown` error body (the
    server refused the request; nothing happened), and
  * half *after* forwarding, with an empty 503 (the upstream did the work but the response was
    lost, as with a failing load balancer). Clients must cope with conditional writes whose
    first attempt actually succeeded.

Towards the client it speaks HTTP/1.1 with keep-alive, so connection reuse is exercised too.

For tests that need an exact sequence instead, a pattern such as "after,none" is cycled
through, one entry per request ("before", "after" or "none"), in place of the random draw.

Latency spikes: a seeded share (`latency_rate`) of requests is held for a random time in
`latency` (seconds) before it is forwarded. Outages (in-process only): `outage("refuse")` closes
every connection without an answer until `restore()`; `outage("stall")` holds every request
without an answer until `restore()`, then closes the connection.

`upload_fault` acts on uploads of one form, as S3-compatible servers and networks do:
"refuse-streaming" answers 501 NotImplemented, without forwarding, to every upload signed as a
stream (`x-amz-content-sha256: STREAMING-...`, aws-chunked), like servers without that feature;
"refuse-checksummed" does the same to uploads with an `x-amz-checksum-crc32c` header (the
default form of mossaicfs's pack PUTs); "corrupt-checksummed" flips one byte of the FIRST such
body and forwards it, like a network that damages data on the way (the server must answer
BadDigest). Clients must then send the body signed whole.

With a certificate and key it serves HTTPS (the upstream stays plain HTTP), which is how the
tests check TLS verification and CA-file handling without a real S3.

CLI: fault_proxy.py --upstream http://127.0.0.1:PORT [--rate 0.1] [--seed 1] [--pattern P] [--port 0]
                    [--latency-rate 0.02] [--latency 0.2,1.0] [--tls-cert CERT.pem --tls-key KEY.pem]
                    [--upload-fault refuse-streaming|refuse-checksummed|corrupt-checksummed]
prints one JSON line {"endpoint": ..., "pid": ...} and serves until SIGTERM.
"""
from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import random
import signal
import ssl
import sys
import threading
import time
import urllib.parse

# Per-hop headers (RFC 9110 7.6.1) are not forwarded; Content-Length is recomputed.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
               "upgrade", "expect", "content-length"}

UPLOAD_FAULTS = ["", "refuse-streaming", "refuse-checksummed", "corrupt-checksummed"]

_SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate. (injected by fault_proxy)</Message></Error>')
_NOT_IMPLEMENTED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>'
                    b'<Message>A header you provided implies functionality that is not implemented.'
                    b' (injected by fault_proxy)</Message></Error>')


class FaultProxy:
    """In-process form: `with FaultProxy("http://127.0.0.1:5000", rate=0.1) as p: p.endpoint`."""

    def __init__(self, upstream: str, rate: float = 0.1, seed: int = 1, host: str = "127.0.0.1", port: int = 0,
                 pattern: list[str] | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                 latency_rate: float = 0.0, latency: tuple[float, float] = (0.2, 1.0), upload_fault: str = ""):
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"upstream must be http://HOST:PORT, not {upstream!r}")
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self.rate = rate
        if pattern and any(p not in ("before", "after", "none") for p in pattern):
            raise ValueError(f"pattern entries must be before, after or none: {pattern!r}")
        self.pattern = pattern or []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.requests = 0
        self.faults_before = 0
        self.faults_after = 0
        self.latency_rate = latency_rate
        self.latency = latency
        self.delayed = 0
        self._outage: str | None = None
        self._outage_over = threading.Event()
        self.refused = 0
        if upload_fault not in UPLOAD_FAULTS:
            raise ValueError(f"upload_fault must be one of {', '.join(UPLOAD_FAULTS[1:])}, not {upload_fault!r}")
        self.upload_fault = upload_fault
        self.uploads_faulted = 0
        self._server = http.server.ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.tls = tls_cert is not None
        if tls_cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_cert, tls_key)
            # The handshake runs in accept(); a client that rejects our certificate only makes
            # that accept fail, which socketserver ignores.
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def decide(self) -> str | None:
        """None, "before" or "after", from the seeded generator (one draw sequence per proxy)."""
        with self._lock:
            self.requests += 1
            if self.pattern:
                choice = self.pattern[(self.requests - 1) % len(self.pattern)]
                if choice == "none":
                    return None
                if choice == "before":
                    self.faults_before += 1
                else:
                    self.faults_after += 1
                return choice
            if self._rng.random() >= self.rate:
                return None
            if self._rng.random() < 0.5:
                self.faults_before += 1
                return "before"
            self.faults_after += 1
            return "after"

    def upload_fault_for(self, headers: object) -> str:
        """The fault to apply to this request ("" for none), counted."""
        if self.upload_fault == "refuse-streaming":
            hit = headers.get("x-amz-content-sha256", "").startswith("STREAMING-")  # type: ignore[attr-defined]
        else:
            hit = bool(self.upload_fault) and headers.get("x-amz-checksum-crc32c") is not None  # type: ignore[attr-defined]
        if not hit:
            return ""
        with self._lock:
            if self.upload_fault == "corrupt-checksummed" and self.uploads_faulted >= 1:
                return ""
            self.uploads_faulted += 1
        return self.upload_fault

    def delay(self) -> float:
        """Seconds to hold this request (0 for most), from the seeded generator."""
        if self.latency_rate <= 0:
            return 0.0
        with self._lock:
            if self._rng.random() >= self.latency_rate:
                return 0.0
            self.delayed += 1
            return self._rng.uniform(*self.latency)

    def outage(self, mode: str) -> None:
        """From now on every request is refused ("refuse") or held ("stall"), until restore()."""
        if mode not in ("refuse", "stall"):
            raise ValueError(f"outage mode must be refuse or stall, not {mode!r}")
        with self._lock:
            self._outage_over.clear()
            self._outage = mode

    def restore(self) -> None:
        with self._lock:
            self._outage = None
            self._outage_over.set()

    def in_outage(self) -> str | None:
        with self._lock:
            if self._outage:
                self.refused += 1
            return self._outage

    def wait_outage_over(self) -> None:
        self._outage_over.wait()

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> "FaultProxy":
        self._thread = threading.Thread(target=self.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.restore()  # lets stalled handler threads finish
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards the client
    _local = threading.local()     # one upstream connection per proxy thread

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet by default
        pass

    def _upstream(self, fresh: bool = False) -> http.client.HTTPConnection:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
            self._local.conn = conn
        return conn

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (0, 1):
            conn = self._upstream(fresh=attempt > 0)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        conn.putheader(name, value)
                if body or self.command in ("PUT", "POST"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body if body else None)
                response = conn.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            except (ConnectionError, http.client.HTTPException, OSError):
                # A kept-alive upstream connection closed under us: retry once on a fresh one.
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes, head: bool) -> None:
        self.send_response(status)
        length = None
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length":
                length = value
            if lower in _HOP_BY_HOP or lower in ("server", "date"):
                continue
            self.send_header(name, value)
        # A HEAD response carries the object's length without the body.
        self.send_header("Content-Length", length if head and length is not None else str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _read_chunked(self) -> bytes:
        """Reads an HTTP/1.1 chunked request body. Transfer-Encoding is per hop, so the body is
        forwarded with a Content-Length instead (boto3 over HTTPS streams uploads chunked)."""
        body = bytearray()
        while True:
            size_line = self.rfile.readline(1024)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(8192).strip():  # trailer fields, then the empty line
                    pass
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline(8)  # the CRLF after the chunk

    def _handle(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        head = self.command == "HEAD"
        outage = proxy.in_outage()
        if outage:
            if outage == "stall":
                proxy.wait_outage_over()
            self.close_connection = True  # no answer at all: the client sees the connection drop
            return
        upload_fault = proxy.upload_fault_for(self.headers)
        if upload_fault.startswith("refuse-"):
            self._reply(501, [("Content-Type", "application/xml")], _NOT_IMPLEMENTED, head=head)
            return
        if upload_fault == "corrupt-checksummed" and body:
            body = body[:len(body) // 2] + bytes([body[len(body) // 2] ^ 0xFF]) + body[len(body) // 2 + 1:]
        fault = proxy.decide()
        pause = proxy.delay()
        if pause:
            time.sleep(pause)  # the injected latency spike itself
        if fault == "before":
            self._reply(503, [("Content-Type", "application/xml")], _SLOWDOWN, head=head)
            return
        try:
            status, headers, data = self._forward(body)
        except Exception as error:  # upstream down: a gateway error, as a real proxy would say
            self._reply(502, [], f"fault_proxy: upstream failed: {error}".encode(), head=head)
            return
        if fault == "after":
            self._reply(503, [], b"", head=head)
            return
        self._reply(status, headers, data, head=head)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT of the S3 server")
    parser.add_argument("--rate", type=float, default=0.1, help="share of requests answered 503 (0..1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pattern", default="", help="comma-separated before/after/none, cycled (overrides --rate)")
    parser.add_argument("--latency-rate", type=float, default=0.0, help="share of requests held before forwarding (0..1)")
    parser.add_argument("--latency", default="0.2,1.0", help="MIN,MAX seconds a held request waits (default 0.2,1.0)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate")
    parser.add_argument("--tls-key", help="the certificate's PEM private key")
    parser.add_argument("--upload-fault", default="", choices=UPLOAD_FAULTS,
                        help="refuse (501) streaming-signed or CRC-32C-checked uploads, or damage the first checksummed body")
    args = parser.parse_args()
    pattern = [p.strip() for p in args.pattern.split(",") if p.strip()]
    low, high = (float(x) for x in args.latency.split(","))
    proxy = FaultProxy(args.upstream, rate=args.rate, seed=args.seed, host=args.host, port=args.port, pattern=pattern,
                       tls_cert=args.tls_cert, tls_key=args.tls_key, latency_rate=args.latency_rate, latency=(low, high),
                       upload_fault=args.upload_fault)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(json.dumps({"endpoint": proxy.endpoint, "pid": os.getpid()}), flush=True)
    try:
        proxy.serve_forever()
    finally:
        print(json.dumps({"requests": proxy.requests, "faults_before": proxy.faults_before,
                          "faults_after": proxy.faults_after, "uploads_faulted": proxy.uploads_faulted}),
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
