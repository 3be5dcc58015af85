"""Where the time goes, from a py-spy `raw` profile: per thread, per function, in percent.

A flame graph shows the shape; this prints the numbers. Record with the benchmark
(`run.py --profile /tmp/daemon.txt --profile-format raw`, which passes `--threads` to py-spy) or
by hand (`py-spy record --threads --format raw -o FILE --pid PID`; add `--gil` to sample only
the thread holding the GIL, `--idle` to include waiting threads), then:

    python bench/ingest/profile_summary.py FILE [--top 25] [--min 1.0]

Inclusive: the share of a thread's samples with the function anywhere on the stack.
Self: the share with the function on top. Line numbers are folded into the function, and the
frames on every stack of a thread (its trunk: runpy, the event loop's `run_forever`, ...) are left
out of its inclusive table.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

LINE_NUMBER = re.compile(r":\d+\)$")


def summarise(path: Path) -> tuple[Counter[str], dict[str, Counter[str]], dict[str, Counter[str]]]:
    """Samples per thread, and per thread the inclusive and self sample counts per function."""
    threads: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = defaultdict(Counter)
    own: dict[str, Counter[str]] = defaultdict(Counter)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        head, *frames = stack.split(";")
        thread = head.split(": ", 1)[-1]  # "thread (1234): MainThread" -> "MainThread"
        functions = [LINE_NUMBER.sub(")", frame) for frame in frames]
        threads[thread] += samples
        for function in set(functions):
            inclusive[thread][function] += samples
        if functions:
            own[thread][functions[-1]] += samples
    return threads, inclusive, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="a py-spy profile in the raw format")
    parser.add_argument("--top", type=int, default=25, help="functions listed per table")
    parser.add_argument("--min", type=float, default=1.0, help="hide functions under this %%")
    args = parser.parse_args()

    threads, inclusive, own = summarise(args.profile)
    total = sum(threads.values())
    print(f"{total} samples")
    for thread, samples in threads.most_common():
        print(f"  {samples / total:6.1%}  {thread}")
    for thread, samples in threads.most_common():
        for title, table in (("inclusive", inclusive[thread]), ("self", own[thread])):
            print(f"\n{thread}: {title} (% of the thread's {samples} samples)")
            rows = [(f, n) for f, n in table.most_common() if title == "self" or n < samples]
            for function, count in rows[: args.top]:
                share = 100 * count / samples
                if share >= args.min:
                    print(f"  {share:5.1f}%  {function}")


if __name__ == "__main__":
    main()
