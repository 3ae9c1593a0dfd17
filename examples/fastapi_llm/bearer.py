"""Runs owned by bearer-token users, and ``EventSource`` replays through a short-lived ticket.

A second, small variant of the example for APIs whose clients send ``Authorization: Bearer
<token>``. The chat endpoint needs a valid token; its runs are owned by the token's user, and the
runs router (``authorize=caller``) serves a run only to that user.

A browser's ``EventSource`` cannot send an ``Authorization`` header. For it, the owner asks
``POST /runs/{run_id}/ticket`` (with the token) for a ticket: an HMAC-signed string naming the
user, that one run and an expiry a minute away, which it puts in the URL:
``new EventSource(`/runs/${id}/events?ticket=${ticket}`)``. A ticket opens nothing else, and
URLs end up in logs: keep the expiry short.

Start it with ``uv run uvicorn examples.fastapi_llm.bearer:app`` (tokens: ``alice-token``,
``bob-token``; a real app checks its tokens against its identity provider).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel
from runstream import (
    ComponentConfig,
    Config,
    RunIdError,
    RunNotFoundError,
    Runtime,
    validate_run_id,
)
from runstream_sse import SSE

from examples.fastapi_llm.pipelines import chat_pipeline

#: Seconds a ticket stays valid.
TICKET_TTL = 60


class Chat(BaseModel):
    prompt: str


def bearer_user(request: Request) -> str | None:
    """The user of a valid ``Authorization: Bearer`` header; None without one; 401 for a token
    that is not valid."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    tokens: Mapping[str, str] = request.app.state.tokens
    user = tokens.get(token) if scheme.lower() == "bearer" else None
    if user is None:
        raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
    return user


def required_user(user: Annotated[str | None, Depends(bearer_user)]) -> str:
    if user is None:
        raise HTTPException(401, "send Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


#: An endpoint parameter: the authenticated user (401 without a valid token).
User = Annotated[str, Depends(required_user)]


def issue_ticket(key: bytes, user: str, run_id: str) -> str:
    """A ticket for ``user`` to read ``run_id`` until :data:`TICKET_TTL` seconds from now."""
    expires = str(int(time.time()) + TICKET_TTL)
    payload = base64.urlsafe_b64encode(f"{user}\n{run_id}\n{expires}".encode()).decode()
    mac = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{mac}"


def ticket_user(key: bytes, ticket: str, run_id: str) -> str | None:
    """The user a valid, unexpired ticket for ``run_id`` was issued to; else None."""
    payload, _, mac = ticket.rpartition(".")
    expected = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
    if not payload or not hmac.compare_digest(mac, expected):
        return None
    user, ticket_run, expires = base64.urlsafe_b64decode(payload).decode().split("\n")
    if ticket_run != run_id or int(expires) < time.time():
        return None
    return user


def caller(request: Request) -> str | None:
    """The runs router's ``authorize``: the bearer token's user, or else the user of a ticket
    for the run in the path (for ``EventSource``)."""
    user = bearer_user(request)
    if user is not None:
        return user
    ticket = request.query_params.get("ticket")
    run_id = request.path_params.get("run_id")
    if ticket and isinstance(run_id, str):
        return ticket_user(request.app.state.ticket_key, ticket, run_id)
    return None


#: The environment variable with the key that signs tickets, shared by every process.
TICKET_KEY_ENV = "RUNSTREAM_EXAMPLE_TICKET_KEY"


def ticket_key_from_env() -> bytes:
    """``$RUNSTREAM_EXAMPLE_TICKET_KEY`` as bytes (hex; ValueError if malformed or short), or a
    random key for this process only if it is unset."""
    raw = os.environ.get(TICKET_KEY_ENV)
    if not raw:
        return secrets.token_bytes(32)
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        raise ValueError(f"{TICKET_KEY_ENV} must be hex (e.g. from `openssl rand -hex 32`)"
                         ) from None
    if len(key) < 32:
        raise ValueError(f"{TICKET_KEY_ENV} must hold at least 32 bytes (64 hex digits), "
                         f"got {len(key)}")
    return key


def create_app(tokens: Mapping[str, str], *, config: Config | None = None,
               ticket_key: bytes | None = None, delay_scale: float = 1.0) -> FastAPI:
    """The app. ``tokens`` maps each bearer token to its user id; ``ticket_key`` signs
    tickets. Default: ``$RUNSTREAM_EXAMPLE_TICKET_KEY`` (hex, at least 32 bytes), which every
    process of a deployment must share (docs/deploy.md); without it, a random key for this
    process only, so tickets work on this process only and not after a restart."""
    runtime = Runtime(config if config is not None
                      else Config(run_log_store=ComponentConfig(type="memory")))
    sse = SSE(runtime, authorize=caller)
    pipeline = chat_pipeline(delay_scale)
    app = FastAPI(title="Bearer-token chat", lifespan=sse.lifespan)
    app.state.tokens = dict(tokens)
    app.state.ticket_key = ticket_key if ticket_key is not None else ticket_key_from_env()
    app.include_router(sse.router())

    @app.post("/chat")
    async def chat(body: Chat, user: User) -> Response:
        """Stream an answer; the run belongs to the token's user."""
        return sse.response(pipeline, {"prompt": body.prompt}, owner=user)

    @app.post("/runs/{run_id}/ticket")
    async def ticket(run_id: str, user: User) -> dict[str, str]:
        """A ticket for ``/runs/{run_id}/events?ticket=...``, for the run's owner only."""
        try:
            log = await runtime.store.get(validate_run_id(run_id))
        except (RunIdError, RunNotFoundError):
            log = None
        if log is None or log.owner != user:
            raise HTTPException(404, f"no run '{run_id}' in the run log store")
        return {"ticket": issue_ticket(app.state.ticket_key, user, run_id),
                "expires_in": str(TICKET_TTL)}

    return app


app = create_app({"alice-token": "alice", "bob-token": "bob"})
