"""The web process imports parts of `training`; the training process must never pull in the web."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.training.helpers import REPO

WEB_STACK = ("django", "celery", "redis", "channels", "lab", "workers")


def _modules_after_import(*modules: str) -> set[str]:
    """sys.modules of a fresh interpreter (no Django settings) after importing `modules`."""
    imports = "".join(f"import {m}\n" for m in modules)
    code = f"import json, sys\n{imports}print(json.dumps(sorted(sys.modules)))"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}  # no DJANGO_SETTINGS_MODULE, no LAB_*
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))


def test_it_imports_every_module_without_the_web_stack():
    modules = [f"training.{p.stem}" for p in sorted((REPO / "training").glob("*.py"))]
    assert "training.pretrain" in modules and "training.__main__" in modules
    loaded = _modules_after_import(*modules)
    assert "torch" in loaded  # the heavy modules really were imported
    leaked = sorted(m for m in loaded if m.split(".")[0] in WEB_STACK)
    assert leaked == []


def test_it_keeps_torch_out_of_the_modules_the_web_imports():
    loaded = _modules_after_import(
        "training", "training.config", "training.presets", "training.corpus", "training.stages"
    )
    heavy = sorted(m for m in loaded if m.split(".")[0] in ("torch", "transformers", "tokenizers", "numpy"))
    assert heavy == []
