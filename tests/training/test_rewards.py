"""training/rewards.py: the rule rewards on GSM8K-style answers, their names, and the reward model's
scores through the scorer, as trl calls them."""

from __future__ import annotations

import pytest

from training.rewards import parse_rewards, reward_functions

GSM8K_REFERENCE = "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18"


def _scores(reward: dict, completions: list[str], references: list[str | None] | None = None,
            ids: list[list[int]] | None = None) -> list[float | None]:
    (func,) = reward_functions(parse_rewards([reward]))
    ids = ids or [[0] * 4 for _ in completions]
    return func(prompts=["q"] * len(completions), completions=completions, completion_ids=ids, reference=references)


def test_exact_match_extracts_the_answer_and_compares_it_with_the_references():
    completions = ["So she makes $18.", "The answer is 1,8", "#### 18", "I do not know"]
    assert _scores({"kind": "exact_match"}, completions, [GSM8K_REFERENCE] * 4) == [1.0, 0.0, 1.0, 0.0]
    assert _scores({"kind": "exact_match", "extract": "gsm8k"}, completions, [GSM8K_REFERENCE] * 4) == [0.0, 0.0, 1.0, 0.0]
    assert _scores({"kind": "exact_match", "extract": r"answer is (\w+)"}, ["the answer is Paris"], ["paris"]) == [1.0]


def test_exact_match_has_no_opinion_on_a_prompt_without_a_reference():
    assert _scores({"kind": "exact_match"}, ["18", "18"], [None, "18"]) == [None, 1.0]


def test_the_other_rules_score_regex_length_and_format():
    assert _scores({"kind": "regex", "pattern": r"\bthe\b"}, ["in the end", "thee"]) == [1.0, 0.0]
    length = {"kind": "length", "target": 4}
    assert _scores(length, ["a", "b", "c"], ids=[[0] * 4, [0] * 2, [0] * 9]) == [1.0, 0.5, 0.0]
    assert _scores({"kind": "format", "format": "gsm8k"}, ["so 3 + 4\n#### 7", "#### 7 apples"]) == [1.0, 0.0]
    think = ["<think>3 + 4</think> <answer>7</answer>", "<answer>7</answer>"]
    assert _scores({"kind": "format", "format": "think_answer"}, think) == [1.0, 0.0]
    assert _scores({"kind": "format", "format": "boxed"}, [r"so \boxed{7}", "7"]) == [1.0, 0.0]
    assert _scores({"kind": "format", "format": "json"}, ['{"a": 1}', "[" * 5000, "7"]) == [1.0, 0.0, 0.0]


def test_a_conversational_completion_is_scored_on_its_message():
    (func,) = reward_functions(parse_rewards([{"kind": "regex", "pattern": "^yes$"}]))
    completions = [[{"role": "assistant", "content": "yes"}], [{"role": "assistant", "content": "no"}]]
    assert func(prompts=[[{"role": "user", "content": "?"}]] * 2, completions=completions, completion_ids=[[1], [2]]) == [1.0, 0.0]


def test_each_function_has_a_name_trl_logs_it_by_and_a_weight():
    specs = parse_rewards([{"kind": "regex", "pattern": "a"}, {"kind": "regex", "pattern": "b", "weight": -2},
                           {"kind": "length", "target": 3, "weight": 0.5}])
    assert [s.name for s in specs] == ["regex", "regex_2", "length"]
    assert [f.__name__ for f in reward_functions(specs)] == ["regex", "regex_2", "length"]
    assert [s.weight for s in specs] == [1.0, -2.0, 0.5]


def test_the_reward_model_scores_prompt_and_answer_text_through_the_scorer():
    class Scorer:
        def score(self, prompts, responses, batch_size):
            self.seen = (prompts, responses, batch_size)
            return [float(len(r)) for r in responses]

    scorer = Scorer()
    (func,) = reward_functions(parse_rewards([{"kind": "reward_model"}]), scorer, batch_size=3)
    prompts = [[{"role": "user", "content": "hi"}]] * 2
    completions = [[{"role": "assistant", "content": "hello"}], [{"role": "assistant", "content": "yo"}]]
    assert func.__name__ == "reward_model"
    assert func(prompts=prompts, completions=completions, completion_ids=[[1], [2]]) == [5.0, 2.0]
    assert scorer.seen == (prompts, ["hello", "yo"], 3)


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), 1001, "1", None])
def test_a_weight_must_be_a_finite_bounded_number(weight):
    from training.config import ConfigError

    with pytest.raises(ConfigError) as e:
        parse_rewards([{"kind": "regex", "pattern": "a", "weight": weight}])
    assert e.value.field == "rewards[0].weight"
