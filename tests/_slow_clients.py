"""Clients that read slowly or not at all, for the SSE slow-client and big-event tests."""

from __future__ import annotations

import socket
import time

import httpx


def raw_request(base: str, path: str) -> socket.socket:
    """A client with a tiny receive buffer that sends a request and reads nothing (yet)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # before connect: the window
    sock.connect((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
                 .encode())
    return sock


def wait_until_ended(client: httpx.Client, run_id: str, within: float) -> str:
    deadline = time.monotonic() + within
    while True:
        response = client.get(f"/runs/{run_id}")
        status = response.json()["status"] if response.status_code == 200 else "unknown"
        if status not in ("running", "unknown") or time.monotonic() > deadline:
            return str(status)
        time.sleep(0.02)
