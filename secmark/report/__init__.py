"""Reports of a bundle's verification, for judges and for scripts.

:func:`~secmark.protocol.bundle.examine_bundle` produces a
:class:`~secmark.protocol.bundle_report.BundleReport` of named checks; this
package renders it three ways that say the same thing in the same words
(:mod:`~secmark.report.words`):

* :func:`render_text`: readable lines (``secmark verify-bundle``), and
  :func:`render_extraction_text` for an extraction bundle;
* :func:`report_data`: the ``secmark.bundle-report`` JSON object
  (``secmark verify-bundle --json``; ``specs/report.md``);
* :func:`render_exhibit`: a self-contained HTML exhibit with the null
  distribution plotted inline (``secmark report``).

Nothing here needs torch or matplotlib.
"""

from __future__ import annotations

from secmark.report.data import REPORT_TYPE, REPORT_VERSION, report_data
from secmark.report.exhibit import render_exhibit
from secmark.report.text import render_extraction_text, render_text

__all__ = [
    "REPORT_TYPE",
    "REPORT_VERSION",
    "render_exhibit",
    "render_extraction_text",
    "render_text",
    "report_data",
]
