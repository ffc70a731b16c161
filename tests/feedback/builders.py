"""Campaigns for the feedback tests, built through the actions, as the app builds them."""

from lab.feedback.actions import add_items, create_campaign


def pair(n: int, model_a: str = "small", model_b: str = "large", gold: str | None = None) -> dict:
    return {"prompt": f"Question {n}: what is {n} + {n}?", "response_a": f"It is {2 * n}.",
            "response_b": f"I think {2 * n + 1}.", "model_a": model_a, "model_b": model_b, "gold": gold}


def campaign_with_items(team, owner, annotators, n_items: int = 4, overlap: int = 2, name: str = "Arithmetic"):
    campaign = create_campaign(team, name, guidelines="Prefer the **correct** answer.", annotators=annotators,
                               overlap=overlap, created_by=owner)
    add_items(campaign, [pair(n) for n in range(1, n_items + 1)])
    return campaign
