"""docker-compose.yml agrees with the code: every command a real `replaylens` subcommand, every
REPLAYLENS_* variable a setting with a valid value, the workers' healthchecks on /health at the
port the settings give, and the image holds every package."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from replaylens.cli import build_parser
from replaylens.config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if svc.get("build")}
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def subcommands() -> set[str]:
    parser = build_parser()
    [action] = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return set(action.choices)


def resolved_env(svc: dict) -> dict[str, str]:
    """The service's environment with ${VAR:-default} replaced by its default."""
    return {k: INTERPOLATION.sub(lambda m: m.group(2) or "", str(v)) for k, v in (svc.get("environment") or {}).items()}


def settings_of(svc: dict) -> Settings:
    values = {k[len("REPLAYLENS_"):].lower(): v for k, v in resolved_env(svc).items() if k.startswith("REPLAYLENS_")}
    return Settings(**values)


def test_the_image_runs_replaylens_and_copies_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["replaylens"]' in dockerfile
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    copied = set(re.findall(r"^COPY (\S+) \1$", dockerfile, re.MULTILINE))
    assert set(package_dirs.values()) <= copied, set(package_dirs.values()) - copied


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_command_is_a_replaylens_subcommand(name):
    command = OURS[name].get("command") or ["worker"]  # the Dockerfile's CMD
    assert command[0] in subcommands(), f"{name}: `replaylens {command[0]}` does not exist"
    build_parser().parse_args(command)  # and its arguments parse


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_variable_is_a_setting_with_a_valid_value(name):
    env = OURS[name].get("environment") or {}
    fields = {f"REPLAYLENS_{f.upper()}" for f in Settings.model_fields}
    ours = [k for k in env if k.startswith("REPLAYLENS_")]
    assert ours and not set(ours) - fields, f"{name}: unknown settings {set(ours) - fields}"
    interpolated = {m.group(1) for v in env.values() for m in INTERPOLATION.finditer(str(v))}
    assert not {v for v in interpolated if v.startswith("REPLAYLENS_")} - fields
    settings_of(OURS[name])  # every value passes the settings' validation


def test_workers_use_health_as_their_healthcheck_on_the_settings_port():
    workers = {n: s for n, s in OURS.items() if (s.get("command") or ["worker"])[0] == "worker"}
    assert len(workers) >= 2
    for name, svc in workers.items():
        s = settings_of(svc)
        assert s.metrics_port, f"{name}: REPLAYLENS_METRICS_PORT is 0: no /health to check"
        check = svc.get("healthcheck", {}).get("test")
        assert check, f"{name} has no healthcheck"
        argv = check[1:] if check[0] == "CMD" else check[1].split()
        if argv[0] == "replaylens":
            assert argv[1] == "health" and argv[1] in subcommands()
        else:  # a URL written out must use the settings' port and /health
            assert f":{s.metrics_port}/health" in " ".join(argv), check
        for port in re.findall(r":(\d{2,5})\b", " ".join(argv)):
            assert int(port) == s.metrics_port
        exposed = {int(str(p).split(":")[-1]) for p in svc.get("expose", []) + svc.get("ports", [])}
        assert s.metrics_port in exposed, f"{name}: metrics port {s.metrics_port} not exposed"
