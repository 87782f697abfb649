"""Campaign events on a Redis stream, and the optional end-of-campaign webhook.

Every state change is an entry on ``bulktag:events`` (``XADD``, capped at about
``STREAM_MAXLEN`` entries), for dashboards and any other consumer (``XREAD``). A campaign
submitted with a webhook URL gets one JSON POST when it ends, sent by an RQ job on the
``bulktag.notify`` queue so that no tagging worker ever waits on someone else's server; the
job retries with backoff.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

import redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from bulktag import store

log = logging.getLogger(__name__)

EVENTS = f"{store.PREFIX}:events"
STREAM_MAXLEN = 100_000
WEBHOOK_QUEUE = "bulktag.notify"
WEBHOOK_JOB = "bulktag.notify.send_webhook"
WEBHOOK_TIMEOUT_S = 10
WEBHOOK_BACKOFF_S = (1, 2, 4, 8)


def emit(conn: redis.Redis, campaign_id: str, event: str, **fields: Any) -> None:
    entry = {"campaign": campaign_id, "event": event, "at": f"{time.time():.3f}"}
    entry.update({k: json.dumps(v) if not isinstance(v, str) else v for k, v in fields.items()})
    conn.xadd(EVENTS, entry, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]


def campaign_ended(conn: redis.Redis, campaign_id: str, state: str) -> None:
    """Once per campaign: the event, and the webhook job if one was asked for."""
    key = store.campaign_key(campaign_id)
    if not conn.hsetnx(key, "notified_at", time.time()):
        return
    emit(conn, campaign_id, "ended", state=state)
    options = json.loads(conn.hget(key, "options") or b"{}")
    if options.get("webhook"):
        Queue(WEBHOOK_QUEUE, connection=conn, serializer=JSONSerializer).enqueue(
            WEBHOOK_JOB, campaign_id, options["webhook"], retry=Retry(max=3)
        )


def send_webhook(campaign_id: str, url: str) -> int:
    """POST the campaign's summary; raise (so RQ retries) if the server never accepts it."""
    from rq import get_current_job

    from bulktag.campaigns import status

    job = get_current_job()
    assert job is not None
    body = json.dumps(status(job.connection, campaign_id)).encode()
    last: Exception | None = None
    for delay in (0, *WEBHOOK_BACKOFF_S):
        time.sleep(delay)
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as answer:
                return int(answer.status)
        except (urllib.error.URLError, OSError) as exc:
            last = exc
            log.warning("webhook failed", extra={"campaign": campaign_id, "error": str(exc)})
    raise RuntimeError(f"webhook {url} not accepted: {last}")
