"""Tool calling glue for Llama 3.x: tool prompts (checked on the decoded token ids), the formats
each model family accepts, parsing of every output format, and the streaming parser on inputs
split at every position. Pure strings and the real Llama 3 tokenizer: no model needed."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from llama_stack.apis.common import (
    CompletionMessage,
    Message,
    StopReason,
    SystemMessage,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    ToolParamDefinition,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
)
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.inference import ToolCallDelta, ToolCallParseStatus
from llama_stack.models.chat_format import encode_dialog, get_tokenizer
from llama_stack.models.tool_calls import (
    ToolCallStreamParser,
    check_tool_prompt_format,
    default_tool_prompt_format,
    parse_assistant_output,
)

TODAY = date(2024, 9, 21)
WEATHER = ToolDefinition(
    tool_name="get_weather",
    description="Get the current weather",
    parameters={
        "city": ToolParamDefinition(param_type="string", description="The city"),
        "unit": ToolParamDefinition(param_type="string", description="celsius or fahrenheit", required=False),
    },
)
SEARCH = ToolDefinition(tool_name="brave_search")
WOLFRAM = ToolDefinition(tool_name="wolfram_alpha")
CODE = ToolDefinition(tool_name="code_interpreter")
QUESTION: list[Message] = [UserMessage(content="What is the weather in Paris?")]


def prompt_text(
    messages: list[Message],
    model_id: str,
    tools: list[ToolDefinition],
    fmt: ToolPromptFormat | None = None,
    tool_choice: ToolChoice = ToolChoice.auto,
) -> str:
    tokens = encode_dialog(
        messages, model_id=model_id, tools=tools, tool_prompt_format=fmt, tool_choice=tool_choice, today=TODAY
    )
    return str(get_tokenizer().decode(tokens))


# --- prompts ------------------------------------------------------------------------------------


def test_builtin_tools_go_in_the_system_prompt_with_environment_ipython() -> None:
    text = prompt_text(QUESTION, "Llama3.1-8B-Instruct", [SEARCH, WOLFRAM, CODE])
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Environment: ipython\n"
        "Tools: brave_search, wolfram_alpha\n"
        "Cutting Knowledge Date: December 2023\n"
        "Today Date: 21 September 2024\n"
        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "What is the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_code_interpreter_alone_is_just_environment_ipython() -> None:
    text = prompt_text(QUESTION, "Llama3.1-8B-Instruct", [CODE])
    assert "Environment: ipython\nCutting Knowledge Date" in text
    assert "Tools:" not in text


def test_json_tools_are_described_in_a_user_message_after_the_system_prompt() -> None:
    messages: list[Message] = [SystemMessage(content="Be brief."), *QUESTION]
    text = prompt_text(messages, "Llama3.1-8B-Instruct", [WEATHER])
    system, tools_message, question = text.split("<|eot_id|>")[:3]
    assert system.endswith(
        "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 21 September 2024\n\nBe brief."
    )
    assert tools_message.startswith(
        "<|start_header_id|>user<|end_header_id|>\n\nAnswer the user's question by making use"
    )
    assert (
        '"name": "get_weather"' in tools_message
        and '"required": [\n                "city"\n            ]' in tools_message
    )
    assert tools_message.endswith("Return function calls in JSON format.")
    assert question.endswith("What is the weather in Paris?")


def test_function_tag_tools_follow_the_documented_format() -> None:
    text = prompt_text(QUESTION, "Llama3.1-8B-Instruct", [WEATHER], ToolPromptFormat.function_tag)
    assert "Use the function 'get_weather' to 'Get the current weather':\n" in text
    assert '<function=example_function_name>{"example_name": "example_value"}</function>' in text
    assert "- Put the entire function call reply on one line<|eot_id|>" in text


def test_python_list_is_the_default_for_llama_3_2_text_and_lives_in_the_system_prompt() -> None:
    text = prompt_text(QUESTION, "meta-llama/Llama-3.2-3B-Instruct", [WEATHER])
    system = text.split("<|eot_id|>")[0]
    assert "You are an expert in composing functions." in system
    assert "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]" in system
    assert '"type": "dict"' in system and '"name": "get_weather"' in system
    assert text.count("<|start_header_id|>user<|end_header_id|>") == 1  # no extra tools message


def test_tool_choice_required_tells_the_model_it_must_call_a_tool() -> None:
    auto = prompt_text(QUESTION, "Llama3.1-8B-Instruct", [WEATHER])
    required = prompt_text(QUESTION, "Llama3.1-8B-Instruct", [WEATHER], tool_choice=ToolChoice.required)
    assert "MUST call one of the tools" not in auto
    assert "You MUST call one of the tools above" in required


def test_without_tools_the_prompt_is_the_conversation_alone() -> None:
    assert encode_dialog(QUESTION, model_id="Llama3.1-8B-Instruct") == encode_dialog(
        QUESTION, model_id="Llama3.1-8B-Instruct", tools=[]
    )
    assert "Environment" not in get_tokenizer().decode(encode_dialog(QUESTION, model_id="Llama3.1-8B-Instruct"))


def test_a_tool_call_and_its_result_in_the_history_are_encoded() -> None:
    call = ToolCall(call_id="c1", tool_name="get_weather", arguments={"city": "Paris"})
    messages: list[Message] = [
        *QUESTION,
        CompletionMessage(content="", stop_reason=StopReason.end_of_message, tool_calls=[call]),
        ToolResponseMessage(call_id="c1", tool_name="get_weather", content="25 C"),
    ]
    text = prompt_text(messages, "Llama3.1-8B-Instruct", [WEATHER])
    assert '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}<|eom_id|>' in text
    assert "<|start_header_id|>ipython<|end_header_id|>\n\n25 C<|eot_id|>" in text


# --- formats per model --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("Llama3.1-8B-Instruct", ToolPromptFormat.json),
        ("meta-llama/Llama-3.1-70B-Instruct", ToolPromptFormat.json),
        ("Llama3.2-11B-Vision-Instruct", ToolPromptFormat.json),
        ("Llama3.2-1B-Instruct", ToolPromptFormat.python_list),
        ("meta-llama/Llama-3.2-3B-Instruct", ToolPromptFormat.python_list),
        ("Llama3.3-70B-Instruct", ToolPromptFormat.python_list),
        ("tiny-random-llama-3", ToolPromptFormat.json),
        ("/models/my-finetune", ToolPromptFormat.json),
    ],
)
def test_default_tool_prompt_format_per_model(model_id: str, expected: ToolPromptFormat) -> None:
    assert default_tool_prompt_format(model_id) == expected
    assert check_tool_prompt_format(model_id, None) == expected


@pytest.mark.parametrize("model_id", ["Llama3.1-8B-Instruct", "meta-llama/Llama-3.2-11B-Vision-Instruct"])
def test_python_list_is_refused_where_llama_models_does_not_document_it(model_id: str) -> None:
    with pytest.raises(
        InvalidRequest, match=r"'python_list' is not supported by model .*use one of: json, function_tag"
    ):
        check_tool_prompt_format(model_id, ToolPromptFormat.python_list)
    with pytest.raises(InvalidRequest, match="python_list"):
        encode_dialog(QUESTION, model_id=model_id, tools=[WEATHER], tool_prompt_format=ToolPromptFormat.python_list)


def test_documented_formats_are_accepted() -> None:
    assert (
        check_tool_prompt_format("Llama3.1-8B-Instruct", ToolPromptFormat.function_tag) == ToolPromptFormat.function_tag
    )
    assert check_tool_prompt_format("Llama3.2-3B-Instruct", ToolPromptFormat.json) == ToolPromptFormat.json


# --- parsing ------------------------------------------------------------------------------------

PARSED: list[tuple[str, str, list[tuple[str, dict[str, object]]]]] = [
    (
        '<|python_tag|>brave_search.call(query="latest price of gold")',
        "",
        [("brave_search", {"query": "latest price of gold"})],
    ),
    (
        '<|python_tag|>wolfram_alpha.call(query="100th decimal of pi")',
        "",
        [("wolfram_alpha", {"query": "100th decimal of pi"})],
    ),
    (
        "<|python_tag|>def f(n):\n    return n\n\nprint(f(7))",
        "",
        [("code_interpreter", {"code": "def f(n):\n    return n\n\nprint(f(7))"})],
    ),
    (
        '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}',
        "",
        [("get_weather", {"city": "Paris"})],
    ),
    (
        '<|python_tag|>{\n    "type": "function",\n    "name": "get_weather",\n'
        '    "parameters": {"city": "Paris", "n": 2}\n}',
        "",
        [("get_weather", {"city": "Paris", "n": 2})],
    ),
    ('  {"name": "get_weather", "parameters": {"city": "Paris"}}', "", [("get_weather", {"city": "Paris"})]),
    ('<function=get_weather>{"city": "Paris"}</function>', "", [("get_weather", {"city": "Paris"})]),
    (
        'Let me check. <function=get_weather>{"city": "Paris"}</function>',
        "Let me check. ",
        [("get_weather", {"city": "Paris"})],
    ),
    ('[get_weather(city="Paris")]', "", [("get_weather", {"city": "Paris"})]),
    (
        "[get_weather(city='Paris', days=3), get_time(zone=\"CET\")]",
        "",
        [("get_weather", {"city": "Paris", "days": 3}), ("get_time", {"zone": "CET"})],
    ),
    (
        '<|python_tag|>[get_weather(city="San Francisco", metric="celsius")]',
        "",
        [("get_weather", {"city": "San Francisco", "metric": "celsius"})],
    ),
]
PLAIN = [
    "The weather in Paris is sunny.",
    "[1, 2, 3] are numbers",
    '{"answer": 42}',
    "[not a call",
    "Use <fun to start",
    "",
    "   ",
]
FAILED = ["<|python_tag|>", '<function=get_weather>{"city": Paris}</function>']


def calls_of(message: CompletionMessage) -> list[tuple[str, dict[str, object]]]:
    return [(call.tool_name, call.arguments) for call in message.tool_calls]


@pytest.mark.parametrize(("text", "content", "calls"), PARSED)
def test_every_output_format_parses_into_tool_calls(
    text: str, content: str, calls: list[tuple[str, dict[str, object]]]
) -> None:
    message = parse_assistant_output(text, StopReason.end_of_message, None)
    assert calls_of(message) == calls
    assert message.content == content
    assert message.stop_reason == StopReason.end_of_message


@pytest.mark.parametrize("text", PLAIN + FAILED)
def test_text_that_is_no_tool_call_stays_content(text: str) -> None:
    message = parse_assistant_output(text, StopReason.end_of_turn, ToolPromptFormat.json)
    assert message.tool_calls == [] and message.content == text


def test_every_tool_call_gets_a_fresh_uuid4_call_id() -> None:
    text = "[get_weather(city='Paris'), get_weather(city='Rome')]"
    ids = [c.call_id for c in parse_assistant_output(text, StopReason.end_of_turn, None).tool_calls]
    ids += [c.call_id for c in parse_assistant_output(text, StopReason.end_of_turn, None).tool_calls]
    assert len(set(ids)) == 4 and all(uuid.UUID(i).version == 4 for i in ids)


# --- streaming ----------------------------------------------------------------------------------


def stream(chunks: list[str]) -> tuple[list[str | ToolCallDelta], ToolCallStreamParser]:
    parser = ToolCallStreamParser()
    out: list[str | ToolCallDelta] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    out += parser.finish()
    return out, parser


def splits(text: str) -> list[list[str]]:
    """The text whole, one character at a time, and cut in two at every position."""
    return [[text], list(text)] + [[text[:i], text[i:]] for i in range(1, len(text))]


@pytest.mark.parametrize(("text", "content", "calls"), PARSED)
def test_streamed_tool_calls_agree_with_the_parser_at_every_split(
    text: str, content: str, calls: list[tuple[str, dict[str, object]]]
) -> None:
    for chunks in splits(text):
        events, parser = stream(chunks)
        texts = [e for e in events if isinstance(e, str)]
        deltas = [e for e in events if isinstance(e, ToolCallDelta)]
        assert "".join(texts) == content, chunks
        statuses = [d.parse_status for d in deltas]
        progress = [d.content for d in deltas if d.parse_status == ToolCallParseStatus.in_progress]
        assert statuses == [ToolCallParseStatus.started] + [ToolCallParseStatus.in_progress] * len(progress) + [
            ToolCallParseStatus.success
        ] * len(calls), chunks
        raw = "".join(str(piece) for piece in progress)
        assert raw.strip() == text[len(content) :].strip()
        successes = [d.content for d in deltas[1 + len(progress) :]]
        assert [(c.tool_name, c.arguments) for c in successes if isinstance(c, ToolCall)] == calls
        assert [(c.tool_name, c.arguments) for c in parser.tool_calls] == calls


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_streams_as_text_at_every_split(text: str) -> None:
    for chunks in splits(text):
        events, parser = stream(chunks)
        assert all(isinstance(e, str) for e in events), chunks
        assert "".join(str(e) for e in events) == text and parser.content == text
        assert parser.tool_calls == []


@pytest.mark.parametrize("text", FAILED)
def test_an_unparseable_tool_call_is_a_failure_delta_with_the_raw_text(text: str) -> None:
    for chunks in splits(text):
        events, _ = stream(chunks)
        assert events[0] == ToolCallDelta(content="", parse_status=ToolCallParseStatus.started), chunks
        assert events[-1] == ToolCallDelta(content=text, parse_status=ToolCallParseStatus.failure), chunks
        progress = events[1:-1]
        assert all(isinstance(e, ToolCallDelta) and e.parse_status == "in_progress" for e in progress), chunks
        assert "".join(str(e.content) for e in progress if isinstance(e, ToolCallDelta)) == text, chunks


def test_text_streams_before_a_tool_call_is_complete() -> None:
    parser = ToolCallStreamParser()
    assert parser.feed("The answer") == ["The answer"]
    assert parser.feed(" is <|pyth") == [" is "]  # the possible marker start is held back
    assert parser.feed("on_tag|>brave_search.call(") == [
        ToolCallDelta(content="", parse_status=ToolCallParseStatus.started),
        ToolCallDelta(content="<|python_tag|>brave_search.call(", parse_status=ToolCallParseStatus.in_progress),
    ]  # the call streams as it is generated
    assert parser.feed('query="x")') == [
        ToolCallDelta(content='query="x")', parse_status=ToolCallParseStatus.in_progress)
    ]
    events = parser.finish()
    assert [e.parse_status for e in events if isinstance(e, ToolCallDelta)] == [ToolCallParseStatus.success]


def test_an_answer_opening_with_a_brace_is_decided_by_its_first_characters() -> None:
    """A JSON tool call streams from its first key on; a JSON answer that is no call streams as
    text from its first key on: neither waits for the end of the generation."""
    call = '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}'
    parser = ToolCallStreamParser()
    events = [event for char in call[:8] for event in parser.feed(char)]
    assert events[0] == ToolCallDelta(content="", parse_status=ToolCallParseStatus.started)
    assert "".join(str(e.content) for e in events[1:] if isinstance(e, ToolCallDelta)) == call[:8]

    parser = ToolCallStreamParser()
    assert [event for char in '{"ans' for event in parser.feed(char)] == ['{"a', "n", "s"]
    assert parser.feed('wer": 42}') == ['wer": 42}']
    assert parser.finish() == [] and parser.content == '{"answer": 42}'

    parser = ToolCallStreamParser()
    assert parser.feed("[1") == ["[1"]
