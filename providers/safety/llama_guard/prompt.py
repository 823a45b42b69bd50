"""The Llama Guard 3 prompt, as Meta publishes it (the model cards and the Hugging Face chat
templates of Llama-Guard-3-1B / 8B / 11B-Vision), built from a stack conversation.

The prompt is sent as the single user message of a chat completion to the guard model; the
inference provider wraps it in the Llama 3 chat format (`<|begin_of_text|><|start_header_id|>user
<|end_header_id|>\\n\\n{prompt}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from llama_stack.apis.common import (
    CompletionMessage,
    ImageContentItem,
    InterleavedContent,
    Message,
    SystemMessage,
    TextContentItem,
    content_text,
)

# MLCommons hazards (S1-S13) plus Code Interpreter Abuse (S14), named as in the published prompt.
TAXONOMY: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex Crimes",
    "S4": "Child Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}

# Llama Guard 3 1B and 11B-Vision were trained on the 13 MLCommons hazards only: their published
# prompts stop at S13. The 8B model (and anything unknown) gets all 14.
_THIRTEEN_CATEGORY_MODELS = re.compile(r"guard-?3[-:_]1b|guard-?3[-:_]11b|11b-vision", re.IGNORECASE)


def official_codes(model_id: str) -> list[str]:
    """The official category codes a guard model was trained on, in order."""
    codes = list(TAXONOMY)
    return codes[:13] if _THIRTEEN_CATEGORY_MODELS.search(model_id) else codes


class CustomCategory(BaseModel):
    """A category of your own, listed after the official ones with the next free code."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="short name, e.g. 'Competitors'")
    description: str = Field(default="", description="what the category covers; written under its name")


TASK = (
    "Task: Check if there is unsafe content in '{role}' messages in conversations according our safety "
    "policy with the below categories."
)
INSTRUCTIONS = (
    "Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:\n"
    " - First line must read 'safe' or 'unsafe'.\n"
    " - If unsafe, a second line must include a comma-separated list of violated categories."
)


@dataclass(frozen=True)
class Policy:
    """The categories a prompt lists, code -> (name, description)."""

    categories: dict[str, tuple[str, str]]

    @classmethod
    def for_model(cls, model_id: str, excluded: list[str], custom: list[CustomCategory]) -> Policy:
        codes = official_codes(model_id)
        categories = {code: (TAXONOMY[code], "") for code in codes if code not in excluded}
        # Custom categories continue the model's numbering, so a code never means two things.
        for number, category in enumerate(custom, start=len(codes) + 1):
            categories[f"S{number}"] = (category.name, category.description)
        return cls(categories)

    def name_of(self, code: str) -> str:
        known = self.categories.get(code) or ((TAXONOMY[code], "") if code in TAXONOMY else None)
        return known[0] if known else f"Unknown category {code}"

    def render(self) -> str:
        lines = []
        for code, (name, description) in self.categories.items():
            line = f"{code}: {name.rstrip('.')}."
            lines.append(f"{line}\n{description.strip()}" if description.strip() else line)
        return "\n".join(lines)


@dataclass(frozen=True)
class Turn:
    role: str  # "User" or "Agent"
    text: str


def conversation(messages: list[Message]) -> list[Turn]:
    """User and Agent turns as Llama Guard reads them. System prompts are not content to judge and
    are left out; tool results are input to the model, so they read as User turns; consecutive
    messages of one side merge into one turn, as the guard expects turns to alternate."""
    turns: list[Turn] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        role = "Agent" if isinstance(message, CompletionMessage) else "User"
        text = _message_text(message)
        if turns and turns[-1].role == role:
            turns[-1] = Turn(role, f"{turns[-1].text}\n\n{text}".strip())
        else:
            turns.append(Turn(role, text))
    return turns


def _message_text(message: Message) -> str:
    parts = [content_text(message.content).strip()]
    if isinstance(message, CompletionMessage):
        # Tool calls are what an agent does: Code Interpreter Abuse (S14) lives in them.
        parts += [json.dumps({"name": call.tool_name, "parameters": call.arguments}) for call in message.tool_calls]
    return "\n".join(part for part in parts if part)


def build_prompt(turns: list[Turn], policy: Policy, with_image: bool = False) -> str:
    role = turns[-1].role
    dialog = "\n\n".join(f"{turn.role}: {turn.text}" for turn in turns)
    prompt = (
        f"{TASK.format(role=role)}\n\n"
        f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{policy.render()}\n<END UNSAFE CONTENT CATEGORIES>\n\n"
        f"<BEGIN CONVERSATION>\n\n{dialog}\n\n<END CONVERSATION>\n\n"
        f"{INSTRUCTIONS.format(role=role)}"
    )
    # The vision guard's published template reads "<|image|> Task: ...": the image token, then a space.
    return f" {prompt}" if with_image else prompt


def last_image(messages: list[Message]) -> ImageContentItem | None:
    """The guard looks at one image: the most recent one."""
    found: ImageContentItem | None = None
    for message in messages:
        for item in _items(message.content):
            if isinstance(item, ImageContentItem):
                found = item
    return found


def _items(content: InterleavedContent) -> list[TextContentItem | ImageContentItem]:
    if isinstance(content, str):
        return []
    return content if isinstance(content, list) else [content]
