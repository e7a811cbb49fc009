"""An in-process TCP proxy the test controls, placed between the MQTT sink and Mosquitto.

    proxy = TcpProxy(broker.port).start()      # the sink connects to proxy.port
    proxy.hold()      # partition: accept and keep connections, forward nothing (TCP stalls,
                      # senders' buffers fill: what a pulled cable looks like before timeouts)
    proxy.resume()    # the partition heals: held bytes flow on, in order
    proxy.cut()       # reset every open connection (a firewall/NAT dropping its state)
    proxy.refuse(True)  # new connections are closed at once (the path is down)
    proxy.delay_s = 0.05  # each forwarded chunk waits this long (a slow link)
    proxy.close()

Thread safety: the control methods may be called from any thread; one acceptor thread
and two pump threads per connection do the forwarding.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time

_CHUNK_BYTES = 65536
_POLL_S = 0.02


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.delay_s = 0.0
        self._flowing = threading.Event()
        self._flowing.set()
        self._refusing = False
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.connections = 0  # accepted connections, for assertions
        self.bytes_forwarded = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)

    def start(self) -> TcpProxy:
        self._listener.listen(16)
        self._acceptor.start()
        return self

    # ---- faults ---------------------------------------------------------------------------
    def hold(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def refuse(self, on: bool = True) -> None:
        self._refusing = on

    def cut(self) -> int:
        """Reset (RST) every open connection; returns how many were cut."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _reset(sock)
        return len(pairs)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self.cut()

    # ---- forwarding -------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.1)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2.0)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._pairs.append((client, upstream))
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, (client, upstream)), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair) -> None:
        try:
            while not self._closed.is_set():
                if not self._flowing.is_set():
                    time.sleep(_POLL_S)  # partition: read nothing, so the sender's TCP stalls
                    continue
                ready, _, _ = select.select([src], [], [], 0.1)
                if not ready:
                    continue
                data = src.recv(_CHUNK_BYTES)
                if not data:
                    break
                if self.delay_s:
                    time.sleep(self.delay_s)
                while not self._flowing.is_set() and not self._closed.is_set():
                    time.sleep(_POLL_S)  # read just before the partition: hold it until healed
                dst.sendall(data)
                self.bytes_forwarded += len(data)
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                if pair in self._pairs:
                    self._pairs.remove(pair)
            for sock in pair:
                _close(sock)


def _reset(sock: socket.socket) -> None:
    try:  # linger 0: close sends RST, as a middlebox dropping state does
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
