"""`make bench`: run the benchmarks and write their results to bench/results/<name>.json.

    python bench/run.py                # all
    python bench/run.py pretrain       # one

Each result records the machine it ran on; compare numbers only between runs on the same machine.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCHMARKS = ["pretrain", "clean", "tokenizer", "sft", "feedback", "evaluate", "dpo", "grpo", "serving", "playground", "admission"]


def machine() -> dict:
    import torch

    return {
        "host": platform.node(), "cpu_cores": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main(names: list[str]) -> int:
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    if len(names) != 1:
        # One process per benchmark: one that starts a lab (bench/lab.py) sets Django up for that lab,
        # and Django's settings are read once a process.
        broken = [name for name in names or BENCHMARKS if subprocess.run([sys.executable, __file__, name]).returncode]
        if broken:
            print(f"bench: these did not finish: {', '.join(broken)}", file=sys.stderr)
        return 1 if broken else 0
    name = names[0]
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    print(f"bench: {name} ...", flush=True)
    result = importlib.import_module(f"bench.{name}").main()
    record = {"benchmark": name, "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "machine": machine(), **result}
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"bench: {name} written to {path.relative_to(ROOT)}")
    failed = [f"{name}.{part}" for part, values in result.items() if not values.get("met", True)]
    if failed:
        print(f"bench: goals not met: {', '.join(failed)}")
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
