"""docs/target.md: the curl walk through the checkout runs as written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.target.conftest import Running

DOC = Path(__file__).parents[2] / "docs" / "target.md"


def _walk_script() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Walk the checkout by hand with curl", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert blocks[0].strip() == "paybench target serve --port 8000"
    return blocks[1]


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "curl", "sha256sum", "python3")),
    reason="the documented walk needs bash, curl, sha256sum and python3",
)
def test_the_documented_curl_walk_completes_a_checkout(target: Running) -> None:
    script = _walk_script().replace("http://127.0.0.1:8000", target.url)
    assert target.url in script
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line.get("status") for line in lines[:1]] == ["healthy"]
    order, webhook, status, subscription = lines[2], lines[3], lines[4], lines[5]
    assert order["state"] == "PENDING"
    assert webhook["result"] == "processed"
    assert status["state"] == "COMPLETED"
    assert status["merchant_order_id"] == order["merchant_order_id"]
    assert subscription["status"] == "ACTIVE"
    assert subscription["merchant_order_id"] == order["merchant_order_id"]
