"""No-op RQ job functions for ``bench/rq_overhead.py``.

They live in their own importable module because RQ stores a job's function by dotted name
(``_noop_jobs.noop_async``) and the worker, or its work horse, imports it by that name.
``bench/`` must be on ``sys.path``; ``rq_overhead.py`` sees to that for itself and its children.

``aiohttp`` is imported at module level on purpose: a real chunk module imports it too, so a
worker that does not preload the job module pays that import in every forked work horse. The
``fork-nopreload`` variant of the benchmark measures exactly that.
"""

from __future__ import annotations

import aiohttp

__all__ = ["noop_async", "noop_sync", "session_cycle"]


async def noop_async() -> None:
    """An ``async def`` job that does nothing: RQ must still run it on an event loop."""
    return None


def noop_sync() -> None:
    """A plain job that does nothing."""
    return None


async def session_cycle() -> None:
    """Create and close one ``aiohttp.ClientSession``, as a job with its own session does."""
    async with aiohttp.ClientSession():
        pass
