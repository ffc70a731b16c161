"""Feedback campaign under load: 20 annotators at once against the real stack (Daphne, Redis, the
database: a throwaway PostgreSQL database when DATABASE_URL names a server, else SQLite), each on its
own connection, each working as the annotator page does: the page's websocket sends the queue when
it opens, then each judgement's reply brings the queue again (the item after the one now on screen,
fetched ahead). Phases on one campaign:

- paced: each annotator reads between one reply and their next vote for THINK_SECONDS on average,
  as fast as a quick person works (the dashboard flags votes faster than 1.5 s); each reading time
  is drawn from THINK_SECONDS ± THINK_SPREAD and each annotator opens the page at a random moment of
  the first THINK_SECONDS, as people do: identical clocks would march all 20 in step, every vote of
  a round arriving in the same millisecond. Measured: next-item latency, the time from sending a
  judgement to the reply that brings the next item (or, when the queue ran dry, from asking for
  more to the answer), p50/p95; goal p95 ≤ 50 ms. The same phase through the REST API (token auth,
  one keep-alive connection each: POST vote, GET next) is recorded beside it, for scripts.
- saturated: no reading time at all, judgements back to back over the page's websocket. Measured:
  judgements per second sustained, with no loss (every vote acknowledged as stored is in the
  database, no item holds more votes than its overlap), and the latency under that overload."""

from __future__ import annotations

import http.client
import json
import random
import statistics
import threading
import time

from websockets.sync.client import connect

from bench.lab import BenchLab

ANNOTATORS = 20
ITEMS = 1200
OVERLAP = 3
SECONDS = 20.0
THINK_SECONDS = 1.5
THINK_SPREAD = 0.5
P95_GOAL_MS = 50.0


class PageLine:
    """The annotator page's websocket: the queue comes on connect, each message gets its reply."""

    def __init__(self, port: int, cookie: str, campaign_id: int):
        self.ws = connect(f"ws://127.0.0.1:{port}/ws/campaigns/{campaign_id}/annotate/", open_timeout=30,
                          additional_headers={"Cookie": f"sessionid={cookie}", "Origin": f"http://127.0.0.1:{port}"})
        self.opening_queue = json.loads(self.ws.recv(timeout=30))["queue"]

    def ask(self, action: str, fields: dict) -> tuple[int, dict]:
        self.ws.send(json.dumps({"action": action, **fields}))
        reply = json.loads(self.ws.recv(timeout=30))
        return reply["status"], reply

    def close(self) -> None:
        self.ws.close()


class ApiLine:
    """The REST API on one keep-alive connection with a token, as a script would use it."""

    def __init__(self, port: int, token: str, campaign_id: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.base = f"/api/campaigns/{campaign_id}"
        self.opening_queue = self.ask("next", {})[1]["queue"]

    def ask(self, action: str, fields: dict) -> tuple[int, dict]:
        method = "POST" if fields else "GET"
        self.conn.request(method, f"{self.base}/{action}/", headers=self.headers,
                          body=json.dumps(fields) if fields else None)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read())

    def close(self) -> None:
        self.conn.close()


def _annotator(line_class, port: int, credential: str, campaign_id: int, stop_at: float, think: float,
               latencies: list, acked: list, errors: list):
    rng = random.Random(credential)
    if think:
        time.sleep(rng.uniform(0, think))
    line = None

    def timed(action: str, fields: dict) -> tuple[int, dict]:
        started = time.perf_counter()
        answer = line.ask(action, fields)
        latencies.append((time.perf_counter() - started) * 1000)
        return answer

    try:
        line = line_class(port, credential, campaign_id)
        queue = line.opening_queue
        while time.monotonic() < stop_at:
            if not queue:
                queue = timed("next", {})[1]["queue"]
                if not queue:
                    return
            item = queue[0]["item"]
            status, reply = timed("vote", {"item": item, "choice": "left", "seconds": 3.0})
            if status == 201:
                acked.append(item)
            elif status != 200:
                errors.append(reply)
            queue = [q for q in reply.get("queue", []) if q["item"] != item]
            if think:
                time.sleep(rng.uniform(think - THINK_SPREAD, think + THINK_SPREAD))
    except Exception as e:  # noqa: BLE001 - reported in the result
        errors.append(repr(e))
    finally:
        if line is not None:
            line.close()


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
        cookies = [_session_cookie(user) for user in users]
        port = int(lab.base_url.rsplit(":", 1)[1])
        paced = _phase(PageLine, port, cookies, campaign.pk, THINK_SECONDS)
        paced_api = _phase(ApiLine, port, tokens, campaign.pk, THINK_SECONDS)
        stored_before = Vote.objects.filter(item__campaign=campaign).count()
        saturated = _phase(PageLine, port, cookies, campaign.pk, 0.0)
        stored = Vote.objects.filter(item__campaign=campaign).count()
        most = (Vote.objects.filter(item__campaign=campaign).values("item").annotate(n=Count("pk"))
                .order_by("-n").values_list("n", flat=True).first()) or 0
    phases = (paced, paced_api, saturated)
    acked, errors = sum((p["acked"] for p in phases), []), sum((p["errors"] for p in phases), [])
    return {
        "next_item": {"annotators": ANNOTATORS, "think_seconds": THINK_SECONDS, "think_spread": THINK_SPREAD,
                      "line": "the annotator page's websocket", **_latency(paced["latencies"]),
                      "goal_p95_ms": P95_GOAL_MS, "met": bool(paced["latencies"])
                      and _latency(paced["latencies"])["p95_ms"] <= P95_GOAL_MS},
        "next_item_rest_api": {"line": "REST API: POST vote/, GET next/ (token auth, keep-alive)",
                               **_latency(paced_api["latencies"])},
        "judgements": {"seconds": round(saturated["seconds"], 1), "acknowledged": len(acked), "stored": stored,
                       "per_second_saturated": round((stored - stored_before) / saturated["seconds"], 1),
                       "next_item_when_saturated": _latency(saturated["latencies"]),
                       "most_votes_on_an_item": most, "overlap": OVERLAP, "errors": errors[:5],
                       "met": stored == len(acked) and most <= OVERLAP and not errors},
    }


def _session_cookie(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _phase(line_class, port: int, credentials: list[str], campaign_id: int, think: float) -> dict:
    latencies, acked, errors = [], [], []
    started = time.monotonic()
    threads = [threading.Thread(target=_annotator, args=(line_class, port, credential, campaign_id, started + SECONDS,
                                                         think, latencies, acked, errors)) for credential in credentials]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": latencies, "acked": acked, "errors": errors, "seconds": time.monotonic() - started}


def _latency(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {"requests": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1)}
