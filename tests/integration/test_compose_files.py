"""docker-compose.yml and deploy/Dockerfile, checked without a Docker engine.

Why: CI has no Docker daemon, so `docker compose up` never runs here, and a compose file that Docker
refuses, a bind mount of a file that is not in the repository, a Dockerfile COPY of a path the build
context does not hold (or that .dockerignore drops), a floating image tag or a healthcheck probing a
wrong URL would only show up on an operator's machine. So:

* the compose file, with its variables interpolated as Compose does in an environment that sets only
  the one it requires (:data:`REQUIRED`, the inbox token), is validated against the official Compose Specification JSON schema (vendored in tests/data/compose-spec);
* every host path it names exists, and every container path a service is told about (``--config.file``,
  ``*_PATH`` variables) lies in a mount whose host side exists;
* every COPY/ADD source of the Dockerfile is in the build context once .dockerignore is applied;
* every image is pinned to an exact version, every long-running service has a healthcheck, the worker
  service can be scaled (no host port, no fixed name or hostname, no advertised host);
* the healthcheck commands themselves are run against real servers: the inbox's against the inbox web
  app, Prometheus' and Alertmanager's against the Debian binaries (the worker's: tests/integration/
  test_routing.py, against real workers).

tests/integration/test_deploy_files.py checks the Prometheus, alert rule and Grafana files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extras: pip install -e '.[test]'")
jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extras: pip install -e '.[test]'")

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PROM_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
SCHEMA = REPO / "tests" / "data" / "compose-spec" / "compose-spec.json"
#: sha256 of the vendored schema (tests/data/compose-spec/README.md says where it comes from)
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"

#: Variables the compose file requires (``${NAME:?message}``: compose stops with the message while they
#: are unset) and the values the checks here use for them. The inbox token cannot have a default: a
#: default would be a password everybody knows, and the inbox and worker web refuse to listen on
#: 0.0.0.0 without one.
REQUIRED = {"CHURNWATCH_INBOX_TOKEN": "compose-check-token-0123456789"}
#: Long-running services; the others are one-shot jobs that must run to completion.
ONE_SHOT = {"topics"}
#: Paths the compose file may name before they exist in a checkout (reported as a skip, not a failure).
#: None now: deploy/alertmanager/alertmanager.yml, the last one, is written and checked like every path.
AWAITED: set[str] = set()


def _report_missing(missing: list[tuple[str, Path]]) -> None:
    """Fail on missing paths; skip when the only ones missing are :data:`AWAITED` files."""
    hard = [text for text, path in missing if path.relative_to(REPO).as_posix() not in AWAITED]
    assert not hard, "\n".join(hard)
    if missing:
        pytest.skip("not in this checkout yet: " + ", ".join(sorted({str(p.relative_to(REPO)) for _, p in missing})))


# ---- Compose's variable interpolation -------------------------------------------------------------
_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)


class UnsetVariable(ValueError):
    """A variable without a default: Compose would warn and substitute an empty string."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """``value`` with ``${NAME}``, ``${NAME:-default}`` (and the other Compose forms) substituted from
    ``env``, recursively; ``$$`` is a literal ``$``. A variable without a default that ``env`` lacks
    raises :class:`UnsetVariable`, as do ``${NAME:?message}`` forms."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("bare"):
            name, op, arg = m.group("bare"), None, None
        else:
            parts = _BRACED.match(m.group("braced"))
            if parts is None:
                raise ValueError(f"invalid interpolation {m.group(0)!r}")
            name, op, arg = parts.group("name"), parts.group("op"), parts.group("arg")
        current = env.get(name)
        if op in (":-", "-"):
            return arg if current is None or (op == ":-" and current == "") else current
        if op in (":+", "+"):
            return arg if current is not None and (op == "+" or current != "") else ""
        if current is None or (op == ":?" and current == ""):
            raise UnsetVariable(f"{m.group(0)} is not set" + (f": {arg}" if arg else ""))
        return current

    return _VARIABLE.sub(one, value)


def load_compose() -> dict[str, Any]:
    """The model Compose works with on a machine that sets only the :data:`REQUIRED` variables."""
    return interpolate(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")), dict(REQUIRED))


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


# ---- the Compose specification -------------------------------------------------------------------
def test_the_vendored_schema_is_the_recorded_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256, \
        "tests/data/compose-spec/compose-spec.json changed: record its source in the README and SCHEMA_SHA256"


def _validator() -> Any:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    errors = sorted(_validator().iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("breakage", [
    lambda c: c["services"]["worker"].update(ports="6066"),
    lambda c: c["services"]["worker"]["healthcheck"].update(interval=10),
    lambda c: c["services"]["inbox"]["depends_on"]["kafka"].update(condition="service_ready"),
    lambda c: c["services"]["grafana"].update(restart_policy="always"),
])
def test_the_schema_check_catches_a_broken_file(compose: dict[str, Any], breakage: Any) -> None:
    """The validation above can fail: each of these mistakes is refused by the schema."""
    broken = json.loads(json.dumps(compose))
    breakage(broken)
    assert list(_validator().iter_errors(broken))


def test_every_variable_has_a_default(raw: dict[str, Any]) -> None:
    """Compose warns about, and blanks, a variable that is neither set nor given a default; the only
    ones without a default are :data:`REQUIRED`, in the ``${NAME:?message}`` form that stops compose
    with the message instead of blanking them."""
    interpolate(raw, dict(REQUIRED))  # raises UnsetVariable
    text = COMPOSE.read_text(encoding="utf-8")
    for name in REQUIRED:
        with pytest.raises(UnsetVariable, match=f"{name}.*16\\+ characters"):
            interpolate(raw, {k: v for k, v in REQUIRED.items() if k != name})
        uses = re.findall(r"\$\{" + name + r"[^}]*\}", text)
        assert uses and all(u.startswith("${" + name + ":?") for u in uses), uses
    with pytest.raises(UnsetVariable):
        interpolate({"x": "${NOT_SET}"}, {})
    assert interpolate("a${X:-b}c$${Y}", {}) == "ab" + "c${Y}"
    assert interpolate("${X:-b}", {"X": "set"}) == "set"


# ---- paths ---------------------------------------------------------------------------------------
def _mounts(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(host source or None for a named volume, container target) of every volume of a service."""
    found = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, str):
            source, target = vol.split(":")[:2]
        else:
            source, target = vol.get("source"), vol["target"]
        is_path = source is not None and source.startswith((".", "/", "~"))
        found.append((source if is_path else None, target))
    return found


def _referenced_paths(services: dict[str, Any]) -> list[tuple[str, str, Path]]:
    """(service, what, host path) of every host path the compose file names."""
    found: list[tuple[str, str, Path]] = []
    for name, svc in services.items():
        build = svc.get("build")
        if build is not None:
            context = REPO / (build if isinstance(build, str) else build.get("context", "."))
            found.append((name, "build context", context))
            if isinstance(build, dict) and "dockerfile" in build:
                found.append((name, "Dockerfile", context / build["dockerfile"]))
        for source, target in _mounts(svc):
            if source is not None:
                found.append((name, f"bind mount to {target}", REPO / source))
        for env_file in ([svc["env_file"]] if isinstance(svc.get("env_file"), str) else svc.get("env_file") or []):
            found.append((name, "env_file", REPO / (env_file if isinstance(env_file, str) else env_file["path"])))
    return found


def test_every_host_path_the_compose_file_names_exists(services: dict[str, Any]) -> None:
    paths = _referenced_paths(services)
    assert {what for _, what, _ in paths} >= {"build context", "Dockerfile"}
    _report_missing([(f"{svc}: {what}: {path.relative_to(REPO)}", path) for svc, what, path in paths
                     if not path.exists()])


def _container_paths(svc: dict[str, Any]) -> list[str]:
    """Absolute container paths a service is told to read: ``--flag=/path`` arguments and ``*_PATH`` /
    ``*_FILE`` / ``*_DIR`` variables."""
    command = svc.get("command") or []
    args = command.split() if isinstance(command, str) else command
    paths = [a.split("=", 1)[1] for a in args if re.match(r"^--[\w.-]+=/", a)]
    paths += [v for k, v in _env(svc).items() if re.search(r"_(PATH|FILE|DIR)$", k) and v.startswith("/")]
    return paths


def test_every_container_path_a_service_is_given_is_in_a_mount_that_exists(services: dict[str, Any]) -> None:
    """E.g. Prometheus' --config.file=/etc/prometheus/prometheus.yml must be a repository file mounted
    there, and Grafana's home dashboard path a dashboard in the mounted folder."""
    checked: list[str] = []
    missing: list[tuple[str, Path]] = []
    for name, svc in services.items():
        mounts = _mounts(svc)
        for path in _container_paths(svc):
            inside = [(s, t) for s, t in mounts if PurePosixPath(path).is_relative_to(t)]
            if not inside:
                continue  # e.g. the image's own directories
            source, target = max(inside, key=lambda m: len(m[1]))
            if source is None:
                continue  # a named volume: filled at run time
            host = REPO / source / PurePosixPath(path).relative_to(target)
            checked.append(path)
            if not host.exists():
                missing.append((f"{name}: {path} -> {host.relative_to(REPO)}", host))
    assert "/etc/prometheus/prometheus.yml" in checked and "/etc/grafana/dashboards/churnwatch.json" in checked
    _report_missing(missing)


# ---- the build context ---------------------------------------------------------------------------
def dockerignore_patterns(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(exclude?, regex) per line of a .dockerignore, in order (the last match decides), following
    Docker's rules: paths relative to the context root, ``*``/``?`` within one path element, ``**`` any
    number of them, ``!`` re-includes."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            ch = pattern[i]
            if pattern.startswith("**", i):
                regex += ".*"
                i += 2
                if pattern.startswith("/", i):
                    regex, i = regex + "(?:/|)", i + 1
                continue
            if ch == "*":
                regex += "[^/]*"
            elif ch == "?":
                regex += "[^/]"
            elif ch == "[":
                end = pattern.find("]", i)
                regex += pattern[i:end + 1].replace("[!", "[^") if end > 0 else re.escape(ch)
                i = end if end > 0 else i
            else:
                regex += re.escape(ch)
            i += 1
        rules.append((exclude, re.compile(f"^{regex}$")))
    return rules


def ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether a context path is left out: a pattern matching the path or one of its parents."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for exclude, regex in rules:
        if any(regex.match(c) for c in candidates):
            result = exclude
    return result


def test_the_dockerignore_reader_follows_dockers_rules() -> None:
    rules = dockerignore_patterns("# comment\n.venv\nmodels/v*\n**/__pycache__\n*.log\n!keep.log\n/docs/*.tmp\n")
    assert ignored(".venv/bin/python", rules) and ignored("models/v3/model.txt", rules)
    assert not ignored("models/README.md", rules) and not ignored("pipeline/worker/app.py", rules)
    assert ignored("pipeline/__pycache__/app.pyc", rules) and ignored("__pycache__/x.pyc", rules)
    assert ignored("debug.log", rules) and not ignored("keep.log", rules) and not ignored("sub/debug.log", rules)
    assert ignored("docs/a.tmp", rules) and not ignored("docs/sub/a.tmp", rules)


def context_files(root: Path, rules: list[tuple[bool, re.Pattern[str]]]) -> set[str]:
    """Files of the build context Docker would send: every file under ``root`` not ignored. An ignored
    directory is not entered unless an exception (``!``) pattern could re-include something in it."""
    has_exceptions = any(not exclude for exclude, _ in rules)
    files: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        if not has_exceptions:
            dirnames[:] = [d for d in dirnames if not ignored(prefix + d, rules)]
        files.update(prefix + f for f in filenames if not ignored(prefix + f, rules))
    return files


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        if not current and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            logical.append(current.strip())
        current = ""
    out = []
    for line in logical:
        ins, _, args = line.partition(" ")
        out.append((ins.upper(), args.strip()))
    return out


def copy_sources(text: str) -> list[str]:
    """Context sources of every COPY/ADD (not those copying from another stage or image)."""
    sources = []
    for ins, args in dockerfile_instructions(text):
        if ins not in ("COPY", "ADD"):
            continue
        words = json.loads(args) if args.startswith("[") else args.split()
        flags = [w for w in words if w.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        paths = [w for w in words if not w.startswith("--")]
        sources += paths[:-1]
    return sources


def test_the_build_context_holds_every_path_the_dockerfile_copies(services: dict[str, Any]) -> None:
    build = services["worker"]["build"]
    context = REPO / build["context"]
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    rules = dockerignore_patterns(DOCKERIGNORE.read_text(encoding="utf-8")) if DOCKERIGNORE.is_file() else []
    files = context_files(context, rules)
    sources = copy_sources(DOCKERFILE.read_text(encoding="utf-8"))
    assert {"deploy/requirements.lock", "pyproject.toml", "README.md", "pipeline", "training"} <= set(sources)
    missing = []
    for src in sources:
        src = os.path.normpath(src).lstrip("./") if src not in (".", "./") else ""
        if any(ch in src for ch in "*?["):
            regex = re.compile("^" + re.escape(src).replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "(/.*)?$")
            hit = any(regex.match(f) for f in files)
        else:
            hit = src in files or any(f.startswith(src + "/") for f in files)
        if not hit:
            missing.append(src)
    assert not missing, f"COPY/ADD sources missing from the build context (or dropped by .dockerignore): {missing}"
    # what the image needs at run time, and what it must not carry
    assert "pipeline/worker/app.py" in files and "training/fit/train.py" in files
    assert not any(f.startswith((".venv/", ".git/")) for f in files)


def test_the_copy_parser_reads_the_forms_docker_accepts() -> None:
    text = ("FROM python:3.11.13-slim\n# COPY commented/out .\nCOPY --chown=1:1 a.txt b/ ./dst/\n"
            'COPY ["c d.txt", "/x/"]\nCOPY --from=builder /wheels /wheels\nADD e.tar \\\n    /opt/\n')
    assert copy_sources(text) == ["a.txt", "b/", "c d.txt", "e.tar"]


# ---- images, healthchecks, scaling ---------------------------------------------------------------
_EXACT_TAG = re.compile(r":v?\d+\.\d+\.\d+(?:[-.][\w.-]+)?$")


def _pinned(image: str) -> bool:
    return "@sha256:" in image or bool(_EXACT_TAG.search(image))


def test_every_image_is_pinned_to_an_exact_version(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        if "build" in svc:
            continue  # built here from deploy/Dockerfile, whose base image is checked below
        assert _pinned(svc["image"]), f"{name}: image {svc['image']!r} is not pinned to an exact version or digest"
    froms = [args.split()[0] for ins, args in dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
             if ins == "FROM"]
    assert froms and all(_pinned(f) for f in froms), froms
    assert not _pinned("python:3.11-slim") and not _pinned("prom/prometheus:latest") and not _pinned("grafana/grafana")


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check is not None, f"{name} has no healthcheck"
        if name in ONE_SHOT:
            assert check == {"disable": True} and svc.get("restart") == "no", name
            continue
        assert not check.get("disable") and check.get("test"), f"{name}: healthcheck without a test"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in check, f"{name}: healthcheck without {key}"


def test_dependencies_wait_for_health_or_completion(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert isinstance(spec, dict), f"{name} depends on {dep} without a condition"
            if spec["condition"] == "service_healthy":
                assert not services[dep]["healthcheck"].get("disable"), f"{name} waits for {dep}'s health"
            elif spec["condition"] == "service_completed_successfully":
                assert dep in ONE_SHOT, f"{name} waits for long-running {dep} to exit"
    for name in ("topics", "worker", "inbox"):
        assert services[name]["depends_on"]["kafka"] == {"condition": "service_healthy"}, name
    for name in ("worker", "inbox"):
        assert services[name]["depends_on"]["topics"] == {"condition": "service_completed_successfully"}, name
    assert services["grafana"]["depends_on"]["prometheus"] == {"condition": "service_healthy"}


def _check_url(svc: dict[str, Any]) -> str:
    return next(a for a in svc["healthcheck"]["test"] if str(a).startswith("http://"))


def test_the_worker_service_can_be_scaled(raw: dict[str, Any], services: dict[str, Any]) -> None:
    worker = services["worker"]
    for key in ("ports", "container_name", "hostname"):
        assert key not in worker, f"worker has {key}: replicas would collide (or advertise one host)"
    env = _env(worker)
    assert env["CHURNWATCH_WEB_HOST"] == "0.0.0.0"
    assert "CHURNWATCH_WEB_ADVERTISED_HOST" not in env  # each replica advertises its own hostname
    assert env["CHURNWATCH_METRICS_HOST"] == "0.0.0.0"
    assert raw["services"]["worker"]["environment"]["CHURNWATCH_WEBHOOK_URL"] == "${CHURNWATCH_WEBHOOK_URL:-}"
    assert env["CHURNWATCH_WEBHOOK_URL"] == ""  # unset: webhook off
    assert any(target == "/models" and source == "./models" for source, target in _mounts(worker))
    assert any(str(v).endswith(":ro") for v in worker["volumes"] if str(v).startswith("./models"))
    # health: the worker's own /ready on its web port
    assert _check_url(worker) == f"http://127.0.0.1:{env['CHURNWATCH_WEB_PORT']}/ready"
    assert {str(p) for p in worker["expose"]} == {env["CHURNWATCH_METRICS_PORT"], env["CHURNWATCH_WEB_PORT"]}
    # Prometheus finds every replica by DNS on the service name, at the metrics port
    prom = yaml.safe_load(PROM_CONFIG.read_text(encoding="utf-8"))
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "churnwatch")
    assert "static_configs" not in job
    sd = job["dns_sd_configs"]
    assert any("worker" in c["names"] and c["type"] == "A" and str(c["port"]) == env["CHURNWATCH_METRICS_PORT"]
               for c in sd), sd


def test_the_inbox_service(services: dict[str, Any]) -> None:
    inbox = services["inbox"]
    cmd = inbox["command"]
    assert cmd[0] == "inbox" and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    port = cmd[cmd.index("--port") + 1]
    assert inbox["ports"] == [f"127.0.0.1:8088:{port}"]
    assert _check_url(inbox) == f"http://127.0.0.1:{port}/healthz"
    assert _env(inbox)["CHURNWATCH_BROKER"] == "kafka://kafka:9092"
    assert "CHURNWATCH_WEBHOOK_URL" not in _env(inbox)  # the secret goes to the workers only


def test_the_inbox_and_the_worker_web_get_the_token_they_need_on_0_0_0_0(services: dict[str, Any]) -> None:
    """Both listen on every interface of their container, which they refuse to do without a sign-in:
    the compose file passes them the token (and only them), and their settings accept it."""
    from pipeline.config.settings import Settings
    from pipeline.web.webauth import check_bind

    token = REQUIRED["CHURNWATCH_INBOX_TOKEN"]
    for name, host in (("inbox", "0.0.0.0"), ("worker", _env(services["worker"])["CHURNWATCH_WEB_HOST"])):
        env = _env(services[name])
        assert env["CHURNWATCH_INBOX_TOKEN"] == token, name
        check_bind(Settings.from_env(env), host, name)  # raises SettingsError without the token
    for name, svc in services.items():
        if name not in ("inbox", "worker"):
            assert "CHURNWATCH_INBOX_TOKEN" not in _env(svc), name


def test_alertmanager_is_a_service_with_its_config_mounted(services: dict[str, Any]) -> None:
    am = services["alertmanager"]
    assert am["image"].startswith("prom/alertmanager:")
    assert ("./deploy/alertmanager/alertmanager.yml", "/etc/alertmanager/alertmanager.yml") in _mounts(am)
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]


# ---- the healthcheck commands, run -----------------------------------------------------------------
def healthcheck_argv(svc: dict[str, Any], url: str) -> list[str]:
    """A service's healthcheck as a local command probing ``url`` instead of its container URL (the
    image's ``python`` is this interpreter)."""
    test = svc["healthcheck"]["test"]
    assert test[0] == "CMD"
    argv = [url if str(a).startswith("http://") else str(a) for a in test[1:]]
    return [sys.executable if a == "python" else a for a in argv]


def run_check(argv: list[str]) -> int:
    return subprocess.run(argv, capture_output=True, timeout=30, stdin=subprocess.DEVNULL).returncode


class _Fixed(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fixed_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fixed)
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("service", ["worker", "inbox"])
def test_the_python_healthcheck_passes_on_200_only(services: dict[str, Any], fixed_server: Any,
                                                   service: str) -> None:
    url = f"http://127.0.0.1:{fixed_server.server_address[1]}/probe"
    argv = healthcheck_argv(services[service], url)
    assert run_check(argv) == 0
    fixed_server.status = 503
    assert run_check(argv) != 0
    assert run_check(healthcheck_argv(services[service], "http://127.0.0.1:9/probe")) != 0  # nothing listens


def test_the_inbox_healthcheck_against_the_inbox(services: dict[str, Any]) -> None:
    """The compose healthcheck, run against churnwatch's inbox app: healthy with a live topic follower,
    unhealthy once the follower stopped."""
    from types import SimpleNamespace

    from apps.inbox.server import FOLLOWER_KEY, InboxServer, create_app
    from pipeline.config.settings import Settings

    settings = Settings.from_env({}).with_(broker="kafka://127.0.0.1:1",
                                           inbox_token=_env(services["inbox"])["CHURNWATCH_INBOX_TOKEN"])
    app = create_app(settings, sink=SimpleNamespace(send=lambda *a: None, close=lambda: None), follow=False)
    follower = SimpleNamespace(caught_up=threading.Event(), error=None, alive=True, start=lambda: None,
                               stop=lambda timeout=10.0: None)
    follower.is_alive = lambda: follower.alive
    app[FOLLOWER_KEY] = follower
    server = InboxServer(app).start()
    try:
        path = _check_url(services["inbox"]).split("8088", 1)[1]
        argv = healthcheck_argv(services["inbox"], server.url + path)
        assert run_check(argv) == 0
        follower.alive = False
        assert run_check(argv) != 0
    finally:
        server.stop()


def _wget_check(svc: dict[str, Any], port: int) -> list[str]:
    test = svc["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "wget", test  # busybox wget: the images have no curl
    container_url = _check_url(svc)
    path = "/" + container_url.split("/", 3)[3]
    return [a if not str(a).startswith("http://") else f"http://127.0.0.1:{port}{path}" for a in test[1:]]


@pytest.fixture(scope="module")
def wget() -> str:
    path = shutil.which("wget")
    if path is None:
        pytest.skip("wget not installed (scripts/ensure-debian-packages.sh wget)")
    return path


def test_the_prometheus_healthcheck_against_prometheus(services: dict[str, Any], wget: str) -> None:
    from tests.integration.promserver import PROMETHEUS_BIN, run_prometheus

    if not Path(PROMETHEUS_BIN).is_file():
        pytest.skip(f"{PROMETHEUS_BIN} not installed (scripts/ensure-debian-packages.sh prometheus)")
    with run_prometheus([]) as prom:
        port = int(prom.url.rsplit(":", 1)[1])
        assert run_check(_wget_check(services["prometheus"], port)) == 0
    assert run_check(_wget_check(services["prometheus"], port)) != 0  # stopped


def test_the_alertmanager_healthcheck_against_alertmanager(services: dict[str, Any], wget: str) -> None:
    from devtools.broker import free_port, stop_process

    if not Path(ALERTMANAGER_BIN).is_file():
        pytest.skip(f"{ALERTMANAGER_BIN} not installed (scripts/ensure-debian-packages.sh prometheus-alertmanager)")
    workdir = Path(tempfile.mkdtemp(prefix="churnwatch-am-"))
    try:
        config = workdir / "alertmanager.yml"
        config.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n", encoding="utf-8")
        port = free_port()
        with open(workdir / "stderr.log", "wb") as err:
            proc = subprocess.Popen([ALERTMANAGER_BIN, f"--config.file={config}", f"--storage.path={workdir}",
                                     f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            argv = _wget_check(services["alertmanager"], port)
            deadline = time.monotonic() + 30
            while run_check(argv) != 0:
                assert proc.poll() is None, (workdir / "stderr.log").read_text(errors="replace")[-2000:]
                assert time.monotonic() < deadline, "alertmanager never passed its compose healthcheck"
                time.sleep(0.2)
        finally:
            stop_process(proc, 10)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_grafana_healthcheck_probes_its_health_api(services: dict[str, Any]) -> None:
    """Grafana is not packaged for Debian, so only the URL is checked: its documented health API."""
    assert _check_url(services["grafana"]) == "http://127.0.0.1:3000/api/health"
    assert "127.0.0.1:${GRAFANA_PORT:-3000}:3000" in COMPOSE.read_text(encoding="utf-8")
