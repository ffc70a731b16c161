import json

import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import mark_safe

from lab.runs.streaming import run_state

register = template.Library()


@register.filter
def state_json(run) -> str:
    return json.dumps(run_state(run))


@register.filter
def markdown(text: str) -> str:
    """Markdown rendered and sanitised: notes are written by users and read by their team."""
    return mark_safe(nh3.clean(markdown_lib.markdown(text or "", extensions=["fenced_code", "tables"])))


@register.filter
def si(value) -> str:
    """1234567 → 1.23M: parameter and token counts at a glance."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return ""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


# The live charts that fit each stage's metrics (static/js/run-view.js draws them, and adds GPU
# memory when a run reports it). Stages without steps (tokenizer, clean) show progress alone.
STAGE_CHARTS = {"pretrain": "loss,lr,speed", "sft": "loss,lr,speed", "classify": "loss,quality,speed",
                "reward": "loss,pairs,speed",
                "dpo": "loss,rewards,margins,speed", "rl": "reward,kl,length,speed", "generate": "speed"}


@register.filter
def charts(run) -> str:
    return STAGE_CHARTS.get(run.stage, "")
