"""What a model is trained on, for one record of an SFT or preference dataset: the conversation
rendered with a tokenizer's chat template, cut into that tokenizer's tokens, each marked trained (an
assistant's turn, as trl's assistant-only loss takes it) or not (the prompt). Torch-free: the
template renders in transformers' sandboxed Jinja (training.config) and `tokenizers` cuts it."""

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from training.config import ConfigError, render_chat_template
from training.tokenizer_files import declared_special_tokens, read_tokenizer_config


@dataclass(frozen=True)
class PreviewToken:
    text: str
    id: int
    trained: bool


@dataclass(frozen=True)
class ChatPreview:
    title: str
    tokens: list[PreviewToken]

    @property
    def trained_count(self) -> int:
        return sum(t.trained for t in self.tokens)


class NoChatTemplate(Exception):
    """The tokenizer has no chat template to render conversations with."""


def chat_previews(record: dict, kind: str, tokenizer_json: Path) -> list[ChatPreview]:
    """One preview for an SFT record; two (chosen, rejected) for a preference record."""
    template, special = _template_of(tokenizer_json)
    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    if kind == "sft":
        conversations = [("conversation", record["messages"])]
    else:
        prompt = _as_messages(record["prompt"], "user")
        conversations = [(side, prompt + _as_messages(record[side], "assistant")) for side in ("chosen", "rejected")]
    return [ChatPreview(title, _tokens(template, special, messages, tokenizer)) for title, messages in conversations]


def _template_of(tokenizer_json: Path) -> tuple[str, dict[str, str]]:
    try:
        config = read_tokenizer_config(tokenizer_json.parent)
    except ConfigError as e:
        raise NoChatTemplate(f"this tokenizer's {e.message}") from None
    if not isinstance(config.get("chat_template"), str) or not config["chat_template"]:
        raise NoChatTemplate("this tokenizer has no chat template: train one with a chat template to see this")
    return config["chat_template"], declared_special_tokens(config)


def _as_messages(value, role: str) -> list[dict]:
    return [{"role": role, "content": value}] if isinstance(value, str) else list(value)


def _trained_spans(template: str, special: dict, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of each assistant turn in it.

    A turn's span runs from the end of the prompt that asks for it (rendered with the generation
    prompt) to the end of the conversation up to it, which is how the turn's own text and its
    end-of-turn marker are told from the rest for templates whose renderings extend each other.
    """
    text = render_chat_template(template, messages, special)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render_chat_template(template, messages[:i], special, add_generation_prompt=True)
        through = render_chat_template(template, messages[: i + 1], special)
        if text.startswith(through) and through.startswith(before):
            spans.append((len(before), len(through)))
        else:  # a template that rewrites earlier turns: fall back to finding the reply's text
            start = text.find(message["content"], spans[-1][1] if spans else 0)
            if start >= 0:
                spans.append((start, start + len(message["content"])))
    return text, spans


def _tokens(template: str, special: dict, messages: list[dict], tokenizer: Tokenizer) -> list[PreviewToken]:
    text, spans = _trained_spans(template, special, messages)
    encoding = tokenizer.encode(text, add_special_tokens=False)
    return [
        PreviewToken(text[start:end], token_id, any(lo <= start < hi for lo, hi in spans))
        for token_id, (start, end) in zip(encoding.ids, encoding.offsets, strict=True)
    ]
