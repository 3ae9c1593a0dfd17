"""The peer benchmark's client: one chat stream over a raw socket, checked, per peer protocol.

Built on ``bench/soak_sse.py``'s client pieces (``StreamFailure``, the chunked decoder, its
timeouts): the HTTP/1.1 exchange is the same; what differs per peer is the request body and
how the answer is framed, so the SSE blocks go to a small per-protocol checker:

- ``runstream``: one unnamed ``data:`` event per model dict, then a named ``run.completed``.
- ``json``: one ``data:`` event per model dict (status, status, chunks, done), then the
  end of the response (FastAPI's SSE, sse-starlette, LangGraph, Haystack, LlamaIndex).
- ``vercel``: pydantic-ai's Vercel AI data stream: ``start`` ... one ``text-delta`` per word
  ... ``finish``, then ``data: [DONE]`` and the end of the response.

Every completed stream must carry exactly the mock model's answer to its own prompt (words
and full text, from ``_chat.answer``), in order, with nothing after its end marker.
A stream picked for abandoning sends its prompt with ``_chat.ABANDON_MARK`` and closes the
socket after N data events, noting ``time.monotonic()`` at the close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

PEERS_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(PEERS_DIR), str(PEERS_DIR.parent)]

from _chat import ABANDON_MARK, answer  # noqa: E402
from soak_sse import (  # noqa: E402
    MAX_EVENTS_BEFORE_ABANDON,
    STREAM_TIMEOUT,
    StreamFailure,
    _dechunk,
)

HOST = "127.0.0.1"


def request_body(protocol: str, prompt: str) -> bytes:
    """The POST body that carries ``prompt`` to a peer speaking ``protocol``."""
    if protocol == "vercel":  # the AI SDK's useChat() "submit-message" request
        return json.dumps({"trigger": "submit-message", "id": f"chat-{prompt}", "messages": [
            {"id": f"msg-{prompt}", "role": "user",
             "parts": [{"type": "text", "text": prompt}]}]}).encode()
    return json.dumps({"prompt": prompt}).encode()


class Answer:
    """What one stream said so far, checked event by event and at its end."""

    def __init__(self, protocol: str, prompt: str) -> None:
        self.protocol = protocol
        self.chunks, self.expected = answer(prompt)
        self.prompt = prompt
        self.words: list[str] = []
        self.statuses: list[str] = []
        self.full_text: str | None = None
        self.ended = False  # the protocol's end marker was seen
        self.finish = False  # vercel: the finish frame was seen

    def event(self, name: str | None, data: bytes) -> None:
        if self.ended:
            raise StreamFailure("event after the end of the answer", data[:80].decode())
        if self.protocol == "vercel":
            self._vercel(data)
            return
        if name is not None:
            if self.protocol == "runstream" and name == "run.completed":
                self.ended = True
                return
            raise StreamFailure(f"unexpected event {name!r}", data[:120].decode())
        if self.full_text is not None:
            raise StreamFailure("data event after done", data[:80].decode())
        item = json.loads(data)
        kind = item.get("type")
        if kind == "chunk":
            self.words.append(item["text"])
        elif kind == "status":
            self.statuses.append(item["status"])
        elif kind == "done":
            self.full_text = item["full_text"]
        else:
            raise StreamFailure("unknown event type", repr(item)[:120])

    def _vercel(self, data: bytes) -> None:
        if data == b"[DONE]":
            self.ended = True
            return
        item = json.loads(data)
        kind = item.get("type")
        if self.finish:
            raise StreamFailure("vercel frame after finish", repr(item)[:120])
        if kind == "text-delta":
            self.words.append(item["delta"])
        elif kind == "finish":
            self.finish = True
        elif kind == "error":
            raise StreamFailure("vercel error frame", repr(item)[:200])

    def check(self) -> None:
        """At the end of the response: the whole answer, and only it, in order."""
        if self.protocol != "json" and not self.ended:
            raise StreamFailure("no end marker", "run.completed" if self.protocol == "runstream"
                                else "[DONE]")
        if self.protocol == "vercel":
            if not self.finish:
                raise StreamFailure("no vercel finish frame")
            self.full_text = "".join(self.words)
        elif self.statuses != ["thinking", "generating"]:
            raise StreamFailure("status events", repr(self.statuses))
        if self.full_text is None:
            raise StreamFailure("no done event")
        if f"'{self.prompt}'" not in self.full_text or self.full_text != self.expected:
            raise StreamFailure("cross-talk: full_text is not this prompt's answer",
                                f"{self.prompt!r} vs {self.full_text[:120]!r}")
        if self.words != self.chunks:
            raise StreamFailure("cross-talk: chunks are not this prompt's words",
                                f"{''.join(self.words)[:120]!r}")


async def one_stream(port: int, protocol: str, prompt: str, abandon_after: int | None
                     ) -> dict[str, Any]:
    """POST /chat with ``prompt``, read and check the answer (or close the socket after
    ``abandon_after`` data events). Raises StreamFailure; returns what was measured."""
    perf = time.perf_counter
    body = request_body(protocol, prompt)
    request = (f"POST /chat HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError as exc:
        raise StreamFailure("connect error", f"{type(exc).__name__}: {exc}") from None
    t0 = perf()
    first: float | None = None
    got = Answer(protocol, prompt)
    events = 0
    try:
        writer.write(request)
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = await reader.read(65536)
            if not data:
                raise StreamFailure("connection closed before the response headers")
            raw += data
        head, raw = raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        if status != 200:
            raise StreamFailure(f"status {status}", raw[:200].decode("utf-8", "replace"))
        chunked = b"transfer-encoding: chunked" in head.lower()
        if abandon_after == 0:
            return {"abandoned": True, "t_close": time.monotonic(), "ttfe": None, "events": 0}
        sse = b""
        finished = eof = False
        while True:
            if chunked:
                payload, raw, finished = _dechunk(raw)
            else:
                payload, raw, finished = raw, b"", eof
            sse = (sse + payload).replace(b"\r\n", b"\n")  # sse-starlette ends lines with CRLF
            while (cut := sse.find(b"\n\n")) >= 0:
                block, sse = sse[:cut], sse[cut + 2:]
                name = None
                lines_ = []
                for line in block.split(b"\n"):
                    if line.startswith(b"data:"):
                        value = line[5:]
                        lines_.append(value[1:] if value.startswith(b" ") else value)
                    elif line.startswith(b"event:"):
                        name = line[6:].strip().decode()
                if not lines_:
                    continue  # a comment (ping)
                if first is None:
                    first = perf() - t0
                events += 1
                got.event(name, b"\n".join(lines_))
                if abandon_after is not None and events >= abandon_after:
                    return {"abandoned": True, "t_close": time.monotonic(), "ttfe": first,
                            "events": events}
            if finished:
                break
            if eof:
                raise StreamFailure("connection closed mid-stream", f"after {events} events")
            data_in = await reader.read(65536)
            if data_in:
                raw += data_in
            else:
                eof = True
        duration = perf() - t0
        got.check()
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(reader.read(), 2.0)
        return {"abandoned": False, "ttfe": first, "duration": duration, "events": events}
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise StreamFailure("connection error", f"{type(exc).__name__}: {exc}") from None
    except (ValueError, KeyError) as exc:
        raise StreamFailure("malformed response", f"{type(exc).__name__}: {exc}") from None
    finally:
        writer.close()


async def client_main(cfg: dict[str, Any]) -> dict[str, Any]:
    """One client process: ``cfg["tasks"]`` streams in a loop until ``cfg["duration"]``."""
    rng = random.Random(cfg["seed"])
    ttfe: list[float] = []
    durations: list[float] = []
    abandoned_list: list[list[Any]] = []
    failures: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    counts = {"started": 0, "completed": 0, "abandoned": 0, "events": 0}
    deadline = time.monotonic() + cfg["duration"]

    async def worker(index: int) -> None:
        await asyncio.sleep(cfg["ramp"] * index / max(1, cfg["tasks"]))
        n = 0
        while time.monotonic() < deadline:
            n += 1
            prompt = f"{cfg['tag']}-c{cfg['client']}-w{index}-n{n}"
            abandon = None
            if cfg["disconnect_fraction"] and rng.random() < cfg["disconnect_fraction"]:
                abandon = rng.randint(0, MAX_EVENTS_BEFORE_ABANDON)
                prompt += ABANDON_MARK
            counts["started"] += 1
            try:
                async with asyncio.timeout(STREAM_TIMEOUT):
                    result = await one_stream(cfg["port"], cfg["protocol"], prompt, abandon)
            except (StreamFailure, TimeoutError) as exc:
                reason = exc.reason if isinstance(exc, StreamFailure) else "timeout"
                failures[reason] = failures.get(reason, 0) + 1
                if len(examples.setdefault(reason, [])) < 5:
                    examples[reason].append(f"{prompt}: {exc}"[:300])
                await asyncio.sleep(0.05)
                continue
            counts["events"] += result["events"]
            if result["ttfe"] is not None:
                ttfe.append(result["ttfe"])
            if result["abandoned"]:
                counts["abandoned"] += 1
                abandoned_list.append([prompt, result["t_close"], result["events"]])
            else:
                counts["completed"] += 1
                durations.append(result["duration"])

    await asyncio.gather(*(worker(i) for i in range(cfg["tasks"])))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"ttfe": ttfe, "durations": durations, "abandoned_list": abandoned_list,
            "failures": failures, "failure_examples": examples, **counts,
            "cpu": usage.ru_utime + usage.ru_stime}


def main(cfg_json: str) -> int:
    cfg = json.loads(cfg_json)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    result = asyncio.run(client_main(cfg))
    Path(cfg["out"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
