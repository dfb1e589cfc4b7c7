"""The text side of a dual encoder, for either arm: pretrained all-MiniLM-L6-v2 or trained from scratch."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from ..data.text import TextTokenizer, read_iu_xray_reports
from ..networks.text_encoder import BertTextEncoder, default_pretrained_text_dir

__all__ = ["TEXT_ENCODER_KINDS", "build_tokenizer", "build_text_encoder"]

TEXT_ENCODER_KINDS = ("pretrained", "scratch")
logger = logging.getLogger(__name__)


def _check_kind(kind: str) -> None:
    if kind not in TEXT_ENCODER_KINDS:
        raise ValueError(f"text encoder kind must be one of {TEXT_ENCODER_KINDS}, got {kind!r}.")


def build_tokenizer(
    kind: str,
    tokenizer_path: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
    corpus: Iterable[str] = (),
    corpus_csv: str | os.PathLike | None = None,
    vocab_size: int = 4000,
) -> TextTokenizer:
    """The tokenizer of a text-encoder arm.

    - ``"pretrained"``: the ``tokenizer.json`` of ``model_dir`` (default all-MiniLM-L6-v2).
    - ``"scratch"``: ``tokenizer_path`` if it exists (a resumed or evaluated run must reuse the very file its model
      was trained with: WordPiece fitting is not deterministic), else a WordPiece fitted on ``corpus`` plus the
      reports of ``corpus_csv`` (IU X-ray) and saved to ``tokenizer_path``.

    Raises:
        ValueError: an unknown ``kind``, or ``"scratch"`` with neither a saved tokenizer nor a corpus.
    """
    _check_kind(kind)
    if kind == "pretrained":
        return TextTokenizer.from_file(Path(model_dir) if model_dir else default_pretrained_text_dir())
    if tokenizer_path is not None and Path(tokenizer_path).is_file():
        return TextTokenizer.from_file(tokenizer_path)
    texts = list(corpus)
    if corpus_csv:
        texts += read_iu_xray_reports(corpus_csv)
    if not texts:
        raise ValueError("a scratch tokenizer needs a corpus (captions and/or corpus_csv) or a saved tokenizer_path.")
    tok = TextTokenizer.fit(texts, vocab_size=vocab_size)
    if tokenizer_path is not None:
        tok.save(tokenizer_path)
        logger.info(f"fitted a {tok.vocab_size}-token WordPiece on {len(texts)} texts -> {tokenizer_path}")
    return tok


def build_text_encoder(
    kind: str,
    tokenizer: TextTokenizer,
    model_dir: str | os.PathLike | None = None,
    max_length: int = 128,
    hidden_size: int = 256,
    num_layers: int = 4,
    num_heads: int = 4,
    dropout: float = 0.1,
) -> BertTextEncoder:
    """The text encoder of an arm: pretrained weights from ``model_dir`` (default all-MiniLM-L6-v2), or a randomly
    initialised :class:`BertTextEncoder` of the given size for ``tokenizer``'s vocabulary, accepting ``max_length``
    tokens."""
    _check_kind(kind)
    if kind == "pretrained":
        net = BertTextEncoder.from_pretrained(model_dir, dropout=dropout)
        if net.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                f"tokenizer vocabulary ({tokenizer.vocab_size}) does not match the pretrained encoder's "
                f"({net.vocab_size}): use the tokenizer.json of {model_dir or 'all-MiniLM-L6-v2'}."
            )
        if max_length > net.max_position:
            raise ValueError(f"max_length {max_length} exceeds the encoder's {net.max_position} positions.")
        return net
    return BertTextEncoder(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        max_position=max_length,
        dropout=dropout,
        pad_id=tokenizer.pad_id,
    )
