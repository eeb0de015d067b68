"""Answer classifier of open-ended QA: fused video-question feature -> answer logits."""
from typing import Optional

import torch
from mmengine.model import BaseModule
from torch import nn

from mmvpeft.registry import MODELS


@MODELS.register_module()
class AnswerClassifierHead(BaseModule):
    """Two-layer MLP over the answer vocabulary (the VQA classifier: Linear, GELU,
    LayerNorm, Dropout, Linear), trained with cross-entropy.

    The head records which vocabulary its outputs index: ``vocab_digest`` (a persistent
    buffer, the sha256 of the answers in order) is saved with the trained weights, and
    loading weights trained with another vocabulary is an error, since output ``i`` would
    then name another answer.

    Args:
        in_dim: Input feature size.
        num_answers: Vocabulary size K.
        hidden_dim: Hidden size (default ``2 * in_dim``).
        dropout: Dropout before the output layer.
        vocab_digest: 32 bytes, :attr:`AnswerVocab.digest`; None records zeros (no check).
        label_smoothing: Of the cross-entropy.
    """

    def __init__(self, in_dim: int, num_answers: int, hidden_dim: Optional[int] = None,
                 dropout: float = 0.1, vocab_digest: Optional[bytes] = None,
                 label_smoothing: float = 0.0, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_answers < 1:
            raise ValueError(f'num_answers must be >= 1, got {num_answers}')
        hidden_dim = hidden_dim or 2 * in_dim
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(),
                                 nn.LayerNorm(hidden_dim), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, num_answers))
        self.num_answers = num_answers
        self.label_smoothing = label_smoothing
        digest = torch.zeros(32, dtype=torch.uint8) if vocab_digest is None else \
            torch.frombuffer(bytearray(vocab_digest), dtype=torch.uint8).clone()
        self.register_buffer('vocab_digest', digest)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, K) logits."""
        return self.mlp(feats)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the questions with ``labels >= 0``.

        Labels of -1 (answers outside the vocabulary) are ignored; a batch with none
        in the vocabulary gives 0 (with a graph), not NaN.

        Args:
            logits: (B, K).
            labels: (B,) int64 in [-1, K).
        """
        valid = labels >= 0
        per = nn.functional.cross_entropy(logits.float(), labels.clamp(min=0),
                                          reduction='none',
                                          label_smoothing=self.label_smoothing)
        return (per * valid).sum() / valid.sum().clamp(min=1)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        key = prefix + 'vocab_digest'
        if key in state_dict and bool(self.vocab_digest.any()):
            theirs = torch.as_tensor(state_dict[key]).to(torch.uint8).flatten()
            if theirs.any() and not torch.equal(theirs.cpu(), self.vocab_digest.cpu()):
                raise ValueError(
                    f'{key}: the checkpoint was trained with another answer vocabulary '
                    f'(sha256 {bytes(theirs.tolist()).hex()[:16]}... vs this model\'s '
                    f'{bytes(self.vocab_digest.tolist()).hex()[:16]}...); give the model the '
                    'answer_vocab (file, top_k, source) it was trained with')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
