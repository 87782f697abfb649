"""docker-compose.yml and the Dockerfile, checked against the code (no Docker engine runs
here): every command is a real ``bulktag`` subcommand whose options the CLI accepts, every
environment variable is one the code reads, the worker service can be scaled, Redis keeps an
append-only file, and the image holds every package and no credentials.

``deployment_problems`` returns what is wrong instead of asserting, so that the tests at the
end can show it does catch a bad option, variable or fixed port.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from bulktag.cli import build_parser
from emulator import cli as emulator_cli

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SERVICES = {"redis", "worker", "scheduler", "dashboard", "emulator"}
EXPECTED_COMMAND = {
    "worker": "worker",
    "scheduler": "scheduler",
    "dashboard": "dashboard",
    "emulator": "emulator",
}
CREDENTIALS_MOUNT = "/run/secrets/bulktag-credentials"
# ${VAR} or ${VAR:-default} (compose interpolation); bare ${VAR} has no default to check.
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def dockerfile_instruction(name: str) -> list[str]:
    """The JSON (exec) form of the last ENTRYPOINT or CMD; a shell form is a problem."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if ln.startswith(f"{name} ")]
    assert lines, f"Dockerfile has no {name}"
    value = json.loads(lines[-1][len(name) + 1 :])
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with the default, as an unconfigured ``up`` would run."""

    def default(match: re.Match[str]) -> str:
        if match.group(2) is None:
            raise ValueError(f"{match.group(0)} has no default")
        return match.group(2)

    return INTERPOLATION.sub(default, value)


def source_text() -> str:
    """Every Python source of the shipped packages (where environment variables are read)."""
    packages = ("bulktag", "producer", "worker", "providers", "emulator", "dashboard", "compliance")
    return "\n".join(p.read_text() for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def parse_cli(argv: list[str]) -> tuple[argparse.Namespace | None, str]:
    """``build_parser().parse_args(argv)``: the namespace, or None and argparse's message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(argv), ""
        except SystemExit:
            return None, err.getvalue().strip().splitlines()[-1] if err.getvalue() else "exit"


def uses_bulktag_image(service: dict[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("bulktag")


def service_problems(name: str, service: dict[str, Any], sources: str) -> list[str]:
    problems: list[str] = []
    command = service.get("command")
    if isinstance(command, str):
        command = shlex.split(command)
    if not isinstance(command, list) or not command:
        return [f"{name}: no command"]
    try:
        argv = dockerfile_instruction("ENTRYPOINT")[1:] + [interpolate(str(c)) for c in command]
    except ValueError as exc:
        return [f"{name}: {exc}"]
    args, error = parse_cli(argv)
    if args is None:
        return [f"{name}: bulktag {' '.join(argv)}: {error}"]
    if args.command != EXPECTED_COMMAND.get(name, args.command):
        problems.append(f"{name}: runs 'bulktag {args.command}', not {EXPECTED_COMMAND[name]}")
    if args.command == "emulator":
        # The emulator checks its option values after parsing (they are strings to argparse).
        try:
            emulator_cli.options(args)
        except (emulator_cli.UsageError, ValueError) as exc:
            problems.append(f"{name}: bulktag {' '.join(argv)}: {exc}")
    if args.command == "worker" and args.processes < 1:
        problems.append(f"{name}: --processes must be at least 1")
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    for variable in environment:
        if f'"{variable}"' not in sources:
            problems.append(f"{name}: environment variable {variable} is read nowhere in the code")
    if args.command != "emulator" and "BULKTAG_REDIS_URL" not in environment:
        has_url = "--redis-url" in argv
        if not has_url:
            problems.append(f"{name}: neither BULKTAG_REDIS_URL nor --redis-url is set")
    return problems


def deployment_problems(compose: dict[str, Any]) -> list[str]:
    """Everything wrong with a parsed compose file, as messages (empty: all good)."""
    problems: list[str] = []
    services: dict[str, Any] = compose.get("services") or {}
    missing = SERVICES - set(services)
    if missing:
        problems.append(f"services missing: {', '.join(sorted(missing))}")
    sources = source_text()
    for name, service in services.items():
        for dependency in service.get("depends_on") or []:
            if dependency not in services:
                problems.append(f"{name}: depends on unknown service {dependency}")
        if uses_bulktag_image(service):
            problems += service_problems(name, service, sources)
    worker = services.get("worker", {})
    for fixed in ("container_name", "ports", "hostname"):
        if fixed in worker:
            problems.append(f"worker: '{fixed}' is fixed, so --scale worker=N cannot start N")
    if CREDENTIALS_MOUNT.rsplit("/", 1)[1] not in (worker.get("secrets") or []):
        problems.append("worker: the credentials file is not mounted (secrets)")
    redis = services.get("redis", {})
    redis_command = " ".join(map(str, redis.get("command") or []))
    if not str(redis.get("image", "")).startswith("redis:"):
        problems.append("redis: not the official redis image")
    if "--appendonly yes" not in redis_command or "--appendfsync everysec" not in redis_command:
        problems.append("redis: AOF with appendfsync everysec is not on")
    if not any(str(v).endswith(":/data") for v in redis.get("volumes") or []):
        problems.append("redis: /data is not on a volume (the AOF would die with the container)")
    return problems


# --- the real files ---------------------------------------------------------------------------


def test_compose_file_has_no_problem() -> None:
    assert deployment_problems(load_compose()) == []


def test_every_image_service_runs_a_bulktag_subcommand_the_readme_documents() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, service in load_compose()["services"].items():
        if uses_bulktag_image(service):
            assert f"bulktag {EXPECTED_COMMAND[name]}" in readme, name


def test_services_that_can_be_checked_have_healthchecks() -> None:
    services = load_compose()["services"]
    for name in ("redis", "dashboard", "emulator"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    waits = services["worker"]["depends_on"]["redis"]
    assert waits == {"condition": "service_healthy"}


def test_dockerfile_entrypoint_is_bulktag_and_its_default_cmd_parses() -> None:
    assert dockerfile_instruction("ENTRYPOINT") == ["bulktag"]
    args, error = parse_cli(dockerfile_instruction("CMD"))
    assert args is not None, error


def test_image_holds_every_package_and_no_credentials() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    dockerfile = DOCKERFILE.read_text()
    copied = set(re.findall(r"^COPY (\S+) \./\1$", dockerfile, re.MULTILINE))
    assert packages <= copied, f"not copied into the image: {packages - copied}"
    ignored = DOCKERIGNORE.read_text().splitlines()
    assert "*" in ignored and all(f"!{p}/" in ignored for p in packages)
    assert "**/credentials*.toml" in ignored
    # No secret in the image: only the path of the mounted file is set.
    for line in dockerfile.splitlines():
        assert not re.search(r"(SECRET|_SK\b|TOKEN|PASSWORD|ACCESS_KEY)", line.split("#")[0]), line
    assert f"BULKTAG_CREDENTIALS_FILE={CREDENTIALS_MOUNT}" in dockerfile
    assert load_compose()["secrets"]["bulktag-credentials"]["file"]


# --- the checker catches what it should ---------------------------------------------------------


def _broken(change: Any) -> list[str]:
    compose = copy.deepcopy(load_compose())
    change(compose["services"])
    return deployment_problems(compose)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s["worker"]["command"].append("--procs"), "unrecognized arguments: --procs"),
        (lambda s: s["scheduler"].update(command=["schedular"]), "invalid choice: 'schedular'"),
        (lambda s: s["dashboard"]["command"].extend(["--port", "x"]), "invalid int value"),
        (lambda s: s["emulator"]["command"].remove("--allow-remote"), "not a loopback address"),
        (lambda s: s["emulator"]["command"].extend(["--generate", "aws:x:key:1"]), "--generate"),
        (lambda s: s["worker"].update(command=["worker", "--processes", "${N}"]), "no default"),
        (lambda s: s["worker"]["environment"].update(BULKTAG_REDIS="x"), "read nowhere"),
        (lambda s: s["worker"]["environment"].pop("BULKTAG_REDIS_URL"), "BULKTAG_REDIS_URL"),
        (lambda s: s["worker"].update(container_name="w"), "'container_name' is fixed"),
        (lambda s: s["worker"].update(ports=["9000:9000"]), "'ports' is fixed"),
        (lambda s: s["worker"].pop("secrets"), "credentials file is not mounted"),
        (lambda s: s["redis"]["command"].remove("everysec"), "AOF"),
        (lambda s: s["redis"].pop("volumes"), "not on a volume"),
        (lambda s: s.pop("scheduler"), "services missing: scheduler"),
    ],
    ids=[
        "bad-option",
        "bad-subcommand",
        "bad-value",
        "emulator-remote",
        "emulator-value",
        "no-default",
        "unknown-env",
        "no-redis-url",
        "container-name",
        "worker-ports",
        "no-credentials",
        "no-fsync",
        "no-volume",
        "missing-service",
    ],
)
def test_checker_reports_a_broken_compose_file(change: Any, expected: str) -> None:
    problems = _broken(change)
    assert any(expected in p for p in problems), problems
