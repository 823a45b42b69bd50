"""Responses and Conversations in OpenAI's shape (`/v1/responses`, `/v1/conversations`).

A response is an agent turn over the stack's core: inference through the inference router,
`file_search` over vector stores (memory banks), `web_search` through the agents' search tool,
`mcp` tools of a remote MCP server, shields through `guardrails`. Items are OpenAI's JSON items;
the models below validate what a caller sends (a bad field is a 400 naming it) and type what the
server builds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from llama_stack.apis.common import WireModel
from llama_stack.apis.errors import NotFound
from llama_stack.apis.safety import GuardrailsField
from llama_stack.apis.vector_stores import Filter


class ResponseNotFound(NotFound):
    def __init__(self, response_id: str) -> None:
        super().__init__(f"No response found with id '{response_id}'.")


class ConversationNotFound(NotFound):
    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"No conversation found with id '{conversation_id}'.")


class ConversationItemNotFound(NotFound):
    def __init__(self, conversation_id: str, item_id: str) -> None:
        super().__init__(f"No item '{item_id}' in conversation '{conversation_id}'.")


# --- input items ----------------------------------------------------------------------------


class InputText(WireModel):
    type: Literal["input_text", "output_text"]
    text: str


class InputImage(WireModel):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto"] | None = None


class Refusal(WireModel):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[InputText | InputImage | Refusal, Field(discriminator="type")]


class MessageItem(WireModel):
    type: Literal["message"] = "message"
    id: str | None = None
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart]
    status: str | None = None


class FunctionCallItem(WireModel):
    type: Literal["function_call"]
    id: str | None = None
    call_id: str
    name: str
    arguments: str
    status: str | None = None


class FunctionCallOutputItem(WireModel):
    type: Literal["function_call_output"]
    id: str | None = None
    call_id: str
    output: str


class McpApprovalResponseItem(WireModel):
    type: Literal["mcp_approval_response"]
    id: str | None = None
    approval_request_id: str
    approve: bool
    reason: str | None = None


class McpApprovalRequestItem(WireModel):
    type: Literal["mcp_approval_request"]
    id: str
    server_label: str
    name: str
    arguments: str


class ToolCallRecordItem(WireModel):
    """Items the server produced that a caller may send back as context; they add nothing to
    the prompt beyond what their results already gave the model."""

    type: Literal["file_search_call", "web_search_call", "mcp_call", "mcp_list_tools"]
    id: str | None = None

    model_config = {"extra": "allow"}


InputItem = Annotated[
    MessageItem
    | FunctionCallItem
    | FunctionCallOutputItem
    | McpApprovalResponseItem
    | McpApprovalRequestItem
    | ToolCallRecordItem,
    Field(discriminator="type"),
]


# --- tools ----------------------------------------------------------------------------------


class FunctionTool(WireModel):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FileSearchRanking(WireModel):
    ranker: str | None = None
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class FileSearchTool(WireModel):
    type: Literal["file_search"]
    vector_store_ids: list[str] = Field(min_length=1)
    max_num_results: int = Field(default=10, ge=1, le=50)
    filters: Filter | None = None
    ranking_options: FileSearchRanking | None = None


class WebSearchTool(WireModel):
    type: Literal["web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"]


class McpToolFilter(WireModel):
    tool_names: list[str] | None = None
    read_only: bool | None = None


class McpApprovalFilter(WireModel):
    always: McpToolFilter | None = None
    never: McpToolFilter | None = None


class McpTool(WireModel):
    type: Literal["mcp"]
    server_label: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    server_url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    allowed_tools: list[str] | McpToolFilter | None = None
    require_approval: Literal["always", "never"] | McpApprovalFilter = "always"
    server_description: str | None = None


Tool = Annotated[FunctionTool | FileSearchTool | WebSearchTool | McpTool, Field(discriminator="type")]


class NamedToolChoice(WireModel):
    type: Literal["function", "file_search", "web_search", "web_search_preview", "mcp"]
    name: str | None = None
    server_label: str | None = None


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


# --- the request ----------------------------------------------------------------------------


class JsonSchemaFormat(WireModel):
    type: Literal["json_schema"]
    name: str = "response"
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    description: str | None = None


class PlainFormat(WireModel):
    type: Literal["text", "json_object"]


class TextConfig(WireModel):
    format: Annotated[JsonSchemaFormat | PlainFormat, Field(discriminator="type")] | None = None


class ConversationRef(WireModel):
    id: str


class CreateResponseRequest(WireModel):
    model: str = Field(min_length=1)
    guardrails: GuardrailsField = Field(default=None, exclude=True)  # our extension (extra_body)
    input: str | list[InputItem]
    instructions: str | None = None
    tools: list[Tool] = Field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = Field(default=None, ge=1)
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    store: bool = True
    stream: bool = False
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    include: list[Literal["file_search_call.results"]] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    # Contexts are never truncated: "auto" would promise what the server does not do.
    truncation: Literal["disabled"] | None = None
    user: str | None = None

    @property
    def conversation_id(self) -> str | None:
        return self.conversation.id if isinstance(self.conversation, ConversationRef) else self.conversation


class ListResponsesRequest(WireModel):
    limit: int = Field(default=20, ge=1, le=100)
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None


class CreateConversationRequest(WireModel):
    items: list[InputItem] = Field(default_factory=list, max_length=20)
    metadata: dict[str, str] = Field(default_factory=dict)


class UpdateConversationRequest(WireModel):
    metadata: dict[str, str]


class AddItemsRequest(WireModel):
    items: list[InputItem] = Field(min_length=1, max_length=20)
