"""docker-compose.yml, the Dockerfile and .env.example agree with the code they deploy.

There is no Docker engine on the dev and CI machines, so the compose file is checked by reading it:
every command names modules that exist, every variable it sets is one the settings read, the GPU
worker reserves a GPU. No network, no Django apps needed beyond the URL check.
"""

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml

from lab.queues import INFERENCE_QUEUE

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
LAB_SERVICES = {name: svc for name, svc in SERVICES.items() if svc.get("image") == "llm-lab:latest"}
# Variables the lab services may set that the settings do not read: CUDA's own, read by torch.
NOT_SETTINGS = {"CUDA_DEVICE_ORDER", "CUDA_VISIBLE_DEVICES"}
CORE_ENV = {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "DJANGO_DEBUG", "LAB_ALLOWED_HOSTS", "LAB_DATA_DIR"}
# Read outside lab/settings.py: by `make up` (lab/devstack.py) and `make sample-data`.
READ_ELSEWHERE = {"LAB_PORT", "LAB_SAMPLE_DATA"}


def settings_env_vars() -> set[str]:
    """The variable names lab/settings.py reads, through its env_* readers or os.environ."""
    text = (ROOT / "lab" / "settings.py").read_text()
    patterns = [
        r"\benv_\w+\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']",
        r"os\.environ(?:\.get)?[\[(]\s*[\"']([A-Z][A-Z0-9_]*)[\"']",
        r"os\.getenv\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']",
    ]
    return {name for pattern in patterns for name in re.findall(pattern, text)}


def argv(service: dict) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    if words[:2] == ["sh", "-c"]:
        words = shlex.split(" ".join(words[2:]).replace("&&", " "))
    return words


def module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def top_level_names(path: Path) -> set[str]:
    """Names a module binds at top level: assignments, defs and imports."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_it_has_the_production_services():
    assert set(SERVICES) == {"postgres", "redis", "web", "control", "worker-cpu", "worker-gpu", "worker-inference"}
    assert set(LAB_SERVICES) == {"web", "control", "worker-cpu", "worker-gpu", "worker-inference"}
    assert SERVICES["postgres"]["image"] == "postgres:16"
    assert SERVICES["redis"]["image"] == "redis:7"
    assert "noeviction" in argv(SERVICES["redis"])
    for name in ("postgres", "redis", "web"):
        assert "healthcheck" in SERVICES[name], name


@pytest.mark.parametrize("name", sorted(LAB_SERVICES))
def test_it_runs_modules_that_exist(name):
    words = argv(LAB_SERVICES[name])

    if "celery" in words:
        app = words[words.index("-A") + 1]
        path = module_file(app)
        assert path, f"{name}: celery -A {app}: no module {app} in the repository"
        # Celery looks for `app` or `celery` in the module, or for a submodule named celery.
        assert {"app", "celery"} & top_level_names(path) or module_file(f"{app}.celery"), (
            f"{name}: {app} defines no Celery app"
        )
    if "daphne" in words:
        module, attr = words[-1].split(":")
        path = module_file(module)
        assert path, f"{name}: daphne {words[-1]}: no module {module} in the repository"
        assert attr in top_level_names(path), f"{name}: {module} does not define {attr}"
    if "manage.py" in words:
        assert (ROOT / "manage.py").is_file()
    assert "celery" in words or "daphne" in words, f"{name} runs neither daphne nor celery"


def consumed_queues(name: str) -> set[str]:
    words = argv(SERVICES[name])
    return set(words[words.index("-Q") + 1].split(","))


def test_it_runs_web_beat_and_workers_on_their_queues():
    from django.conf import settings

    assert argv(SERVICES["web"])[:4] == ["python", "manage.py", "migrate", "--noinput"]
    assert "lab.asgi:application" in argv(SERVICES["web"])
    control, cpu, gpu = (argv(SERVICES[n]) for n in ("control", "worker-cpu", "worker-gpu"))
    assert control[:4] == ["celery", "-A", "workers", "worker"] and "-B" in control
    assert consumed_queues("control") == {"control"}, "the reaper must never wait behind a run"
    assert consumed_queues("worker-cpu") == {"cpu"}
    assert consumed_queues("worker-gpu") == {"gpu"}
    assert gpu[gpu.index("-c") + 1] == "1"
    assert "-B" not in cpu + gpu, "beat runs once, in the control service"
    assert consumed_queues("worker-inference") == {INFERENCE_QUEUE}, "people waiting never queue behind a run"
    consumed = set().union(*(consumed_queues(n) for n in ("control", "worker-cpu", "worker-gpu", "worker-inference")))
    scheduled = {entry["options"]["queue"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled | {"cpu", "gpu", INFERENCE_QUEUE} <= consumed, "a queue the lab sends to that no service consumes"


@pytest.mark.parametrize("name", sorted(LAB_SERVICES))
def test_it_sets_only_variables_the_settings_read(name):
    env = LAB_SERVICES[name]["environment"]
    read = settings_env_vars()

    assert CORE_ENV <= set(env), f"{name} misses {CORE_ENV - set(env)}"
    assert set(env) - read - NOT_SETTINGS == set(), "set in compose but never read by lab/settings.py"
    assert str(env["DJANGO_DEBUG"]) == "0"
    assert env["LAB_DATA_DIR"] == "/data"
    assert "labdata:/data" in LAB_SERVICES[name]["volumes"]


def test_it_reserves_a_gpu_for_the_gpu_worker():
    gpu = SERVICES["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]

    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu["environment"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert gpu["environment"]["CUDA_VISIBLE_DEVICES"] == "0"
    for name in ("web", "control", "worker-cpu"):
        assert "deploy" not in SERVICES[name], f"{name} should not hold a GPU"


def test_it_checks_health_on_a_url_the_lab_serves():
    from django.urls import Resolver404, resolve

    check = " ".join(SERVICES["web"]["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:8000(/[^'\"\s]*)", check).group(1)
    try:
        resolve(path)
    except Resolver404:
        resolve(path + "/")  # APPEND_SLASH redirects, and urllib follows it


def test_it_builds_the_image_from_the_pinned_training_requirements():
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^ARG TORCH_INDEX_URL", dockerfile, re.M)
    assert "pip install -r requirements/train.txt" in dockerfile
    # qlora's bitsandbytes comes with the GPU extras, pinned, on top of the training stack.
    assert re.search(r'^ARG GPU_EXTRAS=1$', dockerfile, re.M) and "pip install -r requirements/gpu.txt" in dockerfile
    gpu = (ROOT / "requirements" / "gpu.txt").read_text().splitlines()
    assert "-r train.txt" in gpu and any(re.fullmatch(r"bitsandbytes==[0-9.]+", line) for line in gpu)
    assert "collectstatic --noinput" in dockerfile


def test_it_pins_every_requirement_and_keeps_torch_out_of_the_web():
    for path in sorted((ROOT / "requirements").glob("*.txt")):
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r "):
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][\w.]*", line), f"{path.name}: {line}"
    web = (ROOT / "requirements" / "web.txt").read_text().lower()
    assert not re.search(r"^(torch|transformers|trl|peft|accelerate)\b", web, re.M)


def test_it_lists_every_variable_in_env_example():
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.M))
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))

    missing = (settings_env_vars() | READ_ELSEWHERE | interpolated) - listed
    assert missing == set(), "add these to .env.example"
