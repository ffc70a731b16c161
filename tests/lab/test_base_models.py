"""Base models a team brings: an archive uploaded in chunks, or a folder an admin registers. The model
page shows what is inside; archives with pickled weights or escaping members are refused whole."""

import io
import tarfile
import zipfile
from html import unescape

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from lab.hub.base_models import register_model_folder
from lab.runs.models import Artifact

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_folder(tmp_path, tokenizer_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.checkpoint import hf_tokenizer
    from training.config import CHATML_TEMPLATE

    config = LlamaConfig(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128)
    folder = tmp_path / "tiny-chat"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer = hf_tokenizer(tokenizer_path, 128)
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tokenizer_path(tmp_path, sample_data):
    from tests.training.helpers import FakeReporter
    from training.tokenizer import train_tokenizer
    from training.tokenizer_config import TokenizerConfig

    cfg = TokenizerConfig(corpus_path=str(sample_data["corpora/tinyshakespeare.txt"]), output_dir=str(tmp_path / "tok"),
                          vocab_size=512)
    return train_tokenizer(cfg, FakeReporter())


def _tar_gz(folder, top="tiny-chat") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=top)
    return buffer.getvalue()


def _upload(user, filename: str, content: bytes, team, name=""):
    api = Client(headers={"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"})
    upload = api.post("/api/uploads/", {"filename": filename, "size": len(content)}, content_type="application/json").json()
    half = len(content) // 2
    api.patch(f"/api/uploads/{upload['id']}/?offset=0", content[:half], content_type="application/octet-stream")
    api.patch(f"/api/uploads/{upload['id']}/?offset={half}", content[half:], content_type="application/octet-stream")
    return api.post(f"/api/uploads/{upload['id']}/complete-model/", {"team": team.pk, "name": name},
                    content_type="application/json")


def test_an_uploaded_archive_becomes_a_model_whose_page_shows_what_is_inside(cast, model_folder, data_dir):
    response = _upload(cast.alice, "tiny-chat.tar.gz", _tar_gz(model_folder), cast.team)

    assert response.status_code == 201, response.content
    model = Artifact.objects.get(pk=response.json()["id"])
    assert (model.kind, model.run, model.name, model.metadata["source"]) == ("checkpoint", None, "tiny-chat", "upload")
    assert model.absolute_path.is_dir() and model.absolute_path.is_relative_to(data_dir / "models")
    page = Client()
    page.force_login(cast.carol)
    html = unescape(page.get(f"/models/{model.pk}/").content.decode())
    params = model.metadata["model"]["parameters"]
    assert "LlamaForCausalLM" in html and f"({params})" in html and "128 tokens" in html
    assert "<|im_start|>" in html  # the chat template
    assert "tiny-chat" in page.get("/models/").content.decode()
    outsider = Client()
    outsider.force_login(cast.mallory)
    assert outsider.get(f"/models/{model.pk}/").status_code == 404
    assert "tiny-chat" not in outsider.get("/models/").content.decode()


def test_pickled_weights_and_escaping_members_are_refused_and_nothing_stays(cast, model_folder, data_dir):
    import torch
    from transformers import LlamaForCausalLM

    state = LlamaForCausalLM.from_pretrained(model_folder).state_dict()
    (model_folder / "model.safetensors").unlink()
    torch.save(state, model_folder / "pytorch_model.bin")
    pickled = _upload(cast.alice, "pickled.tar.gz", _tar_gz(model_folder), cast.team)
    assert pickled.status_code == 400 and "not safetensors" in pickled.json()["error"]

    escaping = io.BytesIO()
    with zipfile.ZipFile(escaping, "w") as archive:
        archive.writestr("../config.json", "{}")
    refused = _upload(cast.alice, "evil.zip", escaping.getvalue(), cast.team)
    assert refused.status_code == 400 and "escapes" in refused.json()["error"]

    assert not Artifact.objects.exists()
    assert not list((data_dir / "models").iterdir()) and not list((data_dir / "uploads").iterdir())


def test_only_an_admin_registers_a_folder_on_the_workers(cast, model_folder):
    member = Client()
    member.force_login(cast.alice)
    assert "Register a model folder" not in member.get("/models/").content.decode()
    member.post("/models/", {"team": cast.team.pk, "path": str(model_folder), "name": "sneaky"})
    assert not Artifact.objects.exists()

    cast.alice.is_staff = True
    cast.alice.save()
    bad = member.post("/models/", {"team": cast.team.pk, "path": str(model_folder / "absent"), "name": "x"})
    assert bad.status_code == 400 and "no model folder" in unescape(bad.content.decode())
    response = member.post("/models/", {"team": cast.team.pk, "path": str(model_folder), "name": "registered"})
    model = Artifact.objects.get()
    assert response["Location"] == f"/models/{model.pk}/"
    assert model.absolute_path == model_folder and model.metadata["source"] == "registered path"


def _cells_on(cast, model, **datasets):
    from lab.notebooks.models import Cell, Notebook

    notebook = Notebook.objects.create(team=cast.team, title="tune", created_by=cast.alice)
    model_cell = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.MODEL, config={"model": model.pk})
    return notebook, model_cell


def test_cells_refuse_the_wrong_data_and_a_context_too_long_before_anything_is_queued(cast, model_folder, sample_data):
    from lab.datasets.actions import create_dataset_from_path
    from lab.hub.base_models import register_model_folder
    from lab.notebooks.actions import start_cell_run
    from lab.notebooks.models import Cell
    from lab.runs.models import Run
    from training.config import ConfigError

    model = register_model_folder(cast.team, model_folder, "tiny chat", cast.alice)
    preference = create_dataset_from_path(cast.team, cast.alice, sample_data["preference/hh-harmless-test-1811.prompt.jsonl"])
    sft_data = create_dataset_from_path(cast.team, cast.alice, sample_data["sft/dolly-2k.messages.jsonl"])
    notebook, model_cell = _cells_on(cast, model)

    wrong_kind = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.SFT,
                                     config={"model_cell": model_cell.pk, "dataset": preference.pk})
    with pytest.raises(ConfigError) as e:
        start_cell_run(wrong_kind, cast.alice)
    assert e.value.field == "dataset" and "preference" in e.value.message

    too_long = Cell.objects.create(notebook=notebook, position=2, kind=Cell.Kind.SFT,
                                   config={"model_cell": model_cell.pk, "dataset": sft_data.pk, "max_length": 4096})
    with pytest.raises(ConfigError) as e:
        start_cell_run(too_long, cast.alice)
    assert e.value.field == "max_length" and "128" in e.value.message

    unknown_module = Cell.objects.create(notebook=notebook, position=3, kind=Cell.Kind.SFT, config={
        "model_cell": model_cell.pk, "dataset": sft_data.pk, "max_length": 64, "method": "lora",
        "lora_target_modules": ["attn_qkv"]})
    with pytest.raises(ConfigError) as e:
        start_cell_run(unknown_module, cast.alice)
    assert e.value.field == "lora_target_modules" and "q_proj" in e.value.message  # the real ones are listed
    assert not Run.objects.exists()

    page = Client()
    page.force_login(cast.alice)
    form = {"title": "", "model_cell": model_cell.pk, "dataset": sft_data.pk, "max_length": 4096}
    blank = page.get(f"/notebooks/{notebook.pk}/")
    assert blank.status_code == 200
    response = page.post(f"/cells/{too_long.pk}/save/", {**_defaults(too_long), **form})
    assert response.status_code == 400 and "can serve" in unescape(response.content.decode())


def _defaults(cell) -> dict:
    """The cell's form as the browser shows it, posted back unchanged."""
    from lab.notebooks.forms import FORMS

    blank = FORMS[cell.kind](cell=cell)
    shown = {name: blank.get_initial_for_field(field, name) for name, field in blank.fields.items()}
    return {key: "on" if value is True else ("" if value is None else value) for key, value in shown.items() if value is not False}


def test_a_pretrain_cell_with_a_base_model_continues_from_its_weights_and_tokenizer(cast, model_folder, sample_data):
    from lab.datasets.actions import create_dataset_from_path
    from lab.hub.base_models import register_model_folder
    from lab.notebooks.kinds import resolve_inputs, training_config
    from lab.notebooks.models import Cell

    model = register_model_folder(cast.team, model_folder, "tiny chat", cast.alice)
    corpus = create_dataset_from_path(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])
    notebook, model_cell = _cells_on(cast, model)
    corpus_cell = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.CORPUS, config={"corpus": corpus.pk})
    pretrain = Cell.objects.create(notebook=notebook, position=2, kind=Cell.Kind.PRETRAIN, config={
        "corpus_cell": corpus_cell.pk, "model_cell": model_cell.pk, "context_length": 64, "max_steps": 10, "warmup_steps": 2})

    config = training_config(pretrain, resolve_inputs(pretrain), output_dir="/tmp/continue")
    assert config.init_from == str(model_folder) and config.tokenizer_path == str(model_folder / "tokenizer.json")


def test_a_downloaded_checkpoint_is_the_model_and_another_team_can_upload_it(cast, model_folder):
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):  # a Trainer checkpoint's
        (model_folder / name).write_bytes(b"pickled training state")
    model = register_model_folder(cast.team, model_folder, "tuned")
    api = Client(headers={"Authorization": f"Token {Token.objects.get_or_create(user=cast.alice)[0].key}"})

    def download(query: str = "") -> bytes:
        response = api.get(f"/api/artifacts/{model.pk}/download/{query}")
        assert response.status_code == 200
        return b"".join(response.streaming_content)

    slim_zip = download()
    slim, whole = zipfile.ZipFile(io.BytesIO(slim_zip)), zipfile.ZipFile(io.BytesIO(download("?training_state=1")))
    top = f"checkpoint-{model.pk}-{model_folder.name}/"
    files = sorted(p.name for p in model_folder.iterdir())
    assert sorted(n.removeprefix(top) for n in whole.namelist()) == files
    assert sorted(n.removeprefix(top) for n in slim.namelist()) == [
        f for f in files if f not in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin")]
    assert slim.read(top + "model.safetensors") == (model_folder / "model.safetensors").read_bytes()

    uploaded = _upload(cast.mallory, "tuned.zip", slim_zip, cast.other_team)
    assert uploaded.status_code == 201, uploaded.content
    copy = Artifact.objects.get(pk=uploaded.json()["id"])
    assert copy.team == cast.other_team and copy.sha256 == model.sha256  # the same weights, in the other lab

    page = Client()
    page.force_login(cast.alice)
    html = page.get(f"/models/{model.pk}/").content.decode()
    assert "?training_state=1" in html and "with its training state" in html


def _zip_of(folder, top="m", extra: dict[str, bytes] | None = None, leave_out=()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.iterdir()):
            if path.name not in leave_out:
                archive.write(path, f"{top}/{path.name}")
        for name, content in (extra or {}).items():
            archive.writestr(f"{top}/{name}", content)
    return buffer.getvalue()


def test_another_teams_weights_cannot_be_taken_through_an_index(cast, model_folder, data_dir):
    """Team Alpha's model lies at a guessable place; Mallory's archive names it as its own shard."""
    import json

    alpha = _upload(cast.alice, "tiny-chat.tar.gz", _tar_gz(model_folder), cast.team)
    assert alpha.status_code == 201
    stolen = Artifact.objects.get(pk=alpha.json()["id"]).absolute_path / "model.safetensors"
    answers = []
    for shard in (str(stolen), f"../../{stolen.relative_to(data_dir)}", "/etc/passwd", "/no/such/file.safetensors"):
        tensors = json.loads(stolen.read_bytes()[8:8 + int.from_bytes(stolen.read_bytes()[:8], "little")])
        index = {"metadata": {}, "weight_map": {name: shard for name in tensors if name != "__metadata__"}}
        archive = _zip_of(model_folder, leave_out=("model.safetensors",),
                          extra={"model.safetensors.index.json": json.dumps(index)})
        response = _upload(cast.mallory, "borrowed.zip", archive, cast.other_team)
        assert response.status_code == 400
        answers.append(response.json()["error"].replace(shard, "<shard>"))
    # One answer whatever the path: no byte of a file, and no sign of which paths exist.
    assert len(set(answers)) == 1 and "not inside the model's folder" in answers[0]
    assert list(Artifact.objects.values_list("team", flat=True)) == [cast.team.pk]
    assert len(list((data_dir / "models").iterdir())) == 1 and not list((data_dir / "uploads").iterdir())


def test_pickles_beside_safetensors_are_dropped_and_never_served(cast, model_folder, data_dir):
    (model_folder / "pytorch_model.bin").write_bytes(b"a pickle that would run code")
    response = _upload(cast.alice, "both.zip", _zip_of(model_folder), cast.team)
    assert response.status_code == 201, response.content
    model = Artifact.objects.get(pk=response.json()["id"])
    assert model.metadata["dropped_files"] == ["pytorch_model.bin"]
    assert not list(data_dir.rglob("*.bin"))
    page = Client()
    page.force_login(cast.alice)
    assert "pytorch_model.bin" in page.get(f"/models/{model.pk}/").content.decode()

    # A folder an admin registers is used in place: its pickle stays on disk but is never served.
    registered = register_model_folder(cast.team, model_folder, "in place")
    for query in ("", "?training_state=1"):
        download = page.get(f"/artifacts/{registered.pk}/download/{query}")
        names = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist()
        assert names and not [name for name in names if name.endswith(".bin")]


@pytest.mark.parametrize("extra, message", [
    ({"config.json/x": b"{}"}, "clashes with another member"),  # a file config.json and a folder config.json/
    ({"model.safetensors.index.json": b'{"weight_map": ["model.safetensors"]}'}, "weight_map must be an object"),
    ({"config.json": None}, "auto_map"),
    ({"config.json": b'{"model_type": "llama", "max_position_embeddings": "lots"}'}, "max_position_embeddings must be"),
    ({"tokenizer_config.json": b"[" * 50_000 + b"]" * 50_000}, "nested deeper than 64 levels"),
])
def test_hostile_model_archives_are_refused_with_why_and_nothing_stays(cast, model_folder, data_dir, extra, message):
    import json

    if extra.get("config.json", b"") is None:
        config = json.loads((model_folder / "config.json").read_text())
        extra = {"config.json": json.dumps({**config, "auto_map": {"AutoModel": "modeling_x.X"}}).encode()}
    response = _upload(cast.alice, "hostile.zip", _zip_of(model_folder, extra=extra, leave_out=tuple(extra)), cast.team)
    assert response.status_code == 400 and message in response.json()["error"], response.content
    assert not Artifact.objects.exists()
    assert not list((data_dir / "models").iterdir()) and not list((data_dir / "uploads").iterdir())


def test_a_registered_folder_holding_a_link_is_refused(cast, model_folder):
    (model_folder / "secrets").symlink_to("/etc")
    with pytest.raises(Exception) as e:
        register_model_folder(cast.team, model_folder, "linked")
    assert "secrets in tiny-chat is a link" in str(e.value) and not Artifact.objects.exists()
