"""The rule between the layers, read from the source: the web (`lab/`) never imports `workers` (it sends
tasks by name through lab/task_client.py), `training/` never imports the web stack (see also
tests/training/test_import_boundary.py, which checks what an import really loads), and the lab's apps
do not import each other in a circle."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file (inside functions too)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{path.relative_to(REPO)} imports {module}"
                  for path in (REPO / package).rglob("*.py")
                  for module in imported_modules(path) if module.split(".")[0] in forbidden)


def test_the_web_never_imports_workers():
    assert offenders("lab", ("workers",)) == []


def test_training_never_imports_the_web_stack():
    assert offenders("training", ("django", "celery", "redis", "channels", "lab", "workers")) == []


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("def send():\n    from workers.app import app\n    return app\n")
    assert imported_modules(source) == {"workers.app"}


# None left: datasets reads runs (tokenizer artifacts for its previews, the runs that read a dataset) and
# registers a clean run's output itself, through the registrar it adds to lab/runs/outputs.py.
KNOWN_CYCLES: set[frozenset[str]] = set()


def app_imports() -> dict[str, set[str]]:
    """lab app → the other lab apps its modules import (migrations aside)."""
    apps = {path.parent.name for path in (REPO / "lab").glob("*/apps.py")} | {"api"}
    graph: dict[str, set[str]] = {app: set() for app in apps}
    for app in apps:
        for path in (REPO / "lab" / app).rglob("*.py"):
            if "migrations" not in path.parts:
                graph[app] |= {m.split(".")[1] for m in imported_modules(path)
                               if m.startswith("lab.") and m.split(".")[1] in apps and m.split(".")[1] != app}
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The groups of apps that reach each other through imports (of two apps or more)."""
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen
    reached = {app: reach(app) for app in graph}
    return {frozenset({a} | {b for b in reached[a] if a in reached[b]}) for a in graph if a in reached[a]}


def test_no_lab_apps_import_each_other_in_a_circle():
    graph = app_imports()
    assert {"notebooks", "runs", "datasets", "feedback", "api"} <= set(graph)
    found = cycles(graph)
    assert found - KNOWN_CYCLES == set(), "apps that import each other"
    assert KNOWN_CYCLES <= found, "a known cycle is gone: take it off KNOWN_CYCLES"


def test_a_cycle_through_three_apps_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}
