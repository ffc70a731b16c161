"""The tokenizer stage's three algorithms on the sample corpus, its statistics and its chat template.

Each algorithm is trained once per module at 512 tokens, with the ChatML markers as special tokens
and the ChatML template.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from tests.training.helpers import FakeReporter, run_cli, write_config
from training.checkpoint import hf_tokenizer
from training.config import CHATML_SPECIAL_TOKENS, CHATML_TEMPLATE, ConfigError
from training.tokenizer import count_tokens, train_tokenizer
from training.tokenizer_config import TokenizerConfig

ALGORITHMS = ("bpe", "unigram", "wordpiece")
SPECIALS = ["<|endoftext|>", "<|pad|>", *CHATML_SPECIAL_TOKENS]
UNK = {"bpe": None, "unigram": "<unk>", "wordpiece": "[UNK]"}
SHAKESPEARE = ("ROMEO:\nBut, soft! what light through yonder window breaks?\n"
               "It is the east, and Juliet is the sun.")
UNSEEN = "ROMEO: 東京は雨です。 But, soft!"  # no Chinese character occurs in tinyshakespeare
CONVERSATION = [
    {"role": "user", "content": "Who's there?"},
    {"role": "assistant", "content": "Nay, answer me: stand, and unfold yourself."},
    {"role": "user", "content": "Long live the king!"},
    {"role": "assistant", "content": "Bernardo?"},
]
CHATML_CONVERSATION = (
    "<|im_start|>user\nWho's there?<|im_end|>\n"
    "<|im_start|>assistant\nNay, answer me: stand, and unfold yourself.<|im_end|>\n"
    "<|im_start|>user\nLong live the king!<|im_end|>\n"
    "<|im_start|>assistant\nBernardo?<|im_end|>\n"
)

Trained = tuple[Path, FakeReporter]


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Trained]:
    """(output folder, reporter) of an algorithm's tokenizer, trained on first use."""
    done: dict[str, Trained] = {}

    def train(algorithm: str) -> Trained:
        if algorithm not in done:
            out = tmp_path_factory.mktemp(algorithm)
            reporter = FakeReporter()
            cfg = TokenizerConfig(corpus_path=str(corpus), output_dir=str(out), algorithm=algorithm,
                                  vocab_size=512, special_tokens=SPECIALS, chat_template=CHATML_TEMPLATE)
            assert train_tokenizer(cfg, reporter) == out / "tokenizer.json"
            done[algorithm] = out, reporter
        return done[algorithm]

    return train


def load(folder: Path) -> Tokenizer:
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_it_trains_each_algorithm_to_the_vocab_size_asked_for(trained, algorithm: str):
    folder, reporter = trained(algorithm)
    assert [e["status"] for e in reporter.of_type("status")] == ["running", "succeeded"]
    assert not [e for e in reporter.of_type("log") if e["level"] == "warning"]
    (artifact,) = reporter.of_type("artifact")
    meta = artifact["metadata"]
    assert meta["algorithm"] == ("byte-level-bpe" if algorithm == "bpe" else algorithm)
    assert meta["vocab_size"] == 512 == load(folder).get_vocab_size()
    assert meta["unk_token"] == UNK[algorithm]
    assert meta["special_tokens"] == SPECIALS + ([UNK[algorithm]] if UNK[algorithm] else [])
    tokenizer = load(folder)
    specials = meta["special_tokens"]
    assert [tokenizer.token_to_id(t) for t in specials] == list(range(len(specials)))
    assert meta["n_documents"] == 7222 and meta["words"] == 202651 and meta["bytes"] == 1100949
    assert meta["tokens_per_word"] == round(meta["tokens"] / meta["words"], 4)
    assert meta["bytes_per_token"] == round(meta["bytes"] / meta["tokens"], 4)
    assert 1.5 < meta["tokens_per_word"] < 3.5
    # The vocabulary holds every character of its own corpus: nothing there is unknown.
    assert meta["unk_rate"] == 0


def test_it_spends_less_of_the_corpus_on_tokens_without_the_256_bytes(trained):
    tokens = {a: trained(a)[1].of_type("artifact")[0]["metadata"]["tokens"] for a in ALGORITHMS}
    # At the same size, byte-level BPE keeps 256 slots for bytes the corpus barely uses.
    assert tokens["unigram"] < tokens["bpe"] and tokens["wordpiece"] < tokens["bpe"]


@pytest.mark.parametrize("algorithm", ["bpe", "unigram"])
def test_it_round_trips_text_of_the_corpus_exactly(trained, algorithm: str):
    tokenizer = load(trained(algorithm)[0])
    for text in [SHAKESPEARE, "  two  spaces\n\nnext\n", CHATML_CONVERSATION]:
        decoded = tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False)
        # Unigram, like SentencePiece, takes a leading space as the mark every word starts with.
        assert decoded == (text[1:] if algorithm == "unigram" and text.startswith(" ") else text)


def test_it_round_trips_wordpiece_text_up_to_whitespace(trained):
    tokenizer = load(trained("wordpiece")[0])
    decoded = tokenizer.decode(tokenizer.encode(SHAKESPEARE).ids)
    # Cased, accents kept; words and punctuation rejoin with one space, none before . , ! ?
    assert decoded == ("ROMEO : But, soft! what light through yonder window breaks? "
                       "It is the east, and Juliet is the sun.")
    assert decoded.split() != SHAKESPEARE.split() and "".join(decoded.split()) == "".join(SHAKESPEARE.split())
    assert tokenizer.encode("unfold yourself").tokens == ["un", "##f", "##old", "your", "##self"]


def test_it_counts_unknown_tokens_where_characters_are_unseen(trained):
    tokenizers = {algorithm: load(trained(algorithm)[0]) for algorithm in ALGORITHMS}
    counts = {a: count_tokens(tokenizers[a], [[UNSEEN]], UNK[a]) for a in ALGORITHMS}
    assert counts["bpe"][1] == 0  # spelled in bytes
    assert counts["unigram"][1] == 1  # like SentencePiece, a run of unknown characters is one <unk>
    # Words 東 京 は 雨 です 。 (the normaliser spaces out CJK ideographs), each one [UNK].
    assert counts["wordpiece"][1] == 6
    assert all(counts[a][1] / counts[a][0] > 0.05 for a in ("unigram", "wordpiece"))
    assert tokenizers["wordpiece"].decode(tokenizers["wordpiece"].encode(UNSEEN).ids) == "ROMEO : But, soft!"
    assert count_tokens(tokenizers["unigram"], [[SHAKESPEARE]], "<unk>")[1] == 0


def test_it_stores_the_chat_template_for_transformers(trained):
    folder, reporter = trained("unigram")
    assert reporter.of_type("artifact")[0]["metadata"]["chat_template"] == CHATML_TEMPLATE
    saved = json.loads((folder / "tokenizer_config.json").read_text())
    assert saved == {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|endoftext|>",
                     "eos_token": "<|endoftext|>", "pad_token": "<|pad|>", "unk_token": "<unk>",
                     "chat_template": CHATML_TEMPLATE}

    auto = AutoTokenizer.from_pretrained(folder)
    assert auto.apply_chat_template(CONVERSATION, tokenize=False) == CHATML_CONVERSATION
    assert (auto.eos_token, auto.pad_token, auto.unk_token) == ("<|endoftext|>", "<|pad|>", "<unk>")
    prompt = auto.apply_chat_template(CONVERSATION[:3], tokenize=False, add_generation_prompt=True)
    assert prompt == CHATML_CONVERSATION.removesuffix("Bernardo?<|im_end|>\n")
    ids = auto.apply_chat_template(CONVERSATION)["input_ids"]
    assert ids.count(auto.convert_tokens_to_ids("<|im_start|>")) == 4  # each marker is one token
    assert auto.decode(ids) == CHATML_CONVERSATION

    plain = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"),
                                    chat_template=CHATML_TEMPLATE)
    assert plain.apply_chat_template(CONVERSATION, tokenize=False) == CHATML_CONVERSATION


def test_it_carries_the_chat_template_into_checkpoints(trained, tmp_path: Path):
    folder, _ = trained("wordpiece")
    hf_tokenizer(folder / "tokenizer.json", model_max_length=128).save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.apply_chat_template(CONVERSATION, tokenize=False) == CHATML_CONVERSATION
    assert (reloaded.unk_token, reloaded.model_max_length) == ("[UNK]", 128)


def test_it_has_no_chat_template_unless_asked(tokenizer_path: Path):
    assert AutoTokenizer.from_pretrained(tokenizer_path.parent).chat_template is None


def test_it_warns_when_the_chat_markup_is_unknown_to_the_vocabulary(corpus: Path, tmp_path: Path):
    reporter = FakeReporter()
    cfg = TokenizerConfig(corpus_path=str(corpus), output_dir=str(tmp_path), algorithm="wordpiece",
                          vocab_size=300, chat_template=CHATML_TEMPLATE)  # markers not among the specials
    train_tokenizer(cfg, reporter)
    (warning,) = [e["message"] for e in reporter.of_type("log") if e["level"] == "warning"]
    assert "[UNK]" in warning and "special_tokens" in warning


def test_it_says_why_a_wordpiece_vocab_is_larger_than_asked(corpus: Path, tmp_path: Path):
    reporter = FakeReporter()
    cfg = TokenizerConfig(corpus_path=str(corpus), output_dir=str(tmp_path), algorithm="wordpiece",
                          vocab_size=70)
    train_tokenizer(cfg, reporter)
    size = reporter.of_type("artifact")[0]["metadata"]["vocab_size"]
    assert size > 70
    (warning,) = [e["message"] for e in reporter.of_type("log") if e["level"] == "warning"]
    assert f"{size} tokens, more than the 70 asked for" in warning and "65 characters" in warning


def test_it_names_vocab_size_when_the_characters_do_not_fit_a_unigram_vocab(corpus: Path, tmp_path: Path):
    cfg = TokenizerConfig(corpus_path=str(corpus), output_dir=str(tmp_path), algorithm="unigram", vocab_size=40)
    with pytest.raises(ConfigError) as info:
        train_tokenizer(cfg, FakeReporter())
    assert info.value.field == "vocab_size"
    assert "65 distinct characters" in info.value.message and "at least 68" in info.value.message
    assert not (tmp_path / "tokenizer.json").exists()


def _config_error(**changes) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        TokenizerConfig(corpus_path="c.txt", output_dir="o", **changes)
    return info.value


def test_it_checks_algorithm_and_vocab_size():
    e = _config_error(algorithm="sentencepiece")
    assert e.field == "algorithm" and "unigram" in e.message and "wordpiece" in e.message
    e = _config_error(algorithm="bpe", vocab_size=257)
    assert e.field == "vocab_size" and "258 (256 bytes + 2 special tokens)" in e.message
    e = _config_error(algorithm="unigram", vocab_size=3)
    assert e.field == "vocab_size" and "3 special tokens with <unk>" in e.message
    cfg = TokenizerConfig(corpus_path="c.txt", output_dir="o", algorithm="wordpiece", vocab_size=4)
    assert cfg.special_tokens_with_unk == ["<|endoftext|>", "<|pad|>", "[UNK]"]
    # The unknown token is not added twice when it is among the special tokens already.
    cfg = TokenizerConfig(corpus_path="c.txt", output_dir="o", algorithm="wordpiece",
                          special_tokens=["[UNK]", "<s>"])
    assert cfg.special_tokens_with_unk == ["[UNK]", "<s>"]


@pytest.mark.parametrize(("template", "reason"), [
    ("{% for message in messages %}{{ message['content'] }}", "is not valid Jinja"),
    ("{{ messages[0]['content'] | nosuchfilter }}", "is not valid Jinja"),
    ("{% for m in messages %}{% if m['role'] == 'assistant' %}{{ raise_exception('no assistants') }}"
     "{% endif %}{{ m['content'] }}{% endfor %}", "no assistants"),
    ("{{ messages[2]['content'] }}", "cannot render"),
    ("{{ message.content.upper() }}", "cannot render"),  # `message` is undefined outside a loop
    ("{% if false %}{{ messages }}{% endif %}", "as nothing"),
])
def test_it_rejects_a_chat_template_that_cannot_render_a_conversation(template: str, reason: str):
    e = _config_error(chat_template=template)
    assert e.field == "chat_template" and reason in e.message


def test_it_accepts_templates_written_for_transformers():
    # `{% generation %}` (trl's assistant-token masks) and tojson are transformers' additions to Jinja.
    template = ("{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}"
                "{% endgeneration %}{% else %}{{ m | tojson }}{% endif %}{{ eos_token }}{% endfor %}")
    cfg = TokenizerConfig(corpus_path="c.txt", output_dir="o", chat_template=template)
    assert cfg.chat_template == template


def test_it_exits_2_naming_chat_template_from_the_cli(corpus: Path, tmp_path: Path):
    config = write_config(tmp_path / "tok.json", {
        "corpus_path": str(corpus), "output_dir": str(tmp_path / "tok"), "chat_template": "{{ messages[",
    })
    result = run_cli("tokenizer", "--config", str(config))
    assert result.returncode == 2
    error = json.loads(result.stdout.splitlines()[-1])
    assert error["type"] == "error" and error["field"] == "chat_template"
