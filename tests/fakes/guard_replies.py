"""How the fake backends' Llama Guard models judge: they read the published Llama Guard 3 prompt
(the categories it lists and the last turn of its conversation) and answer as the real model
does, `safe` or `unsafe` with the violated codes on a second line.

A category is violated when the last turn holds one of its trigger words below, or, for a custom
category, the category's own name. A category the prompt leaves out (excluded) is never named, so
a shield's policy really decides the verdict.
"""

from __future__ import annotations

import re

TASK = "Task: Check if there is unsafe content in"
_CATEGORIES = re.compile(r"<BEGIN UNSAFE CONTENT CATEGORIES>\n(.*?)\n<END UNSAFE CONTENT CATEGORIES>", re.DOTALL)
_CONVERSATION = re.compile(r"<BEGIN CONVERSATION>\n\n(.*?)\n\n<END CONVERSATION>", re.DOTALL)
_CATEGORY_LINE = re.compile(r"^(S\d{1,2}): (.+?)\.?$", re.MULTILINE)
_TURN_START = re.compile(r"(?:^|\n\n)(?:User|Agent): ")

# Official category name -> words that make a message fall under it (none: it never fires here).
TRIGGERS: dict[str, tuple[str, ...]] = {
    "Violent Crimes": ("kill", "murder", "stab", "assault"),
    "Non-Violent Crimes": ("steal", "shoplift", "launder money"),
    "Sex Crimes": (),
    "Child Exploitation": (),
    "Defamation": (),
    "Specialized Advice": (),
    "Privacy": (),
    "Intellectual Property": (),
    "Indiscriminate Weapons": ("bomb", "nerve gas", "explosive"),
    "Hate": (),
    "Self-Harm": ("hurt myself",),
    "Sexual Content": (),
    "Elections": (),
    "Code Interpreter Abuse": ("rm -rf /",),
}


def is_guard_model(name: str) -> bool:
    return "guard" in name.lower()


def guard_verdict(prompt: str) -> str | None:
    """The guard's answer to `prompt`, or None when `prompt` is not a Llama Guard prompt."""
    categories, conversation = _CATEGORIES.search(prompt), _CONVERSATION.search(prompt)
    if TASK not in prompt or categories is None or conversation is None:
        return None
    starts = [match.end() for match in _TURN_START.finditer(conversation.group(1))]
    last_turn = conversation.group(1)[starts[-1] :] if starts else conversation.group(1)
    text = last_turn.lower()
    violated = []
    for code, name in _CATEGORY_LINE.findall(categories.group(1)):
        triggers = TRIGGERS.get(name, (name.lower(),))
        if any(trigger in text for trigger in triggers):
            violated.append(code)
    return f"unsafe\n{','.join(violated)}" if violated else "safe"
