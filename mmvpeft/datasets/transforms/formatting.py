"""Pack a loaded sample into ``dict(inputs=..., data_samples=...)`` for the grounding model."""
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS

# Arrays the model consumes; everything else listed in meta_keys travels as metadata.
INPUT_KEYS = ('video_feat', 'imgs', 'video_prefix', 'text_feat', 'text_tokens', 'text_mask',
              'text_prefix')


@TRANSFORMS.register_module()
class PackMomentInputs(BaseTransform):
    """Split a sample into model inputs (tensors) and metadata.

    ``inputs`` gets whichever of ``video_feat (T, Dv)``, ``imgs (T, K, 3, H, W)``,
    ``text_feat (L, Dt)``, ``text_tokens (L,)``, ``text_mask (L,)`` are present.
    ``data_samples`` is a plain dict with the meta keys, ``gt_windows`` as ``(K, 2)`` seconds,
    and ``clip_len`` set to the seconds one input row stands for (after any subsampling).
    """

    def __init__(self, meta_keys=('qid', 'query', 'vid', 'duration', 'gt_windows',
                                  'saliency_scores', 'relevant_clip_ids', 'video_path',
                                  'clip_labels', 'label_windows', 'domain', 'video_feat_files',
                                  'text_feat_file')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        inputs = {}
        for key in INPUT_KEYS:
            if key in results:
                value = results[key]
                inputs[key] = value if isinstance(value, torch.Tensor) else torch.from_numpy(
                    np.ascontiguousarray(value))
        if not any(k in inputs for k in ('video_feat', 'imgs', 'video_prefix')):
            raise KeyError('PackMomentInputs: no video input; the pipeline must add '
                           '"video_feat" (LoadClipFeatures) or "imgs" (LoadVideoClips)')
        if not any(k in inputs for k in ('text_feat', 'text_tokens', 'text_prefix')):
            raise KeyError('PackMomentInputs: no text input; the pipeline must add '
                           '"text_feat" (LoadTextFeatures) or "text_tokens" (CLIPTokenize)')
        meta = {k: results[k] for k in self.meta_keys if k in results}
        meta['clip_len'] = float(results.get('clip_len_eff', results.get('clip_len')))
        video = next(inputs[k] for k in ('video_feat', 'imgs', 'video_prefix') if k in inputs)
        meta['num_clips'] = int(len(video))
        return dict(inputs=inputs, data_samples=meta)

    def __repr__(self):
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
