"""inline::transformers with Llama 3.2 Vision: the tiny random Mllama (tiny-random-llama-3-vision)
with transformers' real Mllama image processor; images given inline (base64), as data: URLs or
as http URLs served by a local server. The tiny model proves mechanics only: it sees nothing."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch
from PIL import Image

from llama_stack.apis.common import URL, ImageContentItem, SamplingParams, TextContentItem, UserMessage
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import ChatCompletionEventType, ChatCompletionRequest, CompletionRequest
from llama_stack.distribution.outbound import OutboundConfig, OutboundPolicy
from llama_stack.models.chat_format import encode_dialog_input
from llama_stack.models.images import fetch_image
from llama_stack.models.tiny_vision import TINY_VISION_MODEL_ID

VISION = TINY_VISION_MODEL_ID


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 40)) -> bytes:
    image = Image.new("RGB", size, colour)
    for x in range(0, size[0], 4):  # a stripe, so tiles differ from a flat fill
        image.putpixel((x, size[1] // 2), (255 - colour[0], 255 - colour[1], 255 - colour[2]))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


RED, BLUE = png((220, 20, 20)), png((20, 20, 220), (30, 90))
LOOPBACK = OutboundPolicy.from_config(OutboundConfig(allow=["127.0.0.1"]))  # where image_server listens


class _Images(BaseHTTPRequestHandler):
    files = {"/red.png": RED, "/blue.png": BLUE, "/huge.png": b"\x89PNG" + b"0" * 4096}

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def ask(*images: ImageContentItem, max_tokens: int = 8) -> ChatCompletionRequest:
    content: list[Any] = [*images, TextContentItem(text="What is in this picture?")]
    return ChatCompletionRequest(
        model_id=VISION,
        messages=[UserMessage(content=content)],
        sampling_params=SamplingParams(max_tokens=max_tokens),
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def answer(provider: Any, request: ChatCompletionRequest) -> str:
    return str((await provider.chat_completion(request)).completion_message.content)


# --- images in, the same mechanics as transformers' own generate --------------------------------


async def test_greedy_output_equals_transformers_generate_on_the_same_inputs(vision_provider: Any) -> None:
    request = ask(ImageContentItem(data=b64(RED)))
    response = await vision_provider.chat_completion(request)
    loaded = vision_provider.loaded_model(VISION)
    from transformers import MllamaForConditionalGeneration

    from llama_stack.providers.inference.transformers.vision import load_image_processor, vision_inputs

    hf_model: Any = MllamaForConditionalGeneration.from_pretrained(loaded.path)
    hf_model.eval()
    llm_input = encode_dialog_input(request.messages, model_id=VISION, allow_images=True)
    assert llm_input.tokens.count(128256) == 1  # the <|image|> token, where Mllama expects it
    assert llm_input.vision is not None
    inputs = vision_inputs(load_image_processor(loaded.path, hf_model), llm_input.tokens, llm_input.vision.images)
    assert inputs is not None
    ids = torch.tensor([llm_input.tokens])
    with torch.no_grad():
        out = hf_model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            pixel_values=inputs.pixel_values,
            aspect_ratio_ids=inputs.aspect_ratio_ids,
            aspect_ratio_mask=inputs.aspect_ratio_mask,
            cross_attention_mask=inputs.cross_attention_mask,
            max_new_tokens=8,
            min_new_tokens=8,
            do_sample=False,
        )
    from llama_stack.models.chat_format import decode_tokens

    assert response.completion_message.content == decode_tokens(out[0, len(llm_input.tokens) :].tolist())
    assert response.usage is not None and response.usage.prompt_tokens == len(llm_input.tokens)


async def test_the_image_changes_the_answer(vision_provider: Any) -> None:
    red = await answer(vision_provider, ask(ImageContentItem(data=b64(RED))))
    blue = await answer(vision_provider, ask(ImageContentItem(data=b64(BLUE))))
    text_only = ChatCompletionRequest(
        model_id=VISION,
        messages=[UserMessage(content="What is in this picture?")],
        sampling_params=SamplingParams(max_tokens=8),
    )
    assert len({red, blue, await answer(vision_provider, text_only)}) == 3


async def test_base64_data_urls_and_http_urls_give_the_same_answer(vision_provider: Any, image_server: str) -> None:
    inline = await answer(vision_provider, ask(ImageContentItem(data=b64(RED))))
    data_url = ImageContentItem(url=URL(uri=f"data:image/png;base64,{b64(RED)}"))
    http_url = ImageContentItem(url=URL(uri=f"{image_server}/red.png"))
    assert await answer(vision_provider, ask(data_url)) == inline
    assert await answer(vision_provider, ask(http_url)) == inline


async def test_two_images_in_one_message(vision_provider: Any, image_server: str) -> None:
    request = ask(ImageContentItem(data=b64(RED)), ImageContentItem(url=URL(uri=f"{image_server}/blue.png")))
    response = await vision_provider.chat_completion(request)
    assert response.completion_message.role == "assistant" and response.usage is not None


async def test_a_vision_chat_streams(vision_provider: Any, image_server: str) -> None:
    request = ask(ImageContentItem(url=URL(uri=f"{image_server}/red.png")))
    whole = await answer(vision_provider, request)
    events = [c.event async for c in vision_provider.chat_completion_stream(request)]
    assert events[0].event_type == ChatCompletionEventType.start
    assert "".join(e.delta for e in events if isinstance(e.delta, str)) == whole


async def test_concurrent_vision_requests_are_served_one_after_another(vision_provider: Any) -> None:
    import asyncio

    requests = [ask(ImageContentItem(data=b64(image)), max_tokens=5) for image in (RED, BLUE, RED)]
    answers = await asyncio.gather(*(answer(vision_provider, r) for r in requests))
    assert answers[0] == answers[2] == await answer(vision_provider, requests[0])
    assert vision_provider.loaded_model(VISION).engine.stats().largest_batch == 1


async def test_text_completion_runs_on_the_vision_model(vision_provider: Any) -> None:
    request = CompletionRequest(model_id=VISION, content="Once upon", sampling_params=SamplingParams(max_tokens=4))
    assert (await vision_provider.completion(request)).usage is not None


# --- image errors -------------------------------------------------------------------------------


async def test_an_image_url_that_fails_is_named_in_the_error(vision_provider: Any, image_server: str) -> None:
    missing = f"{image_server}/missing.png"
    with pytest.raises(InvalidRequest, match=f"could not fetch image {missing}: HTTP 404"):
        await vision_provider.chat_completion(ask(ImageContentItem(url=URL(uri=missing))))
    unreachable = "http://127.0.0.1:9/nothing.png"
    with pytest.raises(InvalidRequest, match=r"could not fetch image http://127\.0\.0\.1:9/nothing\.png"):
        await vision_provider.chat_completion(ask(ImageContentItem(url=URL(uri=unreachable))))


async def test_an_image_over_the_size_limit_is_refused(image_server: str) -> None:
    with pytest.raises(InvalidRequest, match=r"image .*/huge.png is 4100 bytes; the limit is 1000"):
        await fetch_image(f"{image_server}/huge.png", LOOPBACK, max_bytes=1000)
    assert await fetch_image(f"{image_server}/red.png", LOOPBACK) == RED


async def test_bad_image_data_is_a_clear_error(vision_provider: Any) -> None:
    with pytest.raises(InvalidRequest, match="not valid base64"):
        vision_provider.chat_completion_stream(ask(ImageContentItem(data="***not base64***")))
    with pytest.raises(InvalidRequest, match="image"):
        await vision_provider.chat_completion(ask(ImageContentItem(data=b64(b"not an image at all"))))
