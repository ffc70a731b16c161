"""The stages that train share one base for their training-loop fields (training/config.py's
TrainingLoopConfig): each field's doc and check is written once, a stage redeclares a default."""

from __future__ import annotations

import dataclasses

import pytest

from training.classify_config import ClassifyConfig
from training.config import TrainingLoopConfig, field_docs
from training.pretrain_config import PretrainConfig
from training.sft_config import SftConfig

TRAINERS = (PretrainConfig, SftConfig, ClassifyConfig)
LOOP = [f.name for f in dataclasses.fields(TrainingLoopConfig)]


@pytest.mark.parametrize("config", TRAINERS)
def test_every_field_has_its_doc_the_inherited_ones_too(config: type):
    docs = field_docs(config)
    assert [f.name for f in dataclasses.fields(config) if not docs.get(f.name)] == []
    assert docs["lr"] == "Peak learning rate, reached after warmup."  # redeclared without a doc


@pytest.mark.parametrize("config", TRAINERS)
def test_a_stage_lists_its_own_fields_first_then_the_loop(config: type):
    names = [f.name for f in dataclasses.fields(config)]
    own = [n for n in names if n not in LOOP and n not in ("checkpoint_every_minutes", "eval_tasks")]  # mixins' fields
    assert names[:len(own)] == own and names[len(own):len(own) + len(LOOP)] == LOOP


@pytest.mark.parametrize(("config", "lr", "beta2"), [
    (PretrainConfig, 3e-3, 0.95), (SftConfig, 2e-5, 0.999), (ClassifyConfig, 5e-5, 0.999),
])
def test_a_stage_keeps_its_own_defaults(config: type, lr: float, beta2: float):
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    assert (defaults["lr"], defaults["beta2"]) == (lr, beta2)

