"""Coverage-guided fuzzing of one target with atheris (optional).

    pip install atheris
    python3 -m tests.fuzz.atheris_entry TARGET [atheris/libFuzzer options]

Atheris mutates raw bytes with coverage feedback; half of its inputs are fed
to the target as they are, the other half seed a ``random.Random`` that
drives the mutation operators of ``mutate.py`` on the target's seeds (so
re-signed JSON-level mutations reach the parsers behind the signatures).
The oracles are those of ``runner.py``: an untyped exception, a forgery or a
round-trip failure raises, and atheris records the crashing input.
"""

from __future__ import annotations

import random
import sys

from tests.fuzz.runner import Stats, baseline_of, generate, run_one
from tests.fuzz.targets import TARGETS


def main() -> None:
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed: pip install atheris")
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python3 -m tests.fuzz.atheris_entry {{{','.join(sorted(TARGETS))}}}")
    target = TARGETS[sys.argv[1]]
    seeds, baseline = baseline_of(target)

    def one(data: bytes) -> None:
        stats = Stats(target.name)
        if data[:1] == b"\x00":
            data, origin, kind = data[1:], seeds[0], "raw"
        else:
            data, origin, kind = generate(target, random.Random(data), seeds)
        run_one(target, data, origin, kind, baseline, stats)
        if stats.failures:
            raise AssertionError("\n".join(f"{f.kind}: {f.detail}" for f in stats.findings))

    atheris.instrument_all()
    atheris.Setup([sys.argv[0], *sys.argv[2:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
