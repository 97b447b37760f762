"""Eight visitors at once: concurrent `gradio_client` clients × requests on every image endpoint of the running app,
identical and different inputs mixed; every answer compared with the same request made alone; latency p50 / p95 per
endpoint, failures, whether the server survived, and its resident memory after each round.

    python -m benchmarks.load                      # starts app.py on a free port: 8 clients × 20 requests, 2 rounds
    python -m benchmarks.load --clients 8 --requests 20 --rounds 2 [--url http://127.0.0.1:7860/ --pid PID]

The test suite runs the same code at 8 × 10 (tests/test_load.py). The requests are the tabs' own (`api_examples()` in
`demos/<slug>.py`: three different example inputs per public endpoint, so a new tab joins by declaring its own);
request i of client c sends input (c + i) mod 3, so at any moment about three clients send the very same request.
Needs the committed checkpoints and the data root.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.startup import start_app, stop_app

REQUEST_TIMEOUT_S = 300  # a request not answered by then counts as failed (and the run goes on)


@dataclass
class Endpoint:
    api_name: str
    inputs: list[tuple]  # distinct argument tuples; arguments that are paths of existing files are uploaded


def endpoints() -> list[Endpoint]:
    """Every public endpoint a tab offers example requests for (`api_examples()` in `demos/<slug>.py`: three
    different requests each, from the tab's examples), for every tab whose checkpoints are here."""
    import app
    from models import registry

    found = []
    for _, module in app._demo_modules():
        if hasattr(module, "api_examples") and all(registry.available(name) for name in module.CHECKPOINTS):
            found += [Endpoint(name, inputs) for name, inputs in module.api_examples().items() if inputs]
    if not found:
        raise FileNotFoundError("no tab offers example requests here: the checkpoints and the data root (README, 'Data') are needed")
    return found


def _is_file(value) -> bool:
    """A string that names an existing file (a long text answer is not a path: `is_file` would raise ENAMETOOLONG)."""
    try:
        return isinstance(value, str) and Path(value).is_file()
    except OSError:
        return False


def fingerprint(value):
    """An answer reduced to what must be identical between two runs of the same request: files by their bytes'
    sha256 (a cut-off download differs), labels, tables and text as they are, except measured times ("41 ms")."""
    if _is_file(value):
        return hashlib.sha256(Path(value).read_bytes()).hexdigest()
    if isinstance(value, str):
        return re.sub(r"\d+(\.\d+)? m?s\b", "<time>", value)
    if isinstance(value, (list, tuple)):
        return [fingerprint(item) for item in value]
    if isinstance(value, dict):
        return {key: fingerprint(item) for key, item in value.items()}
    return value


@dataclass
class Outcome:
    seconds: list[float] = field(default_factory=list)
    wrong: int = 0
    failed: list[str] = field(default_factory=list)


def _arguments(endpoint: Endpoint, index: int) -> list:
    from gradio_client import handle_file

    return [handle_file(value) if _is_file(value) else value for value in endpoint.inputs[index]]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status == 200
    except OSError:
        return False


class Visitors:
    """`count` gradio_client clients, each with its own download folder (the clients run in threads of this process)."""

    def __init__(self, url: str, count: int):
        from gradio_client import Client

        self.folder = tempfile.TemporaryDirectory(prefix="nndl-load-")
        with ThreadPoolExecutor(count) as pool:
            self.clients = list(pool.map(lambda c: Client(url, verbose=False, download_files=f"{self.folder.name}/{c}"), range(count)))

    def references(self, endpoint: Endpoint) -> list:
        """Each distinct input's answer, requested alone."""
        return [fingerprint(self.clients[0].predict(*_arguments(endpoint, index), api_name=endpoint.api_name)) for index in range(len(endpoint.inputs))]

    def round(self, endpoint: Endpoint, requests: int, references: list) -> Outcome:
        """Every client sends `requests` requests one after another, all clients at once."""
        outcome, lock = Outcome(), threading.Lock()

        def visitor(number: int) -> None:
            for request in range(requests):
                index = (number + request) % len(endpoint.inputs)
                started = time.perf_counter()
                try:
                    job = self.clients[number].submit(*_arguments(endpoint, index), api_name=endpoint.api_name)
                    answer = job.result(timeout=REQUEST_TIMEOUT_S)
                except Exception as error:  # noqa: BLE001 - counted and reported, the run goes on
                    with lock:
                        outcome.failed.append(f"{type(error).__name__}: {str(error)[:200]}")
                    continue
                seconds = time.perf_counter() - started
                correct = fingerprint(answer) == references[index]
                with lock:
                    outcome.seconds.append(seconds)
                    outcome.wrong += not correct

        with ThreadPoolExecutor(len(self.clients)) as pool:
            list(pool.map(visitor, range(len(self.clients))))
        return outcome

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.folder.cleanup()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


def run(url: str, pid: int | None, clients: int, requests: int, rounds: int, report=print, only: list[str] | None = None) -> dict:
    """The load: per round, every endpoint in turn gets `clients` × `requests` concurrent requests. Returns per round
    and endpoint the outcome, and the server's RSS (MB) after each round."""
    visitors = Visitors(url, clients)
    try:
        cases = [case for case in endpoints() if not only or case.api_name in only]
        references = {case.api_name: visitors.references(case) for case in cases}
        results = {"rounds": [], "rss_mb": [], "alive": []}
        for number in range(rounds):
            outcomes = {}
            for case in cases:
                started = time.perf_counter()
                outcome = visitors.round(case, requests, references[case.api_name])
                outcomes[case.api_name] = outcome
                report(f"round {number + 1} {case.api_name}: {len(outcome.seconds)} answered ({outcome.wrong} wrong), {len(outcome.failed)} failed, "
                       f"p50 {1000 * statistics.median(outcome.seconds or [float('nan')]):.0f} ms, p95 {1000 * percentile(outcome.seconds, 0.95):.0f} ms, "
                       f"{time.perf_counter() - started:.0f} s" + (f"; first failure: {outcome.failed[0]}" if outcome.failed else ""))
            results["rounds"].append(outcomes)
            results["alive"].append(alive(url))
            if pid is not None:
                results["rss_mb"].append(rss_mb(pid))
                report(f"round {number + 1}: server alive {results['alive'][-1]}, RSS {results['rss_mb'][-1]:.0f} MB")
        return results
    finally:
        visitors.close()


def table(results: dict, clients: int, requests: int) -> str:
    """Markdown: per endpoint, answered / wrong / failed and p50 / p95 over all rounds."""
    lines = [f"| endpoint ({clients} clients × {requests} requests, {len(results['rounds'])} rounds) | answered | wrong | failed | p50 ms | p95 ms |",
             "|---|---|---|---|---|---|"]
    for name in results["rounds"][0]:
        seconds = [s for outcomes in results["rounds"] for s in outcomes[name].seconds]
        wrong = sum(outcomes[name].wrong for outcomes in results["rounds"])
        failed = sum(len(outcomes[name].failed) for outcomes in results["rounds"])
        total = clients * requests * len(results["rounds"])
        lines.append(f"| `{name}` | {len(seconds)} / {total} | {wrong} | {failed} | {1000 * statistics.median(seconds):.0f} | {1000 * percentile(seconds, 0.95):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20, help="requests per client and endpoint, per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--url", help="a running app (default: start app.py on a free port)")
    parser.add_argument("--pid", type=int, help="the running app's process id, for its RSS")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--endpoints", nargs="*", help="only these (default: every endpoint with example requests)")
    args = parser.parse_args(argv)
    process = None
    url, pid = args.url, args.pid
    if url is None:
        process, url, _ = start_app()
        pid = process.pid
    try:
        results = run(url, pid, args.clients, args.requests, args.rounds, only=args.endpoints)
    finally:
        if process is not None:
            stop_app(process)
    print(table(results, args.clients, args.requests))
    if results["rss_mb"]:
        print(f"server RSS after each round: {', '.join(f'{mb:.0f} MB' for mb in results['rss_mb'])}; alive after each round: {results['alive']}")
    if args.json:
        args.json.write_text(json.dumps({"table": table(results, args.clients, args.requests), "rss_mb": results["rss_mb"], "alive": results["alive"],
                                         "failures": {name: o.failed[:5] for outcomes in results["rounds"] for name, o in outcomes.items()}}, indent=1))
    return results


if __name__ == "__main__":
    main()
