"""Exit statuses of the commands that verify a bundle (``verify-bundle``,
``report``)."""

from __future__ import annotations

__all__ = ["EXIT_SELF_ASSERTED", "VERIFY_EXIT_STATUSES"]

EXIT_SELF_ASSERTED = 10
"""``verify-bundle``'s status when every check passed but no ``--trust`` was
given: the times rest on TSA roots inside the bundle, so nothing was verified
against the judge's own trust."""

VERIFY_EXIT_STATUSES = f"""\
exit status:
  0   verified: every check passed, timestamps against your --trust roots
      (if --arbiter is not given, the report says the arbiter is not pinned)
  {EXIT_SELF_ASSERTED}  every check passed, but the time is SELF-ASSERTED: no --trust was
      given, the timestamps verify only against roots inside the bundle
  3, 4, 5, 7, 8  refused: malformed bundle, bad signature or another arbiter
      than --arbiter, bad proof or figure, timestamp that does not verify
      (or is dated in the future), protocol mismatch
"""
