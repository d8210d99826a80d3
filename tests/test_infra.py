"""The deployment files in infra/: they parse, every image is pinned to a version, nothing
binds beyond loopback by default, no secret value is committed, and the versions of torch,
Ray, Prefect and MLflow match pyproject.toml's pins.

Fast and offline: YAML and text only. No Docker engine runs here; `docker compose config`
is used only when the compose plugin is installed, and the test skips cleanly otherwise.
The checkers (image pinning, loopback ports, the secret scanner) are tested on bad examples
too, so a check that could never fail is caught.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
DOCKERFILE = INFRA / "Dockerfile"
COMPOSE = INFRA / "docker-compose.yml"
ENV_EXAMPLE = INFRA / ".env.example"
README = INFRA / "README.md"
K8S = INFRA / "k8s"


# -- pyproject's pins ---------------------------------------------------------------------------
@functools.cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@functools.cache
def pins() -> dict[str, str]:
    """{distribution: version} of every `name[extras]==version` runtime dependency."""
    out = {}
    for dep in pyproject()["project"]["dependencies"]:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*(\[[^\]]*\])?\s*==\s*([^;\s]+)\s*(;.*)?", dep)
        if m:
            out[m.group(1).lower()] = m.group(3)
    return out


def project_version() -> str:
    return pyproject()["project"]["version"]


def test_pyproject_pins_the_stack_the_images_are_checked_against():
    for name in ("torch", "ray", "prefect", "mlflow"):
        assert name in pins(), f"pyproject.toml no longer pins {name}: update tests/test_infra.py"


# -- image references -----------------------------------------------------------------------------
def image_pinned(ref: str) -> bool:
    """A digest, or a tag that is not `latest` and names a version (has a digit)."""
    if "@sha256:" in ref:
        return True
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:  # no tag at all ("localhost:5000/img" has a port, not a tag)
        return False
    return tag != "latest" and any(c.isdigit() for c in tag)


@pytest.mark.parametrize(
    "ref, ok",
    [
        ("postgres:17.6-bookworm", True),
        ("ghcr.io/astral-sh/uv:0.13.7", True),
        ("python@sha256:" + "0" * 64, True),
        ("postgres", False),
        ("postgres:latest", False),
        ("ubuntu:noble", False),
        ("localhost:5000/dml", False),
    ],
)
def test_image_pinned_checker(ref, ok):
    assert image_pinned(ref) is ok


# -- compose interpolation ------------------------------------------------------------------------
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg, val = m.group("op"), m.group("arg") or "", env.get(name)
        unset = val is None or (op is not None and op.startswith(":") and val == "")
        if op in (":-", "-"):
            return arg if unset else val
        if op in (":?", "?"):
            if unset:
                raise KeyError(f"{name} is required: {arg}")
            return val
        if op in (":+", "+"):
            return "" if unset else arg
        return val or ""

    return _INTERPOLATION.sub(sub, value)


def test_interpolate_follows_compose_rules():
    assert interpolate("${A:-x}:1", {}) == "x:1"
    assert interpolate("${A:-x}", {"A": "y"}) == "y"
    assert interpolate("$${HOME}", {}) == "${HOME}"
    with pytest.raises(KeyError):
        interpolate("${A:?set A}", {})


# -- the Dockerfile -------------------------------------------------------------------------------
def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments): continuation lines joined, comments and heredoc bodies skipped."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.rstrip().endswith("\\") and i < len(lines):
            nxt = lines[i]
            i += 1
            if nxt.lstrip().startswith("#"):
                continue
            line = line.rstrip()[:-1] + " " + nxt.strip()
        instr, _, args = line.strip().partition(" ")
        out.append((instr.upper(), args.strip()))
        for tag in re.findall(r"<<-?['\"]?([A-Za-z_]\w*)['\"]?", args):
            while i < len(lines) and lines[i].strip() != tag:
                i += 1
            i += 1
    return out


def _expand(s: str, scope: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: scope.get(m.group(1) or m.group(2), m.group(0)), s)


def _assignments(args: str) -> dict[str, str]:
    return {k: v.strip("\"'") for k, v in re.findall(r"(\w+)=(\"[^\"]*\"|'[^']*'|\S+)", args)}


def dockerfile_stages(build_args: dict[str, str] | None = None) -> list[dict]:
    """The stages in order, each {name, base, run: [(INSTR, resolved args)], scope}, with
    ARG defaults (overridden by build_args) and inherited ENV substituted."""
    build_args = build_args or {}
    global_args: dict[str, str] = {}
    stages: list[dict] = []
    for instr, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if instr == "ARG" and not stages:
            name, _, default = args.partition("=")
            global_args[name] = build_args.get(name, default.strip("\"'"))
        elif instr == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            base = _expand(m.group(1), global_args)
            parent = next((s for s in stages if s["name"] == base), None)
            scope = dict(parent["env"]) if parent else {}
            stages.append({"name": m.group(2), "base": base, "run": [], "env": scope, "scope": dict(scope)})
        else:
            stage = stages[-1]
            if instr == "ARG":
                name, eq, default = args.partition("=")
                value = build_args.get(name, default.strip("\"'") if eq else global_args.get(name, ""))
                stage["scope"][name] = value
            elif instr == "ENV":
                for k, v in _assignments(args).items():
                    stage["env"][k] = stage["scope"][k] = _expand(v, stage["scope"])
            stage["run"].append((instr, _expand(args, stage["scope"])))
    return stages


def stage_chain(stages: list[dict], name: str | None = None) -> list[dict]:
    """A stage (default: the last one, the default target) after the stages it builds on."""
    stage = stages[-1] if name is None else next(s for s in stages if s["name"] == name)
    chain = [stage]
    while (parent := next((s for s in stages if s["name"] == chain[0]["base"]), None)) is not None:
        chain.insert(0, parent)
    return chain


def arg_defaults(name: str) -> list[str]:
    return [
        args.partition("=")[2].strip("\"'")
        for instr, args in dockerfile_instructions(DOCKERFILE.read_text())
        if instr == "ARG" and args.partition("=")[0] == name and "=" in args
    ]


@pytest.mark.parametrize("variant", ["cpu", "cuda"])
def test_dockerfile_images_are_pinned(variant):
    stages = dockerfile_stages({"VARIANT": variant})
    names = {s["name"] for s in stages}
    refs = [s["base"] for s in stages if s["base"] not in names]
    for stage in stages:
        for instr, args in stage["run"]:
            m = re.search(r"--from=(\S+)", args)
            if instr == "COPY" and m and m.group(1) not in names:
                refs.append(m.group(1))
    assert refs, "no base image found"
    for ref in refs:
        assert image_pinned(ref), f"{DOCKERFILE.name}: image {ref!r} is not pinned to a version"


def test_dockerfile_versions_match_pyproject():
    for arg, dist in [("TORCH_VERSION", "torch"), ("RAY_VERSION", "ray"), ("PREFECT_VERSION", "prefect"), ("MLFLOW_VERSION", "mlflow")]:
        defaults = arg_defaults(arg)
        assert defaults, f"the Dockerfile has no ARG {arg}"
        assert set(defaults) == {pins()[dist]}, f"ARG {arg}={defaults}, pyproject pins {dist}=={pins()[dist]}"


def test_dockerfile_default_target_is_the_cpu_project_image():
    stages = dockerfile_stages()
    assert arg_defaults("VARIANT") == ["cpu"]
    chain = stage_chain(stages)
    assert [s["name"] for s in chain] == ["base-cpu", "project"]


@pytest.mark.parametrize("variant, index", [("cpu", r"https://download\.pytorch\.org/whl/cpu"), ("cuda", r"https://download\.pytorch\.org/whl/cu\d+")])
def test_dockerfile_installs_pinned_torch_from_the_variants_index_then_the_project(variant, index):
    chain = stage_chain(dockerfile_stages({"VARIANT": variant}))
    runs = [args for stage in chain for instr, args in stage["run"] if instr == "RUN"]
    torch = f"torch=={pins()['torch']}"
    at_torch = next((i for i, r in enumerate(runs) if torch in r and re.search(rf"--index-url\s+\"?{index}\"?", r)), None)
    assert at_torch is not None, f"{variant}: no RUN installs {torch} from {index}"
    at_project = next((i for i, r in enumerate(runs) if re.search(r"pip install\s+(\S+\s+)*\.(\s|$)", r)), None)
    assert at_project is not None, f"{variant}: no `pip install .`"
    assert at_torch < at_project, "torch must come first, from PyTorch's index, before pip install ."
    if variant == "cuda":
        assert chain[0]["base"].startswith("nvidia/cuda:") and "runtime" in chain[0]["base"]


def test_dockerfile_images_run_as_non_root():
    stages = dockerfile_stages()
    for name in (None, "mlflow-server"):
        users = [args for stage in stage_chain(stages, name) for instr, args in stage["run"] if instr == "USER"]
        assert users, f"stage {name or 'default'} sets no USER"
        assert users[-1].split(":")[0] not in ("root", "0"), f"stage {name or 'default'} runs as root"


def test_dockerfile_mlflow_server_stage_installs_the_pinned_mlflow():
    (stage,) = [s for s in dockerfile_stages() if s["name"] == "mlflow-server"]
    runs = " ".join(args for instr, args in stage["run"] if instr == "RUN")
    assert f"mlflow[auth]=={pins()['mlflow']}" in runs
    assert f"fastapi=={pins()['fastapi']}" in runs, "the server's fastapi should be the one pyproject pins"


def test_dockerfile_copies_no_whole_checkout():
    """Explicit COPYs only: `COPY . .` would carry .venv, .git, data and any local .env."""
    for instr, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if instr in ("COPY", "ADD"):
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            assert "." not in sources and "./" not in sources, f"{instr} {args}"


# -- docker-compose.yml ---------------------------------------------------------------------------
@functools.cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def command_of(svc: dict) -> str:
    cmd = svc.get("command", "")
    text = " ".join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd)
    return re.sub(r"(--[\w-]+)=", r"\1 ", " ".join(text.split()))


def environment_of(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def image_of(svc: dict) -> str:
    return interpolate(svc["image"], {})


def test_compose_parses_and_has_the_team_stack():
    expected = {"postgres", "minio", "mlflow", "prefect-server", "prefect-worker", "ray-head", "ray-worker"}
    assert expected <= set(services())


def test_compose_images_are_pinned():
    for name, svc in services().items():
        assert "image" in svc, f"{name}: no image (an untagged build is not pinned)"
        assert image_pinned(image_of(svc)), f"{name}: image {image_of(svc)!r} is not pinned to a version"


LOOPBACK_DEFAULTS = ("127.0.0.1", "${BIND_ADDRESS:-127.0.0.1}")


def port_binds_loopback_by_default(entry) -> bool:
    if isinstance(entry, dict):  # long syntax
        return str(entry.get("host_ip", "")) in LOOPBACK_DEFAULTS and "published" in entry
    s = str(entry)
    for prefix in LOOPBACK_DEFAULTS:
        if s.startswith(prefix + ":"):
            return re.fullmatch(r"\d+(-\d+)?:\d+(-\d+)?(/(tcp|udp))?", s[len(prefix) + 1:]) is not None
    return False


@pytest.mark.parametrize(
    "entry, ok",
    [
        ("${BIND_ADDRESS:-127.0.0.1}:4200:4200", True),
        ("127.0.0.1:5000:5000", True),
        ({"target": 80, "published": 8080, "host_ip": "127.0.0.1"}, True),
        ("8080:8080", False),
        ("8080", False),
        ("0.0.0.0:80:80", False),
        ("${BIND_ADDRESS:-0.0.0.0}:80:80", False),
        ("${BIND_ADDRESS}:80:80", False),
        ({"target": 80, "published": 8080}, False),
    ],
)
def test_loopback_port_checker(entry, ok):
    assert port_binds_loopback_by_default(entry) is ok


def test_compose_publishes_ports_on_loopback_only_by_default():
    published = 0
    for name, svc in services().items():
        assert svc.get("network_mode") != "host", f"{name}: host networking bypasses the port binds"
        assert not svc.get("privileged"), f"{name}: privileged"
        for entry in svc.get("ports", []):
            published += 1
            assert port_binds_loopback_by_default(entry), f"{name}: port {entry!r} is not bound to 127.0.0.1 by default"
            if isinstance(entry, str):
                assert interpolate(entry, {}).startswith("127.0.0.1:")
    assert published, "no published port at all: the loopback check checked nothing"
    assert not services()["postgres"].get("ports"), "the database needs no published port"


SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|auth_string|access_key|api_key|apikey|private_key|credential)")
NOT_A_SECRET_VALUE = re.compile(r"(?i)(name|ref|path|file|_mode|_url|_uri)$")


def secret_named(key: str) -> bool:
    return bool(SECRET_NAME.search(key)) and not NOT_A_SECRET_VALUE.search(key)


def test_compose_secrets_are_required_variables_without_defaults():
    required = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}")
    seen = 0
    for name, svc in services().items():
        for key, value in environment_of(svc).items():
            if secret_named(key):
                seen += 1
                assert required.fullmatch(value), f"{name}: {key} must be ${{VAR:?message}} (no default), is {value!r}"
    assert seen >= 8, "expected the stack's passwords, keys and tokens in the environment"


def _strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(k) + _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def compose_required_variables() -> set[str]:
    """The ${VAR:?...} variables of the parsed file (its comments do not count)."""
    return {v for s in _strings(compose()) for v in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", s)}


def env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            out[key.strip()] = value.strip()
    return out


def test_env_example_lists_every_required_variable_with_placeholders():
    example = env_example()
    missing = compose_required_variables() - set(example)
    assert not missing, f".env.example lacks {sorted(missing)}"
    for key, value in example.items():
        if secret_named(key):
            assert "change-me" in value, f".env.example: {key} must be a change-me placeholder"
    assert example.get("BIND_ADDRESS") == "127.0.0.1"


def _service_running(pattern: str) -> tuple[str, dict]:
    found = [(n, s) for n, s in services().items() if re.search(pattern, command_of(s))]
    assert found, f"no service runs {pattern!r}"
    return found[0]


def _uses_project_image(svc: dict) -> bool:
    m = re.fullmatch(r"dml:(?P<version>[^-]+)-(?P<variant>cpu|cuda)", image_of(svc))
    return bool(m) and m.group("version") == project_version()


def test_compose_project_images_are_built_from_the_dockerfile_at_the_projects_version():
    for name, svc in services().items():
        ref = image_of(svc)
        if ref.split(":")[0] == "dml":
            assert _uses_project_image(svc), f"{name}: {ref!r} is not dml:{project_version()}-cpu|cuda"
            build = svc.get("build") or {}
            assert build.get("dockerfile") == "infra/Dockerfile", f"{name}: not built from infra/Dockerfile"
            assert build.get("args", {}).get("VARIANT") == ref.rsplit("-", 1)[1], f"{name}: VARIANT and tag differ"
        if ref.split(":")[0] == "dml-mlflow":
            assert ref == f"dml-mlflow:{pins()['mlflow']}"
            assert svc["build"]["target"] == "mlflow-server"


def test_compose_prefect_ray_and_mlflow_versions_match_pyproject():
    for name, svc in services().items():
        cmd, ref = command_of(svc), image_of(svc)
        if re.search(r"\bprefect (server|worker) start\b", cmd):
            ok = _uses_project_image(svc) or ref.startswith(f"prefecthq/prefect:{pins()['prefect']}")
            assert ok, f"{name} runs Prefect from {ref!r}, not Prefect {pins()['prefect']}"
        if re.search(r"\bray start\b", cmd):
            ok = _uses_project_image(svc) or ref.startswith(f"rayproject/ray:{pins()['ray']}")
            assert ok, f"{name} runs Ray from {ref!r}, not Ray {pins()['ray']}"
        if re.search(r"\bmlflow server\b", cmd):
            ok = ref in (f"dml-mlflow:{pins()['mlflow']}", f"ghcr.io/mlflow/mlflow:v{pins()['mlflow']}")
            assert ok, f"{name} runs MLflow from {ref!r}, not MLflow {pins()['mlflow']}"


def test_compose_prefect_server_uses_postgres_and_basic_auth():
    name, svc = _service_running(r"\bprefect server start\b")
    env = environment_of(svc)
    url = env.get("PREFECT_API_DATABASE_CONNECTION_URL") or env.get("PREFECT_SERVER_DATABASE_CONNECTION_URL") or ""
    by_parts = env.get("PREFECT_SERVER_DATABASE_DRIVER") == "postgresql+asyncpg" and env.get("PREFECT_SERVER_DATABASE_HOST") == "postgres"
    assert url.startswith("postgresql+asyncpg://") or by_parts, f"{name}: Prefect's database is not Postgres"
    assert "PREFECT_SERVER_API_AUTH_STRING" in env


def test_compose_prefect_worker_polls_the_process_pool():
    name, svc = _service_running(r"\bprefect worker start\b")
    cmd = command_of(svc)
    assert re.search(r"--pool dml-pool\b", cmd) and re.search(r"--type process\b", cmd), cmd
    env = environment_of(svc)
    for key in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        assert key in env, f"{name}: no {key}"


def test_compose_mlflow_has_basic_auth_postgres_and_minio_artifacts():
    name, svc = _service_running(r"\bmlflow server\b")
    cmd, env = command_of(svc), environment_of(svc)
    assert "--app-name basic-auth" in cmd
    assert re.search(r"--artifacts-destination s3://\S+", cmd)
    assert env.get("MLFLOW_S3_ENDPOINT_URL", "").startswith("http://minio:")
    assert env.get("POSTGRES_HOST") == "postgres" or env.get("MLFLOW_BACKEND_STORE_URI", "").startswith("postgresql")
    for key in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert key in env, f"{name}: no {key}"


def test_compose_ray_has_a_blocking_head_workers_and_token_auth_everywhere():
    _service_running(r"\bray start --head\b.*--block\b|\bray start\b.*--block\b.*--head\b")
    _service_running(r"\bray start --address ray-head:6379\b.*--block\b")
    for name, svc in services().items():
        if re.search(r"\bray start\b", command_of(svc)):
            env = environment_of(svc)
            assert env.get("RAY_AUTH_MODE") == "token", f"{name}: RAY_AUTH_MODE is not token"
            assert env.get("RAY_AUTH_TOKEN", "").startswith("${RAY_AUTH_TOKEN:?"), f"{name}: RAY_AUTH_TOKEN"


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not docker_compose_available(), reason="the docker compose plugin is not installed")
def test_docker_compose_config_accepts_the_file(tmp_path):
    """`docker compose config` needs no daemon: it validates the file against the spec."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MINIO_", "MLFLOW_", "PREFECT_", "RAY_"))}
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}=test-only-{k.lower()}-0123456789\n" for k in sorted(compose_required_variables())))
    run = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--env-file", str(env_file), "config", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    config = json.loads(run.stdout)
    for name, svc in config["services"].items():
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"


# -- Kubernetes manifests -------------------------------------------------------------------------
@functools.cache
def k8s_docs() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert "apiVersion" in doc and "kind" in doc, f"{path.name}: a document without apiVersion/kind"
                docs.append((path.name, doc))
    return docs


def k8s_kind(kind: str) -> list[dict]:
    return [d for _, d in k8s_docs() if d["kind"] == kind]


def containers_in(node) -> list[dict]:
    """Every container and init container anywhere under a manifest."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found += [c for c in value if isinstance(c, dict)]
            found += containers_in(value)
    elif isinstance(node, list):
        for value in node:
            found += containers_in(value)
    return found


def test_k8s_manifests_parse_and_kustomization_lists_existing_files():
    kinds = {d["kind"] for _, d in k8s_docs()}
    assert {"RayCluster", "RayJob", "ConfigMap", "Kustomization"} <= kinds
    (kustomization,) = k8s_kind("Kustomization")
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), f"kustomization.yaml lists a missing file: {resource}"


def test_k8s_images_are_pinned():
    images = [c["image"] for _, d in k8s_docs() for c in containers_in(d)]
    assert images
    for ref in images:
        assert image_pinned(ref), f"image {ref!r} is not pinned to a version"


def _ray_image_ok(ref: str, variant: str) -> bool:
    return ref == f"dml:{project_version()}-{variant}" or ref.startswith(f"rayproject/ray:{pins()['ray']}")


def test_k8s_raycluster_matches_ray_pin_with_cpu_head_and_gpu_workers():
    (cluster,) = k8s_kind("RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    spec = cluster["spec"]
    assert str(spec["rayVersion"]) == pins()["ray"], "rayVersion differs from pyproject's ray pin"
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", "the head must not be exposed by default"
    for c in containers_in(head):
        assert _ray_image_ok(c["image"], "cpu"), c["image"]
        assert "nvidia.com/gpu" not in str(c.get("resources", {})), "the head is the CPU node"
    gpu_groups = [
        g for g in spec["workerGroupSpecs"]
        if any(int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)) >= 1 for c in containers_in(g))
    ]
    assert gpu_groups, "no worker group with nvidia.com/gpu limits"
    for group in gpu_groups:
        for c in containers_in(group):
            assert _ray_image_ok(c["image"], "cuda"), c["image"]
    auth = spec.get("authOptions", {})
    assert auth.get("mode") == "token" and auth.get("secretName"), "Ray token auth must be on, the token by reference"


def test_k8s_rayjob_runs_the_sweep_on_the_cluster_with_endpoints_from_config():
    (job,) = k8s_kind("RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    entrypoint = " ".join(spec["entrypoint"].split())
    assert entrypoint.startswith("dml sweep") and "--profile paper" in entrypoint, entrypoint
    (cluster,) = k8s_kind("RayCluster")
    if "clusterSelector" in spec:
        assert spec["clusterSelector"].get("ray.io/cluster") == cluster["metadata"]["name"]
        target = cluster
    else:
        target = {"spec": spec["rayClusterSpec"]}
    (configmap,) = [c for c in k8s_kind("ConfigMap") if "MLFLOW_TRACKING_URI" in c.get("data", {})]
    assert "PREFECT_API_URL" in configmap["data"]
    for c in containers_in(target["spec"]):
        sources = c.get("envFrom", [])
        assert {"configMapRef": {"name": configmap["metadata"]["name"]}} in sources, f"{c['name']}: no endpoints ConfigMap"
        assert any("secretRef" in s for s in sources), f"{c['name']}: no credentials Secret"


def test_k8s_commits_no_secret_data_and_exposes_no_service():
    for name, doc in k8s_docs():
        if doc["kind"] == "Secret":
            assert not doc.get("data") and not doc.get("stringData"), f"{name}: a Secret with values is committed"
        if doc["kind"] == "Service":
            assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", f"{name}: {doc['spec'].get('type')}"


# -- no secret committed --------------------------------------------------------------------------
_KEY_VALUE = re.compile(
    r"(?<![\w.])[\"']?(?P<key>[A-Za-z_][\w.-]*)[\"']?\s*[:=]\s*(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s,#}\]]*)"
)
_DEFAULTED_VAR = re.compile(r"\$\{(?P<var>[A-Za-z_]\w*)(?P<op>:?[-=])(?P<default>[^}]*)\}")
_URL_CREDENTIALS = re.compile(r"[A-Za-z][\w+.-]*://(?P<user>[^/\s:@'\"]+):(?P<password>[^@\s/'\"]+)@")
_PLACEHOLDER_WORDS = ("change-me", "changeme", "placeholder", "example", "redacted", "xxxx", "...")
_LITERAL_TOKEN = re.compile(r"[\w\-+/=.@!%^&*~:]+")


def _placeholder(value: str) -> bool:
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        v = v[1:-1].strip()
    if v in ("", "|", ">", "|-", ">-", "{}", "[]", "null", "~", "true", "false"):
        return True
    if v[0] in "${<":  # a reference: $VAR, ${VAR:?...}, $(command), {template}, <fill in>
        return True
    return any(word in v.lower() for word in _PLACEHOLDER_WORDS)


def find_secrets(text: str) -> list[str]:
    """Lines that commit a secret: a password/secret/token key with a literal value, a
    secret variable given a compose default, credentials inside a URL, a private key or an
    AWS access key id. Placeholders (change-me, <...>) and references ($VAR, ${VAR:?...},
    secretKeyRef, secretName) pass."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        for m in _KEY_VALUE.finditer(line):
            key, value = m.group("key"), m.group("value")
            if not secret_named(key) or _placeholder(value):
                continue
            quoted = value[:1] in "\"'"
            if quoted or _LITERAL_TOKEN.fullmatch(value):  # bare values with ( ) etc. are code
                found.append(f"line {n}: {key} has a literal value")
        for m in _DEFAULTED_VAR.finditer(line):
            if secret_named(m.group("var")):
                found.append(f"line {n}: secret variable {m.group('var')} has a default")
        for m in _URL_CREDENTIALS.finditer(line):
            if not _placeholder(m.group("password")):
                found.append(f"line {n}: a URL carries a password")
        if re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", line) or re.search(r"\bAKIA[0-9A-Z]{16}\b", line):
            found.append(f"line {n}: a private key or an AWS access key id")
    return found


@pytest.mark.parametrize(
    "line",
    [
        "POSTGRES_PASSWORD=hunter2",
        "password: s3cr3t-Value",
        '  "api_key": "AbC123xyz"',
        "RAY_AUTH_TOKEN: 9f2c4e6a8b0d",
        "secret_access_key = 'wJalrXUtnFEMI/K7MDENG'",
        "PREFECT_API_AUTH_STRING=admin:hunter2",
        "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-hunter2}",
        "MLFLOW_TRACKING_PASSWORD: ${MLFLOW_PASSWORD-}",
        "backend: postgresql://dml:hunter2@postgres:5432/mlflow",
        "aws_access_key_id = AKIAABCDEFGHIJKLMNOP",
        "-----BEGIN RSA PRIVATE KEY-----",
    ],
)
def test_secret_scanner_flags_committed_secrets(line):
    assert find_secrets(line), f"the scanner missed: {line!r}"


@pytest.mark.parametrize(
    "line",
    [
        "POSTGRES_PASSWORD=change-me",
        "PREFECT_API_AUTH_STRING=admin:change-me",
        "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}",
        "secretName: dml-ray-auth",
        "  - secretRef:",
        "RAY_AUTH_MODE: token",
        "RAY_AUTH_TOKEN_PATH: /run/secrets/ray_token",
        "backend: postgresql://dml:${POSTGRES_PASSWORD}@postgres/mlflow",
        'password = urllib.parse.quote(need("POSTGRES_PASSWORD"), safe="")',
        '--from-file=auth_token="$HOME/.ray/auth_token"',
        "token: <paste the output of ray get-auth-token>",
    ],
)
def test_secret_scanner_passes_placeholders_and_references(line):
    assert not find_secrets(line), find_secrets(line)


def infra_files() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_no_secret_value_is_committed_in_infra():
    files = infra_files()
    assert DOCKERFILE in files and COMPOSE in files and ENV_EXAMPLE in files
    problems = [f"{p.relative_to(ROOT)} {hit}" for p in files for hit in find_secrets(p.read_text(errors="replace"))]
    assert not problems, "\n".join(problems)


def test_no_env_file_is_tracked():
    """infra/.env holds real credentials: it must never be in git (only .env.example)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    run = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--", "infra"], capture_output=True, text=True, timeout=30)
    if run.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = [f for f in run.stdout.split() if re.search(r"(^|/)\.env($|\.)", f) and not f.endswith(".env.example")]
    assert not tracked, f"tracked env files: {tracked}"


# -- the README ------------------------------------------------------------------------------------
def test_readme_explains_scale_out_token_auth_builds_and_security():
    text = README.read_text()
    for needle in (
        "RAY_ADDRESS", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "dvc remote",  # the four settings
        "RAY_AUTH_MODE=token", "ray get-auth-token --generate", "RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token",
        "VARIANT=cuda", "docker compose", "127.0.0.1", "basic-auth", "kubectl",
    ):
        assert needle in text, f"infra/README.md does not mention {needle}"
