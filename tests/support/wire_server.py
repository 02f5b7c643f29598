"""A local HTTP server speaking the model providers' wire formats, for provider tests.

It answers OpenAI Chat Completions (``/v1/chat/completions``), OpenAI Responses
(``/v1/responses``) and Anthropic Messages (``/v1/messages``) on 127.0.0.1 and a random port,
from a thread; only the standard library is used. Every request is recorded (model, tools and
their JSON schemas, system prompt, ``cache_control`` markers, …) for assertions, and each is
answered with the next scripted reply for its path::

    with WireServer() as server:
        server.script("/v1/messages", tool_call("submit_plan", {"steps": [...]}))
        server.script(CHAT, fault(429, "slow down", retry_after_ms=50), text("hi"))
        ...  # point providers at server.anthropic_base_url / server.openai_base_url
        server.requests_to("/v1/messages")[0].model

Usage is reported the way each provider reports it. Unless a reply fixes the numbers, tokens are
estimated from the request's size (about four characters a token) and prompt caching is
simulated: Anthropic caches the prefix up to the last ``cache_control`` marker, OpenAI caches the
tools and system prompt automatically; a prefix seen before is a cache read, a new marked prefix
on Anthropic a cache write. (The real services only cache prefixes of 1024 tokens or more.)
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = [
    "ANTHROPIC",
    "CHAT",
    "RESPONSES",
    "Fault",
    "RecordedRequest",
    "Reply",
    "WireServer",
    "fault",
    "text",
    "tool_call",
]

ANTHROPIC = "/v1/messages"
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
Wire = Literal["anthropic", "chat", "responses"]
_WIRES: dict[str, Wire] = {ANTHROPIC: "anthropic", CHAT: "chat", RESPONSES: "responses"}


@dataclass(frozen=True)
class Reply:
    """A successful answer: text and/or tool calls, with optional fixed usage.

    `usage` keys (all optional): ``input`` (every input token, cached ones included),
    ``output``, ``cache_read``, ``cache_write``. Left out, they are estimated and simulated.
    """

    text: str = ""
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    usage: Mapping[str, int] | None = None
    model: str | None = None


@dataclass(frozen=True)
class Fault:
    """An HTTP error in the provider's own error format."""

    status: int
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)
    code: str | None = None  # OpenAI's error code, e.g. "insufficient_quota"


Answer = Reply | Fault
Script = Answer | Callable[["RecordedRequest"], Answer]


def text(
    content: str, *, usage: Mapping[str, int] | None = None, model: str | None = None
) -> Reply:
    return Reply(text=content, usage=usage, model=model)


def tool_call(
    name: str,
    arguments: dict[str, Any],
    *,
    text: str = "",
    usage: Mapping[str, int] | None = None,
    model: str | None = None,
) -> Reply:
    return Reply(text=text, tool_calls=((name, arguments),), usage=usage, model=model)


def fault(
    status: int,
    message: str = "scripted fault",
    *,
    retry_after: int | None = None,
    retry_after_ms: int | None = None,
    code: str | None = None,
) -> Fault:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    return Fault(status, message, headers, code)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, with accessors that read each wire format alike."""

    path: str
    headers: Mapping[str, str]
    body: dict[str, Any]
    at: float

    @property
    def wire(self) -> Wire:
        return _WIRES[self.path]

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def tools(self) -> dict[str, dict[str, Any]]:
        """Function tools offered, by name, each with its JSON schema."""
        found: dict[str, dict[str, Any]] = {}
        for tool in self.body.get("tools") or ():
            if self.wire == "anthropic":
                found[tool["name"]] = tool.get("input_schema", {})
            elif self.wire == "chat":
                found[tool["function"]["name"]] = tool["function"].get("parameters", {})
            elif tool.get("type") == "function":
                found[tool["name"]] = tool.get("parameters", {})
        return found

    @property
    def tool_choice(self) -> Any:
        return self.body.get("tool_choice")

    @property
    def system(self) -> str:
        """The system prompt / instructions, as one text."""
        if self.wire == "anthropic":
            return _content_text(self.body.get("system") or "")
        texts = [self.body.get("instructions") or ""] if self.wire == "responses" else []
        for message in self._messages():
            if message.get("role") in ("system", "developer"):
                texts.append(_content_text(message.get("content")))
        return "\n\n".join(t for t in texts if t)

    @property
    def user_text(self) -> str:
        return "\n\n".join(
            _content_text(m.get("content")) for m in self._messages() if m.get("role") == "user"
        )

    @property
    def cache_markers(self) -> list[str]:
        """Where Anthropic ``cache_control`` markers sit: 'system[i]', 'tool:<name>',
        'message[i]' or 'top-level'."""
        if self.wire != "anthropic":
            return []
        markers = ["top-level"] if self.body.get("cache_control") else []
        for tool in self.body.get("tools") or ():
            if tool.get("cache_control"):
                markers.append(f"tool:{tool.get('name')}")
        system = self.body.get("system")
        if isinstance(system, list):
            markers += [f"system[{i}]" for i, b in enumerate(system) if b.get("cache_control")]
        for i, message in enumerate(self.body.get("messages") or ()):
            content = message.get("content")
            if isinstance(content, list) and any(b.get("cache_control") for b in content):
                markers.append(f"message[{i}]")
        return markers

    @property
    def native_output_schema(self) -> dict[str, Any] | None:
        """The JSON schema of a native structured-output request, if any."""
        if self.wire == "chat":
            fmt = self.body.get("response_format") or {}
            return (fmt.get("json_schema") or {}).get("schema") if fmt else None
        if self.wire == "responses":
            fmt = (self.body.get("text") or {}).get("format") or {}
            return fmt.get("schema")
        config = self.body.get("output_config") or self.body.get("output_format") or {}
        return (config.get("format") or config).get("schema")

    def _messages(self) -> list[dict[str, Any]]:
        if self.wire == "responses":
            items = self.body.get("input") or []
            if isinstance(items, str):
                return [{"role": "user", "content": items}]
            return [i for i in items if isinstance(i, dict) and "role" in i]
        return list(self.body.get("messages") or ())


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(
            str(block.get("text", "")) for block in content if isinstance(block, dict)
        )
    return ""


def _tokens(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return max(1, len(text) // 4)


class WireServer:
    """The server. Use as a context manager, or call `start()` and `stop()`."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._scripts: dict[str, deque[Script]] = defaultdict(deque)
        self._fallback: dict[str, Script] = {}
        self._cached_prefixes: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> WireServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="wire-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "the wire server is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    # --- scripting and inspection -----------------------------------------------------------

    def script(self, path: str, *answers: Script) -> None:
        """Queue answers for `path`, used in order; each is a Reply, a Fault or a function of
        the request returning one."""
        if path not in _WIRES:
            raise ValueError(f"unknown path {path!r}; use one of {sorted(_WIRES)}")
        with self._lock:
            self._scripts[path].extend(answers)

    def always(self, path: str, answer: Script) -> None:
        """Answer `path` with `answer` whenever its queue is empty."""
        with self._lock:
            self._fallback[path] = answer

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def pending(self, path: str) -> int:
        """Scripted answers for `path` not used yet."""
        with self._lock:
            return len(self._scripts[path])

    # --- answering --------------------------------------------------------------------------

    def _answer(
        self, path: str, headers: Mapping[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        request = RecordedRequest(path, dict(headers), body, time.monotonic())
        with self._lock:
            self.requests.append(request)
            queue = self._scripts[path]
            script = queue.popleft() if queue else self._fallback.get(path)
        if script is None:
            # 400, not 5xx: a missing script must fail the test at once, not be retried.
            script = Fault(400, f"wire server: no reply scripted for {path}")
        answer = script(request) if callable(script) else script
        if isinstance(answer, Fault):
            return answer.status, dict(answer.headers), _error_body(request.wire, answer)
        usage = self._usage(request, answer)
        return 200, {}, _RENDER[request.wire](request, answer, usage)

    def _usage(self, request: RecordedRequest, reply: Reply) -> dict[str, int]:
        fixed = dict(reply.usage or {})
        total = _tokens(request.body)
        prefix = _cacheable_prefix(request)
        read = write = 0
        if prefix is not None:
            key = f"{request.wire}:{hashlib.sha256(prefix.encode()).hexdigest()}"
            with self._lock:
                seen = key in self._cached_prefixes
                self._cached_prefixes.add(key)
            size = min(_tokens(prefix), total)
            if seen:
                read = size
            elif request.wire == "anthropic":
                write = size  # OpenAI does not report (or bill) cache writes
        output = _tokens(reply.text or "") + sum(_tokens(args) for _, args in reply.tool_calls)
        return {
            "input": fixed.get("input", total),
            "output": fixed.get("output", output),
            "cache_read": fixed.get("cache_read", read),
            "cache_write": fixed.get("cache_write", write),
        }


def _cacheable_prefix(request: RecordedRequest) -> str | None:
    body = request.body
    if request.wire == "anthropic":
        # The prompt prefix is tools, then system, then messages; a marker caches up to itself.
        sections: list[Any] = [*(body.get("tools") or ())]
        system = body.get("system")
        sections += system if isinstance(system, list) else ([system] if system else [])
        last = max(
            (
                i
                for i, block in enumerate(sections)
                if isinstance(block, dict) and block.get("cache_control")
            ),
            default=None,
        )
        if last is None:
            return None
        return json.dumps([_without_cache_control(b) for b in sections[: last + 1]], sort_keys=True)
    stable = {"tools": body.get("tools"), "system": request.system}
    return json.dumps(stable, sort_keys=True)


def _without_cache_control(block: Any) -> Any:
    if isinstance(block, dict):
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block


def _error_body(wire: Wire, answer: Fault) -> dict[str, Any]:
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }
    kind = kinds.get(answer.status, "api_error")
    if wire == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": answer.message}}
    return {"error": {"message": answer.message, "type": kind, "param": None, "code": answer.code}}


def _render_anthropic(
    request: RecordedRequest, reply: Reply, usage: dict[str, int]
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for n, (name, arguments) in enumerate(reply.tool_calls):
        content.append(
            {"type": "tool_use", "id": f"toolu_{n:04d}", "name": name, "input": arguments}
        )
    return {
        "id": f"msg_{len(request.body.get('messages') or ())}",
        "type": "message",
        "role": "assistant",
        "model": reply.model or request.model,
        "content": content,
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": {
            # Anthropic's input_tokens are those after the last cache breakpoint only.
            "input_tokens": max(0, usage["input"] - usage["cache_read"] - usage["cache_write"]),
            "output_tokens": usage["output"],
            "cache_creation_input_tokens": usage["cache_write"],
            "cache_read_input_tokens": usage["cache_read"],
        },
    }


def _render_chat(request: RecordedRequest, reply: Reply, usage: dict[str, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{n:04d}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for n, (name, arguments) in enumerate(reply.tool_calls)
        ]
    return {
        "id": "chatcmpl-local",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage["input"],
            "completion_tokens": usage["output"],
            "total_tokens": usage["input"] + usage["output"],
            "prompt_tokens_details": {"cached_tokens": usage["cache_read"]},
        },
    }


def _render_responses(
    request: RecordedRequest, reply: Reply, usage: dict[str, int]
) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if reply.text:
        output.append(
            {
                "type": "message",
                "id": "msg_local",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    for n, (name, arguments) in enumerate(reply.tool_calls):
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{n:04d}",
                "call_id": f"call_{n:04d}",
                "name": name,
                "arguments": json.dumps(arguments),
                "status": "completed",
            }
        )
    return {
        "id": "resp_local",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": reply.model or request.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": request.body.get("tool_choice", "auto"),
        "tools": request.body.get("tools") or [],
        "usage": {
            "input_tokens": usage["input"],
            "input_tokens_details": {"cached_tokens": usage["cache_read"]},
            "output_tokens": usage["output"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["input"] + usage["output"],
        },
    }


_RENDER: dict[Wire, Callable[[RecordedRequest, Reply, dict[str, int]], dict[str, Any]]] = {
    "anthropic": _render_anthropic,
    "chat": _render_chat,
    "responses": _render_responses,
}


def _handler_for(server: WireServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if path not in _WIRES:
                self._send(404, {}, {"error": {"message": f"wire server: unknown path {path}"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, {}, {"error": {"message": "wire server: body is not JSON"}})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = server._answer(path, headers, body)
            self._send(status, extra, payload)

        def _send(self, status: int, headers: Mapping[str, str], payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
