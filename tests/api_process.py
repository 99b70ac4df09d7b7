"""Run `replaylens api` as a real subprocess against the test broker, and talk to it."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from tests.worker_process import ROOT

LISTENING = re.compile(r"listening on (http://\S+)")
START_TIMEOUT_S = 60
TEST_KEY = "test-key-0123456789"
READ_ONLY_KEY = "read-only-key-0123456789"


def api_env(pipeline: dict[str, str], data_dir: Path, **extra: Any) -> dict[str, str]:
    """The API's settings on top of a pipeline's: its own DuckDB file, keys, loopback webhooks."""
    prefix = pipeline["REPLAYLENS_APP_ID"].removesuffix("-app")
    data_dir.mkdir(parents=True, exist_ok=True)
    keys_file = data_dir / "keys.txt"
    keys_file.write_text(f"# test keys\n{READ_ONLY_KEY} read\n")
    env = dict(pipeline)
    env.update({
        "REPLAYLENS_API_HOST": "127.0.0.1", "REPLAYLENS_API_PORT": "0",
        "REPLAYLENS_API_KEYS": TEST_KEY, "REPLAYLENS_API_KEYS_FILE": str(keys_file),
        "REPLAYLENS_API_DB_PATH": str(data_dir / "api.duckdb"),
        "REPLAYLENS_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32",
        "REPLAYLENS_WEBHOOK_BACKOFF_S": "0.05", "REPLAYLENS_WEBHOOK_MAX_BACKOFF_S": "0.2",
        "REPLAYLENS_WEBHOOK_TIMEOUT_S": "5",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def shared_topics(prefix: str) -> dict[str, str]:
    """Run-unique names of the topics the API and the workers share beyond the pipeline's."""
    return {"REPLAYLENS_TOPIC_PROFILES": f"{prefix}-profiles", "REPLAYLENS_TOPIC_FEEDBACK": f"{prefix}-feedback",
            "REPLAYLENS_TOPIC_WORKER_STATUS": f"{prefix}-worker-status",
            "REPLAYLENS_TOPIC_ALERT_RULES": f"{prefix}-alert-rules"}


class ApiProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.proc: Optional[subprocess.Popen] = None
        self.base_url = ""

    def start(self) -> "ApiProcess":
        self.log = open(self.log_path, "ab")
        self.offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen([sys.executable, "-m", "replaylens.cli", "api"], env=self.env,
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[self.offset:].decode(errors="replace")
            found = LISTENING.search(text)
            if found:
                self.base_url = found.group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"the API did not start:\n{self.tail()}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.log.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.close()

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""
