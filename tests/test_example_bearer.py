"""The bearer-token variant of the example (examples/fastapi_llm/bearer.py): runs owned by the
token's user, and EventSource replays through a short-lived signed ticket. Real uvicorn."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator

import httpx
import pytest

from examples.fastapi_llm import bearer
from tests._server import serve

TIMEOUT = httpx.Timeout(30.0)
ALICE = {"authorization": "Bearer alice-token"}
BOB = {"authorization": "Bearer bob-token"}
KEY = b"test ticket key, 32 bytes long.."


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = bearer.create_app({"alice-token": "alice", "bob-token": "bob"}, delay_scale=0,
                            ticket_key=KEY)
    with serve(app) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        yield client


def start(client: httpx.Client) -> str:
    response = client.post("/chat", json={"prompt": "alice asks"}, headers=ALICE)
    assert response.status_code == 200 and "event: run.completed" in response.text
    return response.headers["x-run-id"]


def test_a_run_is_served_to_its_tokens_user_only(client: httpx.Client) -> None:
    run_id = start(client)
    log = client.get(f"/runs/{run_id}", headers=ALICE)
    assert log.status_code == 200 and log.json()["owner"] == "alice"
    assert client.get(f"/runs/{run_id}/events", headers=ALICE).status_code == 200
    for headers in (BOB, {}):
        for path in (f"/runs/{run_id}", f"/runs/{run_id}/events"):
            response = client.get(path, headers=headers)
            assert response.status_code == 404 and "alice asks" not in response.text
    bad = client.get(f"/runs/{run_id}", headers={"authorization": "Bearer forged"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    assert client.post("/chat", json={"prompt": "x"}).status_code == 401


def test_a_ticket_opens_one_run_for_a_minute(client: httpx.Client) -> None:
    run_id = start(client)
    other = start(client)
    # Only the owner gets a ticket, and only for a run it owns.
    assert client.post(f"/runs/{run_id}/ticket", headers=BOB).status_code == 404
    assert client.post("/runs/no-such-run/ticket", headers=ALICE).status_code == 404
    issued = client.post(f"/runs/{run_id}/ticket", headers=ALICE)
    assert issued.status_code == 200
    ticket = issued.json()["ticket"]

    # What an EventSource does: no headers, the ticket in the URL.
    replay = client.get(f"/runs/{run_id}/events", params={"ticket": ticket})
    assert replay.status_code == 200 and "alice asks" in replay.text
    assert client.get(f"/runs/{other}/events", params={"ticket": ticket}).status_code == 404
    payload, _, mac = ticket.rpartition(".")
    tampered = payload + "." + ("0" if mac[0] != "0" else "1") + mac[1:]
    assert client.get(f"/runs/{run_id}/events",
                      params={"ticket": tampered}).status_code == 404

    # A ticket as the server signs them, but expired a second ago.
    payload = base64.urlsafe_b64encode(f"alice\n{run_id}\n{int(time.time()) - 1}".encode())
    expired = payload.decode() + "." + hmac.new(KEY, payload, hashlib.sha256).hexdigest()
    assert client.get(f"/runs/{run_id}/events", params={"ticket": expired}).status_code == 404
    assert bearer.ticket_user(KEY, ticket, run_id) == "alice"  # while the real one is valid


def test_the_ticket_key_comes_from_the_environment_shared_by_every_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Two processes of one deployment must accept each other's tickets: the key is not made
    # per process when the environment gives one.
    monkeypatch.setenv(bearer.TICKET_KEY_ENV, KEY.hex())
    assert bearer.ticket_key_from_env() == KEY
    monkeypatch.setenv(bearer.TICKET_KEY_ENV, "not hex")
    with pytest.raises(ValueError, match="must be hex"):
        bearer.ticket_key_from_env()
    monkeypatch.setenv(bearer.TICKET_KEY_ENV, "ab" * 8)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        bearer.ticket_key_from_env()
    monkeypatch.delenv(bearer.TICKET_KEY_ENV)
    assert bearer.ticket_key_from_env() != bearer.ticket_key_from_env()  # one per process
