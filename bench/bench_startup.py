"""Start-up: ``bulkinvoke --help`` against ``python -c pass``, best of 5 wall times each.

    python bench/run.py startup

The difference is what importing bulkinvoke's command line costs; pandas, pyarrow, boto3 and
the emulator are imported only by the commands that use them.
"""

from __future__ import annotations

from benchlib import BULKINVOKE, PYTHON, Figure, run_measured

TRIES = 5


def best_wall(command: list[str]) -> float:
    return min(run_measured(command).wall for _ in range(TRIES))


def run(quick: bool) -> list[Figure]:
    bare = best_wall([PYTHON, "-c", "pass"])
    help_s = best_wall([BULKINVOKE, "--help"])
    extra = help_s - bare
    print(f"  python -c pass {bare:.3f} s, bulkinvoke --help {help_s:.3f} s", flush=True)
    return [
        Figure(
            "start-up: bulkinvoke --help",
            extra,
            "s more",
            "< 0.3 s more",
            extra < 0.3,
            baseline=bare,
            note=f"best of {TRIES}: {help_s:.3f} s vs python -c pass {bare:.3f} s",
        )
    ]
