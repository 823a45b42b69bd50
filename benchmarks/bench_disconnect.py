"""How soon a client's hang-up frees a generation: a client starts a long stream (the fake OpenAI
backend's `slow` mode: 2,000 tokens, one per 10 ms), reads 5 frames, and closes the connection;
the release time runs from the hang-up to the moment the backend shows no stream open. The
baseline hangs up on the backend directly; the stack row hangs up on a stack whose remote::vllm
provider streams from that backend, so the difference is what the stack adds to propagate the
hang-up to its upstream request. (tests/system/test_disconnect.py asserts that the generation
is freed, for three providers; this prints how fast.)

    python -m benchmarks.bench_disconnect [--repeats 20]

The backend's open streams are polled over HTTP every 2 ms: the figures include up to that.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import MODEL, fake_backend, percentile, ratio, remote_vllm_config, stack, table

FRAMES_BEFORE_HANGUP = 5


def open_streams(backend_url: str) -> int:
    return int(httpx.get(f"{backend_url}/fake/stats", timeout=5).json()["open_streams"])


def release_ms(base_url: str, path: str, body: dict[str, Any], backend_url: str) -> float:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        with http.stream("POST", path, json=body) as response:
            response.raise_for_status()
            frames = 0
            for line in response.iter_lines():
                frames += line.startswith("data:")
                if frames >= FRAMES_BEFORE_HANGUP:
                    hung_up = time.perf_counter()
                    break  # leaving the iterator and the block closes the connection: the hang-up
    while open_streams(backend_url) > 0:
        if time.perf_counter() - hung_up > 30:
            raise SystemExit(f"{base_url}{path}: the stream was not released within 30 s")
        time.sleep(0.002)
    return (time.perf_counter() - hung_up) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="hang-ups per row")
    args = parser.parse_args()
    prompt = [{"role": "user", "content": "tell a long story [[fake:slow]]"}]
    v1 = {"model": MODEL, "messages": prompt, "stream": True}
    alpha = {"model_id": MODEL, "messages": prompt, "stream": True}
    with tempfile.TemporaryDirectory(prefix="bench-disconnect-") as state, fake_backend(core=1) as backend:
        with stack(remote_vllm_config(backend.url, Path(state)), core=0) as server:
            cases = [
                ("backend direct (/v1)", backend.url, "/v1/chat/completions", v1),
                ("through the stack, /v1", server.url, "/v1/chat/completions", v1),
                ("through the stack, /alpha", server.url, "/alpha/inference/chat-completion", alpha),
            ]
            samples = {
                name: [release_ms(url, path, body, backend.url) for _ in range(args.repeats)]
                for name, url, path, body in cases
            }
    baseline = statistics.median(samples[cases[0][0]])
    rows = []
    for name, ms in samples.items():
        median = statistics.median(ms)
        rows.append([name, f"{median:.1f}", ratio(median, baseline), f"{percentile(ms, 0.9):.1f}", f"{max(ms):.1f}"])
    print(f"release time after a client hangs up mid-stream ({args.repeats} hang-ups per row; ms)")
    print(table(["", "median", "vs direct", "p90", "max"], rows))


if __name__ == "__main__":
    main()
