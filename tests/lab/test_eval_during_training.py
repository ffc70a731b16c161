"""A training cell names evaluate cells (`eval_cells`): its run's config carries their settings and
datasets as `eval_tasks`, so the run scores each checkpoint it saves (training/checkpoint_evals.py), and
its frozen inputs record the datasets used. The evaluate cells need not have run."""

import pytest
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Artifact, Run
from tests.builders import FAST_PRETRAIN
from training.config import ConfigError

pytestmark = pytest.mark.django_db


@pytest.fixture
def cells(cast, sample_data, settings):
    corpus = create_dataset_from_path(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"], name="shakespeare")
    notebook = Notebook.objects.create(team=cast.team, title="Evaluated", created_by=cast.alice)
    corpus_cell = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.CORPUS, config={"corpus": corpus.pk})
    tokenizer = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.TOKENIZER, config={"corpus_cell": corpus_cell.pk})
    tokenizer.current_run = Run.objects.create(team=cast.team, cell=tokenizer, stage="tokenizer", config={}, status="succeeded")
    tokenizer.save()
    folder = settings.LAB_DATA_DIR / "runs" / str(tokenizer.current_run.pk)
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text("{}")
    Artifact.objects.create(team=cast.team, run=tokenizer.current_run, kind="tokenizer", name="tok",
                            path=f"runs/{tokenizer.current_run.pk}/tokenizer.json", sha256="0" * 64)
    evaluate = Cell.objects.create(notebook=notebook, position=2, kind=Cell.Kind.EVALUATE, title="Held-out text",
                                   config={"dataset": corpus.pk, "model_cells": [], "task": "perplexity", "max_examples": 16})
    pretrain = Cell.objects.create(notebook=notebook, position=3, kind=Cell.Kind.PRETRAIN, title="Tiny", config={
        "corpus_cell": corpus_cell.pk, "tokenizer_cell": tokenizer.pk, "eval_cells": [evaluate.pk], **FAST_PRETRAIN})
    return {"corpus": corpus, "notebook": notebook, "evaluate": evaluate, "pretrain": pretrain}


def test_the_run_evaluates_each_checkpoint_with_the_evaluate_cells_settings_and_dataset(cast, cells):
    corpus, evaluate = cells["corpus"], cells["evaluate"]
    run = start_cell_run(cells["pretrain"], cast.alice)
    assert run.config["eval_tasks"] == [{"task": "perplexity", "max_examples": 16, "label": f"Held-out-text-{evaluate.pk}",
                                         "dataset_path": str(corpus.absolute_path), "dataset_format": "txt"}]
    assert run.inputs["eval_cells"] == [{"cell": evaluate.pk, "kind": "dataset", "id": corpus.pk, "sha256": corpus.sha256}]
    # The pretrain cell's form offers the notebook's evaluate cells.
    page = Client()
    page.force_login(cast.alice)
    html = page.get(f"/notebooks/{cells['notebook'].pk}/").content.decode()
    assert f'<option value="{evaluate.pk}" selected>Held-out text</option>' in html


def test_an_evaluate_cell_without_a_dataset_or_of_another_notebook_is_refused_naming_eval_cells(cast, cells):
    pretrain, evaluate = cells["pretrain"], cells["evaluate"]
    evaluate.config = {"model_cells": [], "task": "perplexity"}
    evaluate.save()
    with pytest.raises(ConfigError) as refused:
        start_cell_run(pretrain, cast.alice)
    assert (refused.value.field, refused.value.message) == ("eval_cells", "'Held-out text' has no dataset: choose one in it first")

    elsewhere = Cell.objects.create(notebook=Notebook.objects.create(team=cast.team, title="Other", created_by=cast.alice),
                                    kind=Cell.Kind.EVALUATE, config={"dataset": cells["corpus"].pk})
    pretrain.config["eval_cells"] = [elsewhere.pk]
    pretrain.save()
    with pytest.raises(ConfigError) as refused:
        start_cell_run(pretrain, cast.alice)
    assert refused.value.field == "eval_cells" and f"cell {elsewhere.pk} is not a" in refused.value.message
    assert not Run.objects.filter(cell=pretrain).exists()
