"""``--show-dir`` pictures for captioning and summarization: the frames the model saw, the
generated text and the references."""
from typing import List, Tuple

import numpy as np

from mmvpeft.registry import METRICS
from .drawing import GREY, TEXT, ShowMetric, frame_strip, place, safe_name, stack, text_block


@METRICS.register_module()
class CaptionVisualizer(ShowMetric):
    """One PNG per video, ``caption_{k}_{vid}.png``: a frame strip, the generated text
    (``pred_key``) and up to ``max_refs`` references (``ref_key``).

    Args:
        out_dir, show_num: see :class:`~mmvpeft.visualization.drawing.ShowMetric`.
        pred_key: data-sample key of the generated text (``pred_text``).
        ref_key: data-sample key of the references (a str or a list of str).
        max_refs: references listed.
    """

    def __init__(self, out_dir: str, show_num: int = 20, pred_key: str = 'pred_text',
                 ref_key: str = 'captions', max_refs: int = 5, **kwargs) -> None:
        super().__init__(out_dir, show_num, **kwargs)
        self.pred_key, self.ref_key, self.max_refs = pred_key, ref_key, int(max_refs)
        self.required = ('vid', pred_key)

    def record(self, sample: dict) -> dict:
        refs = sample.get(self.ref_key)
        refs = [refs] if isinstance(refs, str) else list(refs or [])
        return dict(vid=sample['vid'], pred=str(sample[self.pred_key]), refs=refs,
                    video_path=sample.get('video_path'), frame_inds=sample.get('frame_inds'))

    def draw(self, results: List[dict]) -> List[Tuple[str, np.ndarray]]:
        out = []
        for k, r in enumerate(results[:self.show_num]):
            lines = [(f'video {r["vid"]}', GREY), (f'generated: {r["pred"]}', TEXT)]
            refs = r['refs'][:self.max_refs]
            lines += [(f'references ({len(r["refs"])}):' if refs else 'references: none',
                       GREY)]
            lines += [(f'  {i + 1}. {ref}', TEXT) for i, ref in enumerate(refs)]
            img = stack([place(frame_strip(r['video_path'], frame_inds=r['frame_inds'])),
                         text_block(lines)])
            out.append((f'caption_{k:03d}_{safe_name(r["vid"])}.png', img))
        return out
