"""What one generation asks for (the playground, the OpenAI-compatible API): a chat or a raw prompt and
the sampling settings. No torch: the web checks a request with it before it sends one to a worker;
training/serving.py generates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from training.config import _Config
from training.config_checks import MAX_SEQUENCE, ConfigError, check_limits, require_at_least_one, require_not_negative

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 1000
MAX_PROMPT_CHARS = 1_000_000
MAX_STOP_STRINGS = 8
MAX_STOP_CHARS = 200
MAX_ALTERNATIVES = 20


@dataclass
class GenerationRequest(_Config):
    """One answer from a causal LM: `messages` (rendered with the model's chat template) or a raw
    `prompt`, sampled with the settings below."""

    messages: list[dict] | None = None
    """The conversation so far: `{"role": "system"|"user"|"assistant", "content": "…"}` each."""
    prompt: str | None = None
    """Raw text to continue (no chat template). Either this or `messages`."""
    system: str | None = None
    """A system message put before `messages` (only with `messages`)."""
    temperature: float = 1.0
    """Softmax temperature; 0 is greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling: keep the most likely tokens whose probabilities sum to top_p; 1 keeps all."""
    top_k: int = 0
    """Keep only the k most likely tokens; 0 keeps all."""
    max_new_tokens: int = 256
    """Tokens of the answer at most, `prefix_token_ids` included (the model's context ends it sooner)."""
    stop: list[str] = field(default_factory=list)
    """The answer ends before the first of these strings; it is not part of the answer."""
    seed: int | None = None
    """The same seed and settings give the same answer; null draws one (the `done` item reports it)."""
    alternatives: int = 0
    """How many of the most probable tokens to report at each position, with their probabilities."""
    logprobs: bool = False
    """Each token item also carries `token` (the token's own text, decoded alone) and `logprob`, and each
    alternative its `logprob`: the log-softmax after temperature (OpenAI's `logprobs`)."""
    prefix_token_ids: list[int] = field(default_factory=list)
    """Tokens of the answer already chosen (a branch: the tokens up to a position, then the
    alternative picked there); generation continues after them."""

    def __post_init__(self) -> None:
        self._check_types()
        if (self.messages is None) == (self.prompt is None):
            raise ConfigError("messages", "give either messages (a chat) or a prompt (raw text), not both or neither")
        if self.messages is not None:
            _check_messages(self.messages)
        elif not self.prompt:
            raise ConfigError("prompt", "must not be empty")
        elif self.system:
            raise ConfigError("system", "a system message goes with messages, not with a raw prompt")
        if len(self.prompt or "") + len(self.system or "") > MAX_PROMPT_CHARS:
            raise ConfigError("prompt", f"at most {MAX_PROMPT_CHARS:,} characters")
        check_limits(self)
        require_not_negative(self, "temperature", "top_k", "alternatives")
        require_at_least_one(self, "max_new_tokens")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top_p", "must be above 0 and at most 1")
        if len(self.stop) > MAX_STOP_STRINGS or not all(0 < len(s) <= MAX_STOP_CHARS for s in self.stop):
            raise ConfigError("stop", f"at most {MAX_STOP_STRINGS} strings of 1 to {MAX_STOP_CHARS} characters")
        if self.seed is not None and self.seed < 0:
            raise ConfigError("seed", "must not be negative")
        if self.alternatives > MAX_ALTERNATIVES:
            raise ConfigError("alternatives", f"at most {MAX_ALTERNATIVES}")
        if len(self.prefix_token_ids) >= MAX_SEQUENCE or any(t < 0 for t in self.prefix_token_ids):
            raise ConfigError("prefix_token_ids", "must be token ids (0 or more) of an answer the model can hold")


def _check_messages(messages: list[dict]) -> None:
    if not messages or len(messages) > MAX_MESSAGES:
        raise ConfigError("messages", f"give 1 to {MAX_MESSAGES} messages")
    chars = 0
    for i, message in enumerate(messages):
        if set(message) != {"role", "content"} or message["role"] not in ROLES or not isinstance(message["content"], str):
            raise ConfigError(f"messages[{i}]", f"must be {{\"role\": {' | '.join(ROLES)}, \"content\": text}}")
        chars += len(message["content"])
    if chars > MAX_PROMPT_CHARS:
        raise ConfigError("messages", f"at most {MAX_PROMPT_CHARS:,} characters in all")
