"""The remote::bedrock Inference provider: boto3's bedrock-runtime client, run in worker threads
(its calls block). Chat goes through Converse / ConverseStream; completion through InvokeModel
with Llama's raw-prompt body; embeddings through InvokeModel with Titan's body. botocore retries
throttling and 5xx before any answer arrives; a stream closed early closes its HTTP response.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from llama_stack.apis.common import content_has_image, content_text
from llama_stack.apis.errors import InvalidRequest, RateLimited, StackError, UpstreamError, UpstreamTimeout
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    Usage,
)
from llama_stack.apis.models import Model
from llama_stack.models.images import has_remote_image, inline_images

from ..remote_common import vendor_model_name
from .config import BedrockClientConfig, BedrockConfig
from .convert import (
    PROVIDER,
    ConverseStream,
    chat_response,
    converse_params,
    llama_completion_body,
    refuse_unsupported,
    stop_reason,
)

BEDROCK_MODELS = {
    "Llama3.1-8B-Instruct": "meta.llama3-1-8b-instruct-v1:0",
    "Llama3.1-70B-Instruct": "meta.llama3-1-70b-instruct-v1:0",
    "Llama3.1-405B-Instruct": "meta.llama3-1-405b-instruct-v1:0",
    "Llama3.2-1B-Instruct": "meta.llama3-2-1b-instruct-v1:0",
    "Llama3.2-3B-Instruct": "meta.llama3-2-3b-instruct-v1:0",
    "Llama3.2-11B-Vision-Instruct": "meta.llama3-2-11b-instruct-v1:0",
    "Llama3.2-90B-Vision-Instruct": "meta.llama3-2-90b-instruct-v1:0",
    "Llama3.3-70B-Instruct": "meta.llama3-3-70b-instruct-v1:0",
}
CREDENTIALS_HINT = (
    "set aws_access_key_id / aws_secret_access_key (or profile_name) in the provider's config, "
    "or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment"
)


def make_client(config: BedrockClientConfig) -> Any:
    session = boto3.Session(
        profile_name=config.profile_name,
        region_name=config.region_name,
        aws_access_key_id=config.aws_access_key_id,
        aws_secret_access_key=config.aws_secret_access_key.get_secret_value() if config.aws_secret_access_key else None,
        aws_session_token=config.aws_session_token.get_secret_value() if config.aws_session_token else None,
    )
    settings = Config(
        read_timeout=config.timeout_s,
        connect_timeout=config.connect_timeout_s,
        retries={"total_max_attempts": config.max_retries + 1, "mode": "standard"},
    )
    try:
        return session.client("bedrock-runtime", endpoint_url=config.endpoint_url, config=settings)
    except NoRegionError as e:
        raise ValueError(f"{PROVIDER} needs a region: set region_name in its config or AWS_DEFAULT_REGION") from e


def translate(err: BaseException, where: str) -> StackError:
    """botocore's errors -> the stack's, each naming the provider."""
    if isinstance(err, StackError):
        return err
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code, message = str(error.get("Code", "")), error.get("Message") or str(err)
        kind = code.lower().removesuffix("exception")
        if kind in ("throttling", "toomanyrequests", "servicequotaexceeded"):
            headers = err.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            after = headers.get("retry-after")
            retry_after = float(after) if after and after.replace(".", "", 1).isdigit() else None
            return RateLimited(f"{where} is throttling requests: {message}", retry_after_s=retry_after)
        if kind in ("validation", "resourcenotfound"):
            return InvalidRequest(f"{PROVIDER} rejected the request ({code}): {message}")
        if kind == "modeltimeout":
            return UpstreamTimeout(f"{where} timed out ({code}): {message}")
        if kind in ("accessdenied", "unrecognizedclient", "expiredtoken"):
            return UpstreamError(f"{where} refused the AWS credentials ({code}): {message}")
        return UpstreamError(f"{where} failed ({code}): {message}")
    if isinstance(err, ReadTimeoutError):
        return UpstreamTimeout(f"{where} did not answer in time: {err}")
    if isinstance(err, EndpointConnectionError | ConnectTimeoutError):
        return UpstreamError(f"cannot reach {where}: {err}")
    if isinstance(err, NoCredentialsError):
        return InvalidRequest(f"{PROVIDER} has no AWS credentials: {CREDENTIALS_HINT}")
    if isinstance(err, BotoCoreError | ValueError):
        return UpstreamError(f"{where} failed: {type(err).__name__}: {err}")
    return UpstreamError(f"{where} failed: {type(err).__name__}")


class BedrockInference:
    """Implements the Inference protocol and ModelOwner over one bedrock-runtime client."""

    def __init__(self, config: BedrockConfig, client: Any | None = None) -> None:
        self.config = config
        self.client = client if client is not None else make_client(config)
        self.where = f"{PROVIDER} at {self.client.meta.endpoint_url}"

    def model_name(self, model_id: str) -> str:
        return vendor_model_name(model_id, BEDROCK_MODELS, self.config.model_ids)

    async def register_model(self, model: Model) -> Model:
        """Maps Llama ids to Bedrock's; anything else must at least look like a Bedrock model id
        (`provider.model...`, an inference profile `us.provider.model...`, or an ARN). Whether the
        account may use it shows on the first call: listing models needs another AWS permission."""
        name = self.model_name(model.provider_resource_id)
        if "." not in name and not name.startswith("arn:"):
            raise InvalidRequest(
                f"{PROVIDER} does not know model '{name}': give a Llama id ({', '.join(BEDROCK_MODELS)}) "
                "or a Bedrock model id such as meta.llama3-2-3b-instruct-v1:0"
            )
        return model.model_copy(update={"provider_resource_id": name})

    async def unregister_model(self, model_id: str) -> None:
        return None

    async def shutdown(self) -> None:
        self.client.close()

    async def _call(self, method: str, **params: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self.client, method), **params)
        except Exception as err:
            raise translate(err, self.where) from err

    async def _next(self, events: Iterator[dict[str, Any]]) -> dict[str, Any] | None:
        try:
            return await asyncio.to_thread(next, events, None)
        except Exception as err:
            raise translate(err, self.where) from err

    async def _converse_params(self, request: ChatCompletionRequest) -> dict[str, Any]:
        if has_remote_image(request.messages):
            request = request.model_copy(update={"messages": await inline_images(request.messages)})
        return converse_params(request, self.model_name(request.model_id))

    # --- chat ---------------------------------------------------------------------------------

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        response = await self._call("converse", **await self._converse_params(request))
        return chat_response(response)

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        refuse_unsupported(request)  # fails on the call, before any chunk is sent
        return self._chat_chunks(request)

    async def _chat_chunks(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        response = await self._call("converse_stream", **await self._converse_params(request))
        stream = response["stream"]
        try:
            state = ConverseStream()
            start = ChatCompletionResponseEvent(event_type=ChatCompletionEventType.start, delta="")
            yield ChatCompletionResponseStreamChunk(event=start)
            events = iter(stream)
            while (event := await self._next(events)) is not None:
                for chunk in state.feed(event):
                    yield chunk
            if state.stop is None:
                raise UpstreamError(f"{self.where} ended the stream before the answer was complete")
            yield state.finish()
        finally:
            stream.close()

    # --- completion ---------------------------------------------------------------------------

    def _completion_params(self, request: CompletionRequest) -> dict[str, Any]:
        if content_has_image(request.content) or request.response_format is not None or request.logprobs:
            raise InvalidRequest(f"{PROVIDER} completion takes text only, without response_format or logprobs")
        body = llama_completion_body(content_text(request.content), request.sampling_params)
        return {"modelId": self.model_name(request.model_id), "body": json.dumps(body), "accept": "application/json"}

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        response = await self._call("invoke_model", contentType="application/json", **self._completion_params(request))
        try:
            body = json.loads(await asyncio.to_thread(response["body"].read))
        except ValueError as e:
            raise UpstreamError(f"{self.where} answered a body that is not JSON") from e
        return CompletionResponse(
            content=body.get("generation", ""),
            stop_reason=stop_reason(body.get("stop_reason")),
            usage=Usage(
                prompt_tokens=body.get("prompt_token_count", 0), completion_tokens=body.get("generation_token_count", 0)
            ),
        )

    def completion_stream(self, request: CompletionRequest) -> AsyncIterator[CompletionResponseStreamChunk]:
        return self._completion_chunks(self._completion_params(request))

    async def _completion_chunks(self, params: dict[str, Any]) -> AsyncIterator[CompletionResponseStreamChunk]:
        response = await self._call("invoke_model_with_response_stream", contentType="application/json", **params)
        stream = response["body"]
        try:
            events = iter(stream)
            while (event := await self._next(events)) is not None:
                if "chunk" not in event:
                    continue
                part = json.loads(event["chunk"]["bytes"])
                metrics = part.get("amazon-bedrock-invocationMetrics") or {}
                done = part.get("stop_reason") is not None
                yield CompletionResponseStreamChunk(
                    delta=part.get("generation", ""),
                    stop_reason=stop_reason(part["stop_reason"]) if done else None,
                    usage=Usage(
                        prompt_tokens=metrics.get("inputTokenCount", part.get("prompt_token_count", 0)),
                        completion_tokens=metrics.get("outputTokenCount", part.get("generation_token_count", 0)),
                    )
                    if done
                    else None,
                )
        finally:
            stream.close()

    # --- embeddings ---------------------------------------------------------------------------

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        if any(content_has_image(content) for content in request.contents):
            raise InvalidRequest(f"{PROVIDER} embeds text only; remove the images")
        model = self.model_name(request.model_id)
        vectors: list[list[float]] = []
        tokens = 0
        for content in request.contents:  # Titan embeds one text per call
            body = json.dumps({"inputText": content_text(content)})
            response = await self._call("invoke_model", modelId=model, body=body, contentType="application/json")
            answer = json.loads(await asyncio.to_thread(response["body"].read))
            vectors.append(answer["embedding"])
            tokens += answer.get("inputTextTokenCount", 0)
        return EmbeddingsResponse(embeddings=vectors, usage=Usage(prompt_tokens=tokens, completion_tokens=0))
