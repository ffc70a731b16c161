"""Feedback campaign under load: 20 annotators at once against the real stack (Daphne, Redis, the
database: a throwaway PostgreSQL database when DATABASE_URL names a server, else SQLite), each on its
own keep-alive connection with its own API token. Two phases on one campaign:

- paced: each annotator reads for THINK_SECONDS between a vote and the next request, as fast as a
  quick person works (the dashboard flags votes faster than 1.5 s). Measured: next-item latency
  (GET /api/campaigns/<id>/next/, p50/p95; goal p95 ≤ 50 ms).
- saturated: no reading time at all, requests back to back. Measured: judgements per second
  sustained, with no loss (every vote acknowledged with 201 is in the database, no item holds more
  votes than its overlap), and the latency under that overload, for the record."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time

from bench.lab import BenchLab

ANNOTATORS = 20
ITEMS = 300
OVERLAP = 3
SECONDS = 20.0
THINK_SECONDS = 1.5
P95_GOAL_MS = 50.0


def _annotator(port: int, token: str, campaign_id: int, stop_at: float, think: float, latencies: list, acked: list,
               errors: list):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    base = f"/api/campaigns/{campaign_id}"
    try:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            conn.request("GET", f"{base}/next/", headers=headers)
            response = conn.getresponse()
            body = json.loads(response.read())
            latencies.append((time.perf_counter() - started) * 1000)
            if not body["queue"]:
                return
            conn.request("POST", f"{base}/vote/", headers=headers, body=json.dumps(
                {"item": body["queue"][0]["item"], "choice": "left", "seconds": 3.0}))
            voted = conn.getresponse()
            voted.read()
            if voted.status == 201:
                acked.append(body["queue"][0]["item"])
            elif voted.status != 200:
                errors.append(voted.status)
            time.sleep(think)
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
        "next_item": {"annotators": ANNOTATORS, "think_seconds": THINK_SECONDS, **_latency(paced["latencies"]),
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
