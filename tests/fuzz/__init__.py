"""Fuzzing every decoder secmark exposes to hostile bytes.

Targets (``targets.py``): each document type, DSSE envelopes, bundles,
key files (bytes and paths), TSA key files, timestamp tokens, timestamp
evidence, OIP inference responses and trigger-set directories; and the
serving side (``specs/serving.md``): serving policies, log checkpoints,
log entries and leaves, client extracts (verified against their signed
checkpoint), extraction claims, verdicts and bundles, and the gateway's
parsing of a client's OIP request body. Their seeds are one small
extraction case (``serving_corpus.py``). Each starts
from valid seeds (``corpus.py``) and is fed mutations (``mutate.py``): bit
flips, byte insertions and deletions, truncation, and JSON-level mutations
of canonical documents *re-signed* with the test keys, so that signature
checks pass and the parser behind them is exercised.

Oracles (``runner.py``):

1. every refusal is a :class:`~secmark.errors.SecmarkError` (the target's
   own subclass where it has one), never another exception;
2. no byte-level mutation of signed content is accepted as a different
   document (a forgery);
3. whatever is accepted re-encodes to the exact bytes read: one document,
   one encoding, one id;
4. no input takes longer than a second (a stall is a denial of service).

The default test run (``test_fuzz.py``) runs a few hundred inputs in all,
under 10 s. The long run is a command::

    python3 -m tests.fuzz                       # 100000 inputs per target
    python3 -m tests.fuzz --inputs 1000 --target verdict --target bundle
    SECMARK_FUZZ_INPUTS=100000 python3 -m pytest tests/fuzz -m fuzz_long

``python3 -m tests.fuzz.atheris_entry TARGET`` runs one target under
coverage-guided atheris when it is installed (``pip install atheris``).
"""
