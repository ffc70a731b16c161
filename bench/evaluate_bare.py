"""The baseline the evaluate stage is measured against: MMLU log-likelihood scoring written directly,
in one process, with plain transformers and torch.

    python bench/evaluate_bare.py MODEL_DIR DATASET.jsonl --batch-size 16

Reads the questions, loads the model, and scores every choice as the log-likelihood of `" " + choice`
after `Question: …\nAnswer:` (with MMLU's subject line), longest sequences first in right-padded
batches, as lm-evaluation-harness does; no events, no intervals, no per-example file. Prints one JSON
line: the seconds from loading the model to the last score, acc and acc_norm.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", help="a Hugging Face model folder")
    parser.add_argument("dataset", help="MMLU records: subject, question, choices, answer (0-based)")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    questions = [json.loads(line) for line in open(args.dataset, encoding="utf-8")]

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, local_files_only=True).eval()
    context_length = model.config.max_position_embeddings
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    requests = []  # (question, full token ids cut to the context, continuation length)
    for q, record in enumerate(questions):
        context = (f"The following are multiple choice questions (with answers) about {record['subject'].replace('_', ' ')}.\n\n"
                   f"Question: {record['question']}\nAnswer:")
        n_context = len(tokenizer(context, verbose=False)["input_ids"])
        for choice in record["choices"]:
            ids = tokenizer(f"{context} {choice}", verbose=False)["input_ids"]
            n_continuation = len(ids) - n_context
            requests.append((q, ids[-(context_length + 1):], n_continuation))
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i][1]))
    logliks = [0.0] * len(requests)
    with torch.inference_mode():
        for begin in range(0, len(order), args.batch_size):
            batch = order[begin : begin + args.batch_size]
            width = max(len(requests[i][1]) - 1 for i in batch)
            ids = torch.full((len(batch), width), pad)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                seq = requests[i][1][:-1]
                ids[row, : len(seq)], mask[row, : len(seq)] = torch.tensor(seq), 1
            logits = model(input_ids=ids, attention_mask=mask).logits
            for row, i in enumerate(batch):  # the softmax over the continuation's positions only
                full, n = requests[i][1], requests[i][2]
                targets = torch.tensor(full[len(full) - n :])
                logprobs = torch.log_softmax(logits[row, len(full) - n - 1 : len(full) - 1].float(), dim=-1)
                logliks[i] = float(logprobs.gather(1, targets[:, None]).sum())
    seconds = time.perf_counter() - started

    right = right_norm = position = 0
    for record in questions:
        scores = logliks[position : position + len(record["choices"])]
        position += len(record["choices"])
        right += max(range(len(scores)), key=scores.__getitem__) == record["answer"]
        right_norm += max(range(len(scores)), key=lambda c: scores[c] / len(record["choices"][c])) == record["answer"]
    print(json.dumps({"seconds": seconds, "acc": right / len(questions), "acc_norm": right_norm / len(questions)}))


if __name__ == "__main__":
    main()
