"""Run one ``paybench`` command against tiny_server.py inside a network namespace of its own.

    unshare -n -- python tests/allowlist/netns_run.py SPEC.json RESULT.json

Meant to be started by ``netns.run_isolated``: the namespace has a loopback interface and
nothing else, so a request that would leave it (a redirect to ``elsewhere.invalid``, a name
lookup, ``192.0.2.1``) fails on the spot instead of reaching anything. SPEC names the
server's arguments, the paybench arguments (``{URL}`` stands for the server's URL), extra
environment and a timeout; RESULT gets paybench's exit code, stdout, stderr and what the
server saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from tests.loopback_only import loopback_up  # noqa: E402  (ROOT first on the path)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    result_path = Path(sys.argv[2])
    loopback_up()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "tiny_server.py"), *spec.get("server_args", [])],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        if not line.startswith("PORT "):
            raise SystemExit(f"tiny_server did not start: {line!r}")
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        args = [a.replace("{URL}", url) for a in spec["paybench_args"]]
        env = {**os.environ, "COLUMNS": "120", **spec.get("env", {})}
        done = subprocess.run(
            [sys.executable, "-m", "harness", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=spec.get("timeout_s", 120),
        )
        with urllib.request.urlopen(url + "/__seen", timeout=10) as response:
            seen = json.load(response)
        result = {
            "url": url,
            "returncode": done.returncode,
            "stdout": done.stdout,
            "stderr": done.stderr,
            "seen": seen,
        }
        result_path.write_text(json.dumps(result), encoding="utf-8")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
