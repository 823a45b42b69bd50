"""The Python SDK of the stack, `llama_stack.client`: sync and async clients for every API of the
/alpha face, typed errors, retries, the Agent helper and the EventLogger. It needs only httpx and
pydantic, and shares its wire types with the server (llama_stack.apis)."""

from .agent import Agent, AgentEvent, TooManyToolRounds
from .client import AsyncLlamaStackClient, LlamaStackClient
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    LlamaStackError,
    MethodNotAllowedError,
    NotFoundError,
    NotImplementedByServerError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from .event_logger import EventLogger
from .streaming import AsyncStream, Stream, astream_sse, stream_sse
from .tools import ClientTool, client_tool

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "Agent",
    "AgentEvent",
    "AsyncLlamaStackClient",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ClientTool",
    "ConflictError",
    "EventLogger",
    "InternalServerError",
    "LlamaStackClient",
    "LlamaStackError",
    "MethodNotAllowedError",
    "NotFoundError",
    "NotImplementedByServerError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Stream",
    "TooManyToolRounds",
    "UnprocessableEntityError",
    "astream_sse",
    "client_tool",
    "stream_sse",
]
