"""A language-model suspect run in process: a Hugging Face causal LM folder.

:class:`TransformersSuspect` loads a model folder as ``transformers`` saves
it (``config.json``, ``model.safetensors``, the tokenizer's files) from the
local disk only, and answers each prompt of token ids with the ids it
generates greedily (``do_sample=False``, at most L new tokens). It is the
in-process counterpart of :mod:`secmark.models.openai`: with
``via_text=True`` it goes through text both ways as an OpenAI-compatible
server does (``transformers serve`` exactly), so that the same folder gives
the same answers served or in process.

Only safetensors weights are read: a folder holding pickle files (``.bin``,
``.pt``, ``.pth``, ``.ckpt``, ``.pkl``), which run code when unpickled, is
refused, and so is one whose weights are split in several files, since
``describe()`` names one file. Code shipped in a folder is never run
(``trust_remote_code=False``).

``transformers`` and torch are imported when a suspect is built, not with
this module; install them with ``pip install 'secmark[lm-train]'``.
The number of torch threads is the caller's to set.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Final

import numpy as np

from secmark.errors import SecmarkError, SuspectError
from secmark.files import open_regular_file
from secmark.messages.responses import ResponseList
from secmark.models.base import check_answers, check_batch
from secmark.models.prompts import AnswerReading, prompt_texts
from secmark.models.tokenizer import LMTokenizer

__all__ = ["MAX_NEW_TOKENS", "PICKLE_SUFFIXES", "WEIGHTS_FILE", "TransformersSuspect"]

WEIGHTS_FILE: Final = "model.safetensors"
"""The one weights file of a folder, which ``describe()`` names."""

PICKLE_SUFFIXES: Final = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
"""Suffixes of files refused in a model folder: pickles run code when read."""

MAX_NEW_TOKENS = 4096
"""Most target tokens generated per prompt."""

_MAX_ERROR_TEXT = 200  # characters of a library's exception quoted
_CHUNK = 1 << 20


def _weights_reference(path: Path) -> str:
    """``sha256:<hex>`` of the regular file ``path``, read in chunks."""
    try:
        handle, _ = open_regular_file(path, what="model weights")
    except SecmarkError as error:
        raise SuspectError(str(error)) from None
    digest = hashlib.sha256()
    with handle:
        try:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        except OSError as error:
            raise SuspectError(f"cannot read model weights {path}: {error.strerror}") from None
    return "sha256:" + digest.hexdigest()


def _check_folder(folder: Path) -> Path:
    """The weights file of ``folder``, after the checks of the module docstring."""
    if not folder.is_dir():
        raise SuspectError(f"no model folder at {folder}")
    names = sorted(entry.name for entry in folder.iterdir())
    pickles = [name for name in names if Path(name).suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise SuspectError(
            f"model folder {folder} holds pickle files ({', '.join(pickles[:5])}), which run "
            "code when read; keep the weights as model.safetensors only"
        )
    shards = [name for name in names if name.endswith((".safetensors", ".safetensors.index.json"))]
    if shards != [WEIGHTS_FILE]:
        if not shards:
            raise SuspectError(f"model folder {folder} has no {WEIGHTS_FILE}")
        raise SuspectError(
            f"model folder {folder} holds several weights files ({', '.join(shards[:5])}); "
            f"a suspect is named by one file: save the model as one {WEIGHTS_FILE} "
            "(save_pretrained(max_shard_size=...) larger than the model)"
        )
    return folder / WEIGHTS_FILE


def _failure(reference: str, what: str, error: Exception) -> SuspectError:
    text = str(error)[:_MAX_ERROR_TEXT]
    return SuspectError(f"{reference}: {what} failed ({type(error).__name__}: {text})")


class TransformersSuspect:
    """A Hugging Face causal LM from a local folder, queried greedily.

    ``folder``: the model folder (module docstring). ``tokenizer``: the
    commitment's tokenizer; ``length``: the target tokens L. ``device``:
    where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...); asking
    for CUDA where it is not available is a SuspectError, not a silent
    fallback to the CPU.

    :meth:`predict` takes an ``(N, prompt_length)`` integer array of token
    ids, or an ``(N, B)`` ``uint8`` array of question items
    (:func:`~secmark.models.prompts.question_text`), and returns ``(N,
    length)`` int64 ids, generating for one prompt at a time (no padding, so
    each answer is what the model gives that prompt alone, as a server
    does). With ``responses`` (a commitment's committed list), ``length`` is
    the label space's ``max_tokens`` and each answer is instead the index of
    the response the answer text gives, or -1 (``(N,)`` int64;
    :class:`~secmark.models.prompts.AnswerReading`):

    - ``via_text=False``: the prompt ids go to the model as they are (a
      question as ``tokenizer`` encodes it), and the answer is the first
      ``length`` ids generated, padded as
      :meth:`~secmark.models.tokenizer.LMTokenizer.answer_ids` pads when
      generation stops early (at the end-of-sequence id, which is kept); for
      responses, the text ``tokenizer`` decodes them to. The ids must lie in
      the model's vocabulary.
    - ``via_text=True``: as an OpenAI-compatible completions server does,
      the prompt is ``tokenizer.decode(ids)``, encoded by the folder's own
      tokenizer; the ids generated are decoded by it without special tokens,
      and the answer is ``tokenizer.answer_ids(text, length)``.
    - ``chat=True`` (with ``via_text=True``): as a chat server does, the
      prompt text is the content of one user message, after ``system`` as a
      system message when given, rendered by the folder's chat template
      with the generation prompt added.

    ``describe()`` is ``sha256:<hex>`` of the folder's ``model.safetensors``,
    hashed before and after loading (a file that changed meanwhile is
    refused).

    Raises:
        SuspectError: at construction, ``transformers`` or torch missing, a
            folder the module docstring refuses, a model or tokenizer the
            library cannot load, an invalid setting; at :meth:`predict`, a
            batch that is not 2-D integer ids of the vocabulary, or a failure
            of generation (a prompt longer than the model's context, ...).
    """

    __slots__ = (
        "_chat",
        "_device",
        "_length",
        "_model",
        "_model_tokenizer",
        "_reading",
        "_reference",
        "_system",
        "_tokenizer",
        "_vocab",
    )

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        tokenizer: LMTokenizer,
        length: int,
        via_text: bool = False,
        chat: bool = False,
        system: str | None = None,
        responses: ResponseList | None = None,
        device: str = "cpu",
    ) -> None:
        reading = AnswerReading(tokenizer, length, limit=MAX_NEW_TOKENS, responses=responses)
        if not isinstance(via_text, bool) or not isinstance(chat, bool):
            raise SuspectError("via_text and chat must be True or False")
        if chat and not via_text:
            raise SuspectError("chat=True renders text through a chat template: give via_text=True")
        if system is not None and (not chat or not isinstance(system, str) or not system):
            raise SuspectError("system is a non-empty string, and only for chat=True")
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise SuspectError(
                "in-process language models need torch and transformers: "
                "pip install 'secmark[lm-train]'"
            ) from None
        try:
            selected = torch.device(device)
        except (RuntimeError, TypeError):
            raise SuspectError(f"unknown torch device {device!r}") from None
        if selected.type == "cuda" and not torch.cuda.is_available():
            raise SuspectError(f"torch device {device!r} was asked for but CUDA is not available")

        source = Path(folder)
        weights = _check_folder(source)
        reference = _weights_reference(weights)
        try:
            model: Any = AutoModelForCausalLM.from_pretrained(
                str(source), local_files_only=True, use_safetensors=True, trust_remote_code=False
            )
        except Exception as error:  # noqa: BLE001 - the library's own, of many kinds
            raise _failure(reference, f"loading the model folder {source}", error) from None
        if _weights_reference(weights) != reference:
            raise SuspectError(
                f"{weights} changed while it was loaded; load it from a folder nobody writes to"
            )
        self._model_tokenizer: Any = None
        if via_text:
            try:
                self._model_tokenizer = AutoTokenizer.from_pretrained(
                    str(source), local_files_only=True, trust_remote_code=False
                )
            except Exception as error:  # noqa: BLE001 - as above
                raise _failure(reference, f"loading the tokenizer of {source}", error) from None
            if chat and not getattr(self._model_tokenizer, "chat_template", None):
                raise SuspectError(f"{reference}: the tokenizer of {source} has no chat template")
        self._model: Any = model.to(selected).eval()
        self._device = selected
        self._vocab = int(self._model.get_input_embeddings().num_embeddings)
        self._tokenizer = tokenizer
        self._length = length
        self._reading = reading
        self._system = system
        self._chat = chat
        self._reference = reference

    @property
    def length(self) -> int:
        """Target tokens per answer."""
        return self._length

    def describe(self) -> str:
        return self._reference

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The model's answers to every prompt of ``batch``; SuspectError on failure."""
        batch = check_batch(batch)
        texts = prompt_texts(batch, self._tokenizer, self._reference)
        if self._model_tokenizer is None and batch.dtype != np.uint8:
            if (batch >= self._vocab).any():
                raise SuspectError(
                    f"{self._reference}: prompt token ids must lie in [0, {self._vocab})"
                )
            answers = [self._answer_ids([int(i) for i in row]) for row in batch]
        elif self._model_tokenizer is None:
            answers = [self._answer_ids(self._tokenizer.encode(text)) for text in texts]
        else:
            answers = [self._reading.read(self._answer_text(text)) for text in texts]
        return check_answers(
            np.array(answers, dtype=np.int64),
            rows=batch.shape[0],
            output="labels",
            row_shape=self._reading.row_shape,
            source=self._reference,
        )

    def _answer_ids(self, prompt: list[int]) -> int | list[int]:
        """The answer to one prompt of ids given to the model as they are."""
        generated = self._generate(prompt)
        if self._reading.row_shape == ():
            return self._reading.read(self._tokenizer.decode(generated))
        padding = self._tokenizer.answer_ids("", self._length)
        return (generated + padding)[: self._length]

    def _answer_text(self, text: str) -> str:
        """The answer text to one prompt text, through the folder's tokenizer."""
        try:
            if self._chat:
                system = (
                    [] if self._system is None else [{"role": "system", "content": self._system}]
                )
                ids = self._model_tokenizer.apply_chat_template(
                    [*system, {"role": "user", "content": text}],
                    add_generation_prompt=True,
                    tokenize=True,
                    return_dict=True,
                )["input_ids"]
            else:
                ids = self._model_tokenizer(text)["input_ids"]
            generated = self._generate([int(i) for i in ids])
            return str(self._model_tokenizer.decode(generated, skip_special_tokens=True))
        except SuspectError:
            raise
        except Exception as error:  # noqa: BLE001 - the tokenizer's own, of many kinds
            raise _failure(self._reference, "tokenization", error) from None

    def _generate(self, prompt: list[int]) -> list[int]:
        """The ids generated greedily after ``prompt``, at most ``length`` of them."""
        import torch

        inputs = torch.tensor([prompt], dtype=torch.int64, device=self._device)
        try:
            with torch.inference_mode():
                output = self._model.generate(
                    input_ids=inputs,
                    attention_mask=torch.ones_like(inputs),
                    max_new_tokens=self._length,
                    do_sample=False,
                )
        except Exception as error:  # noqa: BLE001 - any failure of the model is the suspect's
            raise _failure(self._reference, "generation", error) from None
        return [int(i) for i in output[0, len(prompt) :].tolist()]
