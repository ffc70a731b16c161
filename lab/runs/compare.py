"""Runs of one team side by side: their curves overlaid (by step, tokens seen or time), the last and
best value of every metric, what differs in their configs and inputs, and the samples they wrote at
the same step. Everything is read from the stored events, as the run page replays them."""

import json
import math
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from lab import params
from lab.access import get_artifact_for_user, get_run_for_user
from lab.runs.models import Artifact, Run, RunEvent
from training.config import ConfigError

MAX_RUNS = 8
"""Runs on one page: past this the curves are a tangle and the config diff too wide to read."""
MAX_POINTS = 1000
"""Points per curve sent to the page; a longer curve is thinned evenly (its last point kept)."""
SAMPLE_STEPS = 20
"""Steps of samples shown: those where the most runs sampled, then the latest."""
SAMPLE_CHARS = 2000
COLORS = ("#4f46e5", "#dc2626", "#059669", "#d97706", "#0891b2", "#db2777", "#65a30d", "#7c3aed")
NOT_CURVES = {"progress", "tokens", "epoch"}
"""Metric keys that are an x axis or bookkeeping, not a curve."""
FIRST = ("loss", "val_loss", "val_ppl", "accuracy", "macro_f1", "token_accuracy")
LOWER_IS_BETTER = ("loss", "ppl", "perplexity")
HIGHER_IS_BETTER = ("acc", "f1", "exact_match", "pass@", "win_rate", "reward", "score")
LEFT_OUT_OF_DIFF = {"output_dir"}
"""Config keys that differ between any two runs by construction (each run's own folder)."""
ABSENT = "—"


def better(key: str) -> str | None:
    """"lower" or "higher" when a metric has a better direction (losses, perplexities, accuracies…),
    None for the rest (learning rate, speed, memory), which have a last value but no best."""
    key = key.lower()
    if any(word in key for word in LOWER_IS_BETTER):
        return "lower"
    if any(word in key for word in HIGHER_IS_BETTER):
        return "higher"
    return None


def _order(key: str) -> tuple:
    return (FIRST.index(key) if key in FIRST else len(FIRST) + (better(key) is None), key)


# Which runs


def _ids(query, name: str) -> list[int]:
    values = query.getlist(name)
    if len(values) > MAX_RUNS:
        raise ConfigError(name, f"compare at most {MAX_RUNS} runs at once ({len(values)} given)")
    return [params.integer({name: value}, name, min_value=1, required=True) for value in values]


def compared_runs(user, query) -> list[Run]:
    """The runs of `?run=` (repeatable) and the runs that made the checkpoints of `?checkpoint=`, in that
    order, each once. ConfigError (a 400) names the parameter that is malformed, too large, or past
    MAX_RUNS; a run or checkpoint the user cannot see, or a mix of two teams' runs, is a 404."""
    run_ids, checkpoint_ids = _ids(query, "run"), _ids(query, "checkpoint")
    runs = {pk: get_run_for_user(user, pk) for pk in run_ids}
    for pk in checkpoint_ids:
        artifact = get_artifact_for_user(user, pk)
        if artifact.kind != Artifact.Kind.CHECKPOINT or artifact.run_id is None:
            raise ConfigError("checkpoint", f"artifact {pk} is not a checkpoint a run of the lab made")
        runs.setdefault(artifact.run_id, get_run_for_user(user, artifact.run_id))
    if not runs:
        raise ConfigError("run", "pick at least one run (run=<id>) or checkpoint (checkpoint=<id>)")
    if len(runs) > MAX_RUNS:
        raise ConfigError("run", f"compare at most {MAX_RUNS} runs at once ({len(runs)} given)")
    if len({run.team_id for run in runs.values()}) > 1:  # a user of two teams still compares within one
        raise Http404("not found")
    return list(runs.values())


def candidates(run: Run, limit: int = 50) -> list[Run]:
    """The team's other recent runs to compare `run` with: those of its cell first, then of its stage."""
    others = Run.objects.for_team(run.team).exclude(pk=run.pk).select_related("cell")[:limit]
    return sorted(others, key=lambda other: (other.cell_id != run.cell_id, other.stage != run.stage))


def label(run: Run) -> str:
    return f"run {run.pk} · {run.cell.display_title if run.cell else run.stage}"


# What they logged


@dataclass
class Trace:
    """One run's events folded as the run page folds them: a resumed attempt's status rewinds what the
    lost attempt logged after its checkpoint, so a curve never doubles back."""

    origin: float | None = None
    curves: dict[str, dict[str, list]] = field(default_factory=dict)
    samples: dict[int, list[dict]] = field(default_factory=dict)
    tokens: list[tuple[int, int]] = field(default_factory=list)

    def add(self, type: str, t: float, data: dict) -> None:
        if type == "status":
            resumed_from = (data.get("summary") or {}).get("resumed_from_step")
            if resumed_from is not None:
                self.rewind(resumed_from)
            if data.get("status") == "running" and self.origin is None:
                self.origin = t
        elif type == "metric":
            self.metric(data.get("step", 0), t, data.get("values") or {})
        elif type == "sample":
            text = (data.get("prompt") or "") + (data.get("text") or "")
            self.samples.setdefault(data.get("step", 0), []).append({"text": text[:SAMPLE_CHARS], "cut": len(text) > SAMPLE_CHARS})

    def metric(self, step: int, t: float, values: dict) -> None:
        if self.origin is None:
            self.origin = t
        if _number(values.get("tokens")):
            self.tokens.append((step, values["tokens"]))
        tokens = self.tokens[-1][1] if self.tokens else None  # an eval point: the tokens seen by then
        for key, value in values.items():
            if key in NOT_CURVES or not _number(value):
                continue
            curve = self.curves.setdefault(key, {"step": [], "time": [], "tokens": [], "y": []})
            curve["step"].append(step)
            curve["time"].append(round(t - self.origin, 3))
            curve["tokens"].append(tokens)
            curve["y"].append(value)

    def rewind(self, step: int) -> None:
        for curve in self.curves.values():
            keep = next((i for i, s in enumerate(curve["step"]) if s > step), len(curve["step"]))
            for values in curve.values():
                del values[keep:]
        self.samples = {s: texts for s, texts in self.samples.items() if s <= step}
        self.tokens = [(s, n) for s, n in self.tokens if s <= step]


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def traces(runs: list[Run]) -> list[Trace]:
    folded = {run.pk: Trace() for run in runs}
    events = (RunEvent.objects.filter(run__in=runs, type__in=("status", "metric", "sample"))
              .order_by("run_id", "seq").values_list("run_id", "type", "t", "data"))
    for run_id, type, t, data in events.iterator(chunk_size=2000):
        folded[run_id].add(type, t, data)
    return [folded[run.pk] for run in runs]


def thinned(curve: dict[str, list]) -> dict[str, list]:
    n = len(curve["y"])
    if n <= MAX_POINTS:
        return curve
    keep = list(range(0, n, math.ceil(n / MAX_POINTS)))
    if keep[-1] != n - 1:
        keep.append(n - 1)
    return {axis: [values[i] for i in keep] for axis, values in curve.items()}


def _shown(value: float) -> str:
    """Five significant digits: two runs' losses differ in the third decimal, learning rates in 1e-5s."""
    return f"{value:.5g}"


def metrics_table(keys: list[str], folded: list[Trace]) -> list[dict]:
    """Per metric, each run's last value and, where the metric has a better direction, its best and the
    step it was reached at (the first such step)."""
    rows = []
    for key in keys:
        direction, cells = better(key), []
        for trace in folded:
            curve = trace.curves.get(key)
            if not curve:
                cells.append(None)
                continue
            ys = curve["y"]
            cell = {"last": ys[-1], "last_shown": _shown(ys[-1]), "last_step": curve["step"][-1]}
            if direction:
                best = (min if direction == "lower" else max)(range(len(ys)), key=ys.__getitem__)
                cell |= {"best": ys[best], "best_shown": _shown(ys[best]), "best_step": curve["step"][best]}
            cells.append(cell)
        winners = [c["best"] for c in cells if c and "best" in c]
        top = (min if direction == "lower" else max)(winners) if direction and len(winners) > 1 else None
        for cell in cells:
            if cell and top is not None:
                cell["top"] = cell["best"] == top
        rows.append({"key": key, "better": direction, "cells": cells})
    return rows


# What they were


def _flat(value, prefix: str, into: dict) -> dict:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flat(inner, f"{prefix}.{key}" if prefix else str(key), into)
    else:
        into[prefix] = value if isinstance(value, str) else json.dumps(value)
    return into


def _used(used) -> str:
    items = used if isinstance(used, list) else [used]
    return ", ".join(f"{item.get('kind')} {item.get('id')}" + (f" (cell {item['cell']})" if item.get("cell") else "")
                     for item in items if isinstance(item, dict))


def config_diff(runs: list[Run]) -> list[dict]:
    """The config keys (nested ones dotted), inputs and stage whose values are not the same in every run,
    each run's value or ABSENT where it has none. A run's own output folder is left out."""
    flat = []
    for run in runs:
        values = {"stage": run.stage} | _flat(run.config, "", {})
        values |= {f"input: {key}": _used(used) for key, used in run.inputs.items()}
        flat.append({key: value for key, value in values.items() if key not in LEFT_OUT_OF_DIFF})
    keys = sorted({key for values in flat for key in values}, key=lambda key: (key != "stage", key.startswith("input: "), key))
    rows = []
    for key in keys:
        values = [values.get(key, ABSENT) for values in flat]
        if len(set(values)) > 1:
            rows.append({"key": key, "values": values})
    return rows


def samples_side_by_side(folded: list[Trace]) -> tuple[list[dict], int]:
    """Rows of (step, each run's samples at that step) for the SAMPLE_STEPS steps where the most runs
    sampled (then the latest), in step order; and how many sampled steps were left out."""
    steps = {step for trace in folded for step in trace.samples}
    count = {step: sum(step in trace.samples for trace in folded) for step in steps}
    shown = sorted(sorted(steps, key=lambda step: (-count[step], -step))[:SAMPLE_STEPS])
    rows = [{"step": step, "shared": count[step] == len(folded), "cells": [trace.samples.get(step, []) for trace in folded]}
            for step in shown]
    return rows, len(steps) - len(shown)


def comparison(runs: list[Run]) -> dict:
    folded = traces(runs)
    keys = sorted({key for trace in folded for key in trace.curves}, key=_order)
    samples, samples_left_out = samples_side_by_side(folded)
    described = [{"id": run.pk, "label": label(run), "color": COLORS[i % len(COLORS)], "run": run,
                  "without": urlencode([("run", other.pk) for other in runs if other is not run])}
                 for i, run in enumerate(runs)]
    return {
        "runs": described,
        "chart_data": {
            "runs": [{"id": d["id"], "label": d["label"], "color": d["color"]} for d in described],
            "keys": keys,
            "curves": [{key: thinned(curve) for key, curve in trace.curves.items()} for trace in folded],
        },
        "metrics": metrics_table(keys, folded),
        "config_diff": config_diff(runs),
        "samples": samples,
        "samples_left_out": samples_left_out,
    }


@login_required
def compare_runs(request):
    """`/runs/compare/?run=3&run=7&checkpoint=12`: the picked runs of one team side by side."""
    try:
        runs = compared_runs(request.user, request.GET)
    except ConfigError as exc:
        return params.bad_request(exc)
    picked = {run.pk for run in runs}
    addable = [other for other in candidates(runs[0]) if other.pk not in picked] if len(runs) < MAX_RUNS else []
    return render(request, "runs/compare.html", comparison(runs) | {"addable": addable, "max_runs": MAX_RUNS})
