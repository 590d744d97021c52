"""Marked answers at a serving API: evidence that survives model extraction.

A serving policy (:mod:`secmark.messages.serving_policy`) fixes, before an
API serves, which answers are marked: the log operator's VRF output on the
canonical input selects a fraction r of inputs and, for each selected input,
a wrong answer drawn uniformly (:mod:`secmark.serving.marking`). A model
distilled from the API's answers learns the marked answers; a model made
without them matches each with a probability bounded by the policy's p0,
whatever it is. ``specs/serving.md`` is the normative description.
"""
