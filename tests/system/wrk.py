"""The load test's second client: wrk (a C load generator), with a Lua script that alternates the
two faces' streaming requests and checks each body's end, so that the server, not the client, is
the bottleneck. Its counts come back through the Lua `done` hook."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRK_SCRIPT = """
local threads = {}
local n = 0
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; failed = 0; first = "" end
request = function()
  n = n + 1
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = AUTHORIZATION}
  if n % 2 == 0 then return wrk.format("POST", "/v1/chat/completions", headers, V1) end
  return wrk.format("POST", "/alpha/inference/chat-completion", headers, ALPHA)
end
response = function(status, headers, body)
  local complete = body:find("data: [DONE]", 1, true) or body:find('"event_type":"complete"', 1, true)
  if status == 200 and complete and not body:find('{"error":', 1, true) then
    ok = ok + 1
  else
    failed = failed + 1
    if first == "" then first = status .. " " .. body:sub(-200) end
  end
end
done = function(summary, latency, requests)
  local ok_all, failed_all, first_all = 0, 0, ""
  for _, thread in ipairs(threads) do
    ok_all = ok_all + thread:get("ok"); failed_all = failed_all + thread:get("failed")
    if first_all == "" then first_all = thread:get("first") end
  end
  io.write(string.format("CHECKED ok=%d failed=%d\\n", ok_all, failed_all))
  if first_all ~= "" then io.write("FIRST " .. first_all .. "\\n") end
end
"""


@dataclass
class WrkResult:
    ok: int = 0
    failed: int = 0
    socket_errors: str = ""
    first_failure: str = ""


def wrk_load(
    base_url: str,
    clients: int,
    seconds: float,
    scratch: Path,
    v1_body: dict[str, Any],
    alpha_body: dict[str, Any],
    authorization: str = "",
) -> WrkResult | None:
    """Streams from wrk for `seconds`, alternating the two bodies; None when wrk is not installed."""
    if shutil.which("wrk") is None:
        return None
    script = scratch / "streams.lua"
    v1 = json.dumps(v1_body)
    alpha = json.dumps(alpha_body)
    header = f"AUTHORIZATION = {json.dumps(authorization)}\n"
    script.write_text(f"V1 = {json.dumps(v1)}\nALPHA = {json.dumps(alpha)}\n{header}{WRK_SCRIPT}")
    command = ["wrk", "-t2", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "60s", "-s", str(script)]
    output = subprocess.run([*command, base_url], capture_output=True, text=True, check=True).stdout
    result = WrkResult()
    if match := re.search(r"CHECKED ok=(\d+) failed=(\d+)", output):
        result.ok, result.failed = int(match.group(1)), int(match.group(2))
    if match := re.search(r"Socket errors: (.*)", output):
        result.socket_errors = match.group(1).strip()
    if match := re.search(r"FIRST (.*)", output):
        result.first_failure = match.group(1)
    return result
