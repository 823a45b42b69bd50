"""Proof: bad input never makes the server fail (5xx) or answer outside its declared schema.

Starts a stack server (its own process) that serves every API with scripted providers: a scripted
chat model ("echo", tests/scripted.py), a scripted Llama Guard behind the real llama_guard shield,
FAISS memory over scripted embeddings, the meta-reference agents. Then:

1. schemathesis reads the app's /openapi.json (both faces, /alpha and /v1) and sends, for every
   operation, --examples cases generated to fit the schema and --examples generated to break it
   (schemathesis' positive and negative modes). Fails on any 5xx answer (501, the designed
   "not served" answer, is counted apart) and any response-schema violation where a response is
   declared; a negative case the server accepts (2xx) is reported, not failed. Prints counts per
   route and every failure with a curl line that reproduces it.
2. A hand-written set of nasty inputs (huge numbers, deep nesting, invalid UTF-8, lone
   surrogates, wrong content types, empty and 10 MB bodies, NUL bytes, bad max_tokens, unknown
   roles, image and document URLs to unreachable hosts...) each with the status it must get.
3. The server is still up and logged no traceback.

    python -m scripts.prove_bad_input [--examples 60] [--seed 1] [--short] [--keep]

Exit status 0 when the proof holds, 1 when it does not.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scripts.prove_common import StackServer, Verdict, print_tracebacks, scratch_dir, table
from scripts.prove_nasty_inputs import envelope_problem, prove_nasty

SERVED_NOT = 501  # the designed answer for a feature a provider does not serve (docs/architecture.md)
CALL_TIMEOUT_S = 30.0


def run_config(state: Path) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "prove-bad-input",
        "providers": {
            "inference": [
                {"provider_id": "scripted", "provider_type": "test::scripted", "config": {}},
                {"provider_id": "guard", "provider_type": "test::scripted-llama-guard", "config": {}},
            ],
            "safety": [{"provider_id": "llama-guard", "provider_type": "inline::llama-guard", "config": {}}],
            "memory": [
                {
                    "provider_id": "faiss",
                    "provider_type": "inline::faiss",
                    "config": {"persist_dir": str(state / "faiss"), "ingestion": {"fetch_timeout_s": 5}},
                }
            ],
            "agents": [
                {
                    "provider_id": "agents",
                    "provider_type": "inline::meta-reference",
                    "config": {"persistence_store": {"type": "sqlite", "db_path": str(state / "agents.db")}},
                }
            ],
        },
        "metadata_store": {"type": "sqlite", "db_path": str(state / "registry.db")},
        "models": [
            {"model_id": "echo", "provider_id": "scripted"},
            {
                "model_id": "embedder",
                "provider_id": "scripted",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 2},
            },
            {"model_id": "Llama-Guard-3-1B", "provider_id": "guard"},
            {"model_id": "Llama-Guard-3-11B-Vision", "provider_id": "guard"},
        ],
        "shields": [{"shield_id": "llama_guard", "provider_id": "llama-guard"}],
        "memory_banks": [
            {
                "memory_bank_id": "notes",
                "params": {"memory_bank_type": "vector", "embedding_model": "embedder", "chunk_size_in_tokens": 64},
            }
        ],
    }


# --- 1. schemathesis ---------------------------------------------------------------------------


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
def known_ids(base_url: str) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
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

    def __init__(self, base_url: str, examples: int, seed: int) -> None:
        import requests

        self.base_url = base_url
        self.examples = examples
        self.seed = seed
        self.session = requests.Session()
        self.ids = known_ids(base_url)
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
                raise SystemExit(f"schemathesis cannot read an operation of /openapi.json: {result.err()}")
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


def print_fuzz(tallies: dict[str, RouteTally], failures: list[Finding], accepted: list[Finding], took: float) -> None:
    rows = []
    for route, t in sorted(tallies.items(), key=lambda item: item[0].split(" ", 1)[1]):
        s = t.statuses
        rows.append(
            [
                route,
                t.cases,
                sum(n for code, n in s.items() if code < 300),
                sum(n for code, n in s.items() if 400 <= code < 500),
                s[SERVED_NOT],
                sum(n for code, n in s.items() if code >= 500 and code != SERVED_NOT),
                t.schema_violations,
                t.bad_envelopes,
                t.negative_accepted,
                " ".join(f"{code}:{n}" for code, n in sorted(s.items())),
            ]
        )
    total = sum(t.cases for t in tallies.values())
    print(f"\n1. schemathesis: {total} cases over {len(tallies)} operations in {took:.0f}s ({total / took:.0f}/s)")
    headers = ["operation", "cases", "2xx", "4xx", "501", "5xx", "schema", "envelope", "neg-ok", "statuses"]
    print(table(headers, rows))
    if accepted:
        print(
            f"\nnegative cases the server accepted (2xx; not a failure — the server is laxer than its schema): "
            f"{len(accepted)}; the first of each operation:"
        )
        seen: set[str] = set()
        for note in accepted:
            if note.route not in seen:
                seen.add(note.route)
                print(f"  {note.route}: {note.detail}\n    {note.reproduce[:400]}")
    groups: dict[tuple[str, str, str], list[Finding]] = defaultdict(list)
    for finding in failures:
        groups[(finding.route, finding.kind, finding.detail.splitlines()[0] if finding.detail else "")].append(finding)
    for (route, kind, _), found in groups.items():
        shortest = min(found, key=lambda f: len(f.reproduce))
        print(f"\nFAILURE {route}: {kind} ({len(found)} cases; the shortest reproduction)")
        print(f"  {shortest.detail}\n  reproduce: {shortest.reproduce}")


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=60, help="cases per operation and mode (positive, negative)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--short", action="store_true", help="a quick run for the test tier (4 examples)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (server log, state)")
    args = parser.parse_args()
    examples = 4 if args.short else args.examples
    verdict = Verdict()
    with scratch_dir("prove-bad-input-", keep=args.keep) as scratch:
        server = StackServer(run_config(scratch), scratch).start()
        try:
            started = time.perf_counter()
            fuzzer = Fuzzer(server.url, examples, args.seed)
            fuzzer.run()
            tallies, failures, accepted = fuzzer.tallies, fuzzer.failures, fuzzer.accepted
            print_fuzz(tallies, failures, accepted, time.perf_counter() - started)
            total = sum(t.cases for t in tallies.values())
            faces = {route.split(" ", 1)[1].split("/")[1] for route in tallies}
            verdict.check("both faces are in the schema", {"alpha", "v1"} <= faces, ", ".join(sorted(faces)))
            fives = sum(1 for f in failures if f.kind.startswith("HTTP 5") or f.kind == "no answer")
            schema = sum(t.schema_violations for t in tallies.values())
            verdict.check(f"schemathesis: no 5xx (other than 501) in {total} cases", fives == 0, f"{fives} found")
            verdict.check("schemathesis: no response-schema violation", schema == 0, f"{schema} found")
            envelopes = sum(t.bad_envelopes for t in tallies.values())
            verdict.check("schemathesis: every error in its face's envelope", envelopes == 0, f"{envelopes} found")
            prove_nasty(server.url, verdict)
            verdict.check(
                "the server still answers", server.alive() and httpx.get(f"{server.url}/alpha/health").is_success
            )
        finally:
            server.stop()
        tracebacks = server.tracebacks()
        print_tracebacks(tracebacks)
        verdict.check("the server logged no traceback", not tracebacks, f"{len(tracebacks)} logged")
    return verdict.report("bad input")


if __name__ == "__main__":
    raise SystemExit(main())
