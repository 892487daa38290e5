"""A raw MQTT client for protocol-level tests: packets from iotauth's codec, sent and read on
a plain socket with bounded waits (so a test sees exactly what the gateway sends)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from iotauth.local.mqtt.codec import (
    Connack,
    Connect,
    Packet,
    PacketReader,
    decode_packet,
    encode_packet,
)

WAIT = 5.0


class RawClient:
    def __init__(
        self, port: int, *, version: int = 5, ca_cert: Path | None = None, alpn: bool = True
    ) -> None:
        sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        if ca_cert is not None:
            context = ssl.create_default_context(cafile=str(ca_cert))
            if alpn:
                context.set_alpn_protocols(["mqtt"])
            sock = context.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.version = version
        self._reader = PacketReader()
        self._ready: list[Packet] = []
        self.closed = False

    def send(self, packet: Packet) -> None:
        self.sock.sendall(encode_packet(packet, self.version))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self, timeout: float = WAIT) -> Packet | None:
        """The next packet; None when the gateway closed the connection (or nothing came)."""
        self.sock.settimeout(timeout)
        while not self._ready:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return None
            self._reader.feed(data)
            self._ready += [decode_packet(f, b, self.version) for f, b in self._reader.packets()]
        return self._ready.pop(0)

    def until_closed(self, timeout: float = WAIT) -> list[Packet]:
        """Every packet received until the gateway closes the connection (bounded)."""
        seen: list[Packet] = []
        while True:
            packet = self.receive(timeout)
            if packet is None:
                return seen
            seen.append(packet)

    def connect(self, connect: Connect) -> Connack:
        self.send(connect)
        answer = self.receive()
        assert isinstance(answer, Connack), answer
        return answer

    def close(self) -> None:
        self.sock.close()
