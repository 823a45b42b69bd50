"""The clients of test_faults.py: calls that record what a client got (an Outcome), and writers that
remember what the server acknowledged, to read it back after a fault.

An error is clear when it carries a status the fault explains and a message that says what
happened: the face's error envelope, or an error frame in a stream that had already begun. The
generic "internal server error" is not clear. A server killed with SIGKILL cannot answer: its
clients get a transport error (connection reset or refused), which is clear in that case only.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

MODEL = "meta-llama/Llama-3.2-3B-Instruct"
GENERIC = "internal server error"
TRANSPORT = ("transport",)  # expected "status" of a call to a server being killed


@dataclass
class Outcome:
    label: str
    status: int | str  # the HTTP status, or the transport error's name
    message: str = ""
    clear: bool = False
    seconds: float = 0.0  # from the call to its answer (or error)

    def summary(self) -> str:
        message = " ".join(self.message.split())[:70]
        return f"{self.label}: {self.status}{f' {message!r}' if message else ''}"


def _error_message(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return str(error.get("message") or "") if isinstance(error, dict) else ""


STREAM_ERROR = "200+error frame"  # the "status" of a stream that began, then carried an error frame


def _judge(label: str, status: int | str, message: str, expected: tuple[int | str, ...], success: bool) -> Outcome:
    if isinstance(status, str) and status != STREAM_ERROR:  # a transport error: the server could not answer
        return Outcome(label, status, message, "transport" in expected)
    if success:
        return Outcome(label, status, message, status in expected and 200 in expected)
    clear = (status in expected or status == STREAM_ERROR) and bool(message) and message != GENERIC
    return Outcome(label, status, message, clear)


def timed(call: Callable[..., Outcome]) -> Callable[..., Outcome]:
    @functools.wraps(call)
    def wrapper(*args: Any, **kwargs: Any) -> Outcome:
        started = time.perf_counter()
        outcome = call(*args, **kwargs)
        outcome.seconds = time.perf_counter() - started
        return outcome

    return wrapper


@timed
def post_json(
    base_url: str,
    path: str,
    body: dict[str, Any],
    ok: tuple[int, ...] = (200,),
    failure_expected: tuple[int | str, ...] = (),
    timeout_s: float = 30,
) -> Outcome:
    """A JSON call. A success is clear when `ok` is expected; a failure when its status is in
    `failure_expected` and it says why."""
    label = f"{path.rsplit('/', 2)[-2]}/{path.rsplit('/', 1)[-1]}"
    try:
        response = httpx.post(f"{base_url}{path}", json=body, timeout=timeout_s)
    except httpx.HTTPError as e:
        return _judge(label, type(e).__name__, str(e), failure_expected, False)
    if response.status_code in ok:
        return Outcome(label, response.status_code, "", True)
    return _judge(label, response.status_code, _error_message(response.content), failure_expected, False)


def chat_request(face: str, stream: bool, prompt: str) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": prompt}]
    if face == "v1":
        return "/v1/chat/completions", {"model": MODEL, "messages": messages, "stream": stream}
    return "/alpha/inference/chat-completion", {"model_id": MODEL, "messages": messages, "stream": stream}


def stream_error(lines: list[str]) -> tuple[str | None, bool]:
    """The message of an error frame (None when there is none), and whether the stream ended as
    a complete stream of its face ends."""
    done = False
    for line in lines:
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            done = True
            continue
        frame = json.loads(data)
        if "error" in frame:
            return str(frame["error"].get("message") or ""), False
        event = frame.get("event")
        if isinstance(event, dict) and event.get("event_type") == "complete":
            done = True
    return None, done


@timed
def call_chat(
    base_url: str, face: str, stream: bool, expected: tuple[int, ...], timeout_s: float = 30, prompt: str = "hello"
) -> Outcome:
    """A chat completion; `expected` (200,) means it must succeed, else it must fail clearly."""
    path, body = chat_request(face, stream, prompt)
    label = f"/{face}{' stream' if stream else ''}"
    wants_success = expected == (200,)
    try:
        with httpx.Client(base_url=base_url, timeout=timeout_s) as http:
            if not stream:
                response = http.post(path, json=body)
                if response.status_code == 200:
                    return _judge(label, 200, "", expected, True)
                return _judge(label, response.status_code, _error_message(response.content), expected, False)
            with http.stream("POST", path, json=body) as response:
                if response.status_code != 200:
                    return _judge(label, response.status_code, _error_message(response.read()), expected, False)
                lines = list(response.iter_lines())
    except httpx.HTTPError as e:
        return _judge(label, type(e).__name__, str(e), expected, False)
    try:
        message, complete = stream_error(lines)
    except (ValueError, AttributeError) as e:
        return Outcome(label, 200, f"unreadable stream: {e}", False)
    if message is not None:
        return _judge(label, STREAM_ERROR, message, expected, False)
    if complete:
        return _judge(label, 200, "", expected, wants_success)
    return Outcome(label, 200, "the stream ended without an error frame or its end", False)


def server_answers(base_url: str) -> bool:
    try:
        healthy = httpx.get(f"{base_url}/alpha/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False
    calls = [call_chat(base_url, face, stream, (200,)) for face in ("v1", "alpha") for stream in (False, True)]
    return healthy and all(call.status == 200 and call.clear for call in calls)


def until_killed(
    call: Callable[[int, int], Outcome], clients: int, due: Callable[[], bool], kill: Callable[[], None]
) -> list[Outcome]:
    """`clients` threads make calls one after the other until the server dies under them. Once
    `due()`, it is killed at a moment when at least one call is under way. Returns each client's
    last outcome (a call cut mid-way, or refused), judged as a transport error."""
    lock = threading.Lock()
    in_flight = 0
    killed = threading.Event()
    last: list[Outcome] = []

    def client(index: int) -> None:
        nonlocal in_flight
        n = 0
        while True:
            with lock:
                in_flight += 1
            outcome = call(index, n)
            with lock:
                in_flight -= 1
                mine = outcome.status == 200 and due() and not killed.is_set()
                if mine:
                    killed.set()
            n += 1
            if outcome.status != 200:
                judged = _judge(outcome.label, outcome.status, outcome.message, TRANSPORT, False)
                judged.seconds = outcome.seconds
                last.append(judged)
                return
            if mine:
                deadline = time.monotonic() + 2
                while in_flight == 0 and time.monotonic() < deadline:
                    time.sleep(0.001)
                time.sleep(0.01)  # the call under way has reached the server (a local connect takes < 1 ms)
                kill()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return last


# --- what the server acknowledged, to read back ----------------------------------------------------


@dataclass
class MemoryWriters:
    """Documents inserted into one bank; acknowledged ones are read back by their exact text (the
    fake backend embeds a text to a vector of its hash: the same text is the nearest chunk)."""

    base_url: str
    provider_id: str
    bank_id: str
    embedding_model: str
    acknowledged: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self) -> None:
        params = {"memory_bank_type": "vector", "embedding_model": self.embedding_model, "chunk_size_in_tokens": 512}
        body = {"memory_bank_id": self.bank_id, "params": params, "provider_id": self.provider_id}
        httpx.post(f"{self.base_url}/alpha/memory-banks/register", json=body, timeout=60).raise_for_status()

    def _insert(self, document_id: str, timeout_s: float = 30) -> Outcome:
        text = f"ledger entry {document_id} {uuid.uuid4().hex}"
        body = {"bank_id": self.bank_id, "documents": [{"document_id": document_id, "content": text}]}
        outcome = post_json(self.base_url, "/alpha/memory/insert", body, (200,), (500, 502, 503, 504), timeout_s)
        if outcome.status == 200:
            with self._lock:
                self.acknowledged[document_id] = text
        return outcome

    def insert_serially(self, n: int, prefix: str) -> list[Outcome]:
        """The inserts that failed."""
        return [outcome for i in range(n) if (outcome := self._insert(f"{prefix}-{i}")).status != 200]

    def insert_outcome(self, document_id: str) -> Outcome:
        return self._insert(document_id)

    def query_outcome(self, text: str) -> Outcome:
        body = {"bank_id": self.bank_id, "query": text, "params": {"max_chunks": 1}}
        return post_json(self.base_url, "/alpha/memory/query", body, (200,), (500, 502, 503, 504))

    def insert_concurrently(self, writers: int, kill_after: int, kill: Callable[[], None]) -> list[Outcome]:
        """`writers` threads insert until the server dies under them; it is killed once
        `kill_after` inserts were acknowledged, while others are under way."""

        def insert(index: int, n: int) -> Outcome:
            return self._insert(f"w{index}-{n}", timeout_s=10)

        return until_killed(insert, writers, lambda: len(self.acknowledged) >= kill_after, kill)

    def lost(self) -> list[str]:
        missing = []
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            for document_id, text in self.acknowledged.items():
                body = {"bank_id": self.bank_id, "query": text, "params": {"max_chunks": 1}}
                chunks = http.post("/alpha/memory/query", json=body).json().get("chunks") or []
                if not chunks or chunks[0]["document_id"] != document_id or chunks[0]["content"] != text:
                    missing.append(document_id)
        return missing


@dataclass
class AgentTurns:
    """Turns of one agent session; acknowledged turns (a 200 answer holding the turn, or a
    stream that reached turn_complete) are read back with agents/session/get."""

    base_url: str
    agent_id: str = ""
    session_id: str = ""
    acknowledged: dict[str, str] = field(default_factory=dict)  # turn_id -> output text
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start_session(self) -> None:
        config = {"model": MODEL, "instructions": "Answer briefly.", "enable_session_persistence": True}
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            self.agent_id = http.post("/alpha/agents/create", json={"agent_config": config}).json()["agent_id"]
            body = {"agent_id": self.agent_id, "session_name": "faults"}
            self.session_id = http.post("/alpha/agents/session/create", json=body).json()["session_id"]

    @timed
    def _turn(self, stream: bool, expected: tuple[int | str, ...], timeout_s: float = 30) -> Outcome:
        with self._lock:
            self._count += 1
            n = self._count
        messages = [{"role": "user", "content": f"turn number {n}"}]
        body = {"agent_id": self.agent_id, "session_id": self.session_id, "messages": messages, "stream": stream}
        label = f"turn{' stream' if stream else ''}"
        try:
            with httpx.Client(base_url=self.base_url, timeout=timeout_s) as http:
                with http.stream("POST", "/alpha/agents/turn/create", json=body) as response:
                    raw = response.read()
        except httpx.HTTPError as e:
            return _judge(label, type(e).__name__, str(e), expected, False)
        if response.status_code != 200:
            return _judge(label, response.status_code, _error_message(raw), expected, False)
        turn = json.loads(raw) if not stream else self._completed_turn(raw.decode())
        if isinstance(turn, str):  # an error frame
            return _judge(label, STREAM_ERROR, turn, expected, False)
        with self._lock:
            self.acknowledged[turn["turn_id"]] = turn["output_message"]["content"]
        return Outcome(label, 200, "", True)

    @staticmethod
    def _completed_turn(text: str) -> dict[str, Any] | str:
        for line in text.splitlines():
            if not line.startswith("data: "):
                continue
            frame = json.loads(line[6:])
            if "error" in frame:
                return str(frame["error"].get("message") or "")
            payload = frame.get("event", {}).get("payload", {})
            if payload.get("event_type") == "turn_complete":
                turn: dict[str, Any] = payload["turn"]
                return turn
        return "the stream ended without turn_complete"

    def turns(self, n: int, stream: bool) -> list[Outcome]:
        """The turns that failed."""
        return [outcome for _ in range(n) if (outcome := self._turn(stream, (200,))).status != 200]

    def turn_outcome(self, stream: bool) -> Outcome:
        return self._turn(stream, (500, 502, 503, 504))

    def turn_until_killed(self, stream: bool) -> Outcome:
        return self._turn(stream, expected=TRANSPORT, timeout_s=10)

    def lost_turns(self) -> list[str]:
        params = {"agent_id": self.agent_id, "session_id": self.session_id}
        response = httpx.get(f"{self.base_url}/alpha/agents/session/get", params=params, timeout=30)
        stored = {t["turn_id"]: t["output_message"]["content"] for t in response.json().get("turns", [])}
        return [turn_id for turn_id, text in self.acknowledged.items() if stored.get(turn_id) != text]


def turns_concurrently(sessions: list[AgentTurns], kill_after: int, kill: Callable[[], None]) -> list[Outcome]:
    """Streamed and whole turns, one thread per session (a session runs one turn at a time: a
    second one at once answers 409); the server is killed once `kill_after` turns were
    acknowledged in all, while others are under way."""

    def turn(index: int, n: int) -> Outcome:
        return sessions[index].turn_until_killed(stream=(index + n) % 2 == 0)

    def due() -> bool:
        return sum(len(session.acknowledged) for session in sessions) >= kill_after

    return until_killed(turn, len(sessions), due, kill)
