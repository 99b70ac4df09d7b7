"""Stdlib-only helpers for scripts/kafka.sh (no venv needed).

    kafka_probe.py free-ports N        print N free loopback TCP ports, one per line
    kafka_probe.py ready HOST:PORT     exit 0 once the broker answers a Metadata request listing
                                       at least one live broker (KRaft lists only unfenced brokers)
                                       and a group coordinator is available; print
                                       "brokers=N controller=ID cluster=ID"; exit 1 otherwise

The readiness check speaks the Kafka wire protocol directly (Metadata v4, FindCoordinator v1) so the
script works before any Python dependency is installed.
"""
from __future__ import annotations

import socket
import struct
import sys

METADATA_API_KEY = 3
METADATA_VERSION = 4  # 4.x brokers dropped v0-v3 (KIP-896); v4 is the oldest still served
CLIENT_ID = b"replaylens-probe"


def free_ports(count: int) -> list[int]:
    """Bind all sockets at once so the kernel hands out distinct ports."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _metadata_request(correlation_id: int) -> bytes:
    header = struct.pack(">hhih", METADATA_API_KEY, METADATA_VERSION, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    body = struct.pack(">ib", -1, 0)  # topics=null (none needed here), allow_auto_topic_creation=false
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection mid-response")
        chunks += chunk
    return bytes(chunks)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def nullable_string(self) -> str | None:
        length = self.take(">h")
        if length < 0:
            return None
        text = self.data[self.pos:self.pos + length].decode()
        self.pos += length
        return text


def probe_metadata(host: str, port: int, timeout_s: float = 2.0) -> dict:
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(_metadata_request(correlation_id=1))
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        reader = _Reader(_recv_exact(sock, size))
    if reader.take(">i") != 1:
        raise ValueError("metadata response has the wrong correlation id")
    reader.take(">i")  # throttle_time_ms
    brokers = []
    for _ in range(reader.take(">i")):
        node_id = reader.take(">i")
        broker_host = reader.nullable_string()
        broker_port = reader.take(">i")
        reader.nullable_string()  # rack
        brokers.append((node_id, broker_host, broker_port))
    cluster_id = reader.nullable_string()
    controller_id = reader.take(">i")
    return {"brokers": brokers, "cluster_id": cluster_id, "controller_id": controller_id}


FIND_COORDINATOR_API_KEY = 10
FIND_COORDINATOR_VERSION = 1  # non-flexible; 4.x dropped v0
WARMUP_GROUP = b"replaylens-warmup"


def probe_group_coordinator(host: str, port: int, timeout_s: float = 2.0) -> int:
    """Ask for a group coordinator; returns the error code (0 = ready).

    The first such request makes the broker create __consumer_offsets, so asking during start-up
    spares the first consumer group a GROUP_COORDINATOR_NOT_AVAILABLE round.
    """
    header = struct.pack(">hhih", FIND_COORDINATOR_API_KEY, FIND_COORDINATOR_VERSION, 2, len(CLIENT_ID)) + CLIENT_ID
    body = struct.pack(">h", len(WARMUP_GROUP)) + WARMUP_GROUP + struct.pack(">b", 0)  # key_type 0 = group
    payload = header + body
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        reader = _Reader(_recv_exact(sock, size))
    if reader.take(">i") != 2:
        raise ValueError("find-coordinator response has the wrong correlation id")
    reader.take(">i")  # throttle_time_ms
    return reader.take(">h")


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "free-ports":
        print("\n".join(str(p) for p in free_ports(int(argv[1]))))
        return 0
    if len(argv) == 2 and argv[0] == "ready":
        host, _, port = argv[1].rpartition(":")
        try:
            meta = probe_metadata(host, int(port))
        except (OSError, ValueError, struct.error) as exc:
            print(f"not ready: {exc}", file=sys.stderr)
            return 1
        if not meta["brokers"]:
            print("not ready: no live broker in metadata yet", file=sys.stderr)
            return 1
        try:
            coordinator_error = probe_group_coordinator(host, int(port))
        except (OSError, ValueError, struct.error) as exc:
            print(f"not ready: {exc}", file=sys.stderr)
            return 1
        if coordinator_error != 0:
            print(f"not ready: group coordinator error {coordinator_error}", file=sys.stderr)
            return 1
        print(f"brokers={len(meta['brokers'])} controller={meta['controller_id']} cluster={meta['cluster_id']}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
