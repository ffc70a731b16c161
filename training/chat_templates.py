"""Chat templates for training: which tokens of a rendered conversation are the assistant's.

transformers marks them with `{% generation %}…{% endgeneration %}` in the template
(`apply_chat_template(..., return_assistant_tokens_mask=True)`), and trl's `assistant_only_loss`
reads those marks. The lab's ChatML template (training.config.CHATML_TEMPLATE) has none, so its
marked twin lives here; it renders exactly the same text. No torch.
"""

from __future__ import annotations

import re

from training.config import CHATML_TEMPLATE

CHATML_TRAINING_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""CHATML_TEMPLATE with the assistant's content and its `<|im_end|>` marked, so the model also
learns to end its turn."""

_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


def has_generation_markers(template: str) -> bool:
    return _GENERATION_TAG.search(template) is not None


def marked_template(template: str) -> str | None:
    """The template itself when it marks the assistant's tokens, the lab's marked twin of a
    template the lab ships, or None (trl may still know a marked version: see training/sft.py)."""
    if has_generation_markers(template):
        return template
    if template == CHATML_TEMPLATE:
        return CHATML_TRAINING_TEMPLATE
    return None
