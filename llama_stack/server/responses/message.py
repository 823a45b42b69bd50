"""The assistant message of one model call, as OpenAI's stream events: opened at its first text,
an `output_text` part (and a `refusal` part when a shield blocks the answer), closed at the end."""

from __future__ import annotations

from typing import Any

from .items import Item, new_id, output_message

Event = dict[str, Any]


class Sequence:
    """Numbers a response's stream events from 0, as OpenAI's `sequence_number`."""

    def __init__(self) -> None:
        self.next = 0

    def __call__(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self.next, **fields}
        self.next += 1
        return event


class MessageBuilder:
    """The assistant message of one model call, opened at its first text."""

    def __init__(self, output: list[Item], context: list[Item], event: Sequence) -> None:
        self.output = output  # the response's output items, which this message joins
        self.context = context  # the chain the next model call reads
        self.event = event
        self.id = new_id("msg_")
        self.index: int | None = None
        self.parts: list[dict[str, Any]] = []
        self.text_so_far = ""

    def _open(self) -> list[Event]:
        if self.index is not None:
            return []
        self.index = len(self.output)
        self.output.append(output_message(self.id, "", refusal=False, status="in_progress") | {"content": []})
        return [self.event("response.output_item.added", output_index=self.index, item=self.output[-1])]

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.id, "output_index": self.index, "content_index": len(self.parts)}

    def text(self, delta: str) -> list[Event]:
        events = self._open()
        if not self.text_so_far:
            part = {"type": "output_text", "text": "", "annotations": []}
            events.append(self.event("response.content_part.added", part=part, **self._where()))
        self.text_so_far += delta
        events.append(self.event("response.output_text.delta", delta=delta, logprobs=[], **self._where()))
        return events

    def _close_text(self) -> list[Event]:
        if not self.text_so_far:
            return []
        part = {"type": "output_text", "text": self.text_so_far, "annotations": []}
        where = self._where()
        events = [
            self.event("response.output_text.done", text=self.text_so_far, logprobs=[], **where),
            self.event("response.content_part.done", part=part, **where),
        ]
        self.parts.append(part)
        self.text_so_far = ""
        return events

    def refusal(self, text: str) -> list[Event]:
        events = [*self._open(), *self._close_text()]
        part = {"type": "refusal", "refusal": text}
        where = self._where()
        events += [
            self.event("response.content_part.added", part={"type": "refusal", "refusal": ""}, **where),
            self.event("response.refusal.delta", delta=text, **where),
            self.event("response.refusal.done", refusal=text, **where),
            self.event("response.content_part.done", part=part, **where),
        ]
        self.parts.append(part)
        return events

    def finish(self, status: str) -> list[Event]:
        if self.index is None:
            return []
        events = self._close_text()
        item = {"type": "message", "id": self.id, "role": "assistant", "status": status, "content": self.parts}
        self.output[self.index] = item
        self.context.append(item)
        events.append(self.event("response.output_item.done", output_index=self.index, item=item))
        return events
