"""Stage configs: what a Cell's form saves and what `python -m training <stage> --config` reads.

The web process imports this module to validate a config before it queues a run, so it imports
no torch: every check here is plain Python. Checks that need the data or the model (the corpus is
empty, the batch is larger than the corpus) are raised later, by the stage, with the same
`ConfigError`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from training.config_checks import (
    DEVICES,
    ConfigError,
    check_optimizer,
    check_warmup,
    refuse_unknown_keys,
    require_at_least_one,
    require_choice,
    require_folder_or_null,
    require_not_negative,
)
from training.datasets.formats import FORMAT_NAMES

CORPUS_FORMATS = FORMAT_NAMES
C = TypeVar("C", bound="_Config")


def require_file(field_name: str, path: str) -> Path:
    """The path as a Path, or a ConfigError on `field_name` when no such file exists."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(field_name, f"no such file: {path}")
    return p


class _Config:
    """Shared by the stage configs: `from_dict` with strict keys and types, `to_dict`."""

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """The config from JSON data; unknown or missing keys and wrong types are ConfigErrors."""
        if not isinstance(d, dict):
            raise ConfigError("config", f"must be a JSON object, not {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        refuse_unknown_keys(d, list(fields))
        for name, f in fields.items():
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and name not in d:
                raise ConfigError(name, "is required")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def _check_types(self) -> None:
        """Reject values of the wrong JSON type; an int is taken, as a float, for a float."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = hints[f.name]
            if expected is float and _is_int(value):
                setattr(self, f.name, float(value))
                continue
            if not _matches(value, expected):
                got = f"{type(value).__name__} ({value!r})"
                raise ConfigError(f.name, f"must be {_type_name(expected)}, not {got}")


PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(kw_only=True)
class TrainingLoopConfig(_Config):
    """The fields of a training loop, the same in every stage that trains (pretrain, sft, classify):
    batches, optimizer, schedule, precision, evaluation and checkpoints. A stage inherits them, with
    their docs and checks, and redeclares only a default that differs (`lr: float = 2e-5`). The
    JSON stays flat: a stage's config is one object of its own and these fields."""

    PRECISIONS: ClassVar[tuple[str, ...]] = PRECISIONS
    """The `precision` values the stage takes."""
    BF16_ON_CPU: ClassVar[bool] = False
    """True where the stage's own loop autocasts to bf16 on a CPU as well (pretrain)."""

    batch_size: int = 16
    """Examples per micro-batch."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step."""
    max_steps: int = 200
    """Optimizer steps to train for."""
    lr: float
    """Peak learning rate, reached after warmup."""
    min_lr_ratio: float = 0.1
    """The cosine decay ends at `lr * min_lr_ratio`."""
    warmup_steps: int = 20
    """Steps of linear warmup from 0 to `lr`; fewer than `max_steps`."""
    weight_decay: float
    """AdamW weight decay, not applied to biases and norms."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.999
    """AdamW beta2."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value; 0 turns clipping off."""
    precision: str = "auto"
    """`auto`: bf16 on a GPU that has it, else fp32. `fp32`; `bf16` mixed precision (weights and
    optimizer stay fp32); sft also takes `fp16`. Half precision needs a GPU, except pretrain's bf16
    autocast."""
    device: str = "auto"
    """`auto` (cuda when available, else cpu), `cpu` or `cuda`."""
    seed: int = 1337
    """Seeds the new weights, the validation split and the batch order."""
    val_fraction: float = 0.05
    """Share of the data held out for validation (a seeded split), above 0 and below 0.5."""
    eval_every: int = 50
    """Evaluate on the validation split every this many steps and at the end; 0 = end only."""
    log_every: int = 10
    """Emit a `metric` event (mean loss over the interval) every this many steps."""
    checkpoint_every_steps: int = 100
    """Save a checkpoint every this many steps (and always at the end); 0 = at the end only."""
    resume_from: str | None = None
    """A checkpoint folder of an earlier run of this config (`…/checkpoint-40`; pretrain runs of
    before named theirs `…/step-000040`), or its run folder (its highest step), to resume from."""

    def _check_training_loop(self) -> None:
        """The checks of the fields above; a stage that needs `max_steps` of at least 1 says so."""
        require_at_least_one(self, "batch_size", "grad_accum", "log_every")
        require_not_negative(self, "max_steps", "eval_every", "checkpoint_every_steps", "seed")
        check_optimizer(self)
        check_warmup(self.warmup_steps, self.max_steps)
        if not 0 < self.val_fraction < 0.5:
            raise ConfigError("val_fraction", "must be above 0 and below 0.5")
        require_choice("precision", self.precision, self.PRECISIONS)
        require_choice("device", self.device, DEVICES)
        runs_on_cpu = self.precision == "bf16" and self.BF16_ON_CPU
        if self.device == "cpu" and self.precision in ("bf16", "fp16") and not runs_on_cpu:
            raise ConfigError("precision", f"{self.precision} needs a GPU; on cpu use fp32 or auto")
        require_folder_or_null(self, "resume_from")


@dataclass(kw_only=True)
class TimedCheckpoints:
    """A checkpoint by the clock as well as by the step (the stages whose loop has it)."""

    checkpoint_every_minutes: float = 0.0
    """Also save a checkpoint when this many minutes passed since the last one; 0 turns it off."""


def own_fields_first(cls: type[C]) -> type[C]:
    """A stage config (a dataclass) whose own fields come before those it inherits, in
    `dataclasses.fields`, `to_dict` and the known keys an error lists: what the stage is about, then
    its training loop. A dataclass lists a base's fields first; the constructor is keyword-only, so
    the order is only the one shown."""
    fields = cls.__dataclass_fields__
    inherited = {n for base in cls.__mro__[1:] for n in getattr(base, "__dataclass_fields__", {})}
    order = [n for n in fields if n not in inherited] + [n for n in fields if n in inherited]
    cls.__dataclass_fields__ = {name: fields[name] for name in order}
    return cls


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each dataclass field (the litgpt/jsonargparse convention), the base
    classes' included: a field a class redeclares without a docstring keeps its base's."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(inspect.getsource(klass)).body[0].body
        for node, following in zip(body, body[1:], strict=False):
            doc = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
            if doc and isinstance(node, ast.AnnAssign) and isinstance(following.value.value, str):
                docs[node.target.id] = following.value.value.strip()
    return docs


def _is_int(value: Any) -> bool:
    # bool is a subclass of int; `"batch_size": true` is a mistake, not 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _matches(value: Any, expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(expected))
    if origin is list:
        (item,) = typing.get_args(expected)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if expected is type(None):
        return value is None
    if expected is int:
        return _is_int(value)
    if expected is float:
        return isinstance(value, float)
    return isinstance(value, expected)


def _type_name(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(expected))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(expected)[0])}"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(expected, "null" if expected is type(None) else expected.__name__)


def _check_corpus(corpus_path: str, corpus_format: str) -> None:
    if not corpus_path:
        raise ConfigError("corpus_path", "must not be empty")
    if corpus_format not in CORPUS_FORMATS:
        raise ConfigError(
            "corpus_format", f"must be one of {', '.join(CORPUS_FORMATS)}, not {corpus_format!r}"
        )


TOKENIZER_ALGORITHMS = ("bpe", "unigram", "wordpiece")
UNK_TOKENS = {"unigram": "<unk>", "wordpiece": "[UNK]"}
"""The unknown token each algorithm adds after the special tokens. Byte-level BPE has none: it can
spell any text in bytes."""
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""A ChatML chat template (OpenAI's, also Qwen's) to propose for `chat_template`. Each message
becomes `<|im_start|>{role}\\n{content}<|im_end|>\\n`; a generation prompt opens an assistant turn.
Add CHATML_SPECIAL_TOKENS to `special_tokens` with it, so each marker is one token that is never
split, and never unknown to a unigram or wordpiece vocabulary."""
CHATML_SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE_PROBE = [
    {"role": "user", "content": "Who is there?"},
    {"role": "assistant", "content": "Nay, answer me: stand, and unfold yourself."},
]
"""The two-message conversation a chat template must render."""


def eos_and_pad(special_tokens: list[str], declared: dict[str, str] | None = None) -> tuple[str, str]:
    """(eos, pad) of a non-empty list of special tokens: the `eos_token`/`pad_token` a tokenizer
    declares (its tokenizer_config.json) when it is one of them; else `<|endoftext|>` if there, else
    the first; `<|pad|>` if there, else the eos token. A brought Llama's first special token is
    `<unk>` or `<|begin_of_text|>`: only its declaration tells its end of text."""
    declared = declared or {}
    eos = declared.get("eos_token")
    if eos not in special_tokens:
        eos = EOS_TOKEN if EOS_TOKEN in special_tokens else special_tokens[0]
    pad = declared.get("pad_token")
    if pad not in special_tokens:
        pad = PAD_TOKEN if PAD_TOKEN in special_tokens else eos
    return eos, pad


def render_chat_template(
    template: str,
    messages: list[dict[str, str]],
    special_tokens: dict[str, str],
    add_generation_prompt: bool = False,
) -> str:
    """The conversation as transformers' `apply_chat_template(..., tokenize=False)` renders it.

    `special_tokens` are the template's `bos_token`, `eos_token`, … variables. Jinja errors (syntax,
    undefined names, `raise_exception`) propagate.
    """
    # Imported here: the web process imports this module but needs Jinja only for a template.
    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(Extension):
        """`{% generation %}…{% endgeneration %}`, which transformers reads to mask assistant
        tokens; here it renders its body."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body, lineno=lineno)

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    def tojson(x: Any, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    # transformers' environment (utils/chat_template_utils.py), so what renders here renders there.
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, **special_tokens
    )


def _check_chat_template(template: str, special_tokens: dict[str, str]) -> None:
    import jinja2

    try:
        rendered = render_chat_template(template, CHAT_TEMPLATE_PROBE, special_tokens)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(
            "chat_template", f"is not valid Jinja: {e.message} (line {e.lineno})"
        ) from None
    except Exception as e:  # what a template raises is up to its author
        raise ConfigError(
            "chat_template", f"cannot render a user/assistant conversation: {e}"
        ) from None
    if not rendered.strip():
        raise ConfigError("chat_template", "renders a user/assistant conversation as nothing")
