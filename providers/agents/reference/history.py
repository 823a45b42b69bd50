"""What the model sees of a session: the agent's instructions, then each finished turn as the
conversation it was (input, intermediate answers and tool results, final answer)."""

from __future__ import annotations

from llama_stack.apis.agents import InferenceStep, ToolExecutionStep, Turn
from llama_stack.apis.common import (
    ImageContentItem,
    InterleavedContent,
    Message,
    SystemMessage,
    TextContentItem,
    ToolResponse,
    ToolResponseMessage,
    UserMessage,
)

IMAGE_PLACEHOLDER = "[image: attached to the answer]"


def for_model(content: InterleavedContent) -> InterleavedContent:
    """Tool results go back to the model as text: the images they made go to the user instead."""
    if isinstance(content, list) and any(isinstance(item, ImageContentItem) for item in content):
        placeholder = TextContentItem(text=IMAGE_PLACEHOLDER)
        return [placeholder if isinstance(item, ImageContentItem) else item for item in content]
    if isinstance(content, ImageContentItem):
        return IMAGE_PLACEHOLDER
    return content


def tool_message(response: ToolResponse) -> ToolResponseMessage:
    content = for_model(response.content)
    return ToolResponseMessage(call_id=response.call_id, tool_name=response.tool_name, content=content)


def turn_messages(turn: Turn) -> list[Message]:
    """A finished turn as messages. Retrieved context is left out (each turn retrieves afresh),
    and the final answer is the turn's output message, so a shield's refusal replaces the
    answer it refused."""
    messages: list[Message] = [
        message.model_copy(update={"context": None}) if isinstance(message, UserMessage) else message
        for message in turn.input_messages
    ]
    inference_steps = [step for step in turn.steps if isinstance(step, InferenceStep)]
    last = inference_steps[-1] if inference_steps else None
    for step in turn.steps:
        if isinstance(step, InferenceStep) and step is not last:
            messages.append(step.model_response)
        elif isinstance(step, ToolExecutionStep):
            messages.extend(tool_message(response) for response in step.tool_responses)
    messages.append(turn.output_message)
    return messages


def session_messages(instructions: str, turns: list[Turn]) -> list[Message]:
    messages: list[Message] = [SystemMessage(content=instructions)] if instructions else []
    for turn in turns:
        messages.extend(turn_messages(turn))
    return messages
