"""A fake Bedrock runtime behind a real botocore client, at botocore's HTTP seam.

`FakeBedrockRuntime().install(client)` answers Converse, ConverseStream, InvokeModel (Llama
completions, Titan embeddings) and InvokeModelWithResponseStream from the request bodies botocore
serialised, with the same deterministic replies as the fake OpenAI server (openai_replies.py):
text that echoes the prompt, a get_weather(city="Paris") call when asked "What is the weather in
Paris?", max_tokens honoured. Streams are real event-stream frames (bedrock_stream.py). Unlike
botocore's Stubber, it needs no script of the calls to come, so the contract suite can drive it.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from botocore.awsrequest import AWSResponse

from tests.fakes.bedrock_stream import EventStreamBody
from tests.fakes.openai_replies import BadRequest, Reply, as_tokens, chat_reply, embedding, word_count

STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
OPERATIONS = ("Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream")


class _Raw(io.BytesIO):
    """A finished HTTP body for botocore, which reads it with `stream()` or, for InvokeModel's
    streaming body, `read()`."""

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        yield self.getvalue()


def _openai_body(converse: dict[str, Any]) -> dict[str, Any]:
    """A Converse body as the OpenAI-shaped body openai_replies understands."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": " ".join(b["text"] for b in converse.get("system", []))}
    ]
    for turn in converse["messages"]:
        parts: list[dict[str, Any]] = []
        for block in turn["content"]:
            if "text" in block:
                parts.append({"type": "text", "text": block["text"]})
            elif "image" in block:
                data = block["image"]["source"]["bytes"]
                parts.append({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}})
            elif "toolResult" in block:
                text = " ".join(c.get("text", "") for c in block["toolResult"]["content"])
                messages.append({"role": "user", "content": f"tool said {text}"})
        if parts:
            messages.append({"role": turn["role"], "content": parts})
    body: dict[str, Any] = {"messages": messages, "max_tokens": converse.get("inferenceConfig", {}).get("maxTokens")}
    tool_config = converse.get("toolConfig")
    if tool_config:
        body["tools"] = [
            {"function": {"name": t["toolSpec"]["name"], "parameters": t["toolSpec"]["inputSchema"]["json"]}}
            for t in tool_config["tools"]
        ]
        body["tool_choice"] = "required" if "any" in tool_config.get("toolChoice", {}) else "auto"
    return body


def _content(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"text": reply.text}] if reply.tokens else []
    for call in reply.tool_calls:
        try:
            arguments = json.loads(call["arguments"])
        except ValueError:
            arguments = {}
        blocks.append({"toolUse": {"toolUseId": call["id"], "name": call["name"], "input": arguments}})
    return blocks


def _usage(reply: Reply) -> dict[str, int]:
    output = len(reply.tokens) + len(reply.tool_calls)
    return {"inputTokens": reply.prompt_tokens, "outputTokens": output, "totalTokens": reply.prompt_tokens + output}


def _stream_events(reply: Reply) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"messageStart": {"role": "assistant"}}]
    for token in reply.tokens:
        events.append({"contentBlockDelta": {"delta": {"text": token}, "contentBlockIndex": 0}})
    for block, call in enumerate(reply.tool_calls, start=1 if reply.tokens else 0):
        use = {"toolUseId": call["id"], "name": call["name"]}
        events.append({"contentBlockStart": {"start": {"toolUse": use}, "contentBlockIndex": block}})
        arguments = call["arguments"]
        for start in range(0, len(arguments), 6):
            delta = {"toolUse": {"input": arguments[start : start + 6]}}
            events.append({"contentBlockDelta": {"delta": delta, "contentBlockIndex": block}})
        events.append({"contentBlockStop": {"contentBlockIndex": block}})
    events.append({"messageStop": {"stopReason": STOP[reply.finish_reason]}})
    events.append({"metadata": {"usage": _usage(reply), "metrics": {"latencyMs": 1}}})
    return events


class FakeBedrockRuntime:
    def __init__(self, embedding_dimensions: int = 16, delay_s: float = 0.0) -> None:
        self.embedding_dimensions = embedding_dimensions
        self.delay_s = delay_s  # between stream events
        self.streams: list[EventStreamBody] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @property
    def open_streams(self) -> int:
        return sum(1 for s in self.streams if not s.closed and s.sent < len(s.frames))

    def install(self, client: Any) -> None:
        for operation in OPERATIONS:
            client.meta.events.register(f"before-send.bedrock-runtime.{operation}", self._answer)

    def _answer(self, request: Any, **kwargs: Any) -> AWSResponse:
        operation = kwargs["event_name"].rsplit(".", 1)[1]
        body = json.loads(request.body or b"{}")
        self.calls.append((operation, body))
        try:
            status, headers, raw = 200, {"content-type": "application/json"}, self.reply(operation, body)
        except BadRequest as e:
            error = {"message": e.message}
            status, headers, raw = 400, {"x-amzn-errortype": "ValidationException"}, _Raw(json.dumps(error).encode())
        if isinstance(raw, EventStreamBody):
            headers = {"content-type": "application/vnd.amazon.eventstream"}
        return AWSResponse(request.url, status, headers, raw)

    def reply(self, operation: str, body: dict[str, Any]) -> _Raw | EventStreamBody:
        """The answer to one operation's request body (BadRequest where Bedrock answers 400)."""
        if operation in ("Converse", "ConverseStream"):
            reply = chat_reply(_openai_body(body))
            if operation == "Converse":
                message = {"role": "assistant", "content": _content(reply)}
                answer = {"output": {"message": message}, "stopReason": STOP[reply.finish_reason]}
                return _Raw(json.dumps({**answer, "usage": _usage(reply), "metrics": {"latencyMs": 1}}).encode())
            return self._stream(_stream_events(reply))
        if "inputText" in body:
            vector = embedding(body["inputText"], self.embedding_dimensions)
            return _Raw(
                json.dumps({"embedding": vector, "inputTextTokenCount": word_count(body["inputText"])}).encode()
            )
        prompt = body.get("prompt", "")
        tokens = as_tokens(["and", "then", *prompt.split()[-8:], "again."])
        limit = body.get("max_gen_len") or len(tokens)
        stop = "length" if len(tokens) > limit else "stop"
        tokens = tokens[:limit]
        counts = {"prompt_token_count": word_count(prompt), "generation_token_count": len(tokens)}
        if operation == "InvokeModel":
            return _Raw(json.dumps({"generation": "".join(tokens), "stop_reason": stop, **counts}).encode())
        parts: list[dict[str, Any]] = [{"generation": token, "stop_reason": None} for token in tokens]
        parts.append({"generation": "", "stop_reason": stop, **counts})
        return self._stream([{"chunk": {"bytes": base64.b64encode(json.dumps(p).encode()).decode()}} for p in parts])

    def _stream(self, events: list[dict[str, Any]]) -> EventStreamBody:
        stream = EventStreamBody(events, delay_s=self.delay_s)
        self.streams.append(stream)
        return stream
