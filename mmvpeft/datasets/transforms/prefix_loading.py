"""Load frozen-prefix states (``tools/build_prefix_cache.py``) instead of decoding a video or
tokenising a query; see :mod:`mmvpeft.models.backbones.prefix_cache`."""
import os.path as osp
from typing import Dict, List, Optional

import numpy as np
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS


def _cache_api():
    # Imported on use: mmvpeft.models imports the datasets (video QA's answer vocabulary),
    # so a module-level import here would be circular.
    from mmvpeft.models.backbones import prefix_cache
    return prefix_cache


def prefix_file(cache_dir: str, kind: str, results: Dict) -> str:
    """Path of the cache file of a sample: ``{vid}.npz`` (video) or ``qid{qid}.npz`` (text)."""
    name = str(results['vid']) if kind == 'video' else f'qid{results["qid"]}'
    return osp.join(cache_dir, name + '.npz')


@TRANSFORMS.register_module()
class LoadPrefixCache(BaseTransform):
    """Load the cached states entering the first adapted block of a frozen tower.

    Video: adds ``video_prefix`` ``(T, K, N, D)`` (in the cache's dtype; the tower casts) and
    ``num_clips`` / ``clip_len_eff`` as ``LoadVideoClips`` would. Text: adds ``text_prefix``
    ``(L, W)``, valid tokens only (the collate pads and masks them).

    Args:
        cache_dir (str): the cache folder of one tower (``CACHE/video`` or ``CACHE/text``).
        kind (str): ``'video'`` or ``'text'``.
        sampling (list[dict], optional): video: the transforms the cache replaces (frame
            sampling, resize, crop); checked against the cache's ``meta.json``.
        tokenizer (dict, optional): text: the ``CLIPTokenize`` config it replaces; checked.

    Raises:
        PrefixCacheError: the cache was built with other sampling / tokenizer settings, or a
            sample's file is missing (the message names it and the qid).
    """

    def __init__(self, cache_dir: str, kind: str = 'video',
                 sampling: Optional[List[dict]] = None, tokenizer: Optional[dict] = None):
        if kind not in ('video', 'text'):
            raise ValueError(f"kind must be 'video' or 'text', got {kind!r}")
        self.cache_dir, self.kind = cache_dir, kind
        api = _cache_api()
        meta = api.read_meta(cache_dir)
        expected = dict(tower='vision' if kind == 'video' else 'text', sampling=sampling,
                        tokenizer=tokenizer)
        fields = ('tower', 'sampling') if kind == 'video' else ('tower', 'tokenizer')
        api.check_meta(meta, expected, fields, cache_dir)

    def transform(self, results: Dict) -> Dict:
        path = prefix_file(self.cache_dir, self.kind, results)
        if not osp.isfile(path):
            raise _cache_api().PrefixCacheError(
                f'prefix cache file {path} not found (qid={results.get("qid")!r}, '
                f'vid={results.get("vid")!r}): the cache was built for other annotations or '
                'is incomplete; rerun tools/build_prefix_cache.py (it resumes)')
        with np.load(path) as data:
            states = data['states']
            if self.kind == 'video':
                results['video_prefix'] = states
                results['num_clips'] = int(states.shape[0])
                results['clip_len_eff'] = float(data['clip_len_eff'])
            else:
                results['text_prefix'] = states
        return results

    def __repr__(self):
        return f'{self.__class__.__name__}(cache_dir={self.cache_dir!r}, kind={self.kind!r})'
