"""`predwatch replay` as a whole process, this checkout against an earlier commit, side by side.

Generates ``--events`` synthetic predictions of the binary model ``fraud`` (ten
features each, as ``replay_throughput.py`` does) and their labels into a
temporary directory, checks the earlier commit (``--base``, default the previous
commit) out into a temporary ``git worktree``, then runs ``predwatch replay`` of
both checkouts on the same files, each as a fresh process pinned to one CPU:

- ``all``: the config ``{"models": {"fraud": {"task": "binary"}}}``, everything on
  (drift and diagnostics are on by default);
- ``core``: the same with drift and diagnostics off.

Both sides run with this checkout's virtualenv, the side's checkout first on
``PYTHONPATH``. The sides alternate, so a noisy moment on a shared machine hits
both alike, and the best of ``--repeat`` runs of each is shown (the least wall and,
separately, the least CPU time): wall seconds,
events/s (predictions plus labels read, over the wall time of the whole process,
start-up and the summary included) and CPU seconds (user plus system, of the
child). ``predwatch --help`` is timed the same way. The summaries of both sides
are compared byte for byte.

    .venv/bin/python benchmarks/replay_process.py                       # vs HEAD~1
    .venv/bin/python benchmarks/replay_process.py --base main --repeat 5
    .venv/bin/python benchmarks/replay_process.py --events 50000 --configs all
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sides import ROOT

CONFIGS = {
    "all": {"models": {"fraud": {"task": "binary"}}},
    "core": {
        "models": {"fraud": {"task": "binary"}},
        "drift": {"enabled": False},
        "diagnostics": {"enabled": False},
    },
}
# The console script's code, run in the side's checkout so that it imports that checkout's
# predwatch (the virtualenv's editable install points at this one).
PREDWATCH = (
    "import sys; from predwatch.cli import main; sys.argv[0] = 'predwatch'; sys.exit(main())"
)


def _pinned() -> None:
    """In the child before exec: one CPU, as the other benchmarks measure."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def run(root: Path, args: list[str], out: Path | None = None) -> tuple[float, float]:
    """Run ``predwatch ARGS`` of the checkout ``root``; its wall and CPU seconds. Standard
    output goes to ``out`` (or nowhere). Exits with the side's error when it fails."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = str(root)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(out if out else os.devnull, "wb") as stdout:
        done = subprocess.run(
            [sys.executable, "-c", PREDWATCH, *args],
            env=env,
            cwd=root,  # python -c puts the working directory first on sys.path
            stdout=stdout,
            stderr=subprocess.PIPE,
            preexec_fn=_pinned,
            check=False,
        )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"predwatch {args[0]} of {root} failed:\n{done.stderr.decode(errors='replace')}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _least(best: tuple[float, float] | None, timing: tuple[float, float]) -> tuple[float, float]:
    """The least wall and the least CPU seconds so far, each on its own."""
    if best is None:
        return timing
    return min(best[0], timing[0]), min(best[1], timing[1])


def checkout(rev: str, directory: Path) -> str:
    """Check ``rev`` out into ``directory`` (a detached worktree); its short hash."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(directory), rev],
        check=True,
    )
    return _short(directory)


def _short(root: Path) -> str:
    described = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=True,
    )
    return described.stdout.strip()


def _count_lines(path: Path) -> int:
    with path.open("rb") as lines:
        return sum(1 for line in lines if line.strip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD~1", help="the commit to compare with (HEAD~1)")
    parser.add_argument("--events", type=int, default=200_000, help="predictions (200000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the best is shown")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["all", "core"])
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from predwatch.demo.synthetic import generate, write_jsonl

    with tempfile.TemporaryDirectory(prefix="predwatch-process-") as tmp:
        work = Path(tmp)
        base_root = work / "base"
        sides = {f"base {checkout(args.base, base_root)}": base_root, f"this {_short(ROOT)}": ROOT}
        try:
            predictions, labels = generate(args.events, seed=args.seed, jitter=0.0)
            write_jsonl(work, predictions, labels)
            del predictions, labels
            p_file, l_file = work / "predictions.jsonl", work / "labels.jsonl"
            events = _count_lines(p_file) + _count_lines(l_file)
            for name, config in CONFIGS.items():
                (work / f"{name}.json").write_text(json.dumps(config))
            print(
                f"{events:,} events ({args.events:,} predictions, seed {args.seed}), "
                f"best of {args.repeat}, one CPU each"
            )
            best: dict[tuple[str, str], tuple[float, float]] = {}
            for _ in range(args.repeat):  # sides alternate
                for side, root in sides.items():
                    for config in args.configs:
                        replay = ["replay", "--config", str(work / f"{config}.json")]
                        replay += ["--predictions", str(p_file), "--labels", str(l_file)]
                        out = work / f"{config}-{side.split()[0]}.json"
                        timing = run(root, replay, out)
                        best[side, config] = _least(best.get((side, config)), timing)
                    timing = run(root, ["--help"])
                    best[side, "--help"] = _least(best.get((side, "--help")), timing)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_root)],
                check=False,
            )
        print(f"\n{'side':<22} {'run':<8} {'seconds':>8} {'events/s':>10} {'cpu s':>7}")
        for side in sides:
            for config in [*args.configs, "--help"]:
                wall, cpu = best[side, config]
                rate = f"{events / wall:>10,.0f}" if config != "--help" else f"{'':>10}"
                print(f"{side:<22} {config:<8} {wall:>8.2f} {rate} {cpu:>7.2f}")
        base, this = list(sides)
        for config in args.configs:
            (b_wall, b_cpu), (t_wall, t_cpu) = best[base, config], best[this, config]
            same = (work / f"{config}-base.json").read_bytes() == (
                work / f"{config}-this.json"
            ).read_bytes()
            print(
                f"{config}: events/s {b_wall / t_wall:.2f}x, CPU {t_cpu / b_cpu:.2f} of the base; "
                f"summary {'identical' if same else 'DIFFERENT'}"
            )


if __name__ == "__main__":
    main()
