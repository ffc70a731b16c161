"""The judge stage's config (`python -m training judge`). No torch: the lab checks a judge's config
before it queues the run; the checks that read files read only the model's config files and
safetensors headers.

The pairs file, one JSON object a line: `{"item": id, "prompt": str, "response_a": str,
"response_b": str}`. The judgements file the stage writes, one a line, in the same order:
`{"item", "label", "answers"}` (training/judge.py says what they hold).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from training.config import _Config
from training.config_checks import DEVICES, ConfigError, check_limits, require_at_least_one, require_choice
from training.dataset_files import require_dataset_file
from training.model_files import read_json_object
from training.model_info import inspect_model

METHODS = ("rubric", "reward")
PAIRS_FILE = "pairs.jsonl"
"""Where the lab writes a campaign's pairs in the run's folder (the default of `pairs_path`)."""
JUDGEMENTS_FILE = "judgements.jsonl"
PAIR_KEYS = ("item", "prompt", "response_a", "response_b")


@dataclass
class JudgeConfig(_Config):
    """Label pairs of responses (which is better, a or b) with a reward model or a prompted checkpoint."""

    model_path: str
    """The judge: a causal-LM checkpoint (method `rubric`) or a reward model, a sequence classifier
    with one output (method `reward`)."""
    output_dir: str
    """Run folder: `judgements.jsonl` is written here."""
    method: str = "rubric"
    """`rubric`: the checkpoint reads the guidelines, the prompt and both responses and is asked
    "Which response is better, A or B?", in both orders; `reward`: a reward model scores each response."""
    pairs_path: str | None = None
    """The pairs to judge (JSONL of `{"item", "prompt", "response_a", "response_b"}`); by default
    `pairs.jsonl` in `output_dir`, where the lab writes a campaign's pairs."""
    guidelines: str = ""
    """The rubric the checkpoint reads before each pair (a campaign's guidelines)."""
    max_length: int = 1024
    """Tokens the judge reads at most per question; a longer one loses its beginning."""
    batch_size: int = 8
    """Questions (rubric) or responses (reward) read at once."""
    device: str = "auto"
    """`auto` (cuda when available, else cpu), `cpu` or `cuda`."""

    def __post_init__(self) -> None:
        self._check_types()
        check_limits(self)
        if not self.output_dir:
            raise ConfigError("output_dir", "must not be empty")
        require_choice("method", self.method, METHODS)
        require_at_least_one(self, "max_length", "batch_size")
        require_choice("device", self.device, DEVICES)
        if self.pairs_path is not None:
            require_dataset_file("pairs_path", self.pairs_path)
        self._check_model()

    @property
    def pairs_file(self) -> Path:
        return Path(self.pairs_path) if self.pairs_path is not None else Path(self.output_dir) / PAIRS_FILE

    def _check_model(self) -> None:
        """The folder holds a model of the method's kind: one score per response for `reward`, a
        next-token head for `rubric`."""
        info = inspect_model(self.model_path, "model_path")
        classifier = info.architecture.endswith("ForSequenceClassification")
        if self.method == "reward":
            config = read_json_object(Path(self.model_path) / "config.json", "model_path")
            outputs = len(config.get("id2label") or {}) or config.get("num_labels", 2)
            if not classifier or outputs != 1:
                raise ConfigError("model_path", f"{info.architecture} with {outputs} outputs is not a reward model "
                                                "(a sequence classifier with one score): use method rubric for a checkpoint")
        elif classifier:
            raise ConfigError("model_path", f"{info.architecture} is a classifier: it cannot answer A or B "
                                            "(method reward takes a reward model)")
