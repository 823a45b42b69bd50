"""CodeShield on real code: insecure code is caught (weak password hashing, shell injection, eval,
unsafe deserialisation, SQL injection, C's gets), the same operations written safely pass, and
code is found in prose fences and code_interpreter calls. Each scan runs the real semgrep."""

from __future__ import annotations

from typing import Any

import pytest

from llama_stack.apis.safety import RunShieldRequest
from llama_stack.distribution.provider import Deps

pytest.importorskip("codeshield")

from llama_stack.providers.safety.code_scanner import CodeScannerConfig, get_provider_impl

INSECURE = {
    "md5 password hashing": (
        "import hashlib\n\ndef hash_password(password):\n    return hashlib.md5(password.encode()).hexdigest()\n",
        "CWE-328",
    ),
    "shell=True on user input": (
        "import subprocess\n\ndef list_dir(user_input):\n    subprocess.call('ls ' + user_input, shell=True)\n",
        "CWE-78",
    ),
    "os.system on user input": ("import os\n\ndef ping(host):\n    os.system('ping -c 1 ' + host)\n", "CWE-78"),
    "eval of user input": ("def calculate(expression):\n    return eval(expression)\n", "CWE-94"),
    "pickle of untrusted bytes": ("import pickle\n\ndef load(data):\n    return pickle.loads(data)\n", "CWE-502"),
    "SQL built by formatting": (
        "def find(cursor, name):\n    cursor.execute(\"SELECT * FROM users WHERE name = '%s'\" % name)\n",
        "CWE-89",
    ),
}
SAFE = {
    "bcrypt password hashing": (
        "import bcrypt\n\ndef hash_password(password):\n    return bcrypt.hashpw(password.encode(), bcrypt.gensalt())\n"
    ),
    "subprocess with an argument list": (
        "import subprocess\n\ndef list_dir(name):\n    subprocess.run(['ls', name], check=True)\n"
    ),
    "parameterised SQL": (
        "def find(cursor, name):\n    cursor.execute('SELECT * FROM users WHERE name = %s', (name,))\n"
    ),
    "plain prose": "Paris is the capital of France. It has about two million inhabitants.",
}


def message(role: str, content: str, **extra: Any) -> RunShieldRequest:
    return RunShieldRequest.model_validate(
        {
            "shield_id": "code",
            "messages": [{"role": "user", "content": "write code"}, {"role": role, "content": content, **extra}],
        }
    )


@pytest.fixture(scope="module")
async def scanner() -> Any:
    return await get_provider_impl(CodeScannerConfig(), Deps())


@pytest.mark.parametrize("name", INSECURE)
async def test_insecure_code_is_blocked(scanner: Any, name: str) -> None:
    code, cwe = INSECURE[name]
    violation = (await scanner.run_shield(message("assistant", f"Here you go:\n```python\n{code}```\n"))).violation
    assert violation is not None and violation.violation_level == "error"
    assert cwe in {issue["cwe_id"] for issue in violation.metadata["issues"]}
    assert cwe in (violation.user_message or "")


@pytest.mark.parametrize("name", SAFE)
async def test_safe_code_passes(scanner: Any, name: str) -> None:
    assert (await scanner.run_shield(message("assistant", SAFE[name]))).violation is None


async def test_unfenced_code_is_scanned_with_every_language(scanner: Any) -> None:
    code, _ = INSECURE["shell=True on user input"]
    violation = (await scanner.run_shield(message("user", code))).violation
    assert violation is not None and violation.metadata["violation_type"] == "insecure-subprocess-using-shell"


async def test_code_interpreter_calls_are_scanned(scanner: Any) -> None:
    code, _ = INSECURE["md5 password hashing"]
    call = {"call_id": "1", "tool_name": "code_interpreter", "arguments": {"code": code}}
    request = message("assistant", "", tool_calls=[call], stop_reason="end_of_message")
    violation = (await scanner.run_shield(request)).violation
    assert violation is not None and violation.metadata["issues"][0]["language"] == "python"


async def test_other_languages_by_their_fence(scanner: Any) -> None:
    c_code = "#include <stdio.h>\nint main(void) { char name[16]; gets(name); return 0; }\n"
    violation = (await scanner.run_shield(message("assistant", f"```c\n{c_code}```"))).violation
    assert violation is not None and violation.metadata["issues"][0]["cwe_id"] == "CWE-242"


async def test_block_severity_error_only_warns_on_warnings() -> None:
    strict_errors = await get_provider_impl(CodeScannerConfig(block_severity="error", self_test=False), Deps())
    code, _ = INSECURE["md5 password hashing"]
    violation = (await strict_errors.run_shield(message("assistant", f"```python\n{code}```"))).violation
    assert violation is not None and violation.violation_level == "warn"
    c_code = "#include <stdio.h>\nint main(void) { char name[16]; gets(name); return 0; }\n"
    violation = (await strict_errors.run_shield(message("assistant", f"```c\n{c_code}```"))).violation
    assert violation is not None and violation.violation_level == "error"  # CodeShield rates gets() an error


async def test_a_missing_semgrep_core_is_a_startup_error(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=r"semgrep_core_path: .* is not a file"):
        await get_provider_impl(CodeScannerConfig(semgrep_core_path=str(tmp_path / "nope")), Deps())
