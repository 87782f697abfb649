"""Scheduled compliance: policies, discovery on the emulator, runs, drift, the CLI.

Real Redis (the private test server), real HTTP to the emulator, real `bulktag worker`
processes for the tagging; nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from bulktag.cli import main
from compliance import runs
from compliance.evaluate import Found, evaluate
from compliance.execute import RunResult, run_policy
from compliance.policy import Policy, PolicyError, TagRule, load_policy
from emulator.inventory import GenerateSpec, Inventory, aliyun_key_id, huawei_key_id
from providers.aliyun.client import AliyunKmsClient
from providers.credentials import load_aliyun
from providers.http import new_session
from tests.worker_harness import (
    ALI_SECRET,
    PROJECT,
    credentials_file,
    emulator,
    outcomes,
    run_workers,
)
from worker.limiter import set_limit

REGION = "cn-hangzhou"
GOOD = {"owner": "team-a", "cost-center": "cc-1"}

POLICY = """\
name: nightly
schedule: "0 2 * * *"
required_tags:
  cost-center: cc-1
  owner: {{default: unassigned}}
targets:
{targets}
"""
ALI_KEYS = """\
  - provider: aliyun
    profile: emu
    regions: [cn-hangzhou]
"""


def write_policy(path: Path, targets: str = ALI_KEYS, **replace: str) -> Path:
    text = POLICY.format(targets=targets)
    for old, new in replace.items():
        text = text.replace(old, new)
    path.write_text(text)
    return path


@pytest.fixture
def creds_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "credentials.toml"
    monkeypatch.setenv("BULKTAG_CREDENTIALS_FILE", str(path))
    yield path


_ticks = itertools.count()


def run(redis_url: str, policy: Policy, *, dry_run: bool = False) -> RunResult:
    """One run of ``policy``, each at a tick of its own (a tick makes at most one run)."""
    conn = redis.Redis.from_url(redis_url)
    tick = datetime(2026, 1, 1, 2, tzinfo=UTC) + timedelta(minutes=next(_ticks))

    async def go() -> RunResult:
        aconn = aioredis.Redis.from_url(redis_url)
        try:
            return await run_policy(conn, aconn, policy, tick, dry_run=dry_run)
        finally:
            await aconn.aclose()

    return asyncio.run(go())


def calls(emu: Any, action: str) -> int:
    return int(emu.call(lambda: emu.emulator.stats.count(action=action)))


# --- evaluation (pure) ------------------------------------------------------------------


def test_missing_and_wrong_values_are_findings_and_only_their_tags_are_set() -> None:
    rules = (TagRule("cost-center", value="cc-1"), TagRule("owner", default="nobody"),
             TagRule("team"))  # fmt: skip
    result = evaluate(
        [
            Found("a", {"cost-center": "cc-1", "owner": "x", "team": "t"}),
            Found("b", {"cost-center": "cc-9", "owner": "x", "team": "t"}),
            Found("c", {"team": "t"}),
            Found("d", {"cost-center": "cc-1", "owner": "x"}),
            Found("gone", None),
        ],
        rules,
    )
    assert (result.found, result.compliant, result.not_found) == (4, 1, ["gone"])
    fixes = {f.resource_id: f.fix for f in result.findings}
    assert fixes == {
        "b": (("cost-center", "cc-1"),),
        "c": (("cost-center", "cc-1"), ("owner", "nobody")),
        "d": (),  # team must exist and has no default: reported, not fixable
    }
    assert [f.resource_id for f in result.unfixable] == ["d"]


# --- policy files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({'"0 2 * * *"': '"every night"'}, "schedule", "is not a cron expression"),
        ({"cost-center: cc-1": "cost-center: 'a<b'"}, "required_tags", "InvalidParameter"),
        ({"regions: [cn-hangzhou]": "regions: [mars-1]"}, "targets[0].regions[0]", "mars-1"),
        ({"provider: aliyun": "provider: aws"}, "targets[0].provider", "'aws'"),
        ({"owner: {default: unassigned}": "owner: {exists: false}"},
         "required_tags.owner.exists", "must be true"),
        ({"name: nightly": "name: 'no spaces'"}, "name", "not a valid policy name"),
        ({"    profile: emu\n": "    profile: emu\n    colour: red\n"}, "targets[0]", "colour"),
    ],
)  # fmt: skip
def test_policy_errors_name_file_and_field_exit_2_and_write_nothing(
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    field: str,
    problem: str,
) -> None:
    path = write_policy(tmp_path / "bad.yaml", **change)
    status = main(["schedule", "add", str(path), "--redis-url", redis_url])
    err = capsys.readouterr().err
    assert status == 2
    assert f"{path}: {field}" in err and problem in err
    assert redis_client.keys("*") == []


def test_policy_file_that_is_not_yaml_or_lacks_targets_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("schedule: [unclosed\n")
    with pytest.raises(PolicyError, match=r"broken.yaml: not valid YAML"):
        load_policy(str(broken))
    toml = tmp_path / "p.toml"
    toml.write_text('schedule = "0 2 * * *"\n[required_tags]\nowner = "a"\n')
    with pytest.raises(PolicyError, match=r"p.toml: targets: expected a non-empty list"):
        load_policy(str(toml))


def test_toml_policy_with_huawei_projects_and_an_ids_file(tmp_path: Path) -> None:
    (tmp_path / "keys.txt").write_text(f"# keys\n{huawei_key_id(PROJECT, 1)}\n")
    path = tmp_path / "hw.toml"
    path.write_text(
        'schedule = "30 1 * * 1-5"\ntimezone = "Asia/Shanghai"\n'
        '[required_tags]\nowner = { default = "ops" }\n'
        f'[[targets]]\nprovider = "huawei"\nregion = "cn-north-4"\nprojects = ["{PROJECT}"]\n'
        'ids_file = "keys.txt"\n'
    )
    policy = load_policy(str(path))
    assert policy.name == "hw" and policy.timezone == "Asia/Shanghai"
    [target] = policy.targets
    assert target.key == f"huawei:{PROJECT}:key"
    assert target.ids == (huawei_key_id(PROJECT, 1),)
    assert Policy.from_json(json.loads(json.dumps(policy.to_json()))) == policy


# --- runs on the emulator ---------------------------------------------------------------


def test_discovery_pages_over_10000_keys_and_only_non_compliant_ones_are_tagged(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, creds_env: Path
) -> None:
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 10_000, GOOD))
    missing_owner = [aliyun_key_id(REGION, n) for n in range(0, 10_000, 500)]  # 20 keys
    wrong_cc = [aliyun_key_id(REGION, n) for n in range(7, 10_000, 1000)]  # 10 keys
    # The shared limiter's rate for this region (the tagging workers' too): quick tests.
    set_limit(redis_client, "aliyun", REGION, 2000)
    with emulator(inv) as emu:
        credentials_file(creds_env, emu.url)
        edit = emu.emulator.edit_tags
        for rid in missing_owner:
            emu.call(lambda r=rid: edit("aliyun", REGION, "key", r, remove=["owner"]))
        for rid in wrong_cc:
            emu.call(lambda r=rid: edit("aliyun", REGION, "key", r, set_tags={"cost-center": "x"}))
        policy = load_policy(str(write_policy(tmp_path / "nightly.yaml")))

        first = run(redis_url, policy)
        # 100 ListKeys pages of 100; 200 ListTagResources calls of 50 keys (2 tags = 100 rows,
        # one page each).
        assert calls(emu, "ListKeys") == 100
        assert calls(emu, "ListTagResources") == 200
        record = first.record
        assert record is not None and record.campaign_id is not None
        assert (record.found, record.compliant, record.noncompliant) == (10_000, 9_970, 30)
        assert record.submitted == 30 and record.drift is None
        # Every discovery call went through the shared limiter of (aliyun, emu, region).
        limiter_calls = redis_client.hget("bulktag:limiter:aliyun:emu:cn-hangzhou:write", "calls")
        assert limiter_calls is not None and int(limiter_calls) >= record.calls == 300

        run_workers(redis_url, creds_env, log=tmp_path / "worker.log")
        # Two tag sets (owner=unassigned; cost-center=cc-1), each under 50 ids: two calls.
        assert calls(emu, "TagResources") == 2
        done = outcomes(redis_client, record.campaign_id)
        assert set(done) == set(missing_owner) | set(wrong_cc)
        assert {o.status for o in done.values()} == {"tagged"}
        state = emu.call(lambda: emu.emulator.state("aliyun", REGION, "key", ids=missing_owner))
        assert all(t == {"cost-center": "cc-1", "owner": "unassigned"}
                   for t in state["resources"]["aliyun"][REGION]["key"].values())  # fmt: skip
        [after] = runs.history(redis_client, "nightly")
        assert (after.state, after.fixed, after.failed, after.not_found) == ("done", 30, 0, 0)

        # A second run finds everything compliant and tags nothing.
        second = run(redis_url, policy)
        assert second.record is not None and second.record.noncompliant == 0
        assert second.record.campaign_id is None and second.record.drift == 0
        run_workers(redis_url, creds_env, log=tmp_path / "worker.log")
        assert calls(emu, "TagResources") == 2
    # Policies, runs, findings and jobs name a profile; no secret is ever in Redis.
    for key in redis_client.scan_iter(count=1000):
        dumped = redis_client.dump(key)
        assert dumped is not None and ALI_SECRET.encode() not in dumped


def test_a_tag_removed_between_runs_is_drift_and_gets_fixed(
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.Redis,
    creds_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 300))  # all untagged
    set_limit(redis_client, "aliyun", REGION, 2000)
    with emulator(inv) as emu:
        credentials_file(creds_env, emu.url)
        path = write_policy(tmp_path / "nightly.yaml")
        policy = load_policy(str(path))
        first = run(redis_url, policy)
        assert first.record is not None and first.record.submitted == 300
        run_workers(redis_url, creds_env, log=tmp_path / "worker.log")
        tagged_once = calls(emu, "TagResources")

        drifted = [aliyun_key_id(REGION, n) for n in (3, 150, 299)]
        for rid in drifted:
            emu.call(lambda r=rid: emu.emulator.edit_tags("aliyun", REGION, "key", r,
                                                          remove=["owner"]))  # fmt: skip
        emu.call(lambda: emu.emulator.edit_tags("aliyun", REGION, "key", aliyun_key_id(REGION, 9),
                                                set_tags={"cost-center": "cc-2"}))  # fmt: skip
        third = run(redis_url, policy)
        assert third.record is not None
        assert third.record.drift == 4 and third.record.submitted == 4
        run_workers(redis_url, creds_env, log=tmp_path / "worker.log")
        assert calls(emu, "TagResources") == tagged_once + 2  # one call per fix tag set
        for rid in [*drifted, aliyun_key_id(REGION, 9)]:
            tags = emu.call(lambda r=rid: emu.emulator.tags_of("aliyun", REGION, "key", r))
            assert tags == {"cost-center": "cc-1", "owner": "unassigned"}

    status = main(["compliance", "report", "nightly", "--json", "--redis-url", redis_url])
    doc = json.loads(capsys.readouterr().out)
    assert status == 0
    assert [r["fixed"] for r in doc["runs"]] == [300, 4]
    assert [r["drift"] for r in doc["runs"]] == [None, 4]
    assert {d["resource_id"] for d in doc["drift"]["resources"]} == {
        *drifted,
        aliyun_key_id(REGION, 9),
    }
    problems = {d["resource_id"]: d["problems"] for d in doc["drift"]["resources"]}
    assert problems[aliyun_key_id(REGION, 9)] == "cost-center='cc-2', want 'cc-1'"
    main(["compliance", "report", "nightly", "--redis-url", redis_url])
    text = capsys.readouterr().out
    assert "4 resource(s) became non-compliant since the previous run" in text


def test_unfixed_findings_of_the_previous_run_are_not_counted_as_drift(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, creds_env: Path
) -> None:
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 40))
    set_limit(redis_client, "aliyun", REGION, 2000)
    with emulator(inv) as emu:
        credentials_file(creds_env, emu.url)
        policy = load_policy(str(write_policy(tmp_path / "nightly.yaml")))
        first = run(redis_url, policy)  # no workers ran: nothing got fixed
        second = run(redis_url, policy)
        again = run_policy_at(redis_url, policy, second)
    assert first.record is not None and second.record is not None
    assert second.record.noncompliant == 40 and second.record.drift == 0
    # The same tick again (a retried job, a second scheduler) makes no second run.
    assert again.skipped and again.record == second.record
    assert runs.run_ids(redis_client, "nightly") == [first.record.run_id, second.record.run_id]


def run_policy_at(redis_url: str, policy: Policy, earlier: RunResult) -> RunResult:
    conn = redis.Redis.from_url(redis_url)

    async def go() -> RunResult:
        aconn = aioredis.Redis.from_url(redis_url)
        try:
            return await run_policy(conn, aconn, policy, earlier.tick)
        finally:
            await aconn.aclose()

    return asyncio.run(go())


def test_dry_run_lists_what_would_be_tagged_and_changes_nothing(
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.Redis,
    creds_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 5, GOOD))
    with emulator(inv) as emu:
        credentials_file(creds_env, emu.url)
        wrong = aliyun_key_id(REGION, 2)
        emu.call(lambda: emu.emulator.edit_tags("aliyun", REGION, "key", wrong, remove=["owner"]))
        path = write_policy(tmp_path / "nightly.yaml")
        status = main(["schedule", "run-now", str(path), "--dry-run", "--redis-url", redis_url])
        assert calls(emu, "TagResources") == 0
    out = capsys.readouterr().out
    assert status == 0
    assert f"would tag aliyun:{REGION}:key {wrong} owner=unassigned  (owner missing)" in out
    assert "1 resource(s) would be tagged; nothing was changed" in out
    # Nothing written but the shared limiter's own pacing state.
    assert [k for k in redis_client.keys("*") if not k.startswith(b"bulktag:limiter:")] == []


def test_secrets_huawei_keys_explicit_ids_not_found_and_unfixable(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, creds_env: Path
) -> None:
    hw_keys = 1_100  # two list-keys pages of 1,000
    inv = Inventory.generated(
        GenerateSpec("aliyun", REGION, "secret", 150),
        GenerateSpec("huawei", PROJECT, "key", hw_keys, {"cost-center": "cc-1"}),
    )
    set_limit(redis_client, "aliyun", REGION, 2000)
    set_limit(redis_client, "huawei", PROJECT, 2000)
    gone = huawei_key_id(PROJECT, 5_000)
    targets = (
        "  - provider: aliyun\n    profile: emu\n    region: cn-hangzhou\n"
        "    resource_types: [secret]\n"
        f"  - provider: huawei\n    profile: emu\n    region: cn-north-4\n"
        f"    projects: [{PROJECT}]\n"
    )
    with emulator(inv) as emu:
        credentials_file(creds_env, emu.url)
        path = write_policy(tmp_path / "mixed.yaml", targets)
        result = run(redis_url, load_policy(str(path)))
        assert result.record is not None
        assert result.record.found == 150 + hw_keys
        assert result.record.submitted == 150 + hw_keys
        assert calls(emu, "ListSecrets") == 2 and calls(emu, "ListKeys") == 2
        assert calls(emu, "ShowKmsTags") == hw_keys

        # Explicit ids: a Huawei key that does not exist is "not found"; a tag that must
        # exist without a default is reported, never tagged.
        ids = f"{huawei_key_id(PROJECT, 1)}\n{gone}\n"
        (tmp_path / "ids.txt").write_text(ids)
        text = (
            "name: only-some\nschedule: '0 3 * * *'\nrequired_tags:\n  team: {exists: true}\n"
            f"targets:\n  - provider: huawei\n    profile: emu\n    region: cn-north-4\n"
            f"    project: {PROJECT}\n    ids_file: ids.txt\n"
        )
        (tmp_path / "some.yaml").write_text(text)
        some = run(redis_url, load_policy(str(tmp_path / "some.yaml")))
        assert some.record is not None
        assert (some.record.found, some.record.not_found, some.record.unfixable) == (1, 1, 1)
        assert some.record.campaign_id is None and some.record.submitted == 0


def test_list_resource_tags_answers_one_key_or_secret(tmp_path: Path) -> None:
    key = aliyun_key_id(REGION, 0)
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 3, {"env": "prod"}))
    inv.add("aliyun", REGION, "secret", {"db-password": {"owner": "a"}})
    with emulator(inv) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)

        async def go() -> list[Any]:
            async with new_session() as session:
                client = AliyunKmsClient(
                    session, load_aliyun("emu", {"BULKTAG_CREDENTIALS_FILE": str(creds)}), REGION
                )
                return [
                    await client.list_resource_tags(key_id=key),
                    await client.list_resource_tags(secret_name="db-password"),
                    await client.list_resource_tags(key_id=aliyun_key_id(REGION, 99)),
                ]

        (ok_key, tags_key), (ok_secret, tags_secret), (missing, _) = asyncio.run(go())
    assert ok_key.ok and tags_key == [("env", "prod")]
    assert ok_secret.ok and tags_secret == [("owner", "a")]
    assert missing.outcome == "not_found" and missing.code == "Forbidden.KeyNotFound"


# --- scheduling -------------------------------------------------------------------------


def test_two_schedulers_make_exactly_one_json_job_and_one_run_per_tick(
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.Redis,
    creds_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 20))
    set_limit(redis_client, "aliyun", REGION, 2000)
    # croniter's sixth field is seconds: a tick every 2 seconds.
    path = write_policy(tmp_path / "nightly.yaml", **{'"0 2 * * *"': '"* * * * * */2"'})
    assert main(["schedule", "add", str(path), "--redis-url", redis_url]) == 0
    assert "scheduled nightly: * * * * * */2 (UTC)" in capsys.readouterr().out
    log = tmp_path / "scheduler.log"
    args = [sys.executable, "-m", "bulktag.cli", "scheduler", "--redis-url", redis_url]
    with log.open("ab") as out:
        schedulers = [subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
                      for _ in range(2)]  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and redis_client.llen("rq:queue:bulktag.compliance") < 3:
            time.sleep(0.2)
    finally:
        for proc in schedulers:
            proc.send_signal(signal.SIGTERM)
        for proc in schedulers:
            proc.wait(timeout=10)
    queued = [j.decode() for j in redis_client.lrange("rq:queue:bulktag.compliance", 0, -1)]
    claims = sorted(
        k.decode().rsplit(":", 1)[1] for k in redis_client.keys("bulktag:compliance:tick:*")
    )
    assert len(queued) >= 3, log.read_text()[-3000:]
    # Both schedulers were there at each tick: one enqueued, the other stepped aside.
    assert log.read_text().count("tick taken by another scheduler") >= len(queued) - 1
    # One job per tick, named by the tick, whatever the number of schedulers.
    assert len(set(queued)) == len(queued)
    assert sorted(queued) == [f"compliance-nightly-{stamp}" for stamp in claims]
    # RQ's own record of what the cron job spawned holds the same jobs.
    history = redis_client.zrange("rq:cron_job:bulktag-compliance:nightly:jobs", 0, -1)
    assert sorted(h.decode() for h in history) == sorted(queued)
    for job_id in queued:  # JSON, never pickle: the workers only take JSON
        data = redis_client.hget(f"rq:job:{job_id}", "data")
        assert data is not None
        assert json.loads(zlib.decompress(data))[0] == "compliance.jobs.run_scheduled"

    with emulator(inv) as emu:
        credentials_file(creds_env, emu.url)
        run_workers(redis_url, creds_env, log=tmp_path / "worker.log")
    made = runs.run_ids(redis_client, "nightly")
    assert made == [f"nightly-{stamp}" for stamp in claims]
    assert all(r.state in ("done", "submitted") for r in runs.history(redis_client, "nightly"))

    assert main(["schedule", "list", "--json", "--redis-url", redis_url]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["name"] == "nightly" and listed["last_run"] == made[-1]
    assert main(["schedule", "remove", "nightly", "--redis-url", redis_url]) == 0
    assert main(["schedule", "remove", "nightly", "--redis-url", redis_url]) == 2
    assert runs.policies(redis_client) == []
    assert runs.run_ids(redis_client, "nightly") == made  # the history stays


def test_a_target_whose_listing_is_refused_records_the_error_and_the_others_still_run(
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.Redis,
    creds_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inv = Inventory.generated(
        GenerateSpec("aliyun", REGION, "key", 10), GenerateSpec("aliyun", "cn-shanghai", "key", 5)
    )
    set_limit(redis_client, "aliyun", REGION, 2000)
    targets = (
        "  - provider: aliyun\n    profile: emu\n    regions: [cn-shanghai]\n"
        "  - provider: aliyun\n    profile: wrong\n    regions: [cn-hangzhou]\n"
    )
    with emulator(inv) as emu:
        credentials_file(creds_env, emu.url)
        with creds_env.open("a") as f:
            f.write(
                f'[profile.wrong.aliyun]\naccess_key_id = "emu-id"\n'
                f'access_key_secret = "not-the-secret"\nendpoint = "{emu.url}"\n'
            )
        path = write_policy(tmp_path / "nightly.yaml", targets)
        status = main(["schedule", "run-now", str(path), "--redis-url", redis_url])
    out = capsys.readouterr().out
    assert status == 1, out
    # Refused once, not retried: the provider's own code (V3 signature) is in the record.
    assert "cn-hangzhou:key (profile wrong): error: ListKeys: IncompleteSignature" in out
    assert "; 1 calls" in out
    [record] = runs.history(redis_client, "nightly")
    assert record.found == 5 and record.submitted == 5
    assert len(record.errors) == 1 and record.errors[0].startswith("aliyun:cn-hangzhou:key: ")
