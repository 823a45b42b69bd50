"""schemathesis over both faces of a running server: it reads the app's /openapi.json and sends,
for every operation, cases generated to fit the schema and cases generated to break it (its
positive and negative modes). Every answer is tallied; a 5xx other than 501 (the designed "not
served" answer), a response that violates its declared schema, or an error outside its face's
envelope is a failure; a negative case the server accepts (2xx) is a note, not a failure.

Half of the cases get ids that exist on the server (the "echo" model, the "notes" bank, an
agent with a session, a turn and a step), so that they reach the providers rather than stop at
a 404.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.system.nasty_inputs import envelope_problem

SERVED_NOT = 501  # the designed answer for a feature a provider does not serve (docs/architecture.md)
CALL_TIMEOUT_S = 30.0


@dataclass
class RouteTally:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    schema_violations: int = 0
    bad_envelopes: int = 0
    negative_accepted: int = 0
    failures: int = 0


@dataclass
class Finding:
    route: str
    kind: str
    detail: str
    reproduce: str


# Ids that exist on the server. Half of the generated cases get them in place of the generated
# ids, so that cases reach the providers rather than stop at a 404 (never on routes that delete).
def known_ids(base_url: str, headers: dict[str, str]) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, timeout=30, headers=headers) as http:
        config = {"model": "echo", "instructions": "be brief", "enable_session_persistence": True}
        agent_id = http.post("/alpha/agents/create", json={"agent_config": config}).json()["agent_id"]
        session = http.post("/alpha/agents/session/create", json={"agent_id": agent_id, "session_name": "fuzz"})
        session_id = session.json()["session_id"]
        messages = [{"role": "user", "content": "hello"}]
        turn_body = {"agent_id": agent_id, "session_id": session_id, "messages": messages, "stream": False}
        turn = http.post("/alpha/agents/turn/create", json=turn_body).json()
    return {
        "model": "echo",
        "model_id": "echo",
        "identifier": "echo",
        "shield_id": "llama_guard",
        "bank_id": "notes",
        "memory_bank_id": "notes",
        "embedding_model": "embedder",
        "agent_id": agent_id,
        "session_id": session_id,
        "turn_id": turn["turn_id"],
        "turn_ids": [turn["turn_id"]],
        "step_id": turn["steps"][0]["step_id"],
    }


# Routes that read their parameters from the query or the body by hand (the 0.0.63 client sends
# query parameters where its server wanted a body), so FastAPI declares no parameter for them.
# They get their request model's schema here, so that schemathesis exercises them too.
def hand_parsed_routes() -> dict[str, Any]:
    from llama_stack.apis.agents import GetSessionRequest, SessionRef, StepRef, TurnRef

    return {
        "/alpha/agents/session/get": GetSessionRequest,
        "/alpha/agents/session/delete": SessionRef,
        "/alpha/agents/turn/get": TurnRef,
        "/alpha/agents/step/get": StepRef,
    }


def with_hand_parsed_parameters(spec: dict[str, Any]) -> dict[str, Any]:
    for path, model in hand_parsed_routes().items():
        schema = model.model_json_schema()
        for method, operation in spec["paths"].get(path, {}).items():
            if operation.get("parameters") or operation.get("requestBody"):
                continue  # declared by the app after all: use that
            if method == "get":
                required = set(schema.get("required", []))
                operation["parameters"] = [
                    {"name": name, "in": "query", "required": name in required, "schema": field}
                    for name, field in schema["properties"].items()
                ]
            else:
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return spec


def with_known_ids(case: Any, ids: dict[str, Any]) -> None:
    if any(verb in case.path for verb in ("delete", "unregister")):
        return
    substitutes = dict(ids)
    if "embeddings" in case.path:
        substitutes.update(model="embedder", model_id="embedder")
    if "shields" in case.path:
        substitutes.update(identifier="llama_guard")
    for container in (case.body, case.query):
        if isinstance(container, dict):
            for key in container.keys() & substitutes.keys():
                container[key] = substitutes[key]


class Fuzzer:
    """Runs schemathesis' cases of every operation against the server and tallies the answers."""

    def __init__(self, base_url: str, examples: int, seed: int, headers: dict[str, str]) -> None:
        import requests

        self.base_url = base_url
        self.examples = examples
        self.seed = seed
        self.session = requests.Session()
        self.session.headers.update(headers)
        self.ids = known_ids(base_url, headers)
        self.tallies: dict[str, RouteTally] = defaultdict(RouteTally)
        self.failures: list[Finding] = []
        self.accepted: list[Finding] = []  # negative cases answered 2xx: notes, not failures

    def run(self) -> None:
        import schemathesis
        from hypothesis.errors import Unsatisfiable
        from schemathesis import GenerationMode
        from schemathesis.core.result import Err

        spec = with_hand_parsed_parameters(httpx.get(f"{self.base_url}/openapi.json", timeout=30).json())
        for result in schemathesis.openapi.from_dict(spec).get_all_operations():
            if isinstance(result, Err):
                raise RuntimeError(f"schemathesis cannot read an operation of /openapi.json: {result.err()}")
            operation = result.ok()
            for mode in GenerationMode:
                try:
                    self._operation(operation, mode)()
                except Unsatisfiable:
                    pass  # an operation without parameters has no invalid variant to generate

    def _operation(self, operation: Any, mode: Any) -> Any:
        from hypothesis import HealthCheck, Phase, given, seed, settings
        from hypothesis import strategies as st
        from schemathesis import GenerationMode

        negative = mode is GenerationMode.NEGATIVE

        @seed(self.seed)
        @settings(
            max_examples=self.examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        )
        @given(case=operation.as_strategy(generation_mode=mode), known=st.booleans())
        def one(case: Any, known: bool) -> None:
            if known:
                with_known_ids(case, self.ids)
            self._case(case, negative)

        return one

    def _fail(self, route: str, kind: str, detail: str, reproduce: str) -> None:
        self.tallies[route].failures += 1
        self.failures.append(Finding(route, kind, detail, reproduce))

    def _case(self, case: Any, negative: bool) -> None:
        import requests
        from schemathesis.core.failures import Failure, FailureGroup
        from schemathesis.specs.openapi.checks import negative_data_rejection, response_schema_conformance

        def failures_of(error: BaseException) -> list[Failure]:
            if isinstance(error, FailureGroup):
                return [e for e in error.exceptions if isinstance(e, Failure)]
            return [error] if isinstance(error, Failure) else []

        route = case.operation.label
        tally = self.tallies[route]
        reproduce = case.as_curl_command(base_url=self.base_url)
        tally.cases += 1
        try:
            response = case.call(base_url=self.base_url, session=self.session, timeout=CALL_TIMEOUT_S)
        except requests.RequestException as e:
            self._fail(route, "no answer", repr(e), reproduce)
            return
        tally.statuses[response.status_code] += 1
        if response.status_code >= 500 and response.status_code != SERVED_NOT:
            self._fail(route, f"HTTP {response.status_code}", response.text[:500], reproduce)
        problem = envelope_problem(case.path, response.status_code, response.content)
        if problem is not None:
            tally.bad_envelopes += 1
            self._fail(route, "error envelope", problem, reproduce)
        try:
            case.validate_response(response, checks=[response_schema_conformance])
        except (Failure, FailureGroup) as e:
            for failure in failures_of(e):
                tally.schema_violations += 1
                self._fail(route, failure.title, failure.message[:800], reproduce)
        if negative:
            try:
                case.validate_response(response, checks=[negative_data_rejection])
            except (Failure, FailureGroup) as e:
                tally.negative_accepted += 1
                detail = "; ".join(f.message.splitlines()[0] for f in failures_of(e) if f.message)[:300]
                self.accepted.append(Finding(route, "negative case accepted", detail, reproduce))


def failure_report(failures: list[Finding]) -> str:
    """Each kind of failure once, with its shortest curl reproduction."""
    groups: dict[tuple[str, str, str], list[Finding]] = defaultdict(list)
    for finding in failures:
        groups[(finding.route, finding.kind, finding.detail.splitlines()[0] if finding.detail else "")].append(finding)
    lines = []
    for (route, kind, _), found in groups.items():
        shortest = min(found, key=lambda f: len(f.reproduce))
        lines.append(f"{route}: {kind} ({len(found)} cases)\n  {shortest.detail}\n  reproduce: {shortest.reproduce}")
    return "\n".join(lines)
