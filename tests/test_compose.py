"""docker/compose.yaml is safe by default: no port published on all interfaces, the Ray
dashboard never published, no container running as root, no secret in plain text, every image
pinned, a healthcheck on every long-running service, the secrets documented in
docker/.env.example and docker/.env git-ignored.

Each rule is one small function returning its problems (``"service: what"``); every rule is
shown to catch a bad snippet and to let a good one pass, and the real file must pass them all.
Docker is not needed: the files are parsed.
"""

from __future__ import annotations

import ipaddress
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
DASHBOARD_PORT = 8265

# compose interpolation: $$ (a literal $), ${NAME...} and $NAME
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|\$(?P<bare>[A-Za-z_]\w*)"
)
# a secret's value: a reference to a variable with no default (${NAME}, ${NAME:?message})
_SECRET_REFERENCE = re.compile(r"\$\{[A-Za-z_]\w*(:?\?[^}]*)?\}")
_SECRET_KEY = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY", re.IGNORECASE)
# user:password@ in a URL; the password must be a variable (compose's or the shell's)
_URL_CREDENTIALS = re.compile(
    r"[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<password>(?:\$\{[^}]*\}|[^@\s/])+)@", re.IGNORECASE
)
_VARIABLE = re.compile(r"\$\{[A-Za-z_]\w*(:?\?[^}]*)?\}|\$\$\{?[A-Za-z_]\w*\}?")


def resolve(value) -> str | None:
    """``value`` as compose reads it when no variable is set: ``${NAME:-default}`` gives its
    default, ``$$`` a ``$``; None when a reference has no default (the value is unknown)."""
    text, unknown = str(value), False

    def one(m: re.Match) -> str:
        nonlocal unknown
        if m.group(0) == "$$":
            return "$"
        if m.group("op") in ("-", ":-"):
            return m.group("arg")
        unknown = True
        return ""

    out = _INTERPOLATION.sub(one, text)
    return None if unknown else out


def services(compose: dict) -> Iterator[tuple[str, dict]]:
    yield from (compose.get("services") or {}).items()


def strings(node) -> Iterator[str]:
    """Every string in a parsed YAML node (keys and values)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


def environment(service: dict) -> Iterator[tuple[str, str | None]]:
    """(name, value) of a service's environment, mapping or list form (None: passed through
    from the shell)."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        for k, v in env.items():
            yield str(k), None if v is None else str(v)
    else:
        for item in env:
            k, sep, v = str(item).partition("=")
            yield k, v if sep else None


def args(service: dict) -> list[str]:
    """A service's entrypoint and command as words (shell strings split on blanks)."""
    words: list[str] = []
    for key in ("entrypoint", "command"):
        part = service.get(key) or []
        for item in [part] if isinstance(part, str) else part:
            words.extend(str(item).split())
    return words


# --- ports -------------------------------------------------------------------------------


def parse_port(port) -> tuple[str | None, str]:
    """(host IP or None when none is given, container port[s]) of a ports entry; raises
    ValueError when a variable without default hides it."""
    if isinstance(port, dict):
        return port.get("host_ip"), str(port.get("target", ""))
    text = resolve(port)
    if text is None:
        raise ValueError(f"{port!r} depends on a variable without default")
    text = text.split("/", 1)[0]  # /tcp, /udp
    if text.startswith("["):  # [::1]:5000:5000
        ip, _, rest = text[1:].partition("]")
        return ip, rest.rsplit(":", 1)[-1]
    parts = text.rsplit(":", 2)
    return (parts[0] if len(parts) == 3 else None), parts[-1]


def _loopback(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(resolve(ip) or "").is_loopback
    except ValueError:
        return False


def ports_on_all_interfaces(compose: dict, folder: Path) -> list[str]:
    """Every published port is bound to a loopback address (127.0.0.1, ::1); host networking
    would publish them all."""
    problems = []
    for name, svc in services(compose):
        if svc.get("network_mode") == "host":
            problems.append(f"{name}: network_mode host publishes every port on every interface")
        for port in svc.get("ports") or []:
            try:
                ip, _ = parse_port(port)
            except ValueError as exc:
                problems.append(f"{name}: port {exc}")
                continue
            if not _loopback(ip):
                problems.append(f"{name}: port {port!r} is bound to {ip or 'all interfaces'}")
    return problems


def _port_numbers(spec: str) -> range:
    low, _, high = spec.partition("-")
    try:
        return range(int(low), int(high or low) + 1)
    except ValueError:
        return range(0)


def ray_dashboard_exposed(compose: dict, folder: Path) -> list[str]:
    """The Ray dashboard (its Jobs API runs code for anyone who reaches it) is neither
    published nor listening beyond the container's loopback."""
    problems = []
    for name, svc in services(compose):
        for port in svc.get("ports") or []:
            try:
                _, target = parse_port(port)
            except ValueError:
                continue  # ports_on_all_interfaces reports it
            if DASHBOARD_PORT in _port_numbers(target):
                problems.append(f"{name}: the Ray dashboard port is published ({port!r})")
        words = args(svc)
        for i, word in enumerate(words):
            if word.startswith("--dashboard-host"):
                host = word.partition("=")[2] or (words[i + 1] if i + 1 < len(words) else "")
                if host != "localhost" and not _loopback(host):
                    problems.append(f"{name}: the Ray dashboard listens on {host!r}")
    return problems


# --- users -------------------------------------------------------------------------------


def dockerfile_user(dockerfile: Path) -> str | None:
    """The USER of a Dockerfile's final stage (None: it runs as root, the default)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    user = None
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            user = None
        elif word.upper() == "USER":
            user = rest.strip()
    return user


def _dockerfiles(compose: dict, folder: Path) -> dict[str, Path]:
    """The Dockerfile of each service that builds an image or uses one another service
    builds."""
    by_image, found = {}, {}
    for name, svc in services(compose):
        build = svc.get("build")
        if build is None:
            continue
        build = {"context": build} if isinstance(build, str) else build
        path = folder / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        found[name] = path
        if svc.get("image"):
            by_image[svc["image"]] = path
    for name, svc in services(compose):
        if name not in found and svc.get("image") in by_image:
            found[name] = by_image[svc["image"]]
    return found


def _root(user) -> bool | None:
    """Whether a user (``name``, ``uid``, ``uid:gid``) is root; None when unknown."""
    text = resolve(user)
    if text is None or not text.strip():
        return None
    return text.split(":", 1)[0].strip() in ("0", "root")


def services_as_root(compose: dict, folder: Path) -> list[str]:
    """Every service runs as a user other than root: compose's ``user``, else the USER of the
    Dockerfile (in docker/) that builds its image."""
    problems, dockerfiles = [], _dockerfiles(compose, folder)
    for name, svc in services(compose):
        user, where = svc.get("user"), "user"
        if user is None and name in dockerfiles and dockerfiles[name].is_file():
            user, where = dockerfile_user(dockerfiles[name]), f"USER of {dockerfiles[name].name}"
        root = None if user is None else _root(user)
        if root is None:
            problems.append(f"{name}: no non-root user (set `user:`)")
        elif root:
            problems.append(f"{name}: runs as root ({where} {user!r})")
    return problems


# --- secrets -----------------------------------------------------------------------------


def plaintext_secrets(compose: dict, folder: Path) -> list[str]:
    """An environment variable named like a secret (PASSWORD, SECRET, TOKEN, KEY) takes its
    value from a variable with no default (``${NAME:?...}``), never from the file."""
    problems = []
    for name, svc in services(compose):
        for key, value in environment(svc):
            if _SECRET_KEY.search(key) and value is not None:
                if not _SECRET_REFERENCE.fullmatch(value.strip()):
                    problems.append(f"{name}: {key} is written in the file")
    return problems


def credentials_in_urls(compose: dict, folder: Path) -> list[str]:
    """A URL with a password anywhere in a service (environment, command, healthcheck)
    takes the password from a variable."""
    problems = []
    for name, svc in services(compose):
        for text in strings(svc):
            for m in _URL_CREDENTIALS.finditer(text):
                if not _VARIABLE.fullmatch(m.group("password")):
                    problems.append(f"{name}: a password is written in the URL {m.group(0)!r}")
    return problems


def secrets_without_example(compose_text: str, example_text: str) -> list[str]:
    """Every variable compose insists on (``${NAME:?...}``) has a line in .env.example."""
    required = set(re.findall(r"\$\{([A-Za-z_]\w*):?\?", compose_text))
    listed = set(re.findall(r"^\s*([A-Za-z_]\w*)=", example_text, re.MULTILINE))
    return [f"{v} is not in docker/.env.example" for v in sorted(required - listed)]


def env_file_not_ignored(gitignore_text: str) -> list[str]:
    """docker/.env (the real secrets) is git-ignored."""
    lines = {line.strip() for line in gitignore_text.splitlines()}
    return [] if lines & {"docker/.env", "/docker/.env"} else ["docker/.env is not git-ignored"]


# --- images ------------------------------------------------------------------------------


def _unpinned(ref: str) -> str | None:
    """Why an image reference is not pinned (no tag, ``latest``), else None."""
    if "@sha256:" in ref:
        return None
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:  # no tag (a colon before the last / is a registry's port)
        return "has no tag"
    return "is tagged latest" if tag == "latest" else None


def unpinned_images(compose: dict, folder: Path) -> list[str]:
    """Every service's image carries a tag other than ``latest`` (or a digest)."""
    problems = []
    for name, svc in services(compose):
        if "image" not in svc:
            if "build" not in svc:
                problems.append(f"{name}: neither image nor build")
            continue
        ref = resolve(svc["image"])
        why = "depends on a variable without default" if ref is None else _unpinned(ref)
        if why:
            problems.append(f"{name}: image {svc['image']!r} {why}")
    return problems


def unpinned_base_images(compose: dict, folder: Path) -> list[str]:
    """Every FROM of the Dockerfiles in ``folder`` names a pinned image (or an earlier
    stage)."""
    problems = []
    for dockerfile in sorted(folder.glob("Dockerfile*")):
        if dockerfile.suffix == ".dockerignore":
            continue
        stages = set()
        for line in dockerfile.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if not words or words[0].upper() != "FROM":
                continue
            words = [w for w in words[1:] if not w.startswith("--")]
            ref = words[0]
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2])
            if ref in stages or ref == "scratch":
                continue
            why = "depends on a build argument" if "$" in ref else _unpinned(ref)
            if why:
                problems.append(f"{dockerfile.name}: FROM {ref} {why}")
    return problems


# --- healthchecks ------------------------------------------------------------------------


def _one_shot(svc: dict) -> bool:
    restart = svc.get("restart")
    return restart is False or (isinstance(restart, str) and resolve(restart) == "no")


def missing_healthchecks(compose: dict, folder: Path) -> list[str]:
    """Every long-running service has a healthcheck; a one-shot service says so with
    ``restart: "no"``."""
    problems = []
    for name, svc in services(compose):
        if _one_shot(svc):
            continue
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        if check.get("disable") or not test or test in ("NONE", ["NONE"]):
            problems.append(f'{name}: no healthcheck (or restart: "no" for a one-shot job)')
    return problems


CHECKS = [
    ports_on_all_interfaces,
    ray_dashboard_exposed,
    services_as_root,
    plaintext_secrets,
    credentials_in_urls,
    unpinned_images,
    unpinned_base_images,
    missing_healthchecks,
]


# --- the real files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_compose_file_passes(check, compose):
    assert check(compose, DOCKER) == []


def test_secrets_are_documented_and_ignored():
    assert secrets_without_example(COMPOSE.read_text(), ENV_EXAMPLE.read_text()) == []
    assert env_file_not_ignored((REPO / ".gitignore").read_text()) == []


def test_compose_file_is_the_stack(compose):
    """The deployment the checks are about: PostgreSQL and MinIO behind MLflow (proxied
    artifacts in S3), a Ray head, GPU workers and a survey job pointed at both."""
    svc = compose["services"]
    assert {"postgres", "minio", "mlflow", "ray-head", "ray-worker", "survey"} <= set(svc)
    mlflow = svc["mlflow"]
    words = args(mlflow)
    assert "--serve-artifacts" in words
    assert any(w.startswith("--artifacts-destination=s3://") for w in words)
    env = dict(environment(mlflow))
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert [parse_port(p)[0] for p in mlflow["ports"]] == ["127.0.0.1"]
    survey = dict(environment(svc["survey"]))
    assert survey["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert survey["RAY_ADDRESS"] == "ray-head:6379"
    for name in ("ray-head", "ray-worker", "survey"):  # Ray's token auth, on every node
        assert dict(environment(svc[name]))["RAY_AUTH_MODE"] == "token"
    devices = svc["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    # the stores are on an internal network: the Ray nodes (trial code) cannot reach them
    assert compose["networks"]["store"]["internal"] is True
    for name in ("postgres", "minio"):
        assert svc[name]["networks"] == ["store"]
    for name in ("ray-head", "ray-worker", "survey"):
        assert "store" not in svc[name]["networks"]
    assert not [name for name, s in svc.items() if s.get("ports") and name != "mlflow"]


# --- each check catches what it is for ---------------------------------------------------

GOOD_SERVICE = """
    image: postgres:17.9-bookworm
    user: "999:999"
    healthcheck: {test: ["CMD", "true"]}
"""


def snippet(body: str) -> dict:
    """A compose file with one service ``s``: GOOD_SERVICE's lines, then ``body``'s (a key in
    ``body`` replaces GOOD_SERVICE's)."""
    merged = {**yaml.safe_load(textwrap.dedent(GOOD_SERVICE))}
    merged.update(yaml.safe_load(textwrap.dedent(body)) or {})
    return {"services": {"s": merged}}


# (check, service body, whether the check must find a problem)
CASES = [
    (ports_on_all_interfaces, 'ports: ["127.0.0.1:5000:5000"]', False),
    (ports_on_all_interfaces, 'ports: ["[::1]:5000:5000/tcp"]', False),
    (ports_on_all_interfaces, "ports: [{target: 5000, published: 80, host_ip: '::1'}]", False),
    (ports_on_all_interfaces, 'ports: ["127.0.0.1:${PORT:-5000}:5000"]', False),
    (ports_on_all_interfaces, 'ports: ["5000:5000"]', True),
    (ports_on_all_interfaces, 'ports: ["5000"]', True),
    (ports_on_all_interfaces, "ports: [5000]", True),
    (ports_on_all_interfaces, 'ports: ["0.0.0.0:5000:5000"]', True),
    (ports_on_all_interfaces, 'ports: [":::5000:5000"]', True),
    (ports_on_all_interfaces, 'ports: ["[::]:5000:5000"]', True),
    (ports_on_all_interfaces, 'ports: ["192.168.1.10:5000:5000"]', True),
    (ports_on_all_interfaces, 'ports: ["${BIND}:5000:5000"]', True),
    (ports_on_all_interfaces, "ports: [{target: 5000, published: 5000}]", True),
    (ports_on_all_interfaces, "network_mode: host", True),
    (ray_dashboard_exposed, 'ports: ["127.0.0.1:5000:5000"]', False),
    (ray_dashboard_exposed, 'entrypoint: ["ray", "start", "--dashboard-host=127.0.0.1"]', False),
    (ray_dashboard_exposed, 'ports: ["127.0.0.1:8265:8265"]', True),
    (ray_dashboard_exposed, 'ports: ["127.0.0.1:9000:8265"]', True),
    (ray_dashboard_exposed, 'ports: ["127.0.0.1:8000-8300:8000-8300"]', True),
    (ray_dashboard_exposed, "ports: [{target: 8265, published: 8265, host_ip: 127.0.0.1}]", True),
    (ray_dashboard_exposed, 'entrypoint: ["ray", "start", "--dashboard-host=0.0.0.0"]', True),
    (ray_dashboard_exposed, 'command: "ray start --head --dashboard-host 0.0.0.0"', True),
    (services_as_root, 'user: "1000"', False),
    (services_as_root, 'user: "${UID:-1000}:${GID:-1000}"', False),
    (services_as_root, "user: null", True),
    (services_as_root, 'user: "0:0"', True),
    (services_as_root, "user: root", True),
    (services_as_root, 'user: "${UID:-0}"', True),
    (services_as_root, 'user: "${UID}"', True),
    (plaintext_secrets, "environment: {DB_PASSWORD: '${PW:?set it}', DB_USER: u}", False),
    (plaintext_secrets, "environment: [RAY_AUTH_TOKEN, 'A_KEY=${A_KEY}']", False),
    (plaintext_secrets, "environment: {POSTGRES_PASSWORD: hunter2}", True),
    (plaintext_secrets, "environment: [MINIO_ROOT_PASSWORD=hunter2]", True),
    (plaintext_secrets, "environment: {AWS_SECRET_ACCESS_KEY: '${S3_SECRET:-hunter2}'}", True),
    (plaintext_secrets, "environment: {RAY_AUTH_TOKEN: 'abc${T}'}", True),
    (plaintext_secrets, "environment: {API_KEY: 12345}", True),
    (credentials_in_urls, "environment: {DB: 'postgresql://u:${PW:?set}@db/x'}", False),
    (credentials_in_urls, "command: ['sh', '-c', 'curl http://u:$$PW@h/']", False),
    (credentials_in_urls, "environment: {DB: 'postgresql://u:hunter2@db/x'}", True),
    (credentials_in_urls, "command: ['--backend-store-uri', 'postgresql://u:hunter2@db/x']", True),
    (unpinned_images, "image: quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z", False),
    (unpinned_images, "image: postgres@sha256:" + "0" * 64, False),
    (unpinned_images, "image: postgres", True),
    (unpinned_images, "image: postgres:latest", True),
    (unpinned_images, "image: localhost:5000/postgres", True),
    (unpinned_images, "image: 'postgres:${TAG}'", True),
    (missing_healthchecks, "healthcheck: {test: ['CMD', 'pg_isready']}", False),
    (missing_healthchecks, "{healthcheck: null, restart: 'no'}", False),
    (missing_healthchecks, "{healthcheck: null, restart: no}", False),  # YAML 1.1: false
    (missing_healthchecks, "healthcheck: null", True),
    (missing_healthchecks, "{healthcheck: null, restart: unless-stopped}", True),
    (missing_healthchecks, "healthcheck: {test: ['CMD', 'true'], disable: true}", True),
    (missing_healthchecks, "healthcheck: {test: ['NONE']}", True),
]


@pytest.mark.parametrize(
    "check, body, bad", CASES, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(CASES)]
)
def test_check_tells_bad_from_good(check, body, bad, tmp_path):
    problems = check(snippet(body), tmp_path)
    assert bool(problems) == bad, problems


def test_every_check_has_a_bad_case():
    assert {c for c, _, bad in CASES if bad} >= set(CHECKS) - {unpinned_base_images}


def _build(tmp_path: Path, dockerfile: str) -> Path:
    (tmp_path / "Dockerfile.x").write_text(textwrap.dedent(dockerfile))
    return tmp_path


@pytest.mark.parametrize(
    "dockerfile, bad",
    [
        ("FROM python:3.11.14-slim-bookworm\nUSER 1000:1000\n", False),
        ("FROM python:3.11.14-slim-bookworm\nRUN useradd app\nUSER app\n", False),
        ("FROM python:3.11.14-slim-bookworm\n", True),  # root, Docker's default
        ("FROM python:3.11.14-slim-bookworm\nUSER root\n", True),
        ("FROM a:1 AS build\nUSER 1000\nFROM python:3.11.14-slim-bookworm\n", True),
    ],
)
def test_user_from_dockerfile(dockerfile, bad, tmp_path):
    """A service without ``user:`` is judged by the USER of the Dockerfile building its image,
    also when another service builds that image."""
    folder = _build(tmp_path, dockerfile)
    compose = {
        "services": {
            "built": {"image": "app:1", "build": {"context": ".", "dockerfile": "Dockerfile.x"}},
            "reuses": {"image": "app:1"},
        }
    }
    problems = services_as_root(compose, folder)
    assert len(problems) == (2 if bad else 0), problems


@pytest.mark.parametrize(
    "dockerfile, bad",
    [
        ("FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04\n", False),
        ("FROM --platform=linux/amd64 busybox:1.37.0 AS f\nFROM f\nFROM scratch\n", False),
        ("FROM python@sha256:" + "0" * 64 + "\n", False),
        ("FROM python\n", True),
        ("FROM python:latest\n", True),
        ("FROM busybox:1.37.0 AS f\nFROM registry:5000/python\n", True),
        ("ARG BASE\nFROM ${BASE}\n", True),
    ],
)
def test_unpinned_base_images(dockerfile, bad, tmp_path):
    problems = unpinned_base_images({}, _build(tmp_path, dockerfile))
    assert bool(problems) == bad, problems


def test_secrets_check_finds_an_undocumented_secret():
    compose_text = "environment: {A: '${ONE:?set it}', B: '${TWO?set it}', C: '${THREE:-x}'}"
    assert secrets_without_example(compose_text, "ONE=change-me\n# TWO=\n") == [
        "TWO is not in docker/.env.example"
    ]
    assert secrets_without_example(compose_text, "ONE=a\nTWO=b\n") == []


def test_env_file_check():
    assert env_file_not_ignored(".venv/\ndocker/.env\n") == []
    assert env_file_not_ignored(".venv/\n# docker/.env\ndocker/.env.example\n") != []


def test_resolve():
    assert resolve("127.0.0.1:${PORT:-5000}:5000") == "127.0.0.1:5000:5000"
    assert resolve("$${HOME} ${A-x}") == "${HOME} x"
    assert resolve("${PW:?set it}") is None
    assert resolve("$PW") is None
