"""A small fault-injecting HTTP reverse proxy for tests, on 127.0.0.1.

It sits in front of an HTTP server (the moto S3 server of the test suite) and forwards each
request, except those it picks to fail. Every client connection carries exactly one request:
the proxy reads the request (headers, then a ``Content-Length`` or ``chunked`` body, answering
``Expect: 100-continue`` itself), sends it upstream on a fresh connection with ``Connection:
close``, reads the whole response until the upstream closes, and returns it with ``Connection:
close`` (so clients never reuse a connection the proxy may have dropped).

Faults (``kinds``):

``"500"``       answer ``500 InternalError`` (S3 XML error body) without forwarding
``"503"``       answer ``503 SlowDown`` (S3 XML error body) without forwarding
``"drop"``      close the connection after reading only the request headers (mid-request)
``"drop_after"`` forward the request (so it takes effect upstream), then close without answering
``"truncate"``  forward, then send the headers and half of the body and close (a short read)

Which requests fail: ``schedule`` (a list of kinds or None, cycled over the request number, for a
deterministic run), or ``rate`` with a seeded RNG (each eligible request fails with probability
``rate``, kind drawn from ``kinds``). ``match(method, target)`` restricts the requests eligible
for faults; ``force(method, target)`` may return a kind to fail a request always (e.g. every GET
of one object), whatever the schedule or rate say. Counters: ``requests``, ``faults``,
``by_kind``, ``chunked`` (request bodies received chunked) and a ``log`` of
``(time.monotonic(), method, target, kind or None)``; ``errors`` lists failures of the proxy
itself (anything but a client resetting or closing the connection), which tests expect to stay empty.

Everything is bounded: socket timeouts on both sides, a size limit on messages, and ``stop()``
closes the listening socket and joins the threads (with a timeout).
"""
from __future__ import annotations

import collections
import random
import socket
import struct
import threading
import time
from typing import Callable, Deque, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

__all__ = ["FaultProxy", "KINDS"]

KINDS = ("500", "503", "drop", "drop_after", "truncate")

_MAX_HEADER = 64 * 1024
_MAX_BODY = 256 * 1024 * 1024

_ERRORS = {
    "500": (500, "Internal Server Error", "InternalError",
            "We encountered an internal error. Please try again."),
    "503": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
}


class _ClientGone(ConnectionError):
    """The client closed its side before the message was complete: normal for a client that
    gave up (a request cancelled when a sibling failed, a retry that abandoned it), not a fault
    of the proxy."""


class _Conn:
    """Buffered reads from a socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def read_until(self, sep: bytes, limit: int) -> bytes:
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise ConnectionError("message too large before %r" % sep)
            if not self._fill():
                raise _ClientGone("connection closed before %r" % sep)
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n: int) -> bytes:
        if n > _MAX_BODY:
            raise ConnectionError("body too large")
        while len(self.buf) < n:
            if not self._fill():
                raise _ClientGone("connection closed in the body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_all(self) -> bytes:
        while True:
            if len(self.buf) > _MAX_BODY or not self._fill():
                out, self.buf = self.buf, b""
                return out


def _parse_head(head: bytes) -> Tuple[str, List[Tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return first, headers


def _get(headers, name: str) -> Optional[str]:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _without(headers, *names: str):
    drop = {n.lower() for n in names}
    return [(k, v) for k, v in headers if k.lower() not in drop]


def _head_bytes(first: str, headers) -> bytes:
    return ("\r\n".join([first] + [f"{k}: {v}" for k, v in headers]) + "\r\n\r\n").encode("latin-1")


class FaultProxy:
    """Fault-injecting reverse proxy in front of ``upstream`` (``http://host:port``).

    Parameters
    ----------
    upstream : str
    rate : float
        Probability that an eligible request fails (ignored when ``schedule`` is given).
    kinds : sequence of str
        Fault kinds drawn from when ``rate`` picks a request.
    seed : int
        Seed of the RNG deciding faults.
    schedule : list of (str or None), optional
        Deterministic plan: request number ``n`` (counting eligible requests) gets
        ``schedule[n % len(schedule)]``.
    match : callable(method, target) -> bool, optional
        Only matching requests may fail (all by default).
    force : callable(method, target) -> str or None, optional
        A kind for requests that must fail every time (checked first).
    timeout : float
        Socket timeout, seconds, on both sides.
    """

    def __init__(self, upstream: str, *, rate: float = 0.0, kinds: Sequence[str] = ("500", "503", "drop"),
                 seed: int = 0, schedule: Optional[Sequence[Optional[str]]] = None,
                 match: Optional[Callable[[str, str], bool]] = None,
                 force: Optional[Callable[[str, str], Optional[str]]] = None, timeout: float = 20.0):
        u = urlsplit(upstream)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 80)
        self.timeout = timeout
        self._lock = threading.Lock()
        self.configure(rate=rate, kinds=kinds, seed=seed, schedule=schedule, match=match, force=force)
        self.requests = 0
        self.faults = 0
        self.by_kind: collections.Counter = collections.Counter()
        self.log: Deque[Tuple[float, str, str, Optional[str]]] = collections.deque(maxlen=100_000)
        self.chunked = 0  # request bodies received with Transfer-Encoding: chunked
        self.errors: List[str] = []  # problems of the proxy itself (should stay empty)
        self._sock: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._workers: List[threading.Thread] = []
        self._clients: set = set()
        self._stopping = threading.Event()
        self.port: Optional[int] = None

    # -- configuration --------------------------------------------------------------------------
    def configure(self, *, rate: Optional[float] = None, kinds: Optional[Sequence[str]] = None,
                  seed: Optional[int] = None, schedule=False, match=False, force=False) -> None:
        """Change the fault plan (between phases of a test). Omitted arguments are kept."""
        with self._lock:
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("rate must be in [0, 1]")
                self.rate = rate
            if kinds is not None:
                bad = [k for k in kinds if k not in KINDS]
                if bad or not kinds:
                    raise ValueError(f"unknown fault kind(s) {bad}; known: {KINDS}")
                self.kinds = tuple(kinds)
            if seed is not None:
                self._rng = random.Random(seed)
            if schedule is not False:
                if schedule is not None:
                    bad = [k for k in schedule if k is not None and k not in KINDS]
                    if bad or not schedule:
                        raise ValueError(f"bad schedule entries {bad}")
                self.schedule = list(schedule) if schedule is not None else None
                self._eligible = 0
            if match is not False:
                self.match = match
            if force is not False:
                self.force = force

    def reset_counters(self) -> None:
        with self._lock:
            self.requests = self.faults = self.chunked = 0
            self.by_kind.clear()
            self.log.clear()

    def _decide(self, method: str, target: str) -> Optional[str]:
        with self._lock:
            self.requests += 1
            kind = self.force(method, target) if self.force is not None else None
            if kind is not None and kind not in KINDS:
                raise ValueError(f"force returned unknown kind {kind!r}")
            if kind is None and (self.match is None or self.match(method, target)):
                if self.schedule is not None:
                    kind = self.schedule[self._eligible % len(self.schedule)]
                    self._eligible += 1
                elif self.rate > 0 and self._rng.random() < self.rate:
                    kind = self._rng.choice(self.kinds)
            if kind is not None:
                self.faults += 1
                self.by_kind[kind] += 1
            self.log.append((time.monotonic(), method, target, kind))
            return kind

    # -- lifetime ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("proxy not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FaultProxy":
        if self._sock is not None:
            raise RuntimeError("already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.settimeout(0.2)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, name=f"faultproxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, cut the connections still open, and join every thread (within
        ``timeout`` seconds in all)."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with self._lock:
            workers, self._workers = self._workers, []
            clients = list(self._clients)
        for c in clients:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                self._workers = [w for w in self._workers if w.is_alive()]
                self._workers.append(t)
            t.start()

    # -- one request --------------------------------------------------------------------------
    def _serve(self, client: socket.socket) -> None:
        client.settimeout(self.timeout)
        with self._lock:
            self._clients.add(client)
        try:
            self._handle(client)
        except Exception as exc:
            # A client that went away (e.g. after a dropped connection) is normal; note the rest.
            if not isinstance(exc, (ConnectionResetError, BrokenPipeError, _ClientGone)) and not self._stopping.is_set():
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._clients.discard(client)
            try:
                client.close()
            except OSError:
                pass

    def _handle(self, client: socket.socket) -> None:
        conn = _Conn(client)
        try:
            head = conn.read_until(b"\r\n\r\n", _MAX_HEADER)
        except _ClientGone:
            return  # a connection opened and closed without a request (pool warm-up, probe)
        first, headers = _parse_head(head)
        method, _, rest = first.partition(" ")
        target = rest.rpartition(" ")[0] or rest
        kind = self._decide(method, target)
        if kind == "drop":
            _abort(client)
            return
        if kind in ("500", "503"):
            self._read_body(conn, client, headers)
            client.sendall(_error_response(kind, target))
            return
        body = self._read_body(conn, client, headers)
        fwd = _without(headers, "connection", "keep-alive", "proxy-connection", "expect", "transfer-encoding",
                       "content-length", "trailer")
        if body or _get(headers, "content-length") is not None or _get(headers, "transfer-encoding"):
            fwd.append(("Content-Length", str(len(body))))
        fwd.append(("Connection", "close"))
        response = self._forward(_head_bytes(first, fwd) + body)
        if kind == "drop_after":
            _abort(client)
            return
        rhead, sep, rbody = response.partition(b"\r\n\r\n")
        status, rheaders = _parse_head(rhead)
        rheaders = _without(rheaders, "connection", "keep-alive") + [("Connection", "close")]
        out_head = _head_bytes(status, rheaders)
        if kind == "truncate":
            if rbody:
                client.sendall(out_head + rbody[: len(rbody) // 2])
            _abort(client)
            return
        client.sendall(out_head + rbody)
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _read_body(self, conn: _Conn, client: socket.socket, headers) -> bytes:
        if (_get(headers, "expect") or "").lower() == "100-continue":
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        te = (_get(headers, "transfer-encoding") or "").lower()
        if "chunked" in te:
            with self._lock:
                self.chunked += 1
            parts = []
            while True:
                line = conn.read_until(b"\r\n", _MAX_HEADER)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while conn.read_until(b"\r\n", _MAX_HEADER) != b"\r\n":  # trailers, dropped
                        pass
                    return b"".join(parts)
                parts.append(conn.read_exact(size))
                conn.read_exact(2)
        n = int(_get(headers, "content-length") or 0)
        return conn.read_exact(n) if n else b""

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(self.upstream, timeout=self.timeout) as up:
            up.sendall(request)
            return _Conn(up).read_all()


def _abort(sock: socket.socket) -> None:
    """Close abruptly (RST rather than FIN), as a crashed server or a broken network would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _error_response(kind: str, target: str) -> bytes:
    status, phrase, code, message = _ERRORS[kind]
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<Resource>{_xml_escape(target)}</Resource><RequestId>faultproxy</RequestId></Error>").encode()
    head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
            f"x-amz-request-id: faultproxy\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
