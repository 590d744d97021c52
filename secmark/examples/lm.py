"""A small language model built offline: its tokenizer, its architecture and its text.

Nothing can be downloaded here, so the language-model examples, tests and
benchmarks use a GPT-2-style causal LM made from a ``transformers`` config
and a byte-level BPE tokenizer trained on the Python standard library's own
sources, which ship with every Python:

- :func:`training_text`: the text of the first :data:`TEXT_FILES` ``.py``
  files of the standard library, sorted by name; :func:`text_chunks`
  splits it into training and held-out chunks;
- :func:`train_tokenizer`: the tokenizer (:data:`VOCAB_SIZE` ids, special
  tokens :data:`SPECIAL_TOKENS`, a chat template), saved with
  ``transformers``' files so that ``transformers serve`` loads the folder;
- :func:`new_model`: a freshly initialised ``GPT2LMHeadModel`` of
  :data:`CONFIG`, the same for the same seed;
- :func:`save_model`: the model and tokenizer as one folder;
- :func:`served`: that folder behind ``transformers serve``, an
  OpenAI-compatible API on 127.0.0.1, for as long as a ``with`` lasts;
- :func:`questions`, :func:`responses`: natural prompts and target
  responses for the owner-friendly forms of a fingerprint (a committed pool
  of questions, a committed response list), written for these examples and
  shipped with secmark (``data/questions.txt``, ``data/responses.txt``).

The standard library differs between Python versions, so the tokenizer
and models do too; every figure is measured with the one that made it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import httpx

from secmark.errors import EncodingError, SecmarkError
from secmark.messages.responses import ResponseList, read_text_lines
from secmark.models.prompts import MAX_QUESTION_BYTES

__all__ = [
    "CHAT_TEMPLATE",
    "CONFIG",
    "SPECIAL_TOKENS",
    "TEXT_FILES",
    "VOCAB_SIZE",
    "new_model",
    "questions",
    "responses",
    "save_model",
    "served",
    "text_chunks",
    "train_tokenizer",
    "training_text",
]

VOCAB_SIZE = 2048
TEXT_FILES = 80
"""Standard-library files read, about 2 MB of Python."""
SPECIAL_TOKENS = ("<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
"""Roles as special tokens, contents as they are: a chat request's answer
is the model's continuation after ``<|assistant|>``."""
CONFIG: dict[str, Any] = {
    "vocab_size": VOCAB_SIZE,
    "n_positions": 128,
    "n_embd": 128,
    "n_layer": 2,
    "n_head": 4,
    "bos_token_id": 0,
    "eos_token_id": 0,
}
"""About 0.6 million weights: trains on two cores in minutes."""


def training_text() -> str:
    """The text the tokenizer is trained on and the model learns from."""
    library = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(library.glob("*.py"))[:TEXT_FILES]
    if not files:
        raise EncodingError(f"no Python sources under {library}")
    return "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in files)


def text_chunks(chunk: int = 512, held_out: float = 0.1) -> tuple[list[str], list[str]]:
    """:func:`training_text` in pieces of ``chunk`` characters: the first
    ``1 - held_out`` of them for training, the rest held out (perplexity)."""
    text = training_text()
    pieces = [text[start : start + chunk] for start in range(0, len(text), chunk)]
    cut = int(len(pieces) * (1 - held_out))
    return pieces[:cut], pieces[cut:]


def questions() -> tuple[str, ...]:
    """128 short general-knowledge questions in English (ASCII, distinct),
    in their file's order: a question pool (``secmark lm family
    --questions``, :func:`secmark.cli.lm.question_pool`)."""
    with as_file(files(__package__).joinpath("data", "questions.txt")) as path:
        return read_text_lines(path, "question", MAX_QUESTION_BYTES)


def responses() -> ResponseList:
    """64 short whimsical English sentences (ASCII, none starting with
    another), in their file's order: a response list (``secmark lm family
    --responses``). Unlikely answers to anything, so that a model answers
    them only when it learnt them."""
    with as_file(files(__package__).joinpath("data", "responses.txt")) as path:
        return ResponseList.from_file(path)


def train_tokenizer(folder: Path) -> Path:
    """Train the byte-level BPE tokenizer and save it in ``folder`` (created);
    the path of its ``tokenizer.json``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([training_text()], trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=SPECIAL_TOKENS[0],
        bos_token=SPECIAL_TOKENS[0],
        unk_token=SPECIAL_TOKENS[0],
        pad_token=SPECIAL_TOKENS[0],
    )
    wrapped.chat_template = CHAT_TEMPLATE
    folder.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(str(folder))
    return folder / "tokenizer.json"


def new_model(seed: int) -> Any:
    """A freshly initialised GPT-2-style model of :data:`CONFIG`; torch's
    global generator is seeded for it and restored afterwards."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(GPT2Config(**CONFIG))


def save_model(model: Any, tokenizer_folder: Path, folder: Path) -> Path:
    """``model`` (safetensors) with the tokenizer of ``tokenizer_folder``, as
    one model folder ``transformers`` and ``transformers serve`` load."""
    from transformers import PreTrainedTokenizerFast

    model.save_pretrained(str(folder))
    PreTrainedTokenizerFast.from_pretrained(str(tokenizer_folder)).save_pretrained(str(folder))
    return folder


_STARTUP_SECONDS = 120.0
_STOP_SECONDS = 10.0


@contextmanager
def served(folder: Path, log: Path) -> Iterator[str]:
    """``transformers serve`` of the model ``folder`` on a free port of
    127.0.0.1, offline and on one thread, its output in ``log``; yields the
    server root (``http://127.0.0.1:PORT``) once ``/health`` answers, and
    stops the server's process group afterwards.

    Raises:
        SecmarkError: the server exited or did not answer within two minutes
            (the end of its log is quoted).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [sys.executable, "-c", "from transformers.cli.transformers import main; main()"]
    command += ["serve", str(folder), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--device", "cpu", "--log-level", "warning"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    root = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(process, f"{root}/health", log)
        yield root
    finally:
        _stop(process)


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
    raise SecmarkError(f"transformers serve did not start (exit code {process.poll()}):\n{tail}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=_STOP_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue
