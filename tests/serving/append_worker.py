"""Test writer: appends entries to the log at ``argv[1]`` one at a time,
printing each sequence number once its append has committed.

With only a URL it writes until it is killed (the crash test); with a
client name and a count it writes that many of that client's entries and
exits (the concurrency test)."""

from __future__ import annotations

import sys

from secmark.serving.log import QueryLog
from tests.serving.conftest import POLICY_ID, make_entry


def main() -> None:
    url, client, count = (sys.argv[1:] + ["crash", "1000000"])[:3]
    log = QueryLog.open(url, policy_id=POLICY_ID)
    for index in range(int(count)):
        (seq,) = log.append([make_entry(client, index, marked=index % 5 == 0)])
        print(seq, flush=True)
    log.close()


if __name__ == "__main__":
    main()
