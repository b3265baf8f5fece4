#!/usr/bin/env python3
"""A delaying HTTP/1.1 proxy, for the WAN mode of benches/push.sh (standard library only).

It listens on 127.0.0.1 and forwards every request to one upstream server (the registry), each one
DELAY_MS after its headers arrived: one WAN round trip per request, whatever the client does. Every
client connection gets its own upstream connection, so keep-alive and parallel connections behave
as they would against the real server; bodies (Content-Length or chunked, both ways) are streamed,
not held. Only the request is delayed: bandwidth is loopback's, and opening a connection costs
nothing unless --connect-delay-ms is given (a TCP handshake is one more round trip on a real WAN).

Usage: delay_proxy.py --upstream HOST:PORT [--delay-ms 40] [--connect-delay-ms 0] [--listen HOST:PORT]
                      [--log FILE]
The first line on stdout is `listening HOST:PORT`. With --log, each request is written to FILE as
JSON lines: {"event": "request", "id": N} when its headers arrive, and a record with method, path,
pattern, status, user agent, connection, and monotonic times (arrive, forward, done) once its
response has been relayed. On SIGTERM or SIGINT, or when its parent process exits, it prints the
request count per method and path pattern to stderr and stops.

benches/push.sh imports `read_log`, `waves` and `summary` from here.
"""

import argparse
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter

CHUNK = 1 << 16


def pattern(path):
    """The request path with repository, digest, tag and upload id replaced by placeholders."""
    path, _, query = path.partition("?")
    m = re.fullmatch(r"/v2/(.+)/(blobs|manifests|referrers|tags)/(.*)", path)
    if not m:
        return path
    kind, rest = m.group(2), m.group(3)
    if kind == "blobs" and rest.startswith("uploads/"):
        if rest == "uploads/":
            return "/v2/<repo>/blobs/uploads/" + ("?mount" if "mount=" in query else "")
        return "/v2/<repo>/blobs/uploads/<id>"
    if kind == "tags":
        return "/v2/<repo>/tags/" + rest
    ref = "<digest>" if re.fullmatch(r"[a-z0-9]+:[a-f0-9]+", rest) else "<tag>"
    return f"/v2/<repo>/{kind}/{ref}"


def read_log(path):
    """(started request ids, finished request records) of a --log file."""
    started, done = set(), []
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break  # being written
            record = json.loads(line)
            if record["event"] == "request":
                started.add(record["id"])
            else:
                done.append(record)
    return started, done


def waves(records):
    """Sequential round trips: the longest chain of requests in which each one arrived after the
    response to the one before it had been sent. Requests in flight together count once."""
    chain = {}
    ordered = sorted(records, key=lambda r: r["done"])
    for r in ordered:
        chain[r["id"]] = 1 + max((chain[q["id"]] for q in ordered if q["done"] <= r["arrive"]), default=0)
    return max(chain.values(), default=0)


def summary(records):
    """Counter of "METHOD pattern" over the records."""
    return Counter(f"{r['method']} {r['pattern']}" for r in records)


class Proxy:
    def __init__(self, upstream, delay, connect_delay, log_path):
        self.upstream = upstream
        self.delay = delay
        self.connect_delay = connect_delay
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.lock = threading.Lock()
        self.next_id = 0
        self.next_conn = 0
        self.records = []

    def write(self, record):
        with self.lock:
            if record["event"] == "response":
                self.records.append(record)
            if self.log:
                self.log.write(json.dumps(record) + "\n")
                self.log.flush()

    def serve(self, listener):
        while True:
            client, _ = listener.accept()
            with self.lock:
                self.next_conn += 1
                conn = self.next_conn
            threading.Thread(target=self.connection, args=(client, conn), daemon=True).start()

    def connection(self, client, conn):
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.connect_delay:
            time.sleep(self.connect_delay)
        upstream = None
        cin = client.makefile("rb")
        try:
            if cin.peek(1)[:1] == b"\x16":
                # A TLS hello (a client trying https first): carried to the server as it is, after one
                # round trip, so that the client gets the server's own answer (Go's registry answers
                # 400 "HTTP request to an HTTPS server"; a client that waits for more times out).
                arrive = time.monotonic()
                with self.lock:
                    self.next_id += 1
                    rid = self.next_id
                self.write({"event": "request", "id": rid})
                time.sleep(self.delay)
                forward = time.monotonic()
                upstream = socket.create_connection(self.upstream)
                sent, received = tunnel(cin, client, upstream)
                self.write({"event": "response", "id": rid, "conn": conn, "method": "TLS", "path": "",
                            "pattern": "(a TLS hello, carried as bytes)", "status": 0, "ua": "",
                            "arrive": arrive, "forward": forward, "done": time.monotonic(),
                            "bytes_in": sent, "bytes_out": received})
                return
            while True:
                line = cin.readline(65536)
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    continue  # tolerated between requests
                arrive = time.monotonic()
                head = read_headers(cin)
                method, target, version = line.decode("latin-1").split()
                headers = parsed(head)
                with self.lock:
                    self.next_id += 1
                    rid = self.next_id
                self.write({"event": "request", "id": rid})
                if headers.get("expect", "").lower() == "100-continue":
                    # Answer it here, so that the body is not held back while the request waits.
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    head = [h for h in head if not h.lower().startswith(b"expect:")]
                time.sleep(self.delay)
                forward = time.monotonic()
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    uin = upstream.makefile("rb")
                upstream.sendall(line + b"".join(head) + b"\r\n")
                sent = relay_body(cin, upstream, headers, request=True)
                status, closes, received = self.response(uin, client, method)
                self.write({"event": "response", "id": rid, "conn": conn, "method": method, "path": target,
                            "pattern": pattern(target), "status": status, "ua": headers.get("user-agent", ""),
                            "arrive": arrive, "forward": forward, "done": time.monotonic(),
                            "bytes_in": sent, "bytes_out": received})
                client_closes = headers.get("connection", "").lower() == "close" or (
                    version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive")
                if closes:
                    upstream.close()
                    upstream = None
                if closes or client_closes:
                    return
        except (OSError, ValueError):
            return
        finally:
            for s in (client, upstream):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def response(self, uin, client, method):
        """Relays one response (after any 1xx); returns its status, whether the connection ends with
        it, and the body bytes relayed."""
        while True:
            line = uin.readline(65536)
            if not line:
                raise OSError("upstream closed the connection")
            head = read_headers(uin)
            client.sendall(line + b"".join(head) + b"\r\n")
            status = int(line.split()[1])
            if not 100 <= status < 200:
                break
        headers = parsed(head)
        closes = headers.get("connection", "").lower() == "close"
        if method == "HEAD" or status in (204, 304):
            return status, closes, 0
        if "chunked" not in headers.get("transfer-encoding", "").lower() and "content-length" not in headers:
            n = 0
            while data := uin.read1(CHUNK):
                client.sendall(data)
                n += len(data)
            return status, True, n
        return status, closes, relay_body(uin, client, headers, request=False)


def tunnel(cin, client, upstream):
    """Carries bytes both ways until both sides have closed; returns the byte counts each way."""
    received = [0]

    def back():
        try:
            while data := upstream.recv(CHUNK):
                client.sendall(data)
                received[0] += len(data)
        except OSError:
            pass
        finally:
            try:
                client.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    thread = threading.Thread(target=back, daemon=True)
    thread.start()
    sent = 0
    try:
        while data := cin.read1(CHUNK):
            upstream.sendall(data)
            sent += len(data)
        upstream.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    thread.join(60)
    return sent, received[0]


def read_headers(f):
    head = []
    while True:
        h = f.readline(65536)
        if not h:
            raise OSError("connection closed in the headers")
        if h in (b"\r\n", b"\n"):
            return head
        head.append(h)


def parsed(head):
    out = {}
    for h in head:
        name, _, value = h.decode("latin-1").partition(":")
        out[name.strip().lower()] = value.strip()
    return out


def relay_body(src, dst, headers, request):
    """Streams a Content-Length or chunked body from src (a buffered reader) to dst (a socket)."""
    n = 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = src.readline(65536)
            dst.sendall(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    t = src.readline(65536)
                    dst.sendall(t)
                    if t in (b"\r\n", b"\n", b""):
                        return n
            n += copy(src, dst, size + 2) - 2
    if "content-length" in headers:
        return copy(src, dst, int(headers["content-length"]))
    if request:
        return 0
    return n


def copy(src, dst, length):
    left = length
    while left:
        data = src.read1(min(CHUNK, left))
        if not data:
            raise OSError("connection closed in a body")
        dst.sendall(data)
        left -= len(data)
    return length


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, type=address, help="HOST:PORT of the server")
    parser.add_argument("--delay-ms", type=float, default=40.0, help="wait before forwarding each request")
    parser.add_argument("--connect-delay-ms", type=float, default=0.0, help="wait once per new connection")
    parser.add_argument("--listen", type=address, default=("127.0.0.1", 0))
    parser.add_argument("--log", help="JSON lines, one per request start and end")
    args = parser.parse_args()

    proxy = Proxy(args.upstream, args.delay_ms / 1e3, args.connect_delay_ms / 1e3, args.log)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(args.listen)
    listener.listen(128)
    host, port = listener.getsockname()
    print(f"listening {host}:{port}", flush=True)

    def stop(*_):
        with proxy.lock:
            counts = summary(proxy.records)
        print(f"delay_proxy: {sum(counts.values())} requests", file=sys.stderr)
        for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"{n:>6}  {key}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    parent = os.getppid()

    def watch_parent():
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_parent, daemon=True).start()
    proxy.serve(listener)


if __name__ == "__main__":
    main()
