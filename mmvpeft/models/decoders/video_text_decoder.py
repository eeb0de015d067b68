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
import contextlib
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from open_clip.transformer import LayerNorm as OpenCLIPLayerNorm
from open_clip.transformer import MultimodalTransformer, Transformer
from torch import nn

from mmvpeft.models.peft.block import PEFTBlock
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

    @torch.inference_mode()
    def generate(self, memory: torch.Tensor, memory_mask: torch.Tensor, max_len: int = 20,
                 beam_size: int = 1, length_penalty: float = 0.0, min_len: int = 0,
                 use_cache: Optional[bool] = None, return_scores: bool = False
                 ) -> Union[List[List[int]], Tuple[List[List[int]], List[float]]]:
        """Greedy (``beam_size=1``) or beam-search decoding.

        Args:
            memory, memory_mask: as :meth:`forward`, (B, S, W) and (B, S).
            max_len (int): most generated tokens per sequence, EOT included.
            beam_size (int): beams; 1 is greedy. The beams of all B items run as one batch.
            length_penalty (float): beam scores are sum(log p) / length ** length_penalty
                (0: plain sum).
            min_len (int): EOT is not allowed before this many words (0: any time).
            use_cache (bool, optional): decode word by word with a key/value cache
                (:class:`DecoderCache`; same tokens and scores, up to rounding). ``None``
                (default): use it whenever every PETL method of the decoder can run word by
                word (a bidirectional READ cannot); True: require it (the error names the
                method that prevents it); False: re-run the whole prefix at every step.
            return_scores (bool): also return the chosen sequences' scores (sum of log p,
                normalised by the length penalty for beams).

        Returns:
            list[list[int]]: B token lists, without SOT and EOT; with ``return_scores``, a
            tuple (token lists, B float scores).

        Raises:
            ValueError: ``1 + max_len`` exceeds the context length (the message names it),
                or ``use_cache=True`` with a method that cannot run word by word.
        """
        if max_len < 1:
            raise ValueError(f'max_len must be >= 1, got {max_len}')
        self.check_length(1 + max_len, f'max_len={max_len} (plus the start token)')
        blockers = self.cache_blockers()
        if use_cache and blockers:
            raise ValueError('use_cache=True, but the decoder cannot decode word by word: '
                             + '; '.join(blockers))
        if use_cache is None:
            use_cache = not blockers
        # Search runs over vocabulary rows; the step maps them back to CLIP ids.
        step = (DecoderCache(self, memory, memory_mask) if use_cache else
                self._step_fn(memory, memory_mask))
        sot, eot = (self.sot_token_id, self.eot_token_id) if self.vocab_ids is None else (
            self.sot_index, self.eot_index)
        start = torch.full((memory.shape[0], 1), sot, dtype=torch.long, device=memory.device)
        if beam_size == 1:
            rows, scores = greedy_search(step, start, eot, max_len, min_len=min_len,
                                         return_scores=True)
        else:
            rows, scores = beam_search(step, start, eot, max_len, beam_size, length_penalty,
                                       min_len=min_len, return_scores=True)
        if self.vocab_ids is not None:
            rows = [self.vocab_ids[torch.tensor(r, dtype=torch.long)].tolist() if r else []
                    for r in rows]
        return (rows, scores) if return_scores else rows

    def cache_blockers(self) -> List[str]:
        """Why the decoder cannot decode word by word with a key/value cache (empty: it can).

        A PETL handler at a site that sees the word layout (``pre_block``, ``attention``,
        ``attn_branch``, ``mlp_branch``) must say it can run on the newest words only
        (``incremental``: per-token adapters, a one-directional READ); handlers at the
        projection sites (LoRA) act per token by their signature.
        """
        out = []
        for i, block in enumerate(self.blocks()):
            if not isinstance(block, PEFTBlock):
                continue
            for site in ('pre_block', 'attention', 'attn_branch', 'mlp_branch'):
                for name, owner in zip(block.peft_sites.get(site, ()),
                                       block.peft_owners.get(site, ())):
                    if site == 'attention' or not getattr(getattr(block, name), 'incremental',
                                                          False):
                        out.append(f'{owner} ({name} at the {site} of self-attention block '
                                   f'{i}) needs the whole word sequence')
        return out

    def _step_fn(self, memory, memory_mask):
        def step(rows_seq: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
            mem, mask = (memory, memory_mask) if rows is None else (memory[rows],
                                                                    memory_mask[rows])
            tokens = self.to_token(rows_seq)
            return _log_softmax(self(tokens, mem, mask)[:, -1])
        return step


class DecoderCache:
    """Key/value cache of one :meth:`VideoTextDecoder.generate` call, used as its step.

    Cross-attention keys and values of the memory (video and text context) are projected
    once per batch item; every self-attention block keeps the keys and values of the words
    seen so far in a buffer sized for the whole context, written in place; PETL methods that
    recur over words (READ) keep their carried state in :attr:`states` (handed to the
    blocks as ``SequenceLayout.step_cache``). A call then runs the decoder on the newest
    words only, which gives what a full forward over the whole prefix gives at those
    positions (the self-attention is causal, READ one-directional).

    A step of a small decoder costs about as much in per-operation overhead as in
    arithmetic, so the step calls the blocks' weights directly (functional layer norm,
    linear and activation; no module call, no identity layer scale), runs one new word per
    prefix (every step of :meth:`VideoTextDecoder.generate`) on ``(N, W)`` rows without
    reshaping, keeps each block's keys and values in one buffer, and attends to the memory
    with three batched products on keys stored transposed. PETL blocks keep their handlers
    at every site.

    It follows the step protocol of :mod:`.generation`: ``cache(tokens (N, L), rows)``
    returns the (N, V) next-token log-probabilities; ``reorder(parents)`` gathers every
    cached tensor after beam search picked new beams.

    Args:
        decoder (VideoTextDecoder): the decoder (in eval mode, under ``no_grad``).
        memory (Tensor): (B, S, W) from :meth:`VideoTextDecoder.encode_memory`.
        memory_mask (Tensor): (B, S) bool, True at valid memory positions.
    """

    def __init__(self, decoder: 'VideoTextDecoder', memory: torch.Tensor,
                 memory_mask: torch.Tensor):
        self.dec = decoder
        dtype = decoder.token_embedding.weight.dtype
        memory = memory.to(dtype)
        bias = torch.zeros(memory_mask.shape, dtype=dtype, device=memory.device)
        self.bias = bias.masked_fill(~memory_mask.bool(), float('-inf'))  # (B, S) additive
        self.blocks = list(decoder.blocks())
        self.n_uni = len(decoder.text.resblocks) if decoder.text is not None else 0
        self.peft = [isinstance(b, PEFTBlock) for b in self.blocks]
        self.any_peft = any(self.peft)
        self.self_parts = [_BlockParts(b) for b in self.blocks]
        self.cross_parts = [_BlockParts(b) for b in decoder.decoder.cross_attn]
        self.cross = [self._cross_kv(p, memory) for p in self.cross_parts]
        self.text_ln = None if decoder.text is None else _norm_fn(decoder.text_ln)
        self.ln_final = _norm_fn(decoder.decoder.ln_final)
        self.positions = decoder.positional_embedding
        self.projection = decoder.decoder.text_projection
        self.embedding = (decoder.token_embedding.weight
                          if _plain_embedding(decoder.token_embedding) else None)
        # Per self-attention block: keys and values (N, context, 2 * W) (keys, then values;
        # head h in columns h*d:(h+1)*d of each), filled up to ``length`` (allocated at
        # the first call, when N is known).
        self.self_kv: List[Optional[torch.Tensor]] = [None] * len(self.blocks)
        self.states: dict = {}
        self.length = 0
        self._rows: Optional[torch.Tensor] = None
        self._rows_kv: Optional[list] = None

    # ---- step protocol -------------------------------------------------------------------
    def reorder(self, parents: torch.Tensor) -> None:
        """Row i of every cached tensor becomes row ``parents[i]`` of the previous step's.

        Args:
            parents (Tensor): (N,) int64 positions in the previous call's batch.
        """
        # A gathered copy (not a view): the next step writes its keys into the buffer.
        self.self_kv = [None if kv is None else kv.index_select(0, parents)
                        for kv in self.self_kv]
        self.states = {m: tuple(t[parents] for t in s) if isinstance(s, tuple) else s[parents]
                       for m, s in self.states.items()}

    def __call__(self, tokens: torch.Tensor, rows: Optional[torch.Tensor] = None
                 ) -> torch.Tensor:
        """Next-token log-probabilities after each prefix.

        Args:
            tokens (Tensor): (N, L) vocabulary rows, L > the positions already cached;
                only the new ones are read.
            rows (Tensor, optional): (N,) batch item of each prefix (None: prefix i is
                item i).

        Returns:
            Tensor: (N, V) float32 (or float64) log-probabilities.
        """
        dec = self.dec
        start, length = self.length, tokens.shape[1]
        if length <= start:
            raise ValueError(f'the cache holds {start} positions; a step needs at least '
                             f'one new token, got prefixes of length {length}')
        dec.check_length(length)
        if self.embedding is not None:
            x = F.embedding(tokens[:, start:], self.embedding)
        else:
            x = dec.token_embedding(tokens[:, start:])
        x = x + self.positions[start:length]
        one = length - start == 1  # one new word per prefix: (N, W) rows
        if one:
            x = x.view(x.shape[0], x.shape[2])
        layout = (SequenceLayout(batch_size=tokens.shape[0], step_cache=self.states)
                  if self.any_peft else None)
        cross_kv = self._cross_for(rows)
        n_uni = self.n_uni
        with (dec.run_blocks(layout) if layout is not None else contextlib.nullcontext()):
            for i, block in enumerate(self.blocks):
                if i == n_uni and self.text_ln is not None:
                    x = self.text_ln(x)
                if one and not self.peft[i]:
                    x = self._self_word(i, x)
                elif one:
                    x = self._self_block(i, block, x[:, None], layout)[:, 0]
                else:
                    x = self._self_block(i, block, x, layout)
                if i >= n_uni:
                    x = self._cross_block(self.cross_parts[i - n_uni], x, *cross_kv[i - n_uni])
        if n_uni == len(self.blocks) and self.text_ln is not None:  # no multimodal layer
            x = self.text_ln(x)
        self.length = length
        return _log_softmax(torch.mm(self.ln_final(x if one else x[:, -1]), self.projection))

    # ---- pieces --------------------------------------------------------------------------
    def _cross_kv(self, parts: '_BlockParts', memory: torch.Tensor):
        """Of the memory in one cross-attention block, per (batch item, head) pair: keys
        transposed (B*H, d, S), values (B*H, S, d), and the mask (B*H, 1, S)."""
        b, s, width = memory.shape
        heads = parts.heads
        d = width // heads
        w, bias = parts.in_w[width:], None if parts.in_b is None else parts.in_b[width:]
        kv = F.linear(parts.block.ln_1_kv(memory), w, bias).view(b, s, 2, heads, d)
        kt = kv[:, :, 0].permute(0, 2, 3, 1).reshape(b * heads, d, s)
        v = kv[:, :, 1].transpose(1, 2).reshape(b * heads, s, d)
        mask = self.bias[:, None, None].expand(b, heads, 1, s).reshape(b * heads, 1, s)
        return kt, v, mask

    def _cross_for(self, rows: Optional[torch.Tensor]) -> list:
        """The cross keys / values / mask gathered for the prefixes' batch items (the
        gather is kept while the rows stay the same, as during greedy decoding)."""
        if rows is None:
            return self.cross
        if self._rows is None or not torch.equal(self._rows, rows):
            self._rows = rows.clone()
            heads = self.cross_parts[0].heads if self.cross_parts else 1
            # Row r of the batch is rows r*H .. r*H + H - 1 of the per-head tensors.
            idx = (rows[:, None] * heads + torch.arange(heads, device=rows.device)).flatten()
            self._rows_kv = [tuple(t.index_select(0, idx) for t in kv) for kv in self.cross]
        return self._rows_kv

    def _cross_block(self, p: '_BlockParts', x: torch.Tensor, kt: torch.Tensor,
                     v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """open_clip's cross-attention ``ResidualAttentionBlock`` on the newest words:
        ``x`` (N, W) (one word each) or (N, n, W)."""
        q = F.linear(p.ln_1(x), p.q_w, p.q_b)
        if x.dim() == 2:  # (N*H, 1, d) queries
            q = q.view(kt.shape[0], 1, kt.shape[1])
        else:
            n, n_new, width = x.shape
            q = q.view(n, n_new, p.heads, -1).transpose(1, 2).reshape(kt.shape[0], n_new, -1)
        # softmax(q k / sqrt(d) + mask) v, per (prefix, head)
        o = torch.bmm(torch.baddbmm(bias, q, kt, alpha=p.scale).softmax(-1), v)
        if x.dim() == 2:
            o = o.view(x.shape)
        else:
            o = o.view(n, p.heads, n_new, -1).transpose(1, 2).reshape(x.shape)
        return p.out_and_mlp(x, o)

    def _buffer(self, i: int, n: int, like: torch.Tensor) -> torch.Tensor:
        kv = self.self_kv[i]
        if kv is None:  # room for the whole context, written in place
            kv = self.self_kv[i] = like.new_empty(n, self.dec.context_length,
                                                  like.shape[-1] // 3 * 2)
        return kv

    def _self_word(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """A plain causal self-attention block on one new word per prefix, ``x`` (N, W)."""
        p = self.self_parts[i]
        n, width = x.shape
        qkv = F.linear(p.ln_1(x), p.in_w, p.in_b)
        kv = self._buffer(i, n, qkv)
        end = self.length + 1
        kv.select(1, self.length).copy_(qkv[:, width:])
        k, v = p.split_kv(kv, end)
        q = qkv[:, :width].view(n, p.heads, 1, -1)
        o = F.scaled_dot_product_attention(q, k, v).view(n, width)
        return p.out_and_mlp(x, o)

    def _self_block(self, i: int, block: nn.Module, x: torch.Tensor,
                    layout: Optional[SequenceLayout]) -> torch.Tensor:
        """One causal self-attention block (plain or with PETL sites) on the newest words,
        ``x`` (N, n, W), writing their keys and values into the block's buffer."""
        p = self.self_parts[i]
        peft = self.peft[i]
        if peft:
            for m in block._handlers('pre_block'):
                x = m.pre_block(x, layout)
        h = p.ln_1(x)
        if peft and block.peft_sites.get('qkv'):
            qkv = torch.cat(block.project_qkv(h), dim=-1)
        else:
            qkv = F.linear(h, p.in_w, p.in_b)
        n, n_new, width = x.shape
        kv = self._buffer(i, n, qkv)
        start, end = self.length, self.length + n_new
        kv[:, start:end] = qkv[..., width:]
        k, v = p.split_kv(kv, end)
        q = qkv[..., :width].view(n, n_new, p.heads, -1).transpose(1, 2)
        mask = None
        if n_new > 1:  # new word j (position start + j) sees positions up to itself
            mask = torch.ones(n_new, end, dtype=torch.bool, device=x.device).tril(start)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        o = o.transpose(1, 2).reshape(n, n_new, width)
        a = (block.project_out(o) if peft and block.peft_sites.get('attn_out')
             else F.linear(o, p.out_w, p.out_b))
        if p.ls_1 is not None:
            a = p.ls_1(a)
        if peft:
            for m in block._handlers('attn_branch'):
                a = m.attn_branch(a, layout)
        x = x + a
        h = p.ln_2(x)
        m = (block.peft_mlp(h) if peft and (block.peft_sites.get('mlp_fc')
                                             or block.peft_sites.get('mlp_proj'))
             else p.mlp(h))
        if p.ls_2 is not None:
            m = p.ls_2(m)
        if peft:
            for handler in block._handlers('mlp_branch'):
                m = handler.mlp_branch(m, layout)
        return x + m


class _BlockParts:
    """The weights of one open_clip ``ResidualAttentionBlock`` as a cached decoding step
    calls them: functions for its norms and MLP, ``None`` for an identity layer scale."""

    def __init__(self, block: nn.Module):
        self.block = block
        attn = block.attn
        width, self.heads = attn.embed_dim, attn.num_heads
        self.in_w, self.in_b = attn.in_proj_weight, attn.in_proj_bias
        self.scale = (width // self.heads) ** -0.5  # of the attention logits
        self.q_w = self.in_w[:width]  # the query rows (cross-attention projects only them)
        self.q_b = None if self.in_b is None else self.in_b[:width]
        self.out_w, self.out_b = attn.out_proj.weight, attn.out_proj.bias
        self.ln_1, self.ln_2 = _norm_fn(block.ln_1), _norm_fn(block.ln_2)
        self.ls_1 = None if isinstance(block.ls_1, nn.Identity) else block.ls_1
        self.ls_2 = None if isinstance(block.ls_2, nn.Identity) else block.ls_2
        self.mlp = _mlp_fn(block.mlp)

    def split_kv(self, kv: torch.Tensor, end: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (N, H, end, d) of the first ``end`` positions of a block's
        (N, context, 2W) buffer."""
        n = kv.shape[0]
        return kv[:, :end].view(n, end, 2, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)

    def out_and_mlp(self, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """The rest of a plain block after attention: ``x + ls_1(out_proj(o))``, then
        ``+ ls_2(mlp(ln_2(.)))``; ``x`` and ``o`` of one shape, (..., W)."""
        a = F.linear(o, self.out_w, self.out_b)
        x = x + (a if self.ls_1 is None else self.ls_1(a))
        m = self.mlp(self.ln_2(x))
        return x + (m if self.ls_2 is None else self.ls_2(m))


def _plain_embedding(emb: nn.Module) -> bool:
    """Whether ``emb`` is an ``nn.Embedding`` whose forward is ``F.embedding(x, weight)``."""
    return (type(emb) is nn.Embedding and emb.max_norm is None
            and not emb.scale_grad_by_freq and not emb.sparse)


def _norm_fn(norm: nn.Module):
    """``norm`` as a function: a direct ``torch.layer_norm`` for torch's and open_clip's
    ``LayerNorm`` (which casts back to the input's dtype), else the module itself."""
    if type(norm) not in (nn.LayerNorm, OpenCLIPLayerNorm):
        return norm
    shape, weight, bias, eps = norm.normalized_shape, norm.weight, norm.bias, norm.eps
    cast_back = type(norm) is OpenCLIPLayerNorm

    def fn(x: torch.Tensor) -> torch.Tensor:
        y = torch.layer_norm(x, shape, weight, bias, eps)
        return y.to(x.dtype) if cast_back and y.dtype != x.dtype else y
    return fn


def _mlp_fn(mlp: nn.Module):
    """open_clip's MLP (``c_fc``, activation, ``c_proj``) as a function of plain
    ``F.linear`` calls and, for ``nn.GELU``, ``F.gelu``; else the module itself."""
    names = [name for name, _ in mlp.named_children()]
    if names != ['c_fc', 'gelu', 'c_proj'] or not all(
            type(mlp.get_submodule(n)) is nn.Linear for n in ('c_fc', 'c_proj')):
        return mlp
    fc, proj, act = mlp.c_fc, mlp.c_proj, mlp.gelu
    if type(act) is nn.GELU:
        approximate = act.approximate
        act = lambda z: F.gelu(z, approximate=approximate)  # noqa: E731

    def fn(h: torch.Tensor) -> torch.Tensor:
        return F.linear(act(F.linear(h, fc.weight, fc.bias)), proj.weight, proj.bias)
    return fn


def _log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities in float32 at least (bf16 / fp16 logits are upcast, float64 kept)."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(-1)


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
