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
- :func:`save_model`: the model and tokenizer as one folder.

The standard library differs between Python versions, so the tokenizer
and models do too; every figure is measured with the one that made it.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path
from typing import Any

from secmark.errors import EncodingError

__all__ = [
    "CHAT_TEMPLATE",
    "CONFIG",
    "SPECIAL_TOKENS",
    "TEXT_FILES",
    "VOCAB_SIZE",
    "new_model",
    "save_model",
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
    wrapped = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
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
