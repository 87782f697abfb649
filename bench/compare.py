"""bulktag side by side with what users would run instead (issue 8), on one emulator.

    .venv/bin/python bench/compare.py                       # every scenario, every contender
    .venv/bin/python bench/compare.py --scenarios base --resources 20000 --budget 60

Each scenario starts one emulator (its own process) with the same inventory and the same
per-region limits for every contender, then runs each contender in a process of its own
(``compare.py --run ...``), which reports its wall time and its own CPU time and peak RSS
(children included: bulktag's workers, work horses and Redis). The emulator's counters give
the calls and throttled answers; its state shows whether every existing resource got the
contender's own tag value (``bench=<contender>``). A contender still busy after ``--budget``
seconds stops issuing calls and is shown with the share it finished.

Contenders (``contenders.py`` has what each one does and why it is written that way):
  bulktag         N ``bulktag worker`` processes, a private Redis, the producer's Python API
  sdk-sequential  the official Alibaba SDK, ``tag_resources`` in batches of 50, one at a time
  sdk-threads     the same with a thread pool of 8
  custodian       batches of 50, 2 threads per process, c7n-style per-call backoff, one
                  process per region, no shared limiter
  async-single    one call per resource on asyncio (aiohttp), 32 in flight, backoff
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from worker_bench import free_port, start_emulator

from emulator.ids import aliyun_key_id, huawei_key_id

ROOT = Path(__file__).resolve().parent.parent
REGIONS = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen"]
PROJECTS = [f"{n:x}" * 32 for n in range(10, 14)]  # four 32-hex Huawei project ids
HUAWEI_REGION = "cn-north-4"
CONTENDERS = ["bulktag", "sdk-sequential", "sdk-threads", "custodian", "async-single"]


@dataclass
class Scenario:
    name: str
    provider: str
    locations: list[str]
    existing: int  # per location
    missing: int = 0  # per location, ids that do not exist, shuffled in
    true_rate: float = 20.0  # the emulator's limit per location
    configured_rate: float = 20.0  # what every contender is told
    faults: dict[str, float] = field(default_factory=dict)
    latency_ms: int = 30
    jitter_ms: int = 20

    @property
    def per_call(self) -> int:
        return 50 if self.provider == "aliyun" else 1

    @property
    def physical_limit(self) -> float:
        """Resources/s if every call were used at the emulator's true limit."""
        return self.true_rate * self.per_call * len(self.locations)

    def ids(self) -> dict[str, list[str]]:
        make = aliyun_key_id if self.provider == "aliyun" else huawei_key_id
        rng = random.Random(7)
        out = {}
        for loc in self.locations:
            ids = [make(loc, n) for n in range(self.existing + self.missing)]
            rng.shuffle(ids)
            out[loc] = ids
        return out


def scenarios(resources: int, huawei_keys: int) -> dict[str, Scenario]:
    per_region = resources // len(REGIONS)
    return {
        "base": Scenario("base", "aliyun", REGIONS, per_region),
        "missing": Scenario("missing", "aliyun", REGIONS, per_region, missing=per_region // 100),
        "faults": Scenario("faults", "aliyun", REGIONS, per_region, faults={"503": 0.05}),
        "adaptive": Scenario("adaptive", "aliyun", REGIONS, per_region, true_rate=10.0),
        "huawei": Scenario("huawei", "huawei", PROJECTS, huawei_keys // len(PROJECTS)),
    }


class Emulator:
    def __init__(self, scenario: Scenario) -> None:
        self.port = free_port()
        args = ["--latency-ms", str(scenario.latency_ms),
                "--jitter-ms", str(scenario.jitter_ms), "--seed", "1",
                "--burst", str(max(1, int(scenario.true_rate)))]  # fmt: skip
        for loc in scenario.locations:
            args += ["--generate", f"{scenario.provider}:{loc}:key:{scenario.existing}"]
        args += ["--rate-limit", f"{scenario.provider}={scenario.true_rate:g}"]
        for kind, rate in scenario.faults.items():
            args += ["--fault", f"{kind}={rate}"]
        self.proc = start_emulator(self.port, args)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.loads(r.read())

    def post(self, path: str) -> Any:
        req = urllib.request.Request(self.url + path, method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def carrying(self, scenario: Scenario, value: str) -> int:
        """Existing resources whose ``bench`` tag is ``value``."""
        state = self.get(f"/_emulator/state?provider={scenario.provider}&tagged=true")
        tables = state["resources"].get(scenario.provider, {})
        return sum(
            1
            for per_type in tables.values()
            for table in per_type.values()
            for tags in table.values()
            if tags.get("bench") == value
        )

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


@dataclass
class Result:
    scenario: str
    contender: str
    wall_s: float
    finished: bool
    resources: int
    tagged: int  # existing resources carrying the contender's tag
    existing: int
    calls: int
    throttled: int
    cpu_s: float
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.tagged / self.wall_s if self.wall_s else 0.0


def run_contender(
    scenario: Scenario, contender: str, emulator: Emulator, workdir: Path, args: argparse.Namespace
) -> Result:
    emulator.post("/_emulator/reset-stats")
    spec = workdir / f"{scenario.name}-{contender}.json"
    spec.write_text(json.dumps({
        "scenario": asdict(scenario), "contender": contender, "endpoint": emulator.url,
        "ids": scenario.ids(), "tag_value": contender, "budget_s": args.budget,
        "workers": args.workers, "workdir": str(workdir),
    }))  # fmt: skip
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--run", str(spec)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    stats = emulator.get("/_emulator/stats")
    # Where the wall time went: the first and last answer of each location, from the start.
    t0 = report["started_at"]
    spans = [f"{w['first'] - t0:.2f}..{w['last'] - t0:.2f}" for w in stats.get("windows", [])]
    print(f"  {scenario.name}/{contender}: locations answered at {', '.join(spans)} s",
          file=sys.stderr)  # fmt: skip
    return Result(
        scenario.name, contender, report["wall_s"], report["finished"],
        len(scenario.locations) * (scenario.existing + scenario.missing),
        emulator.carrying(scenario, contender), len(scenario.locations) * scenario.existing,
        stats["total"], stats["throttled"], report["cpu_s"], report["peak_rss_mb"],
    )  # fmt: skip


def run_one(spec_path: Path) -> None:
    """The child side: run one contender, print its JSON report as the last line."""
    import contenders

    spec = json.loads(spec_path.read_text())
    finished, started_at, wall = contenders.run(spec)
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    print(json.dumps({"wall_s": wall, "finished": finished, "cpu_s": cpu, "started_at": started_at,
                      "peak_rss_mb": max(own.ru_maxrss, kids.ru_maxrss) / 1024}))  # fmt: skip


def table(scenario: Scenario, results: list[Result]) -> str:
    resources = results[0].resources if results else 0
    lines = [
        f"**{scenario.name}**: {resources:,} resources ({scenario.provider}, "
        f"{len(scenario.locations)} locations, {scenario.missing * len(scenario.locations):,} "
        f"missing), emulator limit {scenario.true_rate:g}/s per location "
        f"(contenders told {scenario.configured_rate:g}/s), faults {scenario.faults or 'none'}, "
        f"latency {scenario.latency_ms}+0..{scenario.jitter_ms} ms. Physical limit "
        f"{scenario.physical_limit:,.0f} resources/s.",
        "",
        "| contender | wall s | tagged / existing | resources/s | / physical limit | API calls "
        "| throttled | calls per resource | CPU s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        done = "" if r.finished else " (budget hit)"
        lines.append(
            f"| {r.contender} | {r.wall_s:.1f}{done} | {r.tagged:,} / {r.existing:,} | "
            f"{r.rate:,.0f} | {r.rate / scenario.physical_limit:.3f} | {r.calls:,} | "
            f"{r.throttled:,} | {r.calls / r.resources:.3f} | {r.cpu_s:.1f} | "
            f"{r.peak_rss_mb:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--resources", type=int, default=100_000, help="Alibaba scenarios (4 regions)")
    p.add_argument("--huawei-keys", type=int, default=4_000, help="Huawei scenario (4 projects)")
    p.add_argument("--scenarios", default="base,missing,faults,adaptive,huawei")
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    # Regions + 2, as the README advises: spare workers start a region's next chunk while the
    # current one waits out a retry's backoff.
    p.add_argument("--workers", type=int, default=6, help="bulktag worker processes")
    p.add_argument("--budget", type=float, default=150, help="seconds per contender at most")
    args = p.parse_args()
    if args.run:
        run_one(args.run)
        return
    chosen = scenarios(args.resources, args.huawei_keys)
    print(f"# bulktag vs the alternatives: {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{' '.join(sys.argv[1:]) or 'defaults'}\n")  # fmt: skip
    for name in args.scenarios.split(","):
        scenario = chosen[name]
        emulator = Emulator(scenario)
        results = []
        try:
            with tempfile.TemporaryDirectory() as tmp:
                for contender in args.contenders.split(","):
                    results.append(run_contender(scenario, contender, emulator, Path(tmp), args))
                    r = results[-1]
                    print(f"  {name}/{contender}: {r.wall_s:.1f} s, {r.tagged}/{r.existing} "
                          f"tagged, {r.calls} calls, {r.throttled} throttled",
                          file=sys.stderr)  # fmt: skip
        finally:
            emulator.close()
        print(table(scenario, results) + "\n", flush=True)


if __name__ == "__main__":
    main()
