"""The producer: every input form, all-or-nothing validation, idempotent enqueue through RQ."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from bulktag import store
from bulktag.cli import main
from producer.campaign import IdBlock, TargetFields
from producer.inputs import read_id_list
from producer.submit import SubmitOptions, ValidationFailed, submit
from worker.limiter import set_limit

ALI = TargetFields("aliyun", None, "cn-hangzhou", None, "key")
PROJECT = "0123456789abcdef0123456789abcdef"
HW_KEY = "0d0466b0-e727-4d9c-b35d-f84bb474a37f"


def ali_id(n: int) -> str:
    return f"key-hzz{n:017d}"


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("\n".join(ids) + "\n")
    return path


def run_cli(*args: str) -> int:
    return main(list(args))


def all_keys(conn: redis.Redis) -> list[bytes]:
    return sorted(conn.keys("*"))


def jobs_of(conn: redis.Redis, queue: str) -> list[dict[str, object]]:
    q = Queue(queue, connection=conn, serializer=JSONSerializer)
    return [job.kwargs for job in q.get_jobs()]


# --- input forms --------------------------------------------------------------------------


def test_flags_with_id_file_enqueue_one_job_per_chunk(redis_url: str, tmp_path: Path) -> None:
    ids = write_ids(tmp_path / "ids.txt", [ali_id(i) for i in range(120)])
    code = run_cli(
        "submit", "--provider", "aliyun", "--region", "cn-hangzhou", "--resource-type", "key",
        "--ids", str(ids), "--tag", "env=prod", "--tag", "owner=team-a", "--id", "c1",
        "--chunk-size", "50", "--redis-url", redis_url,
    )  # fmt: skip
    assert code == 0
    conn = redis.Redis.from_url(redis_url)
    jobs = jobs_of(conn, "bulktag.aliyun.cn-hangzhou")
    assert [len(j["resource_ids"]) for j in jobs] == [50, 50, 20]  # type: ignore[arg-type]
    assert jobs[0]["tags"] == [["env", "prod"], ["owner", "team-a"]]
    assert jobs[0]["target"] == {
        "provider": "aliyun", "profile": "default", "region": "cn-hangzhou",
        "project": None, "resource_type": "key",
    }  # fmt: skip
    record = store.load_campaign(conn, "c1")
    assert record is not None and record.state == "queued" and record.resources == 120


def test_id_list_ignores_comments_blanks_and_reads_gzip(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write(f"# header\n\n{ali_id(1)}  # trailing comment\n   \n{ali_id(2)}\n")
    (block,) = list(read_id_list(str(path), ALI, (("env", "prod"),)))
    assert isinstance(block, IdBlock)
    assert (block.ids, block.lines) == ([ali_id(1), ali_id(2)], [3, 5])


def test_stdin_is_read_with_dash(redis_url: str, tmp_path: Path) -> None:
    ids = "\n".join(ali_id(i) for i in range(5)).encode()
    proc = subprocess.run(
        [sys.executable, "-m", "bulktag.cli", "submit", "--provider", "aliyun", "--region",
         "cn-hangzhou", "--ids", "-", "--tag", "env=prod", "--id", "stdin1", "--json",
         "--redis-url", redis_url],
        input=ids, capture_output=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["resources"] == 5


def test_csv_manifest_groups_rows_by_identical_tag_set(redis_url: str, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "resource_id,region,tag:env,tag:owner\n"
        f"{ali_id(1)},cn-hangzhou,prod,a\n"
        f"{ali_id(2)},cn-hangzhou,prod,a\n"
        f"{ali_id(3)},cn-hangzhou,dev,\n"
        f"{ali_id(4)},cn-shanghai,prod,a\n"
    )
    assert run_cli("submit", "--provider", "aliyun", "--manifest", str(manifest),
                   "--id", "m1", "--redis-url", redis_url) == 0  # fmt: skip
    conn = redis.Redis.from_url(redis_url)
    hz = jobs_of(conn, "bulktag.aliyun.cn-hangzhou")
    groups = sorted((tuple(map(tuple, j["tags"])), tuple(j["resource_ids"])) for j in hz)  # type: ignore[arg-type]
    assert groups == [
        ((("env", "dev"),), (ali_id(3),)),
        ((("env", "prod"), ("owner", "a")), (ali_id(1), ali_id(2))),
    ]
    assert [j["resource_ids"] for j in jobs_of(conn, "bulktag.aliyun.cn-shanghai")] == [[ali_id(4)]]


def test_tag_flags_apply_to_every_manifest_row_and_rows_win(redis_url: str, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"resource_id,tag:env\n{ali_id(1)},dev\n{ali_id(2)},\n")
    assert run_cli("submit", "--provider", "aliyun", "--region", "cn-hangzhou", "--manifest",
                   str(manifest), "--tag", "env=prod", "--tag", "owner=a", "--id", "mt",
                   "--redis-url", redis_url) == 0  # fmt: skip
    jobs = jobs_of(redis.Redis.from_url(redis_url), "bulktag.aliyun.cn-hangzhou")
    by_id = {j["resource_ids"][0]: sorted(map(tuple, j["tags"])) for j in jobs}  # type: ignore[index,arg-type]
    assert by_id == {
        ali_id(1): [("env", "dev"), ("owner", "a")],
        ali_id(2): [("env", "prod"), ("owner", "a")],
    }


def test_jsonl_manifest_for_huawei(redis_url: str, tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"resource_id": HW_KEY, "tags": {"env": "prod", "cost-center": "42"}}) + "\n"
    )
    assert run_cli("submit", "--provider", "huawei", "--region", "cn-north-4", "--project",
                   PROJECT, "--manifest", str(manifest), "--id", "h1",
                   "--redis-url", redis_url) == 0  # fmt: skip
    conn = redis.Redis.from_url(redis_url)
    (job,) = jobs_of(conn, f"bulktag.huawei.{PROJECT}")
    assert job["resource_ids"] == [HW_KEY]
    assert job["target"]["project"] == PROJECT  # type: ignore[index]


@pytest.mark.parametrize("suffix", ["yaml", "toml", "json"])
def test_campaign_file_with_several_targets(redis_url: str, tmp_path: Path, suffix: str) -> None:
    write_ids(tmp_path / "hz.txt", [ali_id(1), ali_id(2)])
    spec = {
        "id": f"file-{suffix}",
        "targets": [
            {"provider": "aliyun", "region": "cn-hangzhou", "resource_type": "key",
             "ids_file": "hz.txt", "tags": {"env": "prod"}},
            {"provider": "aliyun", "region": "cn-beijing", "resource_type": "secret",
             "ids": ["db-password"], "tags": {"env": "prod"}},
            {"provider": "huawei", "region": "cn-north-4", "project": PROJECT,
             "ids": [HW_KEY], "tags": {"owner": "team-a"}},
        ],
    }  # fmt: skip
    path = tmp_path / f"campaign.{suffix}"
    if suffix == "json":
        path.write_text(json.dumps(spec))
    elif suffix == "yaml":
        import yaml

        path.write_text(yaml.safe_dump(spec))
    else:
        lines = [f'id = "{spec["id"]}"']
        for t in spec["targets"]:  # type: ignore[attr-defined]
            lines.append("[[targets]]")
            for k, v in t.items():
                if isinstance(v, dict):
                    lines.append(
                        f"{k} = {{ " + ", ".join(f'"{a}" = "{b}"' for a, b in v.items()) + " }"
                    )
                else:
                    lines.append(f"{k} = {json.dumps(v)}")
        path.write_text("\n".join(lines) + "\n")
    assert run_cli("submit", "--campaign", str(path), "--redis-url", redis_url) == 0
    conn = redis.Redis.from_url(redis_url)
    record = store.load_campaign(conn, f"file-{suffix}")
    assert record is not None and record.resources == 4
    assert {t["queue"] for t in record.targets} == {
        "bulktag.aliyun.cn-hangzhou", "bulktag.aliyun.cn-beijing", f"bulktag.huawei.{PROJECT}",
    }  # fmt: skip


def test_duplicate_ids_collapse_and_are_counted(redis_url: str, tmp_path: Path) -> None:
    ids = write_ids(tmp_path / "ids.txt", [ali_id(1), ali_id(2), ali_id(1), ali_id(1)])
    conn = redis.Redis.from_url(redis_url)
    result = submit(
        read_id_list(str(ids), ALI, (("env", "prod"),)), SubmitOptions(campaign_id="d1"), conn
    )
    assert (result.resources, result.duplicates) == (2, 2)


def test_duplicates_are_exact_even_when_the_bitmap_flags_everything() -> None:
    from producer.campaign import Target
    from producer.plan import Spool

    target = Target("aliyun", "default", "cn-hangzhou", None, "key")
    with Spool(seen_bits=8) as spool:  # 8 bits: nearly every id is a false "maybe"
        ids = [ali_id(i) for i in range(200)] + [ali_id(5), ali_id(150)]
        spool.add_block(target, (("env", "prod"),), ids, "f", list(range(1, 203)))
        assert spool.finish() == []
        assert (spool.duplicates, spool.unique_resources()) == (2, 200)
        (group,) = spool.groups()
        assert [rid for chunk in spool.ids(group, 64) for rid in chunk] == ids[:200]


def test_duplicate_rows_with_compatible_tags_are_merged(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"resource_id,tag:env,tag:owner\n{ali_id(1)},prod,\n{ali_id(1)},,team-a\n")
    from producer.inputs import read_manifest

    result = submit(read_manifest(str(manifest), ALI), SubmitOptions(dry_run=True))
    assert result.resources == 1 and result.plans[0].groups == 1


# --- validation: all or nothing -------------------------------------------------------------


def assert_rejected(redis_url: str, *args: str, expect: list[str]) -> str:
    conn = redis.Redis.from_url(redis_url)
    before = all_keys(conn)
    from contextlib import redirect_stderr
    from io import StringIO

    err = StringIO()
    with redirect_stderr(err):
        code = run_cli("submit", *args, "--redis-url", redis_url)
    text = err.getvalue()
    assert code == 2, text
    for fragment in expect:
        assert fragment in text, text
    assert "Traceback" not in text
    assert all_keys(conn) == before  # nothing written
    return text


def test_every_tag_rule_is_reported_with_the_providers_code_and_line(
    redis_url: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "resource_id,tag:env,tag:aliyun-x\n"
        f"{ali_id(1)},prod,\n"
        f"{ali_id(2)},has space,\n"
        f"{ali_id(3)},ok,v\n"
        "not-a-key,ok,\n"
    )
    text = assert_rejected(
        redis_url, "--provider", "aliyun", "--region", "cn-hangzhou", "--manifest", str(manifest),
        expect=[
            "3 problems", f"{manifest}:3", "[InvalidParameter.TagValue]", f"{manifest}:4",
            "[InvalidParameter.TagKey]", f"{manifest}:5", "[InvalidParameter.ResourceId]",
        ],
    )  # fmt: skip
    assert f"{manifest}:2" not in text


def test_huawei_rules_use_kms_codes(redis_url: str, tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    rows = [
        {"resource_id": HW_KEY, "tags": {"k" * 37: "v"}},
        {"resource_id": HW_KEY.replace("0", "1"), "tags": {"env": "a=b"}},
        {"resource_id": HW_KEY.replace("0", "2"), "tags": {f"k{i}": "v" for i in range(11)}},
    ]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert_rejected(
        redis_url, "--provider", "huawei", "--region", "cn-north-4", "--project", PROJECT,
        "--manifest", str(manifest), expect=["[KMS.0411]", "[KMS.0405]", "[KMS.0409]"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("provider_args", "rid", "tags", "code"),
    [
        (["--provider", "aliyun", "--region", "cn-hangzhou"], ali_id(1), ["k" * 129 + "=v"],
         "InvalidParameter.TagKey"),
        (["--provider", "aliyun", "--region", "cn-hangzhou"], ali_id(1), ["env=" + "v" * 129],
         "InvalidParameter.TagValue"),
        (["--provider", "aliyun", "--region", "cn-hangzhou"], ali_id(1), ["acs:x=v"],
         "InvalidParameter.TagKey"),
        (["--provider", "aliyun", "--region", "cn-hangzhou"], ali_id(1), ["env=a", "env=b"],
         "Duplicate.TagKey"),
        (["--provider", "aliyun", "--region", "cn-hangzhou", "--resource-type", "secret"],
         "bad secret name", ["env=a"], "InvalidParameter.ResourceId"),
        (["--provider", "huawei", "--region", "cn-north-4", "--project", PROJECT], HW_KEY,
         ["a<b=v"], "KMS.0406"),
        (["--provider", "huawei", "--region", "cn-north-4", "--project", PROJECT], HW_KEY,
         ["env=" + "v" * 44], "KMS.0410"),
        (["--provider", "huawei", "--region", "cn-north-4", "--project", PROJECT], "key-1",
         ["env=v"], "InvalidParameter.ResourceId"),
    ],
)  # fmt: skip
def test_each_rule_is_reported_with_its_code(
    redis_url: str, tmp_path: Path, provider_args: list[str], rid: str, tags: list[str],
    code: str,
) -> None:  # fmt: skip
    if " " in rid:  # an id with a space cannot come from an id list; use a manifest
        path = tmp_path / "m.jsonl"
        path.write_text(json.dumps({"resource_id": rid}) + "\n")
        source = ["--manifest", str(path)]
    else:
        path = tmp_path / "ids.txt"
        path.write_text(rid + "\n")
        source = ["--ids", str(path)]
    tag_args = [arg for tag in tags for arg in ("--tag", tag)]
    assert_rejected(redis_url, *provider_args, *source, *tag_args, expect=[f"[{code}]"])


def test_conflicting_tags_for_one_resource_are_rejected(redis_url: str, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"resource_id,tag:env\n{ali_id(1)},prod\n{ali_id(1)},dev\n")
    assert_rejected(
        redis_url, "--provider", "aliyun", "--region", "cn-hangzhou", "--manifest", str(manifest),
        expect=["[ConflictingTags]", f"{manifest}:3", f"{manifest}:2"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--provider", "aliyun", "--region", "mars-1"], "unknown Alibaba Cloud KMS region"),
        (["--provider", "huawei", "--region", "cn-north-4"], "no project"),
        (["--provider", "huawei", "--region", "cn-north-4", "--project", "xyz"], "project id"),
        (["--region", "cn-hangzhou"], "no provider"),
    ],
)
def test_bad_target_is_rejected(
    redis_url: str, tmp_path: Path, args: list[str], expect: str
) -> None:
    ids = write_ids(tmp_path / "ids.txt", [ali_id(1)])
    assert_rejected(redis_url, *args, "--ids", str(ids), "--tag", "env=prod", expect=[expect])


def test_unknown_provider_is_a_usage_error(redis_url: str, tmp_path: Path) -> None:
    ids = write_ids(tmp_path / "ids.txt", [ali_id(1)])
    with pytest.raises(SystemExit) as exc:
        run_cli("submit", "--provider", "aws", "--ids", str(ids), "--redis-url", redis_url)
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"", "no resources"),
        (b"# only comments\n\n", "no resources"),
        (b"key-hzz00000000000000001\n\xff\xfe\n", "not UTF-8"),
        (b"\x00\x01\x02binary", "binary data"),
        (b"k" * 100_000, "line longer than"),
    ],
)
def test_unreadable_id_files_get_one_line_errors(
    redis_url: str, tmp_path: Path, content: bytes, expect: str
) -> None:
    path = tmp_path / "ids.txt"
    path.write_bytes(content)
    assert_rejected(
        redis_url, "--provider", "aliyun", "--region", "cn-hangzhou", "--ids", str(path),
        "--tag", "env=prod", expect=[expect],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [
        ("m.csv", 'resource_id,tag:env\n"unterminated,prod\n', "malformed CSV"),
        ("m.csv", "id,tag:env\nx,y\n", "no resource_id column"),
        ("m.csv", "resource_id,colour\nx,y\n", "unknown column 'colour'"),
        ("m.jsonl", '{"resource_id": "x", \n', "invalid JSON"),
        ("m.jsonl", '["a"]\n', "expected a JSON object"),
    ],
)
def test_malformed_manifests_name_file_and_line(
    redis_url: str, tmp_path: Path, name: str, content: str, expect: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert_rejected(
        redis_url, "--provider", "aliyun", "--region", "cn-hangzhou", "--manifest", str(path),
        expect=[expect, str(path)],
    )  # fmt: skip


def test_malformed_campaign_file_is_rejected(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("targets:\n  - provider: aliyun\n    region: [unclosed\n")
    assert_rejected(redis_url, "--campaign", str(path), expect=["not valid YAML"])
    path.write_text("targets:\n  - provider: aliyun\n    colour: red\n    ids: [x]\n")
    assert_rejected(redis_url, "--campaign", str(path), expect=["targets[0]", "colour"])


def test_missing_input_file_is_a_clear_error(redis_url: str, tmp_path: Path) -> None:
    assert_rejected(
        redis_url, "--provider", "aliyun", "--region", "cn-hangzhou", "--ids",
        str(tmp_path / "nope.txt"), "--tag", "a=b", expect=["cannot open"],
    )  # fmt: skip


def test_errors_are_capped_but_counted(redis_url: str, tmp_path: Path) -> None:
    ids = write_ids(tmp_path / "ids.txt", [f"bad-{i}" for i in range(500)])
    text = assert_rejected(
        redis_url, "--provider", "aliyun", "--region", "cn-hangzhou", "--ids", str(ids),
        "--tag", "env=prod", expect=["500 problems", "and 450 more problems"],
    )  # fmt: skip
    assert text.count("[InvalidParameter.ResourceId]") == 50


# --- dry run, idempotence, resume -----------------------------------------------------------


def test_dry_run_prints_plan_and_writes_nothing(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = write_ids(tmp_path / "ids.txt", [ali_id(i) for i in range(1001)])
    conn = redis.Redis.from_url(redis_url)
    assert run_cli("submit", "--provider", "aliyun", "--region", "cn-hangzhou", "--ids",
                   str(ids), "--tag", "env=prod", "--dry-run", "--json",
                   "--redis-url", redis_url) == 0  # fmt: skip
    plan = json.loads(capsys.readouterr().out)
    assert plan["resources"] == 1001 and plan["targets"][0]["calls"] == 21
    assert plan["targets"][0]["expected_seconds"] == 2.1  # 21 calls at the default 10/s
    assert all_keys(conn) == []


def test_dry_run_duration_follows_the_operators_rate_limit(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = write_ids(tmp_path / "ids.txt", [ali_id(i) for i in range(1000)])
    assert run_cli("limits", "--redis-url", redis_url, "set", "aliyun:cn-hangzhou", "4") == 0
    capsys.readouterr()
    assert run_cli("submit", "--provider", "aliyun", "--region", "cn-hangzhou", "--ids",
                   str(ids), "--tag", "env=prod", "--dry-run", "--json",
                   "--redis-url", redis_url) == 0  # fmt: skip
    target = json.loads(capsys.readouterr().out)["targets"][0]
    assert (target["rate_per_second"], target["expected_seconds"]) == (4, 5.0)


def test_resubmitting_the_same_campaign_enqueues_nothing_twice(
    redis_url: str, tmp_path: Path
) -> None:
    ids = write_ids(tmp_path / "ids.txt", [ali_id(i) for i in range(300)])
    conn = redis.Redis.from_url(redis_url)
    opts = SubmitOptions(campaign_id="same", chunk_size=50)
    first = submit(read_id_list(str(ids), ALI, (("env", "prod"),)), opts, conn)
    second = submit(read_id_list(str(ids), ALI, (("env", "prod"),)), opts, conn)
    assert (first.jobs_enqueued, second.jobs_enqueued) == (6, 0)
    assert Queue("bulktag.aliyun.cn-hangzhou", connection=conn).count == 6


def test_same_id_with_different_input_is_refused(redis_url: str, tmp_path: Path) -> None:
    conn = redis.Redis.from_url(redis_url)
    ids = write_ids(tmp_path / "ids.txt", [ali_id(1)])
    submit(read_id_list(str(ids), ALI, (("env", "prod"),)), SubmitOptions("x"), conn)
    from bulktag.errors import UserError

    with pytest.raises(UserError, match="already exists"):
        submit(read_id_list(str(ids), ALI, (("env", "dev"),)), SubmitOptions("x"), conn)


def test_interrupted_submit_resumes_without_duplicates(redis_url: str, tmp_path: Path) -> None:
    ids = write_ids(tmp_path / "ids.txt", [ali_id(i) for i in range(60_000)])
    conn = redis.Redis.from_url(redis_url)

    def interrupt(done: int, fresh: int) -> None:
        raise KeyboardInterrupt

    opts = SubmitOptions(campaign_id="resume", chunk_size=50, on_enqueued=interrupt)
    with pytest.raises(KeyboardInterrupt):
        submit(read_id_list(str(ids), ALI, (("env", "prod"),)), opts, conn)
    queue = Queue("bulktag.aliyun.cn-hangzhou", connection=conn)
    partial = queue.count
    assert 0 < partial < 1200
    record = store.load_campaign(conn, "resume")
    assert record is not None and record.state == "submitting"
    again = submit(
        read_id_list(str(ids), ALI, (("env", "prod"),)),
        SubmitOptions(campaign_id="resume", chunk_size=50),
        conn,
    )
    assert again.jobs_enqueued == 1200 - partial
    assert queue.count == 1200
    every_id = [rid for job in jobs_of(conn, queue.name) for rid in job["resource_ids"]]  # type: ignore[attr-defined]
    assert len(every_id) == len(set(every_id)) == 60_000
    assert store.load_campaign(conn, "resume").state == "queued"  # type: ignore[union-attr]


def test_validation_failure_raises_with_every_problem() -> None:
    from producer.campaign import Row

    items = [Row("a", 1, "bad", ALI, (("env", "prod"),)), Row("a", 2, ali_id(1), ALI, ())]
    with pytest.raises(ValidationFailed) as exc:
        submit(items, SubmitOptions(dry_run=True))
    assert exc.value.total == 2


def test_rq_cli_lists_the_campaign_queues(redis_url: str, tmp_path: Path) -> None:
    ids = write_ids(tmp_path / "ids.txt", [ali_id(i) for i in range(10)])
    assert run_cli("submit", "--provider", "aliyun", "--region", "cn-hangzhou", "--ids",
                   str(ids), "--tag", "env=prod", "--id", "rqinfo",
                   "--redis-url", redis_url) == 0  # fmt: skip
    rq = Path(sys.executable).parent / "rq"
    proc = subprocess.run(
        [str(rq), "info", "--url", redis_url, "--serializer", "json", "--only-queues"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "bulktag.aliyun.cn-hangzhou" in proc.stdout
    assert "1" in proc.stdout


def test_jobs_last_a_few_seconds_at_the_configured_rate(redis_url: str, tmp_path: Path) -> None:
    """50 calls a job at the published quota; a region an operator opened up to 1,000/s gets
    400-call jobs (RQ's cost per job amortized)."""
    ids = write_ids(tmp_path / "ids.txt", [ali_id(i) for i in range(25_000)])
    conn = redis.Redis.from_url(redis_url)
    set_limit(conn, "aliyun", "cn-shanghai", 1000)
    for region in ("cn-hangzhou", "cn-shanghai"):
        assert run_cli(
            "submit", "--provider", "aliyun", "--region", region, "--resource-type", "key",
            "--ids", str(ids), "--tag", "env=prod", "--id", f"c-{region}",
            "--redis-url", redis_url,
        ) == 0  # fmt: skip
    default = Queue("bulktag.aliyun.cn-hangzhou", connection=conn, serializer=JSONSerializer)
    opened = Queue("bulktag.aliyun.cn-shanghai", connection=conn, serializer=JSONSerializer)
    assert [len(j.kwargs["resource_ids"]) for j in default.get_jobs()] == [2_500] * 10
    assert [len(j.kwargs["resource_ids"]) for j in opened.get_jobs()] == [20_000, 5_000]
