"""A video-conditioned text decoder built from open_clip CoCa's components.

open_clip's CoCa captions an image with a ``MultimodalTransformer``: causal self-attention
blocks over the words, each followed by a cross-attention block over the image tokens, and a
projection to the vocabulary. :class:`VideoTextDecoder` uses that module (and, with CoCa
weights, the unimodal causal text blocks that feed it) with a *video* memory: the per-frame
tokens of a (PETL-adapted) CLIP image tower, plus a learned embedding of each frame's time,
optionally followed by encoded text context (a question, transcript chunks). Memory padding
is masked out of the cross-attention.

The decoder is a PETL tower like the CLIP towers (``tower_kind='text'``): ``peft=[...]``
attaches READ (recurrence over words: one-directional, hence causal), LoRA, ... to its
self-attention blocks (unimodal blocks first, then the multimodal ones; cross-attention
blocks take no method).
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from open_clip.transformer import MultimodalTransformer, Transformer
from torch import nn

from mmvpeft.models.peft.checkpoint import maybe_checkpoint
from mmvpeft.models.peft.layout import SequenceLayout
from mmvpeft.registry import MODELS
from mmvpeft.models.backbones.tower import PEFTTowerMixin
from .generation import beam_search, greedy_search

# open_clip's CLIP BPE tokenizer (also CoCa's): start / end of text, and padding.
SOT_TOKEN, EOT_TOKEN, PAD_TOKEN = 49406, 49407, 0


def _build_coca_parts(model_name: str, pretrained: Optional[str]) -> dict:
    """The text parts of an open_clip CoCa model (pretrained tag, local checkpoint, or
    ``None``: random weights of that architecture).

    Loading weights is not exercised offline: they come from the model hub or a file.
    """
    import open_clip
    from open_clip.coca_model import CoCa
    if open_clip.get_model_config(model_name) is None:
        raise ValueError(f'unknown open_clip model {model_name!r}; CoCa names are '
                         f'{[n for n in open_clip.list_models() if "coca" in n.lower()]}')
    try:
        model = open_clip.create_model(model_name, pretrained=pretrained)
    except Exception as e:  # open_clip wraps download failures
        raise RuntimeError(f'could not build {model_name!r} with pretrained={pretrained!r} '
                           '(a hub tag needs network access; pass a local checkpoint file '
                           f'instead). Cause: {e}') from e
    if not isinstance(model, CoCa):
        raise ValueError(f'{model_name!r} builds {type(model).__name__}, not a CoCa model; '
                         'VideoTextDecoder takes CoCa text decoders (e.g. coca_ViT-B-32)')
    text = model.text
    return dict(token_embedding=text.token_embedding,
                positional_embedding=text.positional_embedding,
                text=text.transformer, text_ln=text.ln_final, decoder=model.text_decoder,
                context_length=min(text.context_length, model.text_decoder.context_length))


@MODELS.register_module()
class VideoTextDecoder(PEFTTowerMixin, BaseModule):
    """Causal text decoder with cross-attention to video (and text-context) memory.

    Input words: ``token_embedding`` + ``positional_embedding``, then ``text`` (the
    unimodal causal blocks; CoCa's text tower, absent in a tiny model) and ``text_ln``, then
    the ``decoder`` (open_clip ``MultimodalTransformer``): per layer a causal self-attention
    block and a cross-attention block over the memory; logits come from its ``ln_final`` and
    ``text_projection`` (width -> vocabulary).

    Memory (:meth:`encode_memory`): video tokens (B, T, N, Dv) are projected to the decoder
    width and get a frame-time embedding (row t of ``frame_embedding``) and a type embedding;
    text context (B, S, Dt) is projected and gets the other type embedding. The memory
    projections and embeddings are always trained (they are new), also in a frozen decoder.

    Args:
        model_name (str): open_clip CoCa name, used with ``pretrained``.
        pretrained (str, optional): CoCa tag (e.g. ``'laion2b_s13b_b90k'``) or local
            checkpoint; its text tower and multimodal decoder are loaded (not testable
            offline). ``None`` with no ``model_cfg``: that CoCa architecture, random.
        model_cfg (dict, optional): a random decoder: ``width``, ``heads``, ``layers``
            (multimodal layers), ``vocab_size`` (49408, the CLIP tokenizer's),
            ``context_length``, ``text_layers`` (unimodal layers, default 0),
            ``mlp_ratio`` (4.0).
        memory_dims (dict): widths of the memory sources, ``video`` (required) and
            ``context`` (a text tower's width, when text context is used).
        max_frames (int): rows of the frame-time embedding.
        frozen (bool): freeze the pretrained decoder (PETL methods and the memory
            projections train); False trains all of it (the default for a random one).
        peft (list[dict], optional): PETL methods on the self-attention blocks.
        sot_token_id, eot_token_id, pad_token_id (int): special tokens (CLIP tokenizer).
        vocab_texts (list[str], optional): restrict the output vocabulary to the CLIP tokens
            of these texts (plus SOT, EOT and an unknown token), as captioning models often
            use the training captions' words. Inputs and outputs stay CLIP token ids; a
            pretrained decoder keeps the rows of those tokens. The logits then have
            ``len(vocab_ids)`` columns. None: the full vocabulary.
        grad_checkpointing (bool): recompute the activations of every self-attention block
            (with its PETL methods, exactly) and every cross-attention block in backward
            instead of keeping them; training (teacher-forced) forwards only, generation runs
            under ``no_grad`` and is unaffected. Defaults to False.
    """

    def __init__(self,
                 model_name: str = 'coca_ViT-B-32',
                 pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 memory_dims: Optional[Dict[str, int]] = None,
                 max_frames: int = 64,
                 frozen: bool = False,
                 peft: Optional[List[dict]] = None,
                 sot_token_id: int = SOT_TOKEN,
                 eot_token_id: int = EOT_TOKEN,
                 pad_token_id: int = PAD_TOKEN,
                 vocab_texts: Optional[Sequence[str]] = None,
                 grad_checkpointing: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if model_cfg is not None:
            cfg = dict(model_cfg)
            unknown = set(cfg) - {'width', 'heads', 'layers', 'vocab_size', 'context_length',
                                  'text_layers', 'mlp_ratio'}
            if unknown:
                raise ValueError(f'unknown VideoTextDecoder model_cfg keys {sorted(unknown)}')
            width, heads, layers = cfg['width'], cfg['heads'], cfg['layers']
            vocab, ctx = cfg.get('vocab_size', 49408), cfg.get('context_length', 77)
            full_vocab = vocab
            mlp_ratio, text_layers = cfg.get('mlp_ratio', 4.0), cfg.get('text_layers', 0)
            self.token_embedding = nn.Embedding(vocab, width)
            self.positional_embedding = nn.Parameter(torch.empty(ctx, width))
            nn.init.normal_(self.token_embedding.weight, std=0.02)
            nn.init.normal_(self.positional_embedding, std=0.01)
            self.text = Transformer(width, text_layers, heads, mlp_ratio) if text_layers else None
            self.text_ln = nn.LayerNorm(width) if text_layers else None
            self.decoder = MultimodalTransformer(width=width, layers=layers, heads=heads,
                                                 context_length=ctx, mlp_ratio=mlp_ratio,
                                                 output_dim=vocab)
            _init_multimodal(self.decoder)
            self.context_length = ctx
        else:
            parts = _build_coca_parts(model_name, pretrained)
            self.context_length = parts.pop('context_length')
            for name, module in parts.items():
                setattr(self, name, module)
            full_vocab = self.token_embedding.num_embeddings
        self.sot_token_id, self.eot_token_id = sot_token_id, eot_token_id
        self._restrict_vocab(vocab_texts, full_vocab)
        self.width = self.decoder.width
        self.num_heads = self.decoder.resblocks[0].attn.num_heads
        self.vocab_size = self.decoder.text_projection.shape[1]
        self.pad_token_id = pad_token_id

        dims = dict(memory_dims or {})
        if 'video' not in dims:
            raise ValueError('memory_dims needs "video" (the width of the video tokens)')
        self.memory_proj = nn.ModuleDict({k: nn.Linear(int(d), self.width)
                                          for k, d in dims.items()})
        self.memory_type = nn.ParameterDict({k: nn.Parameter(torch.zeros(self.width))
                                             for k in dims})
        self.frame_embedding = nn.Parameter(torch.empty(max_frames, self.width))
        nn.init.normal_(self.frame_embedding, std=0.02)
        self.max_frames = max_frames

        self.tower_kind = 'text'
        self.setup_peft(frozen, peft)
        self.set_grad_checkpointing(grad_checkpointing)
        for p in self.memory_parameters():
            p.requires_grad_(True)

    def _restrict_vocab(self, vocab_texts: Optional[Sequence[str]], full_vocab: int) -> None:
        """Keeps the embedding / projection rows of the tokens of ``vocab_texts``."""
        self.register_buffer('vocab_ids', None, persistent=False)
        self.register_buffer('vocab_lookup', None, persistent=False)
        if vocab_texts is None:
            return
        import open_clip
        tok = open_clip.get_tokenizer('ViT-B-32')
        ids = sorted({i for text in vocab_texts for i in tok.encode(text)}
                     | {self.sot_token_id, self.eot_token_id})
        if max(ids) >= full_vocab:
            raise ValueError(f'vocab_texts hold token id {max(ids)}, outside the decoder\'s '
                             f'{full_vocab}-token vocabulary')
        unk = len(ids)  # row of every token outside the kept vocabulary
        keep = torch.tensor(ids + [PAD_TOKEN])
        lookup = torch.full((full_vocab, ), unk, dtype=torch.long)
        lookup[keep[:-1]] = torch.arange(len(ids))
        self.vocab_ids, self.vocab_lookup = keep, lookup
        emb = nn.Embedding(len(keep), self.token_embedding.embedding_dim)
        emb.weight.data.copy_(self.token_embedding.weight.data[keep])
        self.token_embedding = emb
        self.decoder.text_projection = nn.Parameter(
            self.decoder.text_projection.data[:, keep].clone())
        self.sot_index, self.eot_index = int(lookup[self.sot_token_id]), int(
            lookup[self.eot_token_id])

    def to_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLIP token ids -> rows of the (possibly restricted) vocabulary."""
        return tokens if self.vocab_ids is None else self.vocab_lookup[tokens]

    def to_token(self, index: torch.Tensor) -> torch.Tensor:
        """Vocabulary rows -> CLIP token ids."""
        return index if self.vocab_ids is None else self.vocab_ids[index]

    def memory_parameters(self):
        yield from self.memory_proj.parameters()
        yield from self.memory_type.parameters()
        yield self.frame_embedding

    def blocks(self) -> nn.ModuleList:
        """The self-attention blocks: unimodal ones first, then the multimodal ones."""
        unimodal = list(self.text.resblocks) if self.text is not None else []
        return nn.ModuleList(unimodal + list(self.decoder.resblocks))

    # ---- memory ---------------------------------------------------------------------
    def encode_memory(self, video: torch.Tensor, video_mask: Optional[torch.Tensor] = None,
                      context: Optional[torch.Tensor] = None,
                      context_mask: Optional[torch.Tensor] = None):
        """Cross-attention memory from video tokens and optional text context.

        Args:
            video (Tensor): (B, T, N, Dv) N tokens per frame (or (B, T, Dv): one per frame).
            video_mask (Tensor, optional): (B, T) bool, True at valid frames.
            context (Tensor, optional): (B, S, Dt) encoded text context (question,
                transcript tokens).
            context_mask (Tensor, optional): (B, S) bool, True at valid context tokens.

        Returns:
            tuple: memory (B, T*N [+ S], W) and its mask (B, T*N [+ S]) bool.
        """
        if video.dim() == 3:
            video = video.unsqueeze(2)
        b, t, n, _ = video.shape
        if t > self.max_frames:
            raise ValueError(f'{t} frames exceed the frame-time embedding ({self.max_frames} '
                             'rows); raise max_frames')
        mem = self.memory_proj['video'](video) + self.memory_type['video']
        mem = (mem + self.frame_embedding[:t, None]).reshape(b, t * n, self.width)
        if video_mask is None:
            video_mask = torch.ones(b, t, dtype=torch.bool, device=video.device)
        mask = video_mask.bool().repeat_interleave(n, dim=1)
        if context is not None:
            if 'context' not in self.memory_proj:
                raise ValueError('text context given, but memory_dims has no "context" width')
            if context_mask is None:
                context_mask = torch.ones(context.shape[:2], dtype=torch.bool,
                                          device=context.device)
            ctx = self.memory_proj['context'](context) + self.memory_type['context']
            mem = torch.cat([mem, ctx.to(mem.dtype)], dim=1)
            mask = torch.cat([mask, context_mask.bool()], dim=1)
        return mem, mask

    # ---- decoding -------------------------------------------------------------------
    def check_length(self, length: int, what: str = 'the token sequence') -> None:
        if length > self.context_length:
            raise ValueError(f'{what} needs {length} positions, more than the decoder\'s '
                             f'context length {self.context_length}')

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor,
                token_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Next-token logits.

        Args:
            tokens (Tensor): (B, L) int64, starting with SOT, right-padded.
            memory (Tensor): (B, S, W) from :meth:`encode_memory`.
            memory_mask (Tensor): (B, S) bool, True at valid memory positions.
            token_mask (Tensor, optional): (B, L) bool, True at valid tokens (the causal
                mask already keeps later padding out of earlier tokens; methods such as
                READ also read it).

        Returns:
            Tensor: (B, L, V) logits over the vocabulary rows (:meth:`to_token` maps a
            row to its CLIP id); row t predicts token t + 1.
        """
        b, length = tokens.shape
        self.check_length(length)
        if token_mask is None:
            token_mask = torch.ones_like(tokens, dtype=torch.bool)
        x = self.token_embedding(self.to_index(tokens)) + self.positional_embedding[:length]
        causal = self.decoder.attn_mask[:length, :length]
        # Additive (B * heads, L, S) mask: padded memory gets -inf.
        cross = torch.zeros(memory_mask.shape, dtype=x.dtype, device=x.device)
        cross = cross.masked_fill(~memory_mask.bool(), float('-inf'))
        cross = cross[:, None, None].expand(b, self.num_heads, length, -1)
        cross = cross.reshape(b * self.num_heads, length, -1)
        memory = memory.to(x.dtype)
        with self.run_blocks(SequenceLayout(batch_size=b, mask=token_mask.bool())):
            if self.text is not None:
                x = self.text_ln(self.text(x, attn_mask=causal))
            for block, cross_block in zip(self.decoder.resblocks, self.decoder.cross_attn):
                x = block(x, attn_mask=causal)
                # Self-attention blocks checkpoint themselves (set_grad_checkpointing).
                x = maybe_checkpoint(self.grad_checkpointing, cross_block, x, memory, memory,
                                     cross)
        return self.decoder.ln_final(x) @ self.decoder.text_projection

    def loss(self, tokens: torch.Tensor, token_mask: torch.Tensor, memory: torch.Tensor,
             memory_mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy, averaged over the valid target tokens.

        Args:
            tokens (Tensor): (B, L) target sequences, SOT ... EOT, right-padded.
            token_mask (Tensor): (B, L) bool, True up to and including EOT.
            memory, memory_mask: as :meth:`forward`.

        Returns:
            Tensor: scalar; padding contributes nothing (neither as input nor target).
        """
        logits = self(tokens[:, :-1], memory, memory_mask, token_mask[:, :-1])
        target = self.to_index(tokens[:, 1:]).masked_fill(~token_mask[:, 1:].bool(), -100)
        if not (target != -100).any():
            raise ValueError('no target token: every sequence is empty (SOT only)')
        return F.cross_entropy(logits.float().flatten(0, 1), target.flatten(),
                               ignore_index=-100)

    @torch.no_grad()
    def generate(self, memory: torch.Tensor, memory_mask: torch.Tensor, max_len: int = 20,
                 beam_size: int = 1, length_penalty: float = 0.0) -> List[List[int]]:
        """Greedy (``beam_size=1``) or beam-search decoding.

        Args:
            memory, memory_mask: as :meth:`forward`, (B, S, W) and (B, S).
            max_len (int): most generated tokens per sequence, EOT included.
            beam_size (int): beams; 1 is greedy.
            length_penalty (float): beam scores are sum(log p) / length ** length_penalty
                (0: plain sum).

        Returns:
            list[list[int]]: B token lists, without SOT and EOT.

        Raises:
            ValueError: ``1 + max_len`` exceeds the context length (the message names it).
        """
        if max_len < 1:
            raise ValueError(f'max_len must be >= 1, got {max_len}')
        self.check_length(1 + max_len, f'max_len={max_len} (plus the start token)')
        # Search runs over vocabulary rows; the step maps them back to CLIP ids.
        step = self._step_fn(memory, memory_mask)
        sot, eot = (self.sot_token_id, self.eot_token_id) if self.vocab_ids is None else (
            self.sot_index, self.eot_index)
        start = torch.full((memory.shape[0], 1), sot, dtype=torch.long, device=memory.device)
        if beam_size == 1:
            rows = greedy_search(step, start, eot, max_len)
        else:
            rows = beam_search(step, start, eot, max_len, beam_size, length_penalty)
        if self.vocab_ids is None:
            return rows
        return [self.vocab_ids[torch.tensor(r, dtype=torch.long)].tolist() if r else []
                for r in rows]

    def _step_fn(self, memory, memory_mask):
        def step(rows_seq: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
            mem, mask = (memory, memory_mask) if rows is None else (memory[rows],
                                                                    memory_mask[rows])
            tokens = self.to_token(rows_seq)
            return self(tokens, mem, mask)[:, -1].float().log_softmax(-1)
        return step


def _init_multimodal(decoder: MultimodalTransformer) -> None:
    """open_clip's ``MultimodalTransformer.init_parameters`` (which reads attributes the
    module does not have in open_clip 3.x), on the module's own fields."""
    proj_std = (decoder.width ** -0.5) * ((2 * decoder.layers) ** -0.5)
    attn_std, fc_std = decoder.width ** -0.5, (2 * decoder.width) ** -0.5
    for block in list(decoder.resblocks) + list(decoder.cross_attn):
        nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
        nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
        nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
        nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
    nn.init.normal_(decoder.text_projection, std=decoder.width ** -0.5)


def decode_tokens(tokenizer, sequences: Sequence[Sequence[int]]) -> List[str]:
    """CLIP token ids (without SOT/EOT) -> cleaned text."""
    out = []
    for seq in sequences:
        text = tokenizer.decode([int(t) for t in seq]) if len(seq) else ''
        out.append(' '.join(text.replace('<start_of_text>', ' ')
                            .replace('<end_of_text>', ' ').split()))
    return out
