"""An evaluation's pages: the report (checkpoints × metrics with intervals, the failures paged, two checkpoints
side by side where they disagree), the evaluate cell's table, and the evaluations a model page lists. Another
team's evaluation is a 404; bad query values fall back, a broken results file is named, never a 500."""

import json
from html import unescape

import pytest
from django.test import Client

from lab.evaluations.results import disagreements, failures, metric_table, read_rows
from lab.runs.models import Artifact

pytestmark = pytest.mark.django_db

QUESTIONS = 45


def _rows() -> list[dict]:
    """a answers every third question wrong, b every fifth; both pick "x" when wrong."""
    rows = []
    for model, every in (("a", 3), ("b", 5)):
        for i in range(QUESTIONS):
            wrong = i % every == 0
            rows.append({"model": model, "artifact": None, "index": i, "prompt": f"Question {i}?", "target": "right",
                         "answer": "x" if wrong else "right", "correct": not wrong})
    return rows


def _metric(value: float, n: int = QUESTIONS) -> dict:
    return {"value": value, "low": value - 0.1, "high": value + 0.05, "n": n, "interval": "wilson"}


@pytest.fixture
def evaluation(cast, data_dir):
    checkpoint_folder = data_dir / "runs" / "1" / "checkpoint-60"
    checkpoint_folder.mkdir(parents=True)
    checkpoint = Artifact.objects.create(team=cast.team, kind=Artifact.Kind.CHECKPOINT, name="tiny · step 60",
                                         path="runs/1/checkpoint-60", sha256="0" * 64)
    folder = data_dir / "runs" / "2"
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    evaluation = Artifact.objects.create(
        team=cast.team, kind=Artifact.Kind.EVALUATION, name="Evaluate · run 2", path="runs/2/results.jsonl", sha256="1" * 64,
        metadata={"task": "multiple_choice", "dataset": "mmlu-test-500.jsonl", "examples": QUESTIONS, "settings": {"num_fewshot": 0},
                  "models": [{"label": "a", "artifact": checkpoint.pk, "metrics": {"acc": _metric(30 / 45), "acc_norm": _metric(0.6)},
                              "subjects": {"virology": {"acc": _metric(0.5, 4)}}},
                             {"label": "b", "artifact": None, "metrics": {"acc": _metric(36 / 45)}}]})
    evaluation.parent_artifacts.add(checkpoint)
    return {"evaluation": evaluation, "checkpoint": checkpoint}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_shows_each_checkpoints_metrics_with_their_intervals(cast, evaluation):
    html = unescape(_client(cast.carol).get(f"/evaluations/{evaluation['evaluation'].pk}/").content.decode())
    assert 'data-model="a"' in html and 'data-model="b"' in html
    assert "0.667</b>" in html and "[0.567, 0.717]" in html and "0.800</b>" in html
    assert html.count('data-role="evaluation-chart"') == 1 and "virology" in html
    table = metric_table(evaluation["evaluation"].metadata)
    assert table.names == ["acc", "acc_norm"] and table.rows[1]["cells"][1] is None  # b has no acc_norm
    assert table.chart["models"][0]["plus"] == [pytest.approx(0.05), pytest.approx(0.05)]


def test_the_failures_are_paged(cast, evaluation):
    client = _client(cast.alice)
    url = f"/evaluations/{evaluation['evaluation'].pk}/"
    first = unescape(client.get(url, {"model": "a"}).content.decode())
    assert "15 examples wrong · page 1 of 1" in first and first.count('data-role="failure"') == 15
    rows = _rows() + [{**r, "model": "c", "correct": False} for r in _rows() if r["model"] == "a"]
    assert len(failures(rows, "c")) == 45
    # 45 failures: 20, 20, then 5; a page past the last shows the last, one that is no number the first.
    evaluation["evaluation"].absolute_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    evaluation["evaluation"].metadata["models"].append({"label": "c", "artifact": None, "metrics": {}})
    evaluation["evaluation"].save()
    assert unescape(client.get(url, {"model": "c", "page": "3"}).content.decode()).count('data-role="failure"') == 5
    assert "page 3 of 3" in unescape(client.get(url, {"model": "c", "page": "99999999999999999999"}).content.decode())
    assert "page 1 of 3" in unescape(client.get(url, {"model": "c", "page": "abc"}).content.decode())
    assert "15 examples wrong" in unescape(client.get(url, {"model": "<script>"}).content.decode())  # unknown: the first


def test_two_checkpoints_side_by_side_only_where_they_disagree(cast, evaluation):
    pairs = disagreements(_rows(), "a", "b")
    # Wrong for a at multiples of 3, for b at multiples of 5: they agree at multiples of 15 (both "x") and elsewhere.
    assert [left["index"] for left, _ in pairs] == [i for i in range(QUESTIONS) if (i % 3 == 0) != (i % 5 == 0)]
    html = unescape(_client(cast.alice).get(f"/evaluations/{evaluation['evaluation'].pk}/", {"a": "a", "b": "b"}).content.decode())
    assert f"{len(pairs)} questions answered differently" in html
    assert html.count('data-role="disagreement"') == min(len(pairs), 20)
    same = unescape(_client(cast.alice).get(f"/evaluations/{evaluation['evaluation'].pk}/", {"a": "b", "b": "b"}).content.decode())
    assert "Pick two different checkpoints" in same


def test_another_teams_evaluation_is_a_404(cast, evaluation):
    client = _client(cast.mallory)
    assert client.get(f"/evaluations/{evaluation['evaluation'].pk}/").status_code == 404
    assert _client(cast.alice).get(f"/evaluations/{evaluation['checkpoint'].pk}/").status_code == 404  # not an evaluation
    assert _client(cast.alice).get("/evaluations/99999999999999999999/").status_code == 404
    assert Client().get(f"/evaluations/{evaluation['evaluation'].pk}/").status_code == 302  # to the login page


def test_a_broken_results_file_is_named_not_a_500(cast, evaluation):
    path = evaluation["evaluation"].absolute_path
    path.write_text(path.read_text() + "{not json\n")
    response = _client(cast.alice).get(f"/evaluations/{evaluation['evaluation'].pk}/")
    assert response.status_code == 200 and "results.jsonl, line 91: not JSON" in unescape(response.content.decode())
    path.write_text("[1, 2]\n")
    assert read_rows(path) == ([], "results.jsonl, line 1: not an object")
    path.unlink()
    assert _client(cast.alice).get(f"/evaluations/{evaluation['evaluation'].pk}/").status_code == 200


def test_the_model_page_lists_every_evaluation_of_the_checkpoint(cast, evaluation):
    html = unescape(_client(cast.alice).get(f"/models/{evaluation['checkpoint'].pk}/").content.decode())
    assert html.count('data-role="evaluation-row"') == 1
    assert f"/evaluations/{evaluation['evaluation'].pk}/" in html and "acc <b>0.667</b>" in html


def test_the_evaluate_cell_shows_its_form_then_its_table(cast, evaluation):
    from lab.notebooks.models import Cell, Notebook
    from lab.runs.models import Run, Status

    notebook = Notebook.objects.create(team=cast.team, title="scores", created_by=cast.alice)
    cell = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.EVALUATE, config={})
    client = _client(cast.alice)
    html = unescape(client.get(f"/notebooks/{notebook.pk}/").content.decode())
    assert "Few-shot examples" in html and "multiple choice" in html and "evaluation-table" not in html

    run = Run.objects.create(team=cast.team, cell=cell, stage="evaluate", config={}, status=Status.SUCCEEDED)
    Artifact.objects.filter(pk=evaluation["evaluation"].pk).update(run=run)
    cell.current_run = run
    cell.save()
    html = unescape(client.get(f"/notebooks/{notebook.pk}/").content.decode())
    assert 'data-role="evaluation-table"' in html and 'data-model="b"' in html and f'id="evaluation-{cell.pk}"' in html
    assert f"/evaluations/{evaluation['evaluation'].pk}/" in html
