"""Input checks of the task models that name the feature file and the config key."""
from typing import List, Optional


def check_feature_widths(encoder, inputs: dict, data_samples: Optional[List[dict]]) -> None:
    """Pre-extracted features must be as wide as the encoder expects.

    Args:
        encoder: the task's encoder, with ``video_dim`` / ``text_dim`` attributes.
        inputs: ``video_feat (B, T, Dv)`` and / or ``text_feat (B, L, Dt)``.
        data_samples: the batch's meta dicts (``qid``, ``video_feat_files``,
            ``text_feat_file``), to name a file.

    Raises:
        ValueError: naming the width, a file of the batch and ``model.encoder.{key}``.
    """
    for key, attr, file_key in (('video_feat', 'video_dim', 'video_feat_files'),
                                ('text_feat', 'text_dim', 'text_feat_file')):
        x, want = inputs.get(key), getattr(encoder, attr, None)
        if x is None or want is None or x.shape[-1] == want:
            continue
        sample = (data_samples or [{}])[0] or {}
        files = sample.get(file_key)
        files = ', '.join(files) if isinstance(files, (list, tuple)) else files
        raise ValueError(f'{key} is {x.shape[-1]} wide (qid={sample.get("qid")!r}, file '
                         f'{files}), but model.encoder.{attr}={want}: expected (T, {want}). '
                         f'Set model.encoder.{attr}={x.shape[-1]} or use features of width '
                         f'{want}')
