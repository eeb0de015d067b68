"""Video (+ optional text context) -> text: captioning, and How2-style summarization."""
from typing import List, Optional, Tuple

import open_clip
import torch

from mmvpeft.models.decoders.video_text_decoder import decode_tokens
from mmvpeft.registry import MODELS
from mmvpeft.utils.fingerprint import base_source
from .base import VideoLanguageModel


def pack_valid(x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Moves the valid positions of each row to the front (order kept): right-padded output.

    Args:
        x (Tensor): (B, S, D).
        mask (Tensor): (B, S) bool, True at valid positions (any pattern, e.g. the
            concatenated chunks of a transcript, each right-padded).

    Returns:
        tuple: (B, S', D) and its (B, S') right-padded mask, S' = the most valid positions.
    """
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
    keep = max(int(mask.sum(1).max()), 1)
    order = order[:, :keep]
    packed = torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[-1]))
    return packed, torch.gather(mask, 1, order)


@MODELS.register_module()
class VideoCaptioner(VideoLanguageModel):
    """Generates text from a video and, optionally, a text context.

    Frames go through the (PEFT-adapted) CLIP image tower; their tokens over time are the
    memory of a :class:`~mmvpeft.models.decoders.VideoTextDecoder`. With a ``text_backbone``
    and ``context_tokens`` in the inputs (a question; or a transcript cut into chunks of the
    text tower's context length), the context is encoded by the CLIP text tower and appended
    to the memory. Summarization (How2) is this model with a transcript context.

    ``inputs`` (``video_captions_collate``): ``imgs (B, T, K, 3, H, W)``, ``video_mask (B, T)``;
    ``text_tokens (B, L)`` / ``text_mask`` the target text (training: one caption per
    video); optional ``context_tokens (B, C, Lc)`` / ``context_mask (B, C, Lc)``.

    Losses: ``loss_caption`` (teacher-forced cross-entropy, padding ignored); with
    ``pvla_loss``, ``loss_pvla`` between the video tower's and the text tower's READ states
    (over the context words; both towers need READ).

    Args:
        video_backbone (dict): ``CLIPVisionBackbone``.
        decoder (dict): ``VideoTextDecoder``; its ``memory_dims`` are filled in from the
            towers when absent.
        text_backbone (dict, optional): ``CLIPTextBackbone`` for text context.
        memory (str): ``'patches'`` (every frame's patch tokens, T*P memory tokens) or
            ``'frames'`` (one projected CLIP embedding per frame, T tokens).
        generation (dict): ``max_len`` (20), ``beam_size`` (1 = greedy),
            ``length_penalty`` (0), ``min_len`` (0), ``use_cache`` (None: the decoder's
            key/value cache whenever its PETL methods allow; see
            :meth:`VideoTextDecoder.generate`).
        tokenizer (str): open_clip model whose tokenizer decodes generated ids.
        pred_key (str): the data-sample key of the generated text: ``'pred_text'``
            (captions, summaries; read by ``CaptionMetric``) or ``'pred_answer'`` (QA as
            generation, read by ``QAAccuracyMetric`` and ``QAAnswerDumper``).
        pvla_loss, **kwargs: :class:`VideoLanguageModel` options.
    """

    MEMORY_MODES = ('patches', 'frames')
    # what ``tools/test.py --dump`` writes for this task
    dump_metric = 'PredictionDumper'

    def __init__(self,
                 video_backbone: dict,
                 decoder: dict,
                 text_backbone: Optional[dict] = None,
                 memory: str = 'patches',
                 generation: Optional[dict] = None,
                 tokenizer: str = 'ViT-B-32',
                 pred_key: str = 'pred_text',
                 pvla_loss: Optional[dict] = None,
                 **kwargs):
        if memory not in self.MEMORY_MODES:
            raise ValueError(f'memory must be one of {self.MEMORY_MODES}, got {memory!r}')
        super().__init__(video_backbone=video_backbone, text_backbone=text_backbone,
                         pvla_loss=pvla_loss, **kwargs)
        decoder = dict(decoder)
        dims = dict(decoder.get('memory_dims') or {})
        vt = self.video_backbone
        dims.setdefault('video', vt.width if memory == 'patches' else vt.embed_dim)
        if self.text_backbone is not None:
            dims.setdefault('context', self.text_backbone.width)
        decoder['memory_dims'] = dims
        self.decoder = MODELS.build(decoder)
        self.base_sources['decoder'] = base_source(decoder)
        self.memory = memory
        self.generation = dict(dict(max_len=20, beam_size=1, length_penalty=0.0),
                               **(generation or {}))
        unknown = set(self.generation) - {'max_len', 'beam_size', 'length_penalty', 'min_len',
                                          'use_cache'}
        if unknown:
            raise ValueError(f'unknown generation options {sorted(unknown)}')
        self.decoder.check_length(1 + self.generation['max_len'],
                                  f'generation max_len={self.generation["max_len"]} (plus the '
                                  'start token)')
        self.tokenizer_name = tokenizer
        self.pred_key = pred_key
        self._tokenizer = None

    @property
    def task_loss_keys(self) -> Tuple[str, ...]:
        return ('loss_caption', )

    def towers(self) -> List[torch.nn.Module]:
        return super().towers() + [self.decoder]

    # ---- memory -----------------------------------------------------------------------
    def encode_context(self, inputs: dict) -> Optional[dict]:
        """``context_tokens`` (B, C, L) chunks through the text tower, valid tokens packed.

        Returns:
            dict | None: ``feats`` (B, S, W), ``mask`` (B, S) right-padded, ``read_states``
            (B, S, r) or None; None without context.
        """
        tokens = inputs.get('context_tokens')
        if tokens is None:
            return None
        if self.text_backbone is None:
            raise KeyError('inputs has "context_tokens" but the model has no text_backbone '
                           'to encode them')
        mask = inputs['context_mask'].bool()
        if tokens.dim() == 2:
            tokens, mask = tokens[:, None], mask[:, None]
        b, c, length = tokens.shape
        flat_mask = mask.reshape(b * c, length)
        rows = flat_mask.any(1)  # chunks that hold text (the text tower refuses empty ones)
        if not bool(mask[:, 0].any(1).all()):
            raise ValueError('every item needs a non-empty first context chunk')
        out = self.text_backbone(tokens.reshape(b * c, length)[rows], flat_mask[rows])
        feats = out['feats'].new_zeros(b * c, length, out['feats'].shape[-1])
        feats[rows] = out['feats']
        packed, packed_mask = pack_valid(feats.reshape(b, c * length, -1),
                                         mask.reshape(b, c * length))
        states = out['aux'].get('read_states')
        if states is not None:
            full = states.new_zeros(b * c, length, states.shape[-1])
            full[rows] = states
            states, _ = pack_valid(full.reshape(b, c * length, -1), mask.reshape(b, c * length))
        return dict(feats=packed, mask=packed_mask, read_states=states)

    def encode(self, inputs: dict) -> dict:
        """Video tower (+ text tower) -> decoder memory.

        Returns:
            dict: ``memory`` (B, S, W), ``memory_mask`` (B, S), ``video_aux``, ``context``.
        """
        video_mask = inputs.get('video_mask')
        if 'video_prefix' in inputs:  # frozen-prefix cache: states entering block k
            out = self.video_backbone(None, video_mask, prefix_states=inputs['video_prefix'],
                                      return_tokens=self.memory == 'patches')
        elif 'imgs' in inputs:
            out = self.video_backbone(inputs['imgs'], video_mask,
                                      return_tokens=self.memory == 'patches')
        else:
            raise KeyError('VideoCaptioner needs "imgs" (raw frames) or "video_prefix" (a '
                           f'frozen-prefix cache), got {sorted(inputs)}')
        if self.memory == 'patches':
            tokens = out['tokens']  # (B, T, K, P, W): K frames of a clip are K times
            b, t, k = tokens.shape[:3]
            video = tokens.reshape(b, t * k, *tokens.shape[3:])
            if video_mask is not None:
                video_mask = video_mask.bool().repeat_interleave(k, dim=1)
        else:
            video = out['feats']
        context = self.encode_context(inputs)
        memory, memory_mask = self.decoder.encode_memory(
            video, video_mask, None if context is None else context['feats'],
            None if context is None else context['mask'])
        return dict(memory=memory, memory_mask=memory_mask, video_aux=out.get('aux', {}),
                    context=context)

    # ---- MMEngine entry -----------------------------------------------------------------
    def forward(self, inputs: dict, data_samples: Optional[List[dict]] = None,
                mode: str = 'tensor'):
        """``mode``: ``'loss'`` (teacher forcing), ``'predict'`` (generation into the data
        samples as ``pred_key``) or ``'tensor'`` (logits of ``text_tokens``)."""
        if mode not in ('loss', 'predict', 'tensor'):
            raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')
        enc = self.encode(inputs)
        if mode == 'predict':
            seqs = self.decoder.generate(enc['memory'], enc['memory_mask'], **self.generation)
            texts = decode_tokens(self.tokenizer, seqs)
            return [dict(sample, **{self.pred_key: text}, pred_tokens=seq)
                    for sample, text, seq in zip(data_samples, texts, seqs)]
        tokens, mask = self._targets(inputs)
        if mode == 'tensor':
            return self.decoder(tokens, enc['memory'], enc['memory_mask'], mask)
        losses = dict(loss_caption=self.decoder.loss(tokens, mask, enc['memory'],
                                                     enc['memory_mask']))
        if self.pvla_loss is not None:
            ctx = enc['context']
            losses['loss_pvla'] = self.pvla(
                enc['video_aux'].get('read_states'), None if ctx is None else ctx['read_states'],
                inputs['video_mask'], None if ctx is None else ctx['mask'])
        return losses

    def _targets(self, inputs: dict) -> Tuple[torch.Tensor, torch.Tensor]:
        if 'text_tokens' not in inputs:
            raise KeyError('training needs the target text as "text_tokens"/"text_mask"')
        tokens, mask = inputs['text_tokens'], inputs['text_mask'].bool()
        videos = len(inputs['imgs'] if 'imgs' in inputs else inputs['video_prefix'])
        if tokens.shape[0] != videos:
            raise ValueError(f'{tokens.shape[0]} target texts for {videos} '
                             'videos; training items are (video, one caption) pairs')
        return tokens, mask

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = open_clip.get_tokenizer(self.tokenizer_name)
        return self._tokenizer
