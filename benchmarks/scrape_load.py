"""Kafka consumption of a running predwatch with no scrapers and with many hammering /metrics.

Starts one embedded broker (Tansu, in memory), produces ``--events`` generated
predictions and their labels once (untimed) to two co-partitioned topics, as
``kafka_throughput.py`` does. Then each side runs ``predwatch.service.Service``
in a fresh process pinned to one CPU, consuming every message with a fresh
consumer group, timed from the first poll that returned records until every
message is counted and every labelled prediction is joined:

- ``0 scrapers``: nothing reads the endpoint;
- ``N scrapers`` (``--scrapers``, 200 by default): a separate load process
  (pinned to another CPU when there is one) runs N threads, each scraping
  ``/metrics`` over a keep-alive connection on loopback as fast as answers
  come, from before the group join until the service is done. Each thread
  stops after ``--max-requests`` scrapes, and every side after ``TIMEOUT``.

The table shows messages/s of both sides, their ratio (the goal is at least
0.9), and for the loaded side the scrapes answered per status and the latency
of answered scrapes (p50, p99, max). A refused scrape (503 from a full queue)
counts as answered quickly, which is the point of refusing it.

    .venv/bin/python benchmarks/scrape_load.py                      # 100,000, 200 scrapers
    .venv/bin/python benchmarks/scrape_load.py --events 20000 --scrapers 50 --repeat 2
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from kafka_throughput import (
    LABELS_TOPIC,
    PARTITIONS,
    PREDICTIONS_TOPIC,
    _settings,
    produce,
    run_until_counted,
    timed_service,
)
from sides import ROOT, pin_to_one_cpu, run_side

TIMEOUT = 180.0  # seconds a side may take before it is declared stuck
SCRAPE_TIMEOUT = 30.0  # seconds one scrape may take before it counts as an error


# --- the load: N threads scraping /metrics, in their own process -----------------------------


def _pin_to_another_cpu() -> None:
    """Run the load off the service's CPU when the machine has a second one."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def scrape(url: str, threads: int, max_requests: int) -> dict[str, Any]:
    """Scrape ``url``/metrics from ``threads`` threads until stdin closes; say what happened."""
    _pin_to_another_cpu()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    started = threading.Barrier(threads + 1)

    def one() -> None:
        connection: http.client.HTTPConnection | None = None
        mine: list[float] = []
        seen: Counter[str] = Counter()
        started.wait()
        deadline = time.monotonic() + TIMEOUT
        for _ in range(max_requests):
            if stop.is_set() or time.monotonic() > deadline:
                break
            begin = time.perf_counter()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(host, port, timeout=SCRAPE_TIMEOUT)
                connection.request("GET", "/metrics")
                response = connection.getresponse()
                response.read()
                status = str(response.status)
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                if connection is not None:
                    connection.close()
                connection = None
                if stop.is_set():
                    break  # cut off as the service stopped: after the timed span
                status = "error"
                stop.wait(0.05)  # do not spin on a failing endpoint
            if status == "200":
                mine.append(time.perf_counter() - begin)
            seen[status] += 1
        if connection is not None:
            connection.close()
        with lock:
            latencies.extend(mine)
            statuses.update(seen)

    workers = [threading.Thread(target=one, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    started.wait()
    print("scraping", flush=True)
    sys.stdin.read()  # the service closes our stdin when it is done
    stop.set()
    for worker in workers:
        worker.join(SCRAPE_TIMEOUT + 5)
    return {
        "statuses": dict(statuses),
        "p50": _percentile(latencies, 0.50),
        "p99": _percentile(latencies, 0.99),
        "max": max(latencies, default=None),
    }


# --- a side: the service, with or without the load ------------------------------------------


def _start_load(url: str, scrapers: int, max_requests: int) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, __file__, "--load", url, "--scrapers", str(scrapers)]
    load = subprocess.Popen(
        [*command, "--max-requests", str(max_requests)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert load.stdout is not None
    if load.stdout.readline().strip() != "scraping":
        sys.exit("the scraper load did not start")
    return load


def run_service(
    bootstrap: str, expected: int, labels: int, scrapers: int, max_requests: int
) -> dict[str, Any]:
    pin_to_one_cpu()
    service, consumers = timed_service(_settings(bootstrap, f"bench-scrape-{uuid.uuid4().hex}"))
    load = _start_load(service.url, scrapers, max_requests) if scrapers else None

    def scrapers_stop() -> None:
        if load is not None and load.stdin is not None:
            load.stdin.close()  # scrapers stop before the endpoint does

    # The endpoint stops with the service, once every message is counted.
    finished = run_until_counted(service, expected, TIMEOUT, then=scrapers_stop)
    scraped: dict[str, Any] = {}
    if load is not None:
        if load.stdin is not None and not load.stdin.closed:
            load.stdin.close()  # the side timed out: stop the scrapers all the same
        assert load.stdout is not None
        out = load.stdout.read()
        load.wait(SCRAPE_TIMEOUT + 30)
        scraped = json.loads(out.strip().splitlines()[-1])
    counts = service.monitor.counts
    seen = counts.predictions + counts.labels + counts.invalid
    if "end" not in finished:
        sys.exit(f"{scrapers} scrapers: consumed {seen:,} of {expected:,} in {TIMEOUT:g} s")
    return {
        "scrapers": scrapers,
        "messages": seen,
        "seconds": finished["end"] - consumers[-1].first_records,
        "matched": counts.matched,
        "labels": labels,
        "http": service.server.counts(),
        **scraped,
    }


# --- the parent ------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:,.0f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="predictions (default 100000)")
    parser.add_argument("--scrapers", type=int, default=200, help="scraper threads (default 200)")
    parser.add_argument(
        "--max-requests", type=int, default=1000, help="scrapes per thread at most (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the fastest shown")
    parser.add_argument("--side", type=int, help=argparse.SUPPRESS)  # scrapers of a child side
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the URL a load process scrapes
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--labels", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        print(json.dumps(scrape(args.load, args.scrapers, args.max_requests)))
        return
    if args.side is not None:
        result = run_service(
            args.bootstrap, args.expected, args.labels, args.side, args.max_requests
        )
        print(json.dumps(result))
        return

    sys.path.insert(0, str(ROOT))
    from predwatch.demo.broker import EmbeddedBroker
    from predwatch.demo.synthetic import generate

    sides = (0, args.scrapers)
    with EmbeddedBroker() as broker:
        broker.create_topics([PREDICTIONS_TOPIC, LABELS_TOPIC], partitions=PARTITIONS)
        predictions, labels = generate(args.events, seed=args.seed)
        produce(broker.bootstrap_servers, predictions, labels)
        expected, n_labels = len(predictions) + len(labels), len(labels)
        print(
            f"produced {len(predictions):,} predictions and {n_labels:,} labels "
            f"(seed {args.seed}) to 2 topics x {PARTITIONS} partitions (not timed)"
        )
        del predictions, labels
        results: dict[int, dict[str, Any]] = {}
        for _ in range(args.repeat):  # sides alternate, so a noisy moment hits both alike
            for scrapers in sides:
                child = ["--side", str(scrapers), "--bootstrap", broker.bootstrap_servers]
                child += ["--expected", str(expected), "--labels", str(n_labels)]
                child += ["--max-requests", str(args.max_requests)]
                result = run_side(__file__, child, f"{scrapers}-scraper side")
                if scrapers not in results or result["seconds"] < results[scrapers]["seconds"]:
                    results[scrapers] = result

    print("\ntimed from the first poll that returned records until every message was counted")
    print(
        f"{'scrapers':>8} {'messages':>9} {'seconds':>8} {'messages/s':>11} "
        f"{'scrapes 200':>11} {'503':>6} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    )
    for scrapers, r in results.items():
        statuses = r.get("statuses", {})
        print(
            f"{scrapers:>8} {r['messages']:>9,} {r['seconds']:>8.2f} "
            f"{r['messages'] / r['seconds']:>11,.0f} {statuses.get('200', 0):>11,} "
            f"{statuses.get('503', 0):>6,} {statuses.get('error', 0):>6,} "
            f"{_ms(r.get('p50')):>7} {_ms(r.get('p99')):>7} {_ms(r.get('max')):>7}"
        )
    quiet, loaded = results[0], results[args.scrapers]
    ratio = (loaded["messages"] / loaded["seconds"]) / (quiet["messages"] / quiet["seconds"])
    print(f"\nratio {args.scrapers} scrapers / none: {ratio:.2f} (goal >= 0.9)")
    print(f"endpoint of the loaded side: {loaded['http']}")


if __name__ == "__main__":
    main()
