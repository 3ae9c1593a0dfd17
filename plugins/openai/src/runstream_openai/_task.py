"""``OpenAIChatTask``: the ``openai-chat`` task type."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, JsonValue, model_validator
from runstream import Task, TaskContext, TaskError

from ._errors import ModelRequestError, translate
from ._stream import StreamState

__all__ = ["DEFAULT_TIMEOUT", "OUTPUTS", "OpenAIChatTask"]

#: What an openai-chat step can return (name them in ``returns``).
OUTPUTS = ("full_text", "finish_reason", "usage", "reasoning", "tool_calls")

#: The HTTP timeout, in seconds, when the step sets no ``timeout``.
DEFAULT_TIMEOUT = 600.0

_SAMPLING = ("temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty",
             "frequency_penalty", "tool_choice")


class OpenAIChatTask(Task):
    """Stream a chat completion from an OpenAI-compatible server (OpenAI, vLLM, Ollama,
    llama.cpp's server, LiteLLM...), through the official ``openai`` SDK.

    The conversation is the list of chat messages in the parameter ``messages_parameter``, or,
    when that is not set, one user message from the parameter ``prompt_parameter``, after the
    earlier messages in the parameter ``history_parameter`` if it is set and the run has it (a
    chat front end sends the prompt and the turns before it apart); ``system``, when set, goes
    first. The API key is read when the step runs from the environment variable
    named by ``api_key_env``; it is never written to events, run logs or error messages.

    Events, in order (docs/events.md)::

        {"type": "status", "status": "thinking"}       the request is sent
        {"type": "status", "status": "generating"}     the first delta arrived
        {"type": "reasoning", "text": "..."}           reasoning deltas, where the server sends them
        {"type": "chunk", "text": "..."}               text deltas
        {"type": "tool_call_start", "id", "index", "name"}
        {"type": "tool_call_delta", "id", "index", "arguments"}   a piece of the JSON arguments
        {"type": "tool_call_end", "id", "index", "name", "arguments"}
        {"type": "done", "full_text", "finish_reason", "usage"}

    Errors: 429 and 5xx raise :class:`ModelServerError` (``retry`` retries them, waiting at
    least the server's ``Retry-After``); other 4xx and a missing key raise
    :class:`ModelRequestError` (not retried); an unreachable server raises
    :class:`ModelUnreachableError`. The SDK's own retries are off: ``retry`` is the only one.
    Cancelling the run closes the HTTP response at once.

    Returns: ``full_text``, ``finish_reason``, ``usage``, ``reasoning``, ``tool_calls``; a
    single return under another name receives ``full_text``. The default is
    ``returns=["full_text"]``.
    """

    returns: list[str] = Field(
        default_factory=lambda: ["full_text"],
        description="Output parameters among full_text, finish_reason, usage, reasoning, "
                    "tool_calls; one other name receives full_text.")
    model: str = Field(min_length=1, description="The model name the server knows.")
    base_url: str | None = Field(
        default=None,
        description="The server's API root, e.g. http://127.0.0.1:8000/v1 (vLLM) or "
                    "http://127.0.0.1:11434/v1 (Ollama); default: $OPENAI_BASE_URL, else "
                    "OpenAI's.")
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY", min_length=1,
        description="The environment variable that holds the API key, read when the step "
                    "runs; null for a server that needs none.")
    prompt_parameter: str = Field(
        default="prompt", min_length=1,
        description="The parameter that holds the prompt (when messages_parameter is unset).")
    messages_parameter: str | None = Field(
        default=None, min_length=1,
        description="The parameter that holds the conversation, a list of chat messages "
                    "({'role': ..., 'content': ...}).")
    history_parameter: str | None = Field(
        default=None, min_length=1,
        description="With `prompt_parameter`: the parameter that holds the conversation before "
                    "the prompt (chat messages, put before it); a run without it has none.")
    system: str | None = Field(default=None, description="A system message put first.")
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling.")
    top_p: float | None = Field(default=None, ge=0, le=1, description="Nucleus sampling.")
    max_tokens: int | None = Field(default=None, ge=1, description="Longest answer, in tokens.")
    stop: list[str] | None = Field(default=None, description="Stop sequences.")
    seed: int | None = Field(default=None, description="Sampling seed, where supported.")
    presence_penalty: float | None = Field(default=None, ge=-2, le=2, description="Sampling.")
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2, description="Sampling.")
    tools: list[dict[str, JsonValue]] | None = Field(
        default=None,
        description="Tools the model may call: {'type': 'function', 'function': {'name', "
                    "'description', 'parameters': <JSON schema>}}.")
    tool_choice: Literal["auto", "none", "required"] | dict[str, JsonValue] | None = Field(
        default=None, description="auto, none, required, or one named function.")
    include_usage: bool = Field(
        default=True,
        description="Ask for token usage (stream_options.include_usage); turn off for a "
                    "server that rejects stream_options.")
    extra_body: dict[str, JsonValue] | None = Field(
        default=None, description="Server-specific request fields, sent as they are.")

    @model_validator(mode="after")
    def _consistent(self) -> OpenAIChatTask:
        if len(self.returns) > 1:
            unknown = [name for name in self.returns if name not in OUTPUTS]
            if unknown:
                raise ValueError(
                    f"returns {unknown} are not outputs of openai-chat; it returns "
                    f"{', '.join(OUTPUTS)} (a single return under another name receives "
                    "full_text)")
        if self.history_parameter is not None and self.messages_parameter is not None:
            raise ValueError("history_parameter goes with prompt_parameter (the prompt after "
                             "the history); with messages_parameter the conversation is whole")
        if self.tool_choice is not None and not self.tools:
            raise ValueError("tool_choice only applies with tools; set tools too")
        # The SDK is imported with the first step built, when a pipeline is defined (at
        # start-up), not with the plugin, which every runtime loads: ~25 MB of modules that a
        # process without a real model never needs. Not at the first run either: the import
        # takes about a second, which would hold up every stream of the event loop.
        import openai  # noqa: F401
        return self

    def reads_parameters(self) -> frozenset[str]:
        """The messages parameter, or the prompt parameter."""
        return frozenset({self.messages_parameter or self.prompt_parameter})

    def _history(self, ctx: TaskContext) -> list[dict[str, Any]]:
        name = self.history_parameter
        if name is None or name not in ctx.parameters:
            return []
        history = ctx.parameter(name)
        if not (isinstance(history, list) and all(
                isinstance(m, Mapping) and isinstance(m.get("role"), str) for m in history)):
            raise TaskError(
                f"step '{ctx.step}': parameter '{name}' (the conversation before the prompt) "
                "must be a list of chat messages like {'role': 'user', 'content': 'Hello'}")
        return [dict(m) for m in history]

    def _messages(self, ctx: TaskContext) -> list[dict[str, Any]]:
        head = [{"role": "system", "content": self.system}] if self.system is not None else []
        if self.messages_parameter is None:
            prompt = ctx.parameter(self.prompt_parameter)
            if not isinstance(prompt, str):
                raise TaskError(
                    f"step '{ctx.step}': parameter '{self.prompt_parameter}' (the prompt) must "
                    f"be a string, got {type(prompt).__name__}")
            return [*head, *self._history(ctx), {"role": "user", "content": prompt}]
        messages = ctx.parameter(self.messages_parameter)
        if not (isinstance(messages, list) and messages and all(
                isinstance(m, Mapping) and isinstance(m.get("role"), str) for m in messages)):
            raise TaskError(
                f"step '{ctx.step}': parameter '{self.messages_parameter}' must be a non-empty "
                "list of chat messages like {'role': 'user', 'content': 'Hello'}")
        return [*head, *(dict(m) for m in messages)]

    def _api_key(self, step: str) -> str | None:
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ModelRequestError(
                f"openai-chat step '{step}': no API key: the environment variable "
                f"{self.api_key_env} (api_key_env) is not set or empty; set it, or set "
                "api_key_env to null for a server that needs no key")
        return key

    def request(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The body fields sent to ``/chat/completions`` (without the messages' check)."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        if self.tools:
            body["tools"] = self.tools
        for name in _SAMPLING:
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.extra_body:
            body["extra_body"] = self.extra_body
        return body

    async def execute(self, ctx: TaskContext) -> Mapping[str, Any]:
        """Stream the completion as events (see the class docstring); return the outputs."""
        import openai  # already imported when this step was built (see _consistent)

        request = self.request(self._messages(ctx))
        key = self._api_key(ctx.step)
        # max_retries=0: the step's `retry` is the only retry loop, so attempts and their
        # pauses show up as step.retrying events and in the run log.
        client = openai.AsyncOpenAI(
            api_key=key or "no-key", base_url=self.base_url, max_retries=0,
            timeout=self.timeout if self.timeout is not None else DEFAULT_TIMEOUT)
        state = StreamState()
        emit = ctx.emit
        try:
            async with client:
                await emit({"type": "status", "status": "thinking"})
                stream = await client.chat.completions.create(**request)
                try:
                    async for chunk in stream:
                        for event in state.feed(chunk):
                            await emit(event)
                finally:
                    # Cancellation (a client gone, Stop, shutdown, the step's timeout) lands
                    # in the loop above: close the response now, so the server stops
                    # generating (and billing) tokens nobody reads.
                    await stream.close()
        except openai.OpenAIError as exc:
            # `from None`: the SDK's error and its chain may quote the key (a server's echo).
            raise translate(exc, step=ctx.step, base_url=str(client.base_url),
                            model=self.model, secret=key) from None
        for event in state.close_calls():
            await emit(event)
        await emit(state.done())
        outputs = state.outputs()
        if len(self.returns) == 1 and self.returns[0] not in outputs:
            outputs[self.returns[0]] = outputs["full_text"]
        return outputs
