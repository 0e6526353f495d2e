"""Config validation stays linear, and hostile files are refused quickly.

Times ``load_config`` (what `parcours check` and every reload run) on generated
files of 500 to 4,000 journeys, each of three steps, and reports seconds and the
cost per journey; linear means the per-journey cost stays flat as files grow.
Then times the refusal of a billion-laughs file and of a deeply nested one.

    python -m bench.config_check
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

from bench.common import write
from probes.config import ConfigError, load_config

JOURNEY = """  - name: journey {index}
    base_url: http://shop.test
    steps:
      - name: home
        goto: /
        expect:
          - title: ^Home
      - name: product
        click: {{role: link, name: Trail Runner}}
      - name: add
        click: {{role: button, name: Add to cart}}
        expect:
          - text: 1 item
"""
BILLION_LAUGHS = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['lol'] * 9)}]\n"
    for i in range(10)
)


def timed_load(path: Path, repeat: int) -> float:
    """Best of ``repeat`` loads, in seconds (the least disturbed by a busy machine)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        with contextlib.suppress(ConfigError):
            load_config([path], env={})
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = (500, 1000, 2000, 4000)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        rows = []
        for size in sizes:
            path = root / f"journeys-{size}.yaml"
            path.write_text("journeys:\n" + "".join(JOURNEY.format(index=i) for i in range(size)))
            seconds = timed_load(path, args.repeat)
            rows.append(
                {
                    "journeys": size,
                    "bytes": path.stat().st_size,
                    "seconds": round(seconds, 3),
                    "ms_per_journey": round(1000 * seconds / size, 3),
                }
            )
        bomb = root / "bomb.yaml"
        bomb.write_text(BILLION_LAUGHS)
        deep = root / "deep.yaml"
        deep.write_text("a: " + "[" * 200_000 + "]" * 200_000 + "\n")
        hostile = {
            "billion_laughs_refused_seconds": round(timed_load(bomb, args.repeat), 3),
            "nested_200000_refused_seconds": round(timed_load(deep, args.repeat), 3),
        }
    write(
        "config_check",
        {
            "sizes": rows,
            "per_journey_cost_4000_vs_500": round(
                rows[-1]["ms_per_journey"] / rows[0]["ms_per_journey"], 2
            ),
            "target": "2,000 journeys in under 2 s; per-journey cost flat (ratio near 1)",
            **hostile,
        },
    )


if __name__ == "__main__":
    main()
