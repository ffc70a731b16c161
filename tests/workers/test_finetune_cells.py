"""Fine-tuning and feedback cells on a real worker: a base model the team brought is fine-tuned with
LoRA, both models answer the same prompts, and the pairs become a human-feedback campaign whose
votes tune the model again with DPO, and the two tuned models face people in a new campaign (the
RLHF loop in one notebook); a classification cell trains on SMS spam and classifies typed text on
an inference worker."""

import json
from html import unescape

import pytest
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.feedback.assignment import record_vote, take_items
from lab.feedback.export import export_campaign
from lab.feedback.models import Assignment, Campaign
from lab.hub.base_models import register_model_folder
from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell, Notebook
from lab.queues import INFERENCE_QUEUE
from lab.runs.models import Artifact, Status
from tests.builders import brought_model, run_status
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def _finish(cell, user, timeout=240):
    run = start_cell_run(cell, user)
    wait_for(lambda: run_status(run) not in (Status.QUEUED, Status.RUNNING), timeout=timeout, what=f"run {run.pk}")
    assert run.status == Status.SUCCEEDED, f"{run.error_field}: {run.error}"
    cell.refresh_from_db()
    return run


def test_sft_with_lora_then_both_models_answer_and_people_judge(cast, sample_data, processes, data_dir, base_model):
    brought = register_model_folder(cast.team, brought_model(base_model, data_dir, "chat-base"), "chat base", cast.alice)
    sft_data = create_dataset_from_path(cast.team, cast.alice, sample_data["sft/dolly-2k.messages.jsonl"], name="dolly")
    notebook = Notebook.objects.create(team=cast.team, title="chat", created_by=cast.alice)
    model = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.MODEL, config={"model": brought.pk})
    sft = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.SFT, config={
        "model_cell": model.pk, "dataset": sft_data.pk, "method": "lora", "lora_r": 8, "max_length": 128,
        "batch_size": 8, "max_steps": 12, "warmup_steps": 2, "lr": 5e-3, "eval_every": 6, "log_every": 3,
        "val_fraction": 0.02, "sample_prompts": ["Name a colour."], "sample_tokens": 8, "checkpoint_every_steps": 0,
    })
    generate = Cell.objects.create(notebook=notebook, position=2, kind=Cell.Kind.GENERATE, config={
        "model_cells": [model.pk, sft.pk], "prompts": ["Name a colour.", "What is a poem?", "Say hello."],
        "samples_per_prompt": 1, "max_new_tokens": 12, "seed": 3,
    })
    annotate = Cell.objects.create(notebook=notebook, position=3, kind=Cell.Kind.ANNOTATE, config={
        "generate_cell": generate.pk, "name": "base vs tuned", "annotators": [cast.bob.pk, cast.carol.pk], "overlap": 2,
    })
    processes.worker("w1")

    sft_run = _finish(sft, cast.alice)
    tuned = sft_run.artifacts.get(kind=Artifact.Kind.CHECKPOINT)
    assert list(tuned.parent_artifacts.all()) == [brought] and list(tuned.parent_datasets.all()) == [sft_data]
    val_losses = [e.data["values"]["val_loss"] for e in sft_run.events.filter(type="metric") if "val_loss" in e.data["values"]]
    assert len(val_losses) >= 2 and val_losses[-1] < val_losses[0], val_losses
    assert sft_run.events.filter(type="sample").exists()

    generate_run = _finish(generate, cast.alice)
    assert generate_run.inputs["model_cells"][1]["id"] == tuned.pk
    generations = generate_run.artifacts.get(kind=Artifact.Kind.GENERATIONS)
    lines = [json.loads(line) for line in generations.absolute_path.read_text().splitlines()]
    assert sorted({line["artifact"] for line in lines}) == sorted([brought.pk, tuned.pk]) and len(lines) == 6

    page = Client()
    page.force_login(cast.alice)
    response = page.post(f"/cells/{annotate.pk}/run/")
    campaign = Campaign.objects.get(source_run=generate_run)
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/"
    assert campaign.items.count() == 3 and set(campaign.annotators.all()) == {cast.bob, cast.carol}
    assert {(i.artifact_a_id, i.artifact_b_id) for i in campaign.items.all()} == {(brought.pk, tuned.pk)}
    assert page.post(f"/cells/{annotate.pk}/run/")["Location"] == f"/campaigns/{campaign.pk}/"  # the same one again
    assert Campaign.objects.count() == 1

    # The loop closes: people prefer the tuned model's answers, their pairs become a preference dataset,
    # DPO tunes on it, and the tuned and the preference-tuned models answer the same prompts in a new campaign.
    for person in (cast.bob, cast.carol):
        for item in campaign.items.order_by("pk"):
            held = next(a for a in take_items(campaign, person, depth=3) if a.item_id == item.pk)
            Assignment.objects.filter(pk=held.pk).update(shown_order="ab")
            record_vote(campaign, person, item.pk, "left" if item.artifact_a_id == tuned.pk else "right",
                        strength="clearly", seconds=3)
    pairs = export_campaign(campaign, cast.alice).dataset
    dpo = Cell.objects.create(notebook=notebook, position=4, kind=Cell.Kind.DPO, config={
        "model_cell": sft.pk, "dataset": pairs.pk, "method": "lora", "lora_r": 4, "max_length": 128, "batch_size": 2,
        "max_steps": 3, "warmup_steps": 0, "lr": 1e-2, "eval_every": 0, "log_every": 1, "val_fraction": 0.34,
        "sample_tokens": 4, "checkpoint_every_steps": 0, "schedule": "constant",
    })
    preferred = _finish(dpo, cast.alice).artifacts.get(kind=Artifact.Kind.CHECKPOINT)
    assert list(preferred.parent_artifacts.all()) == [tuned] and list(preferred.parent_datasets.all()) == [pairs]
    again = Cell.objects.create(notebook=notebook, position=5, kind=Cell.Kind.GENERATE, config={
        **generate.config, "model_cells": [sft.pk, dpo.pk]})
    second = Cell.objects.create(notebook=notebook, position=6, kind=Cell.Kind.ANNOTATE, config={
        **annotate.config, "generate_cell": again.pk, "name": "tuned vs preference-tuned"})
    _finish(again, cast.alice)
    page.post(f"/cells/{second.pk}/run/")
    rematch = Campaign.objects.get(name="tuned vs preference-tuned")
    assert {(i.artifact_a_id, i.artifact_b_id) for i in rematch.items.all()} == {(tuned.pk, preferred.pk)}

    html = unescape(page.get(f"/notebooks/{notebook.pk}/").content.decode())
    assert f"/models/{tuned.pk}/" in html and "6 responses" in html and "base vs tuned" in html
    model_page = unescape(page.get(f"/models/{tuned.pk}/").content.decode())
    assert "LlamaForCausalLM" in model_page and "<|im_start|>" in model_page  # the chat template travels on


def test_a_classifier_trains_on_a_worker_and_classifies_typed_text(cast, processes, data_dir, small_base_model, sms_spam_subset):
    brought = register_model_folder(cast.team, brought_model(small_base_model, data_dir, "small"), "small base", cast.alice)
    sms = create_dataset_from_path(cast.team, cast.alice, sms_spam_subset, name="sms spam")
    notebook = Notebook.objects.create(team=cast.team, title="spam", created_by=cast.alice)
    model = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.MODEL, config={"model": brought.pk})
    classify = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.CLASSIFY, config={
        "model_cell": model.pk, "dataset": sms.pk, "max_length": 64, "batch_size": 16, "max_steps": 60,
        "warmup_steps": 5, "lr": 3e-3, "eval_every": 0, "log_every": 10, "checkpoint_every_steps": 0,
    })
    processes.worker("w1")
    processes.worker("inference", queues=INFERENCE_QUEUE, pool="solo")

    run = _finish(classify, cast.alice)
    classifier = run.artifacts.get(kind=Artifact.Kind.CHECKPOINT)
    metrics, baseline = classifier.metadata["metrics"], classifier.metadata["baseline"]
    assert metrics["macro_f1"] > baseline["macro_f1"] + 0.2, (metrics, baseline)
    assert sorted(classifier.metadata["labels"]) == ["ham", "spam"]

    page = Client()
    page.force_login(cast.alice)
    html = page.get(f"/notebooks/{notebook.pk}/").content.decode()
    assert 'data-role="confusion"' in html and f"/models/{classifier.pk}/classify/" in html
    answer = page.post(f"/models/{classifier.pk}/classify/", {"texts": [
        "WINNER!! You have won a 1000 cash prize. Call 09061701461 to claim now", "ok see you at lunch then"]},
        content_type="application/json")
    assert answer.status_code == 200, answer.content
    results = answer.json()["results"]
    assert [r["label"] for r in results] == ["spam", "ham"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in results)
    assert page.post(f"/models/{classifier.pk}/classify/", {"texts": []}, content_type="application/json").status_code == 400
    deep = page.post(f"/models/{classifier.pk}/classify/", "[" * 50_000 + "]" * 50_000, content_type="application/json")
    assert deep.status_code == 400 and "must be JSON" in deep.json()["error"]

    outsider = Client()
    outsider.force_login(cast.mallory)
    assert outsider.post(f"/models/{classifier.pk}/classify/", {"text": "hi"}, content_type="application/json").status_code == 404
