"""Security properties, with real processes and real Redis servers:

- a pickle planted on a bulktag queue is never unpickled by a worker (jobs are JSON only);
- password-protected Redis works, and a wrong password is a one-line error that never
  shows the password;
- ``rediss://`` works, verifying the server against a CA file given in the URL.

The emulator's refusal of a non-loopback bind is in tests/test_emulator.py; the secret scan
of Redis and logs after a campaign in tests/test_secrets.py (and after a compliance run in
tests/test_compliance.py).
"""

from __future__ import annotations

import datetime
import ipaddress
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import DefaultSerializer

from bulktag.embedded_redis import EmbeddedRedis, free_port, redis_server_binary
from emulator.ids import aliyun_key_id
from emulator.inventory import GenerateSpec, Inventory
from producer.campaign import TargetFields
from tests.worker_harness import (
    credentials_file,
    emulator,
    outcomes,
    run_workers,
    submit_ids,
    worker_env,
)

REGION = "cn-hangzhou"
PASSWORD = "pw-Vb7nQ2xLk9"


def bulktag(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulktag.cli", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def _ids_file(path: Path, count: int) -> Path:
    path.write_text("".join(aliyun_key_id(REGION, n) + "\n" for n in range(count)))
    return path


def _tiny_campaign(url: str, tmp_path: Path, campaign_id: str) -> None:
    """Submit, work and wait for a 20-key campaign through the CLI against ``url``."""
    inventory = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 20))
    with emulator(inventory) as emu:
        creds = credentials_file(tmp_path / f"{campaign_id}.toml", emu.url)
        env = worker_env(creds)
        ids = _ids_file(tmp_path / f"{campaign_id}.txt", 20)
        submitted = bulktag(
            "submit", "--provider", "aliyun", "--region", REGION, "--profile", "emu",
            "--ids", str(ids), "--tag", "env=prod", "--id", campaign_id, "--redis-url", url,
            env=env,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        log = tmp_path / f"{campaign_id}-worker.log"
        run_workers(url, creds, log=log)
        waited = bulktag("wait", campaign_id, "--timeout", "30", "--redis-url", url, env=env)
        assert waited.returncode == 0, waited.stdout + waited.stderr
    assert emu.emulator.stats.count() > 0


# --- (a) no pickle is ever unpickled ------------------------------------------------------


class _Payload:
    """Unpickling this creates ``marker`` (pickle calls ``open(marker, "w")``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_a_pickle_job_on_a_bulktag_queue_is_failed_and_never_unpickled(
    redis_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    # The payload is live: unpickled, it does create its file (a control marker here).
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(control)))
    assert control.exists()

    conn = redis.Redis.from_url(redis_url)
    queue_name = f"bulktag.aliyun.{REGION}"
    # RQ's default (pickle) serializer writes the job hash exactly as an attacker with
    # write access to Redis, or a misconfigured RQ client, would.
    planted = Queue(queue_name, connection=conn, serializer=DefaultSerializer).enqueue(
        "worker.jobs.tag_chunk", _Payload(marker)
    )
    inventory = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 30))
    with emulator(inventory) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        # A real campaign on the same queue, behind the pickle: the worker must survive the
        # pickle to tag it.
        fields = TargetFields("aliyun", "emu", REGION, None, "key")
        submit_ids(conn, "after-pickle", fields, [aliyun_key_id(REGION, n) for n in range(30)])
        log = tmp_path / "worker.log"
        run_workers(redis_url, creds, log=log)  # asserts the worker exited 0
    assert not marker.exists(), "the worker unpickled a job"
    assert conn.hget(planted.key, "status") == b"failed"
    assert planted.id in FailedJobRegistry(queue_name, connection=conn).get_job_ids()
    tagged = outcomes(conn, "after-pickle")
    assert len(tagged) == 30 and {o.status for o in tagged.values()} == {"tagged"}


# --- (b) password-protected Redis ---------------------------------------------------------


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis-pw", password=PASSWORD) as server:
        yield server


def test_a_campaign_runs_end_to_end_against_a_password_protected_redis(
    password_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    url = password_redis.url
    assert f":{PASSWORD}@" in url
    _tiny_campaign(url, tmp_path, "pw-campaign")
    listed = bulktag("campaigns", "--json", "--redis-url", url)
    assert listed.returncode == 0 and "pw-campaign" in listed.stdout
    assert PASSWORD not in (tmp_path / "pw-campaign-worker.log").read_text()


@pytest.mark.parametrize(
    ("auth", "says"),
    [(":wrong-Pq4sZ8@", "wrong password"), ("", "a password is needed")],
    ids=["wrong-password", "no-password"],
)
def test_a_wrong_or_missing_redis_password_exits_2_with_one_line_and_no_password(
    password_redis: EmbeddedRedis, auth: str, says: str, tmp_path: Path
) -> None:
    url = f"redis://{auth}127.0.0.1:{password_redis.port}/0"
    ids = str(_ids_file(tmp_path / "ids.txt", 3))
    submit = ["submit", "--provider", "aliyun", "--region", REGION, "--ids", ids, "--tag", "a=b"]
    for command in (["campaigns"], submit, ["worker"], ["schedule", "list"]):
        result = bulktag(*command, "--redis-url", url)
        assert result.returncode == 2, (command, result.stderr)
        assert says in result.stderr and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        for secret in ("wrong-Pq4sZ8", PASSWORD):
            assert secret not in result.stderr + result.stdout
        if auth:
            assert f"redis://:***@127.0.0.1:{password_redis.port}/0" in result.stderr


def test_a_redis_url_with_an_unknown_scheme_is_a_user_error() -> None:
    result = bulktag("campaigns", "--redis-url", "sentinel://:secret-Lr3@127.0.0.1:26379/0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "redis://, rediss://, unix://" in result.stderr
    assert "secret-Lr3" not in result.stderr


# --- (c) rediss:// ------------------------------------------------------------------------


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bulktag test redis")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "redis.crt", directory / "redis.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server listening with TLS only; (port, CA file). Skips if it has no TLS."""
    directory = tmp_path / "redis-tls"
    directory.mkdir()
    cert, key = _certificate(directory)
    port = free_port()
    logfile = directory / "redis.log"
    process = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--dir", str(directory), "--logfile", str(logfile), "--save", "",
         "--appendonly", "no", "--daemonize", "no"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(cert))
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                why = (process.stderr.read() if process.stderr else b"").decode()
                why += logfile.read_text() if logfile.exists() else ""
                pytest.skip(f"redis-server does not start with TLS (built without it?): {why}")
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, cert
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def test_rediss_verifies_the_server_against_a_ca_file_given_in_the_url(
    tls_redis: tuple[int, Path], tmp_path: Path
) -> None:
    port, ca = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    listed = bulktag("campaigns", "--redis-url", url)
    assert listed.returncode == 0, listed.stderr
    # Workers (sync RQ and the jobs' asyncio clients) take the same URL.
    _tiny_campaign(url, tmp_path, "tls-campaign")


def test_rediss_refuses_an_unknown_certificate_unless_verification_is_turned_off(
    tls_redis: tuple[int, Path],
) -> None:
    port, _ = tls_redis
    refused = bulktag("campaigns", "--redis-url", f"rediss://127.0.0.1:{port}/0")
    assert refused.returncode == 2 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    unverified = bulktag(
        "campaigns", "--redis-url", f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none"
    )
    assert unverified.returncode == 0, unverified.stderr
    plain = bulktag("campaigns", "--redis-url", f"redis://127.0.0.1:{port}/0")
    assert plain.returncode == 2 and "cannot reach Redis" in plain.stderr
