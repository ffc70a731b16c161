"""Feedback campaign under load: 20 annotators at once against the real stack (Daphne, Redis, the
database: a throwaway PostgreSQL database when DATABASE_URL names a server, else SQLite), each on its
own keep-alive connection with its own API token, each working as the annotator page does: one GET
of its queue when the page opens, then a POST per judgement whose reply brings the queue again (the
item after the one now on screen, fetched ahead). Two phases on one campaign:

- paced: each annotator reads between one reply and their next vote for THINK_SECONDS on average,
  as fast as a quick person works (the dashboard flags votes faster than 1.5 s); each reading time
  is drawn from THINK_SECONDS ± THINK_SPREAD and each annotator opens the page at a random moment of
  the first THINK_SECONDS, as people do: identical clocks would march all 20 in step, every vote of
  a round arriving in the same millisecond. Measured: next-item latency,
  the time of each request that hands an annotator their next item (the vote's reply, or a GET
  /api/campaigns/<id>/next/ when the queue ran dry), p50/p95; goal p95 ≤ 50 ms.
- saturated: no reading time at all, requests back to back. Measured: judgements per second
  sustained, with no loss (every vote acknowledged with 201 is in the database, no item holds more
  votes than its overlap), and the latency under that overload, for the record."""

from __future__ import annotations

import http.client
import json
import random
import statistics
import threading
import time

from bench.lab import BenchLab

ANNOTATORS = 20
ITEMS = 600
OVERLAP = 3
SECONDS = 20.0
THINK_SECONDS = 1.5
THINK_SPREAD = 0.5
P95_GOAL_MS = 50.0


def _annotator(port: int, token: str, campaign_id: int, stop_at: float, think: float, latencies: list, acked: list,
               errors: list):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    base = f"/api/campaigns/{campaign_id}"

    def timed(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        started = time.perf_counter()
        conn.request(method, base + path, headers=headers, body=None if body is None else json.dumps(body))
        response = conn.getresponse()
        data = json.loads(response.read())
        latencies.append((time.perf_counter() - started) * 1000)
        return response.status, data

    rng = random.Random(token)
    try:
        queue = []
        if think:
            time.sleep(rng.uniform(0, think))
        while time.monotonic() < stop_at:
            if not queue:
                _, data = timed("GET", "/next/")
                queue = data["queue"]
                if not queue:
                    return
            item = queue[0]["item"]
            status, data = timed("POST", "/vote/", {"item": item, "choice": "left", "seconds": 3.0})
            if status == 201:
                acked.append(item)
            elif status != 200:
                errors.append(status)
            queue = [q for q in data.get("queue", []) if q["item"] != item]
            if think:
                time.sleep(rng.uniform(think - THINK_SPREAD, think + THINK_SPREAD))
    except Exception as e:  # noqa: BLE001 - reported in the result
        errors.append(repr(e))
    finally:
        conn.close()


def main() -> dict:
    with BenchLab() as lab:
        from django.db.models import Count
        from rest_framework.authtoken.models import Token

        from lab.accounts.actions import add_member, create_team, create_user
        from lab.accounts.models import Role
        from lab.feedback.actions import add_items, create_campaign
        from lab.feedback.models import Vote

        owner = create_user("bench-owner", None)
        team = create_team("Bench", owner)
        users = [create_user(f"bench-annotator-{i}", None) for i in range(ANNOTATORS)]
        for user in users:
            add_member(team, user, Role.ANNOTATOR)
        campaign = create_campaign(team, "Bench", annotators=users, overlap=OVERLAP, created_by=owner)
        add_items(campaign, [{"prompt": f"Prompt {n}", "response_a": f"Answer {n} from a" * 20,
                              "response_b": f"Answer {n} from b" * 20, "model_a": "a", "model_b": "b"}
                             for n in range(ITEMS)])
        tokens = [Token.objects.create(user=user).key for user in users]
        port = int(lab.base_url.rsplit(":", 1)[1])
        paced = _phase(port, tokens, campaign.pk, THINK_SECONDS)
        stored_before = Vote.objects.filter(item__campaign=campaign).count()
        saturated = _phase(port, tokens, campaign.pk, 0.0)
        stored = Vote.objects.filter(item__campaign=campaign).count()
        most = (Vote.objects.filter(item__campaign=campaign).values("item").annotate(n=Count("pk"))
                .order_by("-n").values_list("n", flat=True).first()) or 0
    acked, errors = paced["acked"] + saturated["acked"], paced["errors"] + saturated["errors"]
    return {
        "next_item": {"annotators": ANNOTATORS, "think_seconds": THINK_SECONDS, "think_spread": THINK_SPREAD, **_latency(paced["latencies"]),
                      "goal_p95_ms": P95_GOAL_MS, "met": bool(paced["latencies"])
                      and _latency(paced["latencies"])["p95_ms"] <= P95_GOAL_MS},
        "judgements": {"seconds": round(saturated["seconds"], 1), "acknowledged": len(acked), "stored": stored,
                       "per_second_saturated": round((stored - stored_before) / saturated["seconds"], 1),
                       "next_item_when_saturated": _latency(saturated["latencies"]),
                       "most_votes_on_an_item": most, "overlap": OVERLAP, "errors": errors[:5],
                       "met": stored == len(acked) and most <= OVERLAP and not errors},
    }


def _phase(port: int, tokens: list[str], campaign_id: int, think: float) -> dict:
    latencies, acked, errors = [], [], []
    started = time.monotonic()
    threads = [threading.Thread(target=_annotator, args=(port, token, campaign_id, started + SECONDS, think, latencies,
                                                         acked, errors)) for token in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": latencies, "acked": acked, "errors": errors, "seconds": time.monotonic() - started}


def _latency(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {"requests": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1)}
