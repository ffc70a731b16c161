"""The rule between the layers, read from the source: the web (`lab/`) never imports `workers` (it sends
tasks by name through lab/task_client.py), and `training/` never imports the web stack (see also
tests/training/test_import_boundary.py, which checks what an import really loads)."""

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
