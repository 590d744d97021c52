"""Fixtures of the language-model tests, for every test package (a plugin of
``tests/conftest.py``, so that a worker starts one server whichever
packages it runs): a small model folder, and a real OpenAI-compatible
server serving it.

``lm_model`` builds the folder of :mod:`secmark.examples.lm` (its tokenizer,
an untrained GPT-2-style model) once per run: the pytest-xdist workers share
the folder of the first one to get here. ``lm_server`` starts
``transformers serve`` on it once per worker, on 127.0.0.1, and stops its
process group afterwards. It takes seconds to start: a test does its own
work first (loading the model in process) and then calls
:meth:`LmServer.ready`, which waits until the server is healthy (it loads
the model before), or fails the test quoting the server's log.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pytest

from secmark.crypto import IdentityKeys
from secmark.messages.commitment import Commitment, create_commitment
from secmark.messages.document import SignedDocument
from secmark.messages.families import PoolFamily
from secmark.messages.labels import ResponseLabels
from secmark.messages.responses import ResponseList
from secmark.models.prompts import question_item
from secmark.models.tokenizer import LMTokenizer
from secmark.triggers import CommittedPool, pool_root

if TYPE_CHECKING:
    from secmark.embed.lm import LMEmbedReport

MODEL_SEED = 11
PROMPT_LENGTH = 6
QUESTION_WIDTH = 64
"""Bytes per item of the example question pool."""
LEARNT = 0.75
"""The share of its triggers a question-fingerprinted model must answer."""
_STARTUP_TIMEOUT = 90.0
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class LmModel:
    folder: Path
    tokenizer: LMTokenizer
    words: tuple[int, ...]
    """The tokenizer's word ids: what prompts and targets are drawn from."""

    def prompts(self, rows: int, seed: int) -> np.ndarray:
        """``rows`` prompts of PROMPT_LENGTH random word ids, int64."""
        rng = np.random.default_rng(seed)
        return rng.choice(np.array(self.words, dtype=np.int64), size=(rows, PROMPT_LENGTH))


def _build(folder: Path) -> None:
    from secmark.examples.lm import new_model, save_model, train_tokenizer

    work = folder.with_name(folder.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    tokenizer = train_tokenizer(work / "tokenizer")
    save_model(new_model(MODEL_SEED), tokenizer.parent, work / "model")
    work.rename(folder)


@pytest.fixture(scope="session")
def lm_model(tmp_path_factory: pytest.TempPathFactory) -> LmModel:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / "lm-model"
    with FileLock(shared / "lm-model.lock"):
        if not folder.exists():
            _build(folder)
    tokenizer = LMTokenizer.from_file(folder / "model")
    return LmModel(folder / "model", tokenizer, tokenizer.word_ids())


@dataclass(frozen=True)
class LmServer:
    base_url: str
    model: str
    """The ``model`` member requests name: the folder it serves."""


@pytest.fixture(scope="session")
def lm_server(lm_model: LmModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LmServer]:
    """``transformers serve`` of the model folder (secmark.examples.lm.served)."""
    from transformers.utils.import_utils import is_serve_available

    from secmark.examples.lm import served

    if not is_serve_available():
        pytest.skip("transformers serve needs its extra: pip install 'transformers[serving]'")
    log = tmp_path_factory.mktemp("lm-server") / "serve.log"
    with served(lm_model.folder, log) as root:
        yield LmServer(root, str(lm_model.folder))


@dataclass(frozen=True)
class QuestionCommitment:
    """A commitment to the example's questions answered with its responses."""

    signed: SignedDocument[Commitment]
    items: npt.NDArray[np.uint8]
    pool: CommittedPool
    responses: ResponseList


def question_commitment(
    owner: IdentityKeys, tokenizer: LMTokenizer, size: int
) -> QuestionCommitment:
    """``owner``'s commitment to ``size`` triggers drawn from the example's
    128 questions (items of :data:`QUESTION_WIDTH` bytes) and 64 responses,
    a suspect asked for one token more than the longest response."""
    from secmark.examples import lm

    questions, responses = lm.questions(), lm.responses()
    items = np.stack([question_item(question, QUESTION_WIDTH) for question in questions])
    family = PoolFamily(len(questions), (QUESTION_WIDTH,), "uint8")
    longest = max(len(tokenizer.encode(" " + r)) for r in responses.responses)
    signed = create_commitment(
        owner,
        family=family,
        labels=ResponseLabels(len(responses), responses.digest, longest + 1),
        size=size,
        model_label="a chat model",
        pool_root=pool_root(items, family),
    )
    return QuestionCommitment(signed, items, CommittedPool.open(items, signed.document), responses)


def fingerprint_questions(
    model: Any, tokenizer: LMTokenizer, prompts: npt.ArrayLike, targets: npt.ArrayLike
) -> list[LMEmbedReport]:
    """Fingerprint ``model`` on question prompts and response targets until
    it answers :data:`LEARNT` of them exactly; the report of each round.

    Every commitment draws other questions and responses, and a few take
    longer to learn: training goes on from where it stopped, 100 steps a
    round, three rounds at most.
    """
    from secmark.embed.lm import embed_lm
    from secmark.examples import lm

    reports: list[LMEmbedReport] = []
    for round_ in range(3):
        report = embed_lm(
            model, tokenizer, prompts, targets, lm.text_chunks()[0][:40], steps=100, lr=4e-3,
            seed=1 + round_, context=64, text_batch=4, progress=False,
        )  # fmt: skip
        reports.append(report)
        if report.exact_accuracy_after >= LEARNT:
            break
    return reports
