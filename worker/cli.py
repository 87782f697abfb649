"""``bulktag worker``: RQ workers over the campaign queues, N processes on this machine."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from rq.serializers import JSONSerializer
from rq.worker_pool import WorkerPool

from bulktag.connections import connect, resolve_redis_url
from bulktag.errors import UserError
from worker.jobs import REDIS_URL_ENV
from worker.reconcile import Reconciler
from worker.runner import FIXED_QUEUES_ENV, QUEUE_PREFIX, CampaignWorker, campaign_queue_names

log = logging.getLogger(__name__)

# A worker needs at least one queue to start with; this one never holds a job, and the
# worker adds the real campaign queues as it finds them.
PLACEHOLDER_QUEUE = f"{QUEUE_PREFIX}_"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queues", nargs="+", metavar="QUEUE",
        help="listen only on these queues (default: every bulktag.* queue, including ones "
        "created later, round-robin)",
    )  # fmt: skip
    parser.add_argument(
        "--processes", type=int, default=1, metavar="N",
        help="worker processes on this machine (default: 1); run more machines for more",
    )  # fmt: skip
    parser.add_argument(
        "--burst", action="store_true", help="exit once the queues are empty (for cron and CI)"
    )
    parser.add_argument("--redis-url", help="Redis URL (default: $BULKTAG_REDIS_URL or local)")


def run(args: argparse.Namespace) -> int:
    if args.processes < 1:
        raise UserError(f"--processes must be at least 1, got {args.processes}")
    url = resolve_redis_url(args.redis_url).url
    conn = connect(url)
    # Job code reads the URL from the environment; forked and pooled workers inherit it.
    os.environ[REDIS_URL_ENV] = url
    if args.queues:
        os.environ[FIXED_QUEUES_ENV] = "1"
        queues = list(args.queues)
    else:
        queues = campaign_queue_names(conn) or [PLACEHOLDER_QUEUE]
    level = logging.getLevelName(logging.getLogger().level)
    log.info("starting workers", extra={"processes": args.processes, "queues": len(queues)})
    if not args.burst:
        Reconciler(conn).start()
    if args.processes == 1:
        worker = CampaignWorker(queues, connection=conn, serializer=JSONSerializer)
        worker.work(burst=args.burst, logging_level=level, with_scheduler=False)
        return 0
    pool = WorkerPool(
        queues,
        connection=conn,
        num_workers=args.processes,
        worker_class=CampaignWorker,
        serializer=JSONSerializer,
    )
    pool.start(burst=args.burst, logging_level=level)
    return 0


def spawn(
    redis_url: str, count: int, credentials_file: str, *, burst: bool = False
) -> list[subprocess.Popen[bytes]]:
    """``count`` separate ``bulktag worker`` processes, for the demo and the benchmarks
    (each its own process, as on separate machines)."""
    env = {**os.environ, "BULKTAG_CREDENTIALS_FILE": credentials_file}
    args = [sys.executable, "-m", "bulktag.cli", "--log-level", "WARNING", "worker",
            "--redis-url", redis_url, *(["--burst"] if burst else [])]  # fmt: skip
    return [subprocess.Popen(args, env=env) for _ in range(count)]


def stop(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM (finish the running chunk, then exit), then SIGKILL after ``timeout``."""
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
