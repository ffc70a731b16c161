"""One checkpoint layout for every stage (`checkpoint-N/`) and one resolver of `resume_from`; a pretrain
run saved before the layout was one (`step-NNNNNN/`) still resolves."""

import pytest

from training.checkpoint_layout import TRAINER_STATE, checkpoint_name, latest_checkpoint, resolve_checkpoint
from training.config import ConfigError


def _checkpoint(run, name):
    folder = run / name
    folder.mkdir(parents=True)
    (folder / TRAINER_STATE).write_text("{}")
    return folder


def test_the_highest_complete_checkpoint_is_the_one_a_run_folder_resumes_from(tmp_path):
    _checkpoint(tmp_path, checkpoint_name(9))
    last = _checkpoint(tmp_path, checkpoint_name(10))  # 10 > 9 although "checkpoint-10" < "checkpoint-9" as text
    (tmp_path / checkpoint_name(11)).mkdir()  # no trainer_state.json: a save that did not finish
    assert latest_checkpoint(tmp_path) == last
    assert resolve_checkpoint(tmp_path) == last
    assert resolve_checkpoint(last) == last


def test_a_pretrain_run_saved_with_the_earlier_names_still_resolves(tmp_path):
    _checkpoint(tmp_path, "step-000040")
    later = _checkpoint(tmp_path, "step-000080")
    assert resolve_checkpoint(tmp_path) == later


def test_a_folder_without_checkpoints_names_the_field(tmp_path):
    (tmp_path / "step-12").mkdir()  # not a name the lab ever wrote
    with pytest.raises(ConfigError) as err:
        resolve_checkpoint(tmp_path, field="init_from")
    assert err.value.field == "init_from"
