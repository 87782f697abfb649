#!/usr/bin/env python
"""Per-job overhead of RQ 3.0 worker classes for bulktag's ``async def`` chunk jobs.

bulktag's chunk jobs are coroutine functions that take 1-5 s. This script measures what the
worker machinery itself costs per job, so that cost can be weighed against crash safety:

* **RQ runs**: N no-op ``async def`` jobs and N no-op sync jobs, enqueued with the JSON
  serializer, each batch drained by one worker in burst mode. Variants:

  - ``fork``            ``rq.Worker``: forks a work horse per job (job module preloaded);
  - ``fork-nopreload``  the same, but the worker never imported the job module, so every
                        horse imports it (and aiohttp) afresh, as ``rq worker`` does by default;
  - ``simple``          ``rq.SimpleWorker``: runs the job in the worker process;
  - ``spawn``           ``rq.SpawnWorker``: ``posix_spawn()`` of a new interpreter per job;
  - ``simple-loop``     :class:`LoopReusingSimpleWorker` (defined here): a SimpleWorker whose
                        coroutine jobs share one event loop per process instead of
                        ``asyncio.run()`` per job (``rq/job.py`` ``Job._execute``).

  Every run happens in a child process started in its own session, with a time limit; on
  timeout the whole process group (worker and work horses) is killed.

* **Event loop / aiohttp micro-benchmarks** (in this process): a fresh event loop per job
  versus one reused loop, creating+closing an ``aiohttp.ClientSession`` per job versus reusing
  one, and one HTTP GET to a local keep-alive server with a new session (new TCP connection)
  per job versus a reused session (pooled connection).

Redis is a private ``redis-server`` on a free loopback port, started through
:class:`bulktag.embedded_redis.EmbeddedRedis` in a temporary directory; nothing touches
127.0.0.1:6379.

Usage::

    .venv/bin/python bench/rq_overhead.py                       # N=1000, all variants
    .venv/bin/python bench/rq_overhead.py -n 200 --variants fork simple --no-micro
    .venv/bin/python bench/rq_overhead.py --json /tmp/rq_overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import rq
from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq import worker as rq_worker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.serializers import JSONSerializer
from rq.worker import BaseWorker

from bulktag.embedded_redis import EmbeddedRedis

# SpawnWorker is in RQ 3.0 but not in every release pyproject.toml allows; run without it there.
SPAWN_WORKER: type[BaseWorker] | None = getattr(rq_worker, "SpawnWorker", None)

T = TypeVar("T")

BENCH_DIR = Path(__file__).resolve().parent
JOB_MODULE = "_noop_jobs"
JOB_FUNCS: dict[str, str] = {
    "async": f"{JOB_MODULE}.noop_async",
    "sync": f"{JOB_MODULE}.noop_sync",
}
ENQUEUE_BATCH = 500


# --------------------------------------------------------------------------------------------
# A SimpleWorker that keeps one event loop per process across jobs
# --------------------------------------------------------------------------------------------


class ProcessEventLoop:
    """One asyncio event loop per process, shared by every coroutine job the process runs.

    A loop inherited through ``fork()`` shares its epoll/selector file descriptor with the
    parent, so a loop is only ever reused by the process that created it.
    """

    def __init__(self, cancel_grace: float = 5.0) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._cancel_grace = cancel_grace

    def get(self) -> asyncio.AbstractEventLoop:
        """The loop of this process, created on first use."""
        if self._loop is None or self._loop.is_closed() or self._pid != os.getpid():
            self._loop = asyncio.new_event_loop()
            self._pid = os.getpid()
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on the shared loop, then cancel whatever it left behind.

        Left-overs must not run during the next job: tasks the job spawned and never awaited
        and, when RQ's SIGALRM death penalty raises ``JobTimeoutException`` (or a cold
        shutdown raises ``SystemExit``) out of the loop's ``select()``, the job's own task,
        which ``run_until_complete()`` then abandons still pending.
        """
        loop = self.get()
        task = loop.create_task(coro)
        try:
            return loop.run_until_complete(task)
        finally:
            self._cancel_pending(loop)

    def _cancel_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if not pending:
            return
        for pending_task in pending:
            pending_task.cancel()
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait(pending, timeout=self._cancel_grace))
        for pending_task in pending:  # mark exceptions retrieved: no "never retrieved" noise
            if pending_task.done() and not pending_task.cancelled():
                pending_task.exception()

    def close(self) -> None:
        """Cancel left-overs, finalize async generators and close the loop (this process only)."""
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed() or self._pid != os.getpid():
            return
        try:
            self._cancel_pending(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


PROCESS_LOOP = ProcessEventLoop()


class PersistentLoopJob(Job):
    """A Job that runs coroutine functions on :data:`PROCESS_LOOP`.

    Same as ``rq.job.Job._execute`` (which calls ``asyncio.run()``, i.e. a new loop per job,
    closed afterwards) except for the loop.
    """

    def _execute(self) -> Any:
        if not self.func:
            raise ValueError("Cannot execute job: function is None")
        result = self.func(*self.args, **self.kwargs)
        if asyncio.iscoroutine(result):
            return PROCESS_LOOP.run(result)
        return result


class LoopReusingSimpleWorker(SimpleWorker):
    """A SimpleWorker whose coroutine jobs share one event loop for the life of the process.

    Only meaningful for in-process execution: a forking ``Worker`` runs each job in a fresh
    process, where there is nothing to reuse.
    """

    job_class = PersistentLoopJob

    def teardown(self) -> None:
        try:
            super().teardown()  # type: ignore[no-untyped-call]
        finally:
            PROCESS_LOOP.close()


# --------------------------------------------------------------------------------------------
# Worker variants and their runs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    worker_class: type[BaseWorker]
    preload: bool = True  # import the job module in the worker process before work()
    kinds: tuple[str, ...] = ("async", "sync")
    reduced_n: bool = False  # use --slow-jobs instead of --jobs (a process spawn per job)


def _variants() -> dict[str, Variant]:
    found = [
        Variant("fork", "Worker (fork)", Worker),
        Variant(
            "fork-nopreload",
            "Worker (fork), job module not preloaded",
            Worker,
            preload=False,
            reduced_n=True,
        ),
        Variant("simple", "SimpleWorker", SimpleWorker),
        Variant(
            "simple-loop", "LoopReusingSimpleWorker", LoopReusingSimpleWorker, kinds=("async",)
        ),
    ]
    if SPAWN_WORKER is not None:
        found.insert(3, Variant("spawn", "SpawnWorker", SPAWN_WORKER, reduced_n=True))
    return {variant.key: variant for variant in found}


VARIANTS = _variants()


@dataclass
class RunResult:
    variant: str
    label: str
    kind: str
    jobs: int
    seconds: float | None = None
    finished: int = 0
    failed: int = 0
    left: int = 0
    error: str = ""
    samples: list[float] = field(default_factory=list)  # seconds of each repeat; seconds = median

    @property
    def jobs_per_second(self) -> float | None:
        return self.jobs / self.seconds if self.seconds else None

    @property
    def ms_per_job(self) -> float | None:
        return self.seconds * 1000 / self.jobs if self.seconds and self.jobs else None

    @property
    def ms_range(self) -> str:
        if len(self.samples) < 2:
            return "-"
        low, high = (value * 1000 / self.jobs for value in (min(self.samples), max(self.samples)))
        return f"{low:.2f}-{high:.2f}"


def combine(repeats: Sequence[RunResult]) -> RunResult:
    """One row for the repeats of a variant and job kind: the median run, and the spread."""
    first = repeats[0]
    combined = RunResult(first.variant, first.label, first.kind, first.jobs)
    failed = [run for run in repeats if run.error]
    if failed:
        combined.error = failed[0].error
    good = [run for run in repeats if not run.error and run.seconds is not None]
    if good:
        combined.samples = [run.seconds for run in good if run.seconds is not None]
        combined.seconds = statistics.median(combined.samples)
        combined.finished = sum(run.finished for run in good)
        combined.failed = sum(run.failed for run in repeats)
    return combined


def enqueue_noop_jobs(connection: Redis, queue_name: str, kind: str, count: int) -> float:
    """Enqueue ``count`` no-op jobs of ``kind`` (JSON serializer); return the seconds taken."""
    queue = Queue(queue_name, connection=connection, serializer=JSONSerializer)
    started = time.perf_counter()
    for start in range(0, count, ENQUEUE_BATCH):
        size = min(ENQUEUE_BATCH, count - start)
        queue.enqueue_many([Queue.prepare_data(JOB_FUNCS[kind]) for _ in range(size)])
    return time.perf_counter() - started


def run_in_child(
    variant: Variant,
    kind: str,
    count: int,
    url: str,
    workdir: Path,
    args: argparse.Namespace,
    attempt: int = 0,
) -> RunResult:
    """Drain a fresh queue of ``count`` jobs with ``variant`` in a child process, time-boxed."""
    result = RunResult(variant.key, variant.label, kind, count)
    queue_name = f"bench.{variant.key}.{kind}.{attempt}"
    connection = Redis.from_url(url)
    try:
        enqueue_noop_jobs(connection, queue_name, kind, count)
    finally:
        connection.close()
    result_file = workdir / f"{queue_name}.json"
    log_file = workdir / f"{queue_name}.log"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        variant.key,
        "--url",
        url,
        "--queue",
        queue_name,
        "--result-file",
        str(result_file),
        "--log-level",
        args.log_level,
    ]
    # The work horses (and SpawnWorker's fresh interpreters) import the job module by name.
    python_path = [str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, python_path)))
    with log_file.open("wb") as log:
        child = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            child.wait(timeout=args.run_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)  # the worker and any work horse
            child.wait()
            result.error = f"timed out after {args.run_timeout:.0f} s"
            return result
    if child.returncode != 0 or not result_file.exists():
        tail = log_file.read_text(errors="replace")[-2000:]
        result.error = f"child exited {child.returncode}: {tail}"
        return result
    data = json.loads(result_file.read_text())
    result.seconds = data["seconds"]
    result.finished, result.failed, result.left = data["finished"], data["failed"], data["left"]
    if result.finished != count:
        result.error = (
            f"{result.finished}/{count} finished, {result.failed} failed, {result.left} left"
        )
    return result


def child_main(
    variant_key: str, url: str, queue_name: str, result_file: Path, log_level: str
) -> int:
    """Child process: run one burst worker over ``queue_name`` and write timings as JSON."""
    variant = VARIANTS[variant_key]
    if variant.preload:
        importlib.import_module(JOB_MODULE)
    connection = Redis.from_url(url)
    worker = variant.worker_class([queue_name], connection=connection, serializer=JSONSerializer)
    started = time.perf_counter()
    worker.work(burst=True, logging_level=log_level)
    seconds = time.perf_counter() - started
    registry_args: dict[str, Any] = {"connection": connection, "serializer": JSONSerializer}
    finished = FinishedJobRegistry(queue_name, **registry_args).get_job_count(cleanup=False)
    failed = FailedJobRegistry(queue_name, **registry_args).get_job_count(cleanup=False)
    left = Queue(queue_name, connection=connection, serializer=JSONSerializer).count
    result_file.write_text(
        json.dumps({"seconds": seconds, "finished": finished, "failed": failed, "left": left})
    )
    return 0


# --------------------------------------------------------------------------------------------
# Event loop and aiohttp micro-benchmarks
# --------------------------------------------------------------------------------------------


@dataclass
class MicroResult:
    name: str
    iterations: int
    ms_per_iteration: float
    ms_p95: float = field(default=0.0)


class _KeepAliveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep connections open so a pooled session can reuse them
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every request on a reused connection.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def local_http_server() -> Iterator[str]:
    """A threaded HTTP/1.1 keep-alive server on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="bench-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _timed(name: str, iterations: int, step: Callable[[], object]) -> MicroResult:
    step()  # warm-up: imports, first connection
    samples: list[float] = []
    for _ in range(iterations):
        started = time.perf_counter()
        step()
        samples.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)
    return MicroResult(name, iterations, statistics.fmean(samples), p95)


def run_micro(iterations: int, http_iterations: int) -> list[MicroResult]:
    """Event loop and ClientSession costs, per simulated job."""
    import aiohttp  # here, not at module level: fork-nopreload workers must not inherit it

    async def nothing() -> None:
        return None

    async def session_cycle() -> None:
        async with aiohttp.ClientSession():
            pass

    results: list[MicroResult] = []
    loop = asyncio.new_event_loop()
    try:
        results.append(
            _timed(
                "asyncio.run(no-op)  [new loop per job]", iterations, lambda: asyncio.run(nothing())
            )
        )
        results.append(
            _timed("reused loop, no-op", iterations, lambda: loop.run_until_complete(nothing()))
        )
        results.append(
            _timed(
                "asyncio.run(create+close ClientSession)",
                iterations,
                lambda: asyncio.run(session_cycle()),
            )
        )
        results.append(
            _timed(
                "reused loop, create+close ClientSession",
                iterations,
                lambda: loop.run_until_complete(session_cycle()),
            )
        )

        with local_http_server() as url:

            async def get_with_new_session() -> None:
                async with aiohttp.ClientSession() as session, session.get(url) as response:
                    await response.read()

            async def open_session() -> aiohttp.ClientSession:
                return aiohttp.ClientSession()

            shared = loop.run_until_complete(open_session())

            async def get_with_shared_session() -> None:
                async with shared.get(url) as response:
                    await response.read()

            try:
                results.append(
                    _timed(
                        "asyncio.run + new session + 1 GET (new TCP conn)",
                        http_iterations,
                        lambda: asyncio.run(get_with_new_session()),
                    )
                )
                results.append(
                    _timed(
                        "reused loop + reused session + 1 GET (pooled conn)",
                        http_iterations,
                        lambda: loop.run_until_complete(get_with_shared_session()),
                    )
                )
            finally:
                loop.run_until_complete(shared.close())
    finally:
        loop.close()
    return results


# --------------------------------------------------------------------------------------------
# Reporting and entry point
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_tables(
    runs: Sequence[RunResult], micro: Sequence[MicroResult], enqueue_rate: float
) -> None:
    print()
    print(
        f"RQ {rq.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs; JSON serializer; burst mode; "
        f"enqueue ~{enqueue_rate:,.0f} jobs/s"
    )
    print()
    print("| worker | job | N | runs | s (median) | jobs/s | ms/job | ms/job min-max | result |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for run in runs:
        status = run.error.splitlines()[0][:80] if run.error else "all finished"
        print(
            f"| {run.label} | {run.kind} | {run.jobs} | {len(run.samples)} | "
            f"{_fmt(run.seconds, '.2f')} | {_fmt(run.jobs_per_second, ',.0f')} | "
            f"{_fmt(run.ms_per_job, '.2f')} | {run.ms_range} | {status} |"
        )
    if micro:
        print()
        print("| per simulated job (no RQ) | iterations | mean ms | p95 ms |")
        print("|---|---:|---:|---:|")
        for item in micro:
            print(
                f"| {item.name} | {item.iterations} | {item.ms_per_iteration:.3f} | "
                f"{item.ms_p95:.3f} |"
            )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure RQ per-job overhead for async and sync no-op jobs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-n", "--jobs", type=int, default=1000, help="jobs per run")
    parser.add_argument(
        "--slow-jobs",
        type=int,
        default=100,
        help="jobs per run for the slow variants (spawn, fork-nopreload)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        help="worker variants to run",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per variant and job kind (the table shows the median)",
    )
    parser.add_argument(
        "--run-timeout", type=float, default=300.0, help="seconds before a worker run is killed"
    )
    parser.add_argument("--log-level", default="WARNING", help="worker logging level")
    parser.add_argument(
        "--micro-iterations",
        type=int,
        default=500,
        help="iterations of each event loop / ClientSession benchmark",
    )
    parser.add_argument(
        "--http-iterations",
        type=int,
        default=300,
        help="iterations of each local HTTP GET micro-benchmark",
    )
    parser.add_argument("--no-micro", action="store_true", help="skip the micro-benchmarks")
    parser.add_argument("--json", type=Path, help="also write all results to this JSON file")
    # Internal: how the parent runs one worker in a child process.
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.slow_jobs < 1 or args.repeat < 1:
        parser.error("--jobs, --slow-jobs and --repeat must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child, args.url, args.queue, args.result_file, args.log_level)

    runs: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="rq-overhead-") as tmp:
        workdir = Path(tmp)
        with EmbeddedRedis(workdir / "redis") as server:
            probe = Redis.from_url(server.url)
            try:
                enqueue_seconds = enqueue_noop_jobs(
                    probe, "bench.enqueue-probe", "async", args.jobs
                )
                probe.delete("rq:queue:bench.enqueue-probe")
            finally:
                probe.close()
            for key in args.variants:
                variant = VARIANTS[key]
                count = args.slow_jobs if variant.reduced_n else args.jobs
                for kind in variant.kinds:
                    repeats: list[RunResult] = []
                    for attempt in range(args.repeat):
                        print(
                            f"running {variant.label} / {kind} / N={count} "
                            f"({attempt + 1}/{args.repeat}) ...",
                            flush=True,
                        )
                        run = run_in_child(variant, kind, count, server.url, workdir, args, attempt)
                        if run.error:
                            print(f"  problem: {run.error[:500]}", flush=True)
                        repeats.append(run)
                    runs.append(combine(repeats))
    micro = [] if args.no_micro else run_micro(args.micro_iterations, args.http_iterations)
    enqueue_rate = args.jobs / enqueue_seconds
    print_tables(runs, micro, enqueue_rate)
    if args.json:
        payload = {
            "rq": rq.__version__,
            "python": platform.python_version(),
            "enqueue_jobs_per_second": enqueue_rate,
            "runs": [
                {
                    **asdict(run),
                    "jobs_per_second": run.jobs_per_second,
                    "ms_per_job": run.ms_per_job,
                }
                for run in runs
            ],
            "micro": [asdict(item) for item in micro],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if all(not run.error for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
