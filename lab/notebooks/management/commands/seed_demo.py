"""Create the demo team, user and notebook on the sample corpus. Safe to run again."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from lab.accounts.actions import add_member, create_team
from lab.accounts.models import Role, Team
from lab.datasets.actions import create_dataset_from_path
from lab.datasets.models import Dataset
from lab.notebooks.models import Cell, Notebook
from lab.sample_data import ensure_sample_data
from training.config import CHATML_SPECIAL_TOKENS, CHATML_TEMPLATE

DEMO_USER, DEMO_PASSWORD = "demo", "demo-lab-2026"
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-lab-2026"
TEAM = "Demo team"
NOTEBOOK = "Tiny Shakespeare from scratch"
CORPUS = "tinyshakespeare"
DEMO_PROMPTS = ["What is a sonnet?", "Give me three names for a cat.", "How do I boil an egg?",
                "Write a short greeting for a friend."]
# The demo's other data sets: name → sample file.
DATASETS = {"dolly chat": "sft/dolly-2k.messages.jsonl", "sms spam": "classification/sms-spam-5k.tsv"}

WELCOME = """# Tiny Shakespeare from scratch
This notebook takes a language model from raw text to a model that writes (bad) Shakespeare:

1. **Corpus** — the complete works sample, 1.1 MB of plain text.
2. **Clean** — optional: deduplicate and filter it into a new dataset version (see its report). To
   train on the cleaned text, pick the clean cell as the corpus input of the cells below.
3. **Tokenizer** — a byte-level BPE vocabulary learned from it.
4. **Pretrain** — a ~1M-parameter Llama-style decoder, small enough for a laptop CPU.
5. **Supervised fine-tuning** — LoRA on 2,000 Dolly conversations, in the ChatML template the
   tokenizer carries.
6. **Classification** — the same base turned into an SMS spam filter; try the box under it.
7. **Generate** and **Human feedback** — the base and the tuned model answer the same prompts, and
   you judge which answer is better, on the campaign page the last cell opens.

Press **Run** on each cell in turn and watch the loss fall live.
"""


class Command(BaseCommand):
    help = "Create the demo team, user and notebook (idempotent) and print how to log in."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        demo = User.objects.filter(username=DEMO_USER).first() or User.objects.create_user(DEMO_USER, password=DEMO_PASSWORD)
        if not User.objects.filter(username=ADMIN_USER).exists():
            User.objects.create_superuser(ADMIN_USER, password=ADMIN_PASSWORD)
        team = Team.objects.filter(name=TEAM).first() or create_team(TEAM, demo)
        add_member(team, demo, Role.OWNER)
        files = ensure_sample_data(log=lambda msg: None)
        corpus, sft, sms = (
            Dataset.objects.filter(team=team, name=name).first()
            or create_dataset_from_path(team, demo, files[sample], name=name)
            for name, sample in {CORPUS: "corpora/tinyshakespeare.txt", **DATASETS}.items()
        )
        notebook = Notebook.objects.filter(team=team, title=NOTEBOOK).first()
        if notebook is None:
            notebook = Notebook.objects.create(team=team, title=NOTEBOOK, created_by=demo)
            Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.NOTE, config={"markdown": WELCOME})
            corpus_cell = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.CORPUS, title="Shakespeare",
                                              config={"corpus": corpus.pk})
            Cell.objects.create(notebook=notebook, position=2, kind=Cell.Kind.CLEAN, title="Clean",
                                config={"corpus_cell": corpus_cell.pk, "min_chars": 20})
            tokenizer_cell = Cell.objects.create(
                notebook=notebook, position=3, kind=Cell.Kind.TOKENIZER, title="BPE 2k",
                config={"corpus_cell": corpus_cell.pk, "vocab_size": 2048, "min_frequency": 2,
                        "special_tokens": ["<|endoftext|>", "<|pad|>", *CHATML_SPECIAL_TOKENS],
                        "chat_template": CHATML_TEMPLATE},
            )
            pretrain = Cell.objects.create(
                notebook=notebook, position=4, kind=Cell.Kind.PRETRAIN, title="Tiny model",
                config={"corpus_cell": corpus_cell.pk, "tokenizer_cell": tokenizer_cell.pk, "preset": "tiny",
                        "context_length": 128, "batch_size": 16, "grad_accum": 1, "max_steps": 600, "lr": 3e-3,
                        "warmup_steps": 30, "eval_every": 100, "sample_every": 100, "sample_prompt": "ROMEO:",
                        "checkpoint_every_steps": 100, "log_every": 10},
            )
            tuned = Cell.objects.create(
                notebook=notebook, position=5, kind=Cell.Kind.SFT, title="Chat tune (LoRA)",
                config={"model_cell": pretrain.pk, "dataset": sft.pk, "method": "lora", "lora_r": 16, "lr": 2e-3,
                        "max_length": 128, "batch_size": 16, "max_steps": 200, "warmup_steps": 10, "eval_every": 50,
                        "log_every": 10, "sample_prompts": DEMO_PROMPTS[:2], "sample_tokens": 32},
            )
            Cell.objects.create(
                notebook=notebook, position=6, kind=Cell.Kind.CLASSIFY, title="Spam filter",
                config={"model_cell": pretrain.pk, "dataset": sms.pk, "max_length": 128, "batch_size": 32,
                        "max_steps": 300, "lr": 1e-3, "warmup_steps": 20, "eval_every": 100, "log_every": 10},
            )
            generate = Cell.objects.create(
                notebook=notebook, position=7, kind=Cell.Kind.GENERATE, title="Base vs tuned",
                config={"model_cells": [pretrain.pk, tuned.pk], "prompts": DEMO_PROMPTS, "samples_per_prompt": 2,
                        "max_new_tokens": 48, "temperature": 0.8, "seed": 1},
            )
            Cell.objects.create(
                notebook=notebook, position=8, kind=Cell.Kind.ANNOTATE, title="Which answer is better?",
                config={"generate_cell": generate.pk, "name": "Base vs tuned", "annotators": [demo.pk], "overlap": 1,
                        "guidelines": "Prefer the answer that **answers the question**; fluent nonsense loses."},
            )
        self.stdout.write(f"Log in as {DEMO_USER} / {DEMO_PASSWORD} (admin: {ADMIN_USER} / {ADMIN_PASSWORD})")
