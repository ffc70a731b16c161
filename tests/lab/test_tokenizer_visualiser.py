"""The tokenizer cell's visualiser: tokens shown as the user's own characters, per-text statistics,
a second tokenizer of the team side by side, and the tokenizer's corpus statistics.

Real tokenizers of the three algorithms are trained once per module (on a slice of the sample
corpus, without a worker) and copied into each test's LAB_DATA_DIR as artifacts of succeeded runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from tokenizers import Tokenizer

from lab.accounts.actions import add_member
from lab.accounts.models import Role
from lab.hub.tokenizers import split_by_offsets
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Artifact, Run
from tests.training.helpers import FakeReporter
from training.config import CHATML_SPECIAL_TOKENS, CHATML_TEMPLATE
from training.tokenizer import train_tokenizer
from training.tokenizer_config import TokenizerConfig

pytestmark = pytest.mark.django_db

ALGORITHMS = ("bpe", "unigram", "wordpiece")
SPECIALS = ["<|endoftext|>", "<|pad|>", *CHATML_SPECIAL_TOKENS]
# Double spaces, a leading space and newlines: what WordPiece drops and Unigram turns into ▁.
ENGLISH = " ROMEO:\nBut, soft!  what light through yonder window breaks?\n It is the east, and Juliet is the sun."
CHINESE = "ROMEO: 東京は雨です。 But, soft!"  # no Chinese character occurs in tinyshakespeare


@pytest.fixture(scope="module")
def trained(sample_data, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """(tokenizer.json, artifact metadata) of each algorithm, trained on the corpus's first 200 kB."""
    root = tmp_path_factory.mktemp("visualiser")
    corpus = root / "corpus.txt"
    corpus.write_text(sample_data["corpora/tinyshakespeare.txt"].read_text(encoding="utf-8")[:200_000])
    done = {}
    for algorithm in ALGORITHMS:
        reporter = FakeReporter()
        cfg = TokenizerConfig(corpus_path=str(corpus), output_dir=str(root / algorithm), algorithm=algorithm,
                              vocab_size=512, special_tokens=SPECIALS, chat_template=CHATML_TEMPLATE)
        path = train_tokenizer(cfg, reporter)
        (artifact,) = reporter.of_type("artifact")
        done[algorithm] = path, artifact["metadata"]
    return done


def add_tokenizer(team, user, trained, algorithm: str, notebook: Notebook | None = None) -> Artifact:
    """A tokenizer cell whose current run succeeded with the trained tokenizer as its artifact."""
    notebook = notebook or Notebook.objects.create(team=team, title="Tokenizers", created_by=user)
    cell = Cell.objects.create(notebook=notebook, position=notebook.cells.count(), kind=Cell.Kind.TOKENIZER,
                               title=algorithm.upper(), config={"algorithm": algorithm, "vocab_size": 512})
    run = Run.objects.create(team=team, cell=cell, stage="tokenizer", config={}, status="succeeded")
    cell.current_run = run
    cell.save(update_fields=["current_run"])
    source, metadata = trained[algorithm]
    folder = settings.LAB_DATA_DIR / "runs" / str(run.pk)
    folder.mkdir(parents=True)
    shutil.copy(source, folder / "tokenizer.json")
    return Artifact.objects.create(team=team, run=run, kind="tokenizer", name=f"{cell.title} · run {run.pk}",
                                   path=f"runs/{run.pk}/tokenizer.json", sha256=metadata["sha256"], metadata=metadata)


@pytest.fixture
def tokenizers(cast, trained) -> dict[str, Artifact]:
    """Alpha's three tokenizers, in one notebook, and Mallory's team's byte-level BPE."""
    notebook = Notebook.objects.create(team=cast.team, title="Three ways to split", created_by=cast.alice)
    made = {algorithm: add_tokenizer(cast.team, cast.alice, trained, algorithm, notebook) for algorithm in ALGORITHMS}
    made["mallory"] = add_tokenizer(cast.other_team, cast.mallory, trained, "bpe")
    return made


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def encode(client: Client, artifact: Artifact, text: str, compare: Artifact | None = None):
    params = {"text": text} | ({"compare": compare.pk} if compare else {})
    return client.get(f"/artifacts/{artifact.pk}/encode/", params)


def shown_text(data: dict) -> str:
    return "".join(gap + piece for gap, piece in zip(data["gaps"], data["pieces"], strict=True)) + data["tail"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_shown_pieces_are_the_typed_text_and_the_ids_are_the_tokenizers(cast, tokenizers, algorithm):
    data = encode(client_of(cast.carol), tokenizers[algorithm], ENGLISH).json()
    expected = Tokenizer.from_file(str(tokenizers[algorithm].absolute_path)).encode(ENGLISH, add_special_tokens=False)
    assert data["ids"] == expected.ids and data["tokens"] == expected.tokens
    assert shown_text(data) == ENGLISH
    assert data["unknown"] == 0


def pairs_marked(data: dict, mark: str) -> list[tuple[str, str]]:
    """(vocabulary token, shown piece) of the tokens that start with `mark`."""
    return [(token, piece) for token, piece in zip(data["tokens"], data["pieces"], strict=True)
            if token.startswith(mark) and piece]


def test_continuation_and_word_start_marks_show_as_the_characters_they_cover(cast, tokenizers):
    client = client_of(cast.alice)
    wordpiece = encode(client, tokenizers["wordpiece"], ENGLISH).json()
    unigram = encode(client, tokenizers["unigram"], ENGLISH).json()
    continued = pairs_marked(wordpiece, "##")
    assert continued and all(piece == token.removeprefix("##") for token, piece in continued)
    assert " " in wordpiece["gaps"]  # WordPiece drops spaces: they are shown between its tokens
    word_starts = pairs_marked(unigram, "▁")
    assert word_starts and all(piece == token.replace("▁", " ") for token, piece in word_starts)
    assert not any("▁" in piece or "##" in piece for piece in unigram["pieces"] + wordpiece["pieces"])


def test_the_bytes_of_one_character_share_it_and_the_text_still_comes_back(cast, tokenizers):
    data = encode(client_of(cast.alice), tokenizers["bpe"], CHINESE).json()
    assert shown_text(data) == CHINESE
    assert data["count"] > len(CHINESE)  # each Chinese character is several byte tokens
    assert "" in data["pieces"]  # the later bytes of a character cover nothing new


def test_it_splits_by_offsets_without_losing_or_repeating_a_character():
    text = "東 ab  c"
    # Three tokens for the bytes of 東, a token over nothing, a gap of two spaces, a phantom ▁ on c.
    pieces, gaps, tail = split_by_offsets(text, [(0, 1), (0, 1), (0, 1), (2, 4), (6, 7), (6, 7)])
    assert pieces == ["東", "", "", "ab", "c", ""]
    assert gaps == ["", "", "", " ", "  ", ""]
    assert tail == "" and "".join(g + p for g, p in zip(gaps, pieces, strict=True)) + tail == text
    assert split_by_offsets("ab ", [(0, 2)]) == (["ab"], [""], " ")
    assert split_by_offsets("", []) == ([], [], "")


def test_it_counts_the_texts_tokens_characters_and_unknown_tokens(cast, tokenizers):
    client = client_of(cast.alice)
    wordpiece = encode(client, tokenizers["wordpiece"], CHINESE).json()
    unk_id = Tokenizer.from_file(str(tokenizers["wordpiece"].absolute_path)).token_to_id("[UNK]")
    assert wordpiece["unk_id"] == unk_id
    assert wordpiece["unknown"] == wordpiece["ids"].count(unk_id) > 0
    assert wordpiece["characters"] == len(CHINESE) and wordpiece["count"] == len(wordpiece["ids"])
    assert wordpiece["chars_per_token"] == round(len(CHINESE) / wordpiece["count"], 2)
    assert shown_text(wordpiece) == CHINESE
    unigram = encode(client, tokenizers["unigram"], CHINESE).json()
    assert unigram["unknown"] > 0 and shown_text(unigram) == CHINESE
    bpe = encode(client, tokenizers["bpe"], CHINESE).json()
    assert bpe["unk_id"] is None and bpe["unknown"] == 0
    empty = encode(client, tokenizers["bpe"], "").json()
    assert (empty["count"], empty["characters"], empty["chars_per_token"]) == (0, 0, None)


def test_one_request_encodes_the_same_text_with_a_second_tokenizer_of_the_team(cast, tokenizers):
    data = encode(client_of(cast.carol), tokenizers["bpe"], ENGLISH, compare=tokenizers["wordpiece"]).json()
    assert data["artifact"]["algorithm"] == "byte-level-bpe"
    assert data["compare"]["artifact"] == {
        "id": tokenizers["wordpiece"].pk, "name": tokenizers["wordpiece"].name, "algorithm": "wordpiece",
        "vocab_size": 512, "unk_token": "[UNK]",
    }
    assert shown_text(data) == shown_text(data["compare"]) == ENGLISH
    assert data["ids"] != data["compare"]["ids"]
    assert "compare" not in encode(client_of(cast.carol), tokenizers["bpe"], ENGLISH).json()


def test_it_lists_the_teams_other_tokenizers_to_compare_with(cast, tokenizers):
    Artifact.objects.create(team=cast.team, kind="checkpoint", name="ckpt", path="runs/x", sha256="0" * 64)
    gone = Artifact.objects.create(team=cast.team, kind="tokenizer", name="gone", path="runs/gone/tokenizer.json",
                                   sha256="0" * 64)
    response = client_of(cast.alice).get(f"/artifacts/{tokenizers['bpe'].pk}/compare-options/")
    listed = {entry["id"]: entry for entry in response.json()["tokenizers"]}
    assert set(listed) == {tokenizers["unigram"].pk, tokenizers["wordpiece"].pk}  # not itself, Mallory's, gone
    assert listed[tokenizers["unigram"].pk] == {
        "id": tokenizers["unigram"].pk, "name": tokenizers["unigram"].name, "algorithm": "unigram",
        "vocab_size": 512, "unk_token": "<unk>",
    }
    assert gone.pk not in listed


def test_it_refuses_to_compare_with_another_teams_tokenizer_or_a_checkpoint(cast, tokenizers):
    checkpoint = Artifact.objects.create(team=cast.team, kind="checkpoint", name="ckpt", path="runs/x", sha256="0" * 64)
    alice = client_of(cast.alice)
    assert encode(alice, tokenizers["bpe"], "hi", compare=tokenizers["mallory"]).status_code == 404
    assert encode(alice, tokenizers["bpe"], "hi", compare=checkpoint).status_code == 404
    assert alice.get(f"/artifacts/{tokenizers['bpe'].pk}/encode/", {"text": "hi", "compare": "x"}).status_code == 404
    mallory = client_of(cast.mallory)
    assert encode(mallory, tokenizers["mallory"], "hi", compare=tokenizers["bpe"]).status_code == 404
    assert encode(mallory, tokenizers["mallory"], "hi").status_code == 200


def test_a_member_of_two_teams_compares_only_within_one(cast, tokenizers):
    add_member(cast.other_team, cast.carol, Role.MEMBER)
    carol = client_of(cast.carol)
    assert encode(carol, tokenizers["mallory"], "hi").status_code == 200
    assert encode(carol, tokenizers["bpe"], "hi", compare=tokenizers["mallory"]).status_code == 404
    options = carol.get(f"/artifacts/{tokenizers['bpe'].pk}/compare-options/").json()["tokenizers"]
    assert tokenizers["mallory"].pk not in {entry["id"] for entry in options}


@pytest.mark.parametrize("who", ["bob", "mallory"])
def test_annotators_and_outsiders_get_404_from_the_visualiser(cast, tokenizers, who):
    client = client_of(getattr(cast, who))
    assert encode(client, tokenizers["bpe"], "hi").status_code == 404
    assert encode(client, tokenizers["bpe"], "hi", compare=tokenizers["wordpiece"]).status_code == 404
    assert client.get(f"/artifacts/{tokenizers['bpe'].pk}/compare-options/").status_code == 404


def test_a_tokenizer_whose_file_is_gone_is_a_404_not_an_error(cast, tokenizers):
    tokenizers["unigram"].absolute_path.unlink()
    alice = client_of(cast.alice)
    assert encode(alice, tokenizers["unigram"], "hi").status_code == 404
    assert encode(alice, tokenizers["bpe"], "hi", compare=tokenizers["unigram"]).status_code == 404


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_cell_shows_the_tokenizers_corpus_statistics(cast, tokenizers, algorithm):
    artifact = tokenizers[algorithm]
    meta = artifact.metadata
    html = client_of(cast.carol).get(f"/notebooks/{artifact.run.cell.notebook_id}/").content.decode()
    cell = html[html.index(f'id="cell-{artifact.run.cell_id}"'):]
    box = cell[cell.index('class="output tokenizer-box"'):]
    expected = {
        "algorithm": meta["algorithm"], "vocab_size": "512", "tokens_per_word": str(meta["tokens_per_word"]),
        "bytes_per_token": str(meta["bytes_per_token"]), "chat_template": "yes",
        "unk_rate": str(meta["unk_rate"]) if meta["unk_token"] else "none",
    }
    for stat, value in expected.items():
        assert f'data-stat="{stat}">{value}</b>' in box, stat
    assert f'data-options-url="/artifacts/{artifact.pk}/compare-options/"' in box
    assert 'data-role="compare-with"' in box
