#!/usr/bin/env python3
"""A TCP proxy that injects network faults between a test's program and redis-server.

    faultproxy.py UPSTREAM_PORT PORTS_FILE [--mode pass|blackhole]

It listens on 127.0.0.1 (a port the kernel picks) and forwards every connection to
127.0.0.1:UPSTREAM_PORT, until told otherwise on its control port. Once both ports are bound it
writes "<proxy port> <control port>" to PORTS_FILE (atomically), so a test never races for a
port. Standard library only; it runs until killed (the test's EXIT trap does that).

Control: a TCP connection to 127.0.0.1:<control port>, one command per line, one reply line
("ok ...", or "error: ..." for a command it does not understand):

    pass                  new connections are forwarded (the starting mode, unless --mode);
                          connections already blackholed stay so (their byte streams are torn)
    blackhole             every connection, open or new, forwards nothing from then on: both
                          directions are read and thrown away, nothing is ever written, and new
                          connections are accepted but never reach the server (a server that
                          accepts and never answers)
    blackhole PATTERN     one shot: the next connection whose client sends PATTERN is
                          blackholed from that moment (PATTERN included)
    reset N [PATTERN]     one shot: the next connection whose client sends PATTERN (any bytes
                          when omitted) is reset after N more bytes from the server: those N are
                          passed on, then both sockets are closed with SO_LINGER 0, so the
                          client sees a RST in the middle of a reply
    status                "ok mode=<mode> accepted=<n> open=<n> resets=<n> blackholed=<n>
                          armed=<none|reset|blackhole>"

PATTERN takes backslash escapes (\\r\\n, \\x00), so a test can name one command's RESP form,
e.g. 'STREAMS\\r\\n$6\\r\\nevents' for the reader of stream "events" only.

DESIGN: one thread, a selectors loop over non-blocking sockets. A single thread matters for the
reset: closing a socket that another thread is blocked reading would not send the RST until that
read returned. Each direction has a buffer; a side is not read while the buffer towards the
other side holds more than LIMIT bytes, so a slow reader slows its sender down instead of
growing the proxy. Half-closes are forwarded (EOF from one side shuts down writing to the
other), and a pair is closed once both directions have ended.
"""

import codecs
import errno
import os
import selectors
import socket
import struct
import sys

LIMIT = 1 << 20  # most bytes buffered towards one side before its source is paused
CHUNK = 65536


class Pair:
    """One client connection and its connection to the server (None when blackholed at
    accept)."""

    def __init__(self, client, server):
        self.client = client
        self.server = server
        self.to_client = bytearray()
        self.to_server = bytearray()
        self.client_eof = False  # the client sent EOF (or failed)
        self.server_eof = False
        self.blackholed = server is None
        self.reset_after = None  # bytes from the server still passed on before the RST
        self.tail = b""  # the client's last bytes, so a pattern split across reads matches
        self.closed = False


class Proxy:
    def __init__(self, upstream_port, mode):
        self.upstream = ("127.0.0.1", upstream_port)
        self.mode = mode
        self.armed = None  # ("reset", n, pattern) or ("blackhole", None, pattern)
        self.accepted = 0
        self.resets = 0
        self.blackholed = 0
        self.pairs = set()
        self.sel = selectors.DefaultSelector()
        self.listener = self._listen()
        self.control = self._listen()
        self.sel.register(self.listener, selectors.EVENT_READ, ("accept", None))
        self.sel.register(self.control, selectors.EVENT_READ, ("control-accept", None))
        self.registered = {}  # socket -> events currently registered

    @staticmethod
    def _listen():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        s.setblocking(False)
        return s

    # --- registration -------------------------------------------------------------------------

    def _want(self, sock, events, data):
        if sock is None:
            return
        old = self.registered.get(sock)
        if events == 0:
            if old is not None:
                self.sel.unregister(sock)
                del self.registered[sock]
        elif old is None:
            self.sel.register(sock, events, data)
            self.registered[sock] = events
        elif old != events:
            self.sel.modify(sock, events, data)
            self.registered[sock] = events

    def _update(self, p):
        """Registers what each side of `p` waits for now."""
        if p.closed:
            return
        ev = 0
        if not p.client_eof and (p.blackholed or len(p.to_server) < LIMIT):
            ev |= selectors.EVENT_READ
        if p.to_client and not p.blackholed:
            ev |= selectors.EVENT_WRITE
        self._want(p.client, ev, ("client", p))
        ev = 0
        if p.server is not None:
            if not p.server_eof and (p.blackholed or len(p.to_client) < LIMIT):
                ev |= selectors.EVENT_READ
            if p.to_server and not p.blackholed:
                ev |= selectors.EVENT_WRITE
        self._want(p.server, ev, ("server", p))
        # Done when both directions have ended; a blackholed pair when its client has gone
        # (the server, never told, would keep its side open).
        both_ended = p.client_eof and (p.server is None or p.server_eof)
        if (both_ended and not p.to_client and not p.to_server) or (p.blackholed and p.client_eof):
            self._close(p, rst=False)

    def _close(self, p, rst):
        if p.closed:
            return
        p.closed = True
        for s in (p.client, p.server):
            if s is None:
                continue
            self._want(s, 0, None)
            if rst:
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            s.close()
        self.pairs.discard(p)

    # --- events -------------------------------------------------------------------------------

    def _accept(self):
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        client.setblocking(False)
        self.accepted += 1
        server = None
        if self.mode != "blackhole":
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.settimeout(2)
            try:
                server.connect(self.upstream)
            except OSError:
                # The server is down: the client sees the connection closed at once.
                server.close()
                client.close()
                return
            server.setblocking(False)
        p = Pair(client, server)
        if server is None:
            self.blackholed += 1
        self.pairs.add(p)
        self._update(p)

    def _blackhole(self, p):
        if not p.blackholed:
            p.blackholed = True
            self.blackholed += 1
        p.to_client.clear()
        p.to_server.clear()
        p.reset_after = None

    def _from_client(self, p, data):
        if p.blackholed:
            return
        if self.armed is not None:
            kind, n, pattern = self.armed
            if not pattern or pattern in p.tail + data:
                self.armed = None
                if kind == "reset":
                    p.reset_after = n
                else:
                    self._blackhole(p)
                    return
            elif pattern:
                p.tail = (p.tail + data)[-(len(pattern) - 1):] if len(pattern) > 1 else b""
        p.to_server += data

    def _from_server(self, p, data):
        if p.blackholed:
            return
        if p.reset_after is not None:
            if len(data) > p.reset_after:
                p.to_client += data[: p.reset_after]
                self._flush(p.client, p.to_client)
                self.resets += 1
                self._close(p, rst=True)
                return
            p.reset_after -= len(data)
        p.to_client += data

    @staticmethod
    def _flush(sock, buf):
        """Writes what the socket takes now; returns False when it failed."""
        while buf:
            try:
                n = sock.send(buf)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            del buf[:n]
        return True

    def _io(self, side, p, mask):
        sock = p.client if side == "client" else p.server
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                # A reset from one side is passed on as a reset to the other.
                self._close(p, rst=True)
                return
            if data == b"":
                if side == "client":
                    p.client_eof = True
                    if not p.blackholed and p.server is not None and not p.to_server:
                        self._shutdown(p.server)
                else:
                    p.server_eof = True
                    if not p.blackholed and not p.to_client:
                        self._shutdown(p.client)
            elif data:
                if side == "client":
                    self._from_client(p, data)
                else:
                    self._from_server(p, data)
                if p.closed:
                    return
        if mask & selectors.EVENT_WRITE and not p.blackholed:
            buf = p.to_client if side == "client" else p.to_server
            if not self._flush(sock, buf):
                self._close(p, rst=True)
                return
            # The other side ended and everything it sent is through: pass the EOF on.
            if not buf and (p.server_eof if side == "client" else p.client_eof):
                self._shutdown(sock)
        self._update(p)

    @staticmethod
    def _shutdown(sock):
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # --- control ------------------------------------------------------------------------------

    def _command(self, line):
        words = line.split(None, 2)
        if not words:
            return "error: empty command"
        cmd, args = words[0], words[1:]
        if cmd == "pass" and not args:
            self.mode = "pass"
            self.armed = None
        elif cmd == "blackhole" and not args:
            self.mode = "blackhole"
            self.armed = None
            for p in list(self.pairs):
                self._blackhole(p)
                self._update(p)
        elif cmd == "blackhole":
            self.armed = ("blackhole", None, unescape(" ".join(args)))
        elif cmd == "reset" and args and args[0].isdigit():
            pattern = unescape(args[1]) if len(args) > 1 else b""
            self.armed = ("reset", int(args[0]), pattern)
        elif cmd == "status" and not args:
            pass
        else:
            return "error: unknown command %r" % line
        return "ok mode=%s accepted=%d open=%d resets=%d blackholed=%d armed=%s" % (
            self.mode, self.accepted, len(self.pairs), self.resets, self.blackholed,
            self.armed[0] if self.armed else "none")

    def _control_accept(self):
        try:
            c, _ = self.control.accept()
        except BlockingIOError:
            return
        c.setblocking(False)
        self.sel.register(c, selectors.EVENT_READ, ("control", [c, b""]))

    def _control_io(self, state):
        c = state[0]
        try:
            data = c.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(c)
            c.close()
            return
        state[1] += data
        while b"\n" in state[1]:
            line, state[1] = state[1].split(b"\n", 1)
            reply = self._command(line.decode("utf-8", "replace").strip()) + "\n"
            c.setblocking(True)  # replies are short; the test reads them at once
            c.settimeout(5)
            try:
                c.sendall(reply.encode())
            except OSError:
                pass
            c.setblocking(False)

    def run(self, ports_file):
        tmp = ports_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d\n" % (self.listener.getsockname()[1], self.control.getsockname()[1]))
        os.replace(tmp, ports_file)
        while True:
            for key, mask in self.sel.select():
                kind, obj = key.data
                if kind == "accept":
                    self._accept()
                elif kind == "control-accept":
                    self._control_accept()
                elif kind == "control":
                    self._control_io(obj)
                elif not obj.closed:
                    self._io(kind, obj, mask)


def unescape(text):
    return codecs.decode(text, "unicode_escape").encode("latin-1")


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--mode"):
        sys.stderr.write("usage: faultproxy.py UPSTREAM_PORT PORTS_FILE [--mode pass|blackhole]\n")
        return 64
    mode = argv[4] if len(argv) == 5 else "pass"
    if mode not in ("pass", "blackhole"):
        sys.stderr.write("faultproxy.py: unknown mode %r\n" % mode)
        return 64
    Proxy(int(argv[1]), mode).run(argv[2])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except KeyboardInterrupt:
        sys.exit(0)
