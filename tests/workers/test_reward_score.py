"""The score box on a real inference worker: the web sends a prompt and responses, the worker loads the
reward model once and answers with the rewards the training library's scorer gives."""

import pytest
from django.test import Client

from lab.queues import INFERENCE_QUEUE
from lab.runs.models import Artifact

pytestmark = pytest.mark.e2e


def _reward_model(base_model, folder):
    """The chat base with a fresh one-output score head (seeded): a reward model the stage's shape."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base_model, num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base_model).save_pretrained(folder)


def test_a_typed_prompt_and_responses_are_scored_by_an_inference_worker(cast, processes, data_dir, base_model):
    from training.reward import load_reward_scorer

    _reward_model(base_model, data_dir / "rm")
    model = Artifact.objects.create(team=cast.team, kind=Artifact.Kind.CHECKPOINT, name="taste", path="rm",
                                    sha256="0" * 64, metadata={"task": "reward"})
    processes.worker("inference", queues=INFERENCE_QUEUE, pool="solo")
    prompt, responses = "What is the capital of France?", ["Paris.", "I would rather not say."]

    page = Client()
    page.force_login(cast.alice)
    answer = page.post(f"/models/{model.pk}/score/", {"prompt": prompt, "responses": responses}, content_type="application/json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["model"] == model.pk and [r["response"] for r in body["results"]] == responses
    expected = load_reward_scorer(data_dir / "rm").score([prompt, prompt], responses)
    assert [r["reward"] for r in body["results"]] == pytest.approx(expected, abs=1e-5)
    assert expected[0] != expected[1]

    again = page.post(f"/models/{model.pk}/score/", {"prompt": prompt, "response": responses[1]}, content_type="application/json")
    assert again.json()["results"][0]["reward"] == pytest.approx(expected[1], abs=1e-5)  # the cached model, the same answer
