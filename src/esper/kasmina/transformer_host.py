"""TransformerHost: a small pre-norm GPT with a slot after every few layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esper.kasmina.host import SlotSpec
from esper.leyline import slot_id


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, C // n_head)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class TransformerBlock(nn.Module):
    """Pre-norm: x + attn(ln(x)), then x + mlp(ln(x)) with a 4x GELU MLP."""

    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TransformerHost(nn.Module):
    """A GPT over token ids (B, T) producing next-token logits (B, T, vocab_size).

    Slots sit after every `n_layer // n_segments` layers (ids r0c0 ... r0c{n_segments-1}); the
    output head shares its weight with the token embedding.

    Raises:
        ValueError: when n_embd is not divisible by n_head or n_layer by n_segments.
    """

    def __init__(
        self,
        vocab_size: int = 256,
        block_size: int = 64,
        n_layer: int = 2,
        n_head: int = 2,
        n_embd: int = 64,
        n_segments: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} must be divisible by n_head {n_head}")
        if n_segments < 1 or n_layer % n_segments:
            raise ValueError(f"n_layer {n_layer} must be a multiple of n_segments {n_segments}")
        self.block_size, self.n_embd, self.n_segments = block_size, n_embd, n_segments
        self.layers_per_segment = n_layer // n_segments
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerBlock(n_embd, n_head, dropout) for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (Press & Wolf, 2017)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def segments(self) -> list[SlotSpec]:
        return [
            SlotSpec(slot_id(0, i), self.n_embd, i, "transformer") for i in range(self.n_segments)
        ]

    def embed(self, idx: Tensor) -> Tensor:
        T = idx.shape[1]
        if self.block_size < T:
            raise ValueError(f"sequence length {T} exceeds block_size {self.block_size}")
        pos = torch.arange(T, device=idx.device)
        return self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)

    def forward_segment(self, index: int, x: Tensor) -> Tensor:
        if index == 0:
            x = self.embed(x)
        start = index * self.layers_per_segment
        for layer in self.layers[start : start + self.layers_per_segment]:
            x = layer(x)
        return x

    def head(self, x: Tensor) -> Tensor:
        return self.lm_head(self.ln_f(x))  # (B, T, vocab_size)

    def forward(self, idx: Tensor) -> Tensor:
        x = idx
        for i in range(self.n_segments):
            x = self.forward_segment(i, x)
        return self.head(x)
