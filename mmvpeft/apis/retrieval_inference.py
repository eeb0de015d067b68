"""Text-to-video search over a folder of videos with a trained retrieval model.

    from mmvpeft.apis import init_retriever
    retriever = init_retriever('configs/demo/retrieval_demo.py', 'work_dirs/retrieval_demo/'
                               'adapter_latest.safetensors')
    retriever.index(['a.mp4', 'b.mp4', ...])       # embeds each video once
    retriever.rank('a red circle moves to the right', top_k=5)
    # [{'video': 'b.mp4', 'score': 0.41}, ...], best first

Videos are decoded with the config's test pipeline and embedded with the model's own
``predict`` (as ``tools/test.py`` embeds them), so scores are the cosine similarities that
``RetrievalMetric`` ranks.
"""
import glob
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmcv.transforms import Compose
from mmengine.config import Config

from mmvpeft.datasets.collate import video_captions_collate
from mmvpeft.registry import TRANSFORMS
from .inference import _pipeline_cfg, build_model_for_inference

VIDEO_EXTS = ('.mp4', '.avi', '.mkv', '.mov', '.webm')


class RetrievalPredictor:
    """A built ``VideoTextRetriever`` with its test pipeline and a cache of video
    embeddings.

    Args:
        model: the retrieval model.
        cfg: its config (the test pipeline is read from it).
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
    """

    def __init__(self, model: torch.nn.Module, cfg: Config, device: str = 'cpu'):
        if not hasattr(model, 'temporal_pool'):
            raise TypeError(f'{type(model).__name__} is not a retrieval model (a config with '
                            'model.type="VideoTextRetriever" is needed)')
        self.model = model.to(device).eval()
        self.cfg, self.device = cfg, torch.device(device)
        self.pipeline = Compose([TRANSFORMS.build(s) for s in _pipeline_cfg(cfg)])
        self.videos: List[str] = []
        self.embeds: Optional[torch.Tensor] = None  # (num_videos, E)

    def _item(self, video: str, text: str, index: int) -> dict:
        if not osp.isfile(video):
            raise FileNotFoundError(f'video not found: {video}')
        return self.pipeline(dict(vid=osp.splitext(osp.basename(video))[0], video_path=video,
                                  video_index=index, captions=[text], caption_ids=[0]))

    @torch.no_grad()
    def _predict(self, items: List[dict]) -> List[dict]:
        batch = video_captions_collate(items)
        inputs = {k: v.to(self.device) for k, v in batch['inputs'].items()}
        return self.model(inputs, batch['data_samples'], mode='predict')

    def index(self, videos: Union[str, Sequence[str]], batch_size: int = 8) -> List[str]:
        """Embed ``videos`` (a list of files, or a folder: its files with a video
        extension, sorted); returns the indexed files."""
        if isinstance(videos, str):
            if not osp.isdir(videos):
                raise FileNotFoundError(f'video folder not found: {videos}')
            videos = sorted(p for p in glob.glob(osp.join(videos, '*'))
                            if p.lower().endswith(VIDEO_EXTS))
            if not videos:
                raise FileNotFoundError(f'no video files ({", ".join(VIDEO_EXTS)}) in the '
                                        'folder')
        videos = list(videos)
        embeds = []
        for lo in range(0, len(videos), batch_size):
            items = [self._item(v, 'a video', lo + i)
                     for i, v in enumerate(videos[lo:lo + batch_size])]
            embeds += [p['video_embed'].float().cpu() for p in self._predict(items)]
        self.videos, self.embeds = videos, torch.stack(embeds)
        return videos

    def rank(self, query: str, top_k: int = 5) -> List[Dict[str, Union[str, float]]]:
        """The ``top_k`` indexed videos for ``query``, best first (stable on ties):
        ``[{'video': path, 'score': cosine similarity}]``."""
        if self.embeds is None:
            raise RuntimeError('call index(videos) before rank(query)')
        if not isinstance(query, str) or not query.strip():
            raise ValueError('the query must be a non-empty str')
        # The text tower does not see the video: any indexed video carries the query.
        text = self._predict([self._item(self.videos[0], query.strip(), 0)])[0]
        scores = self.embeds @ text['text_embeds'].float().cpu().reshape(-1)
        order = torch.sort(scores, descending=True, stable=True).indices[:top_k].tolist()
        return [dict(video=self.videos[i], score=float(scores[i])) for i in order]


def init_retriever(config: Optional[Union[str, Config]] = None,
                   checkpoint: Optional[str] = None,
                   device: Optional[str] = None,
                   cfg_options: Optional[dict] = None,
                   allow_base_mismatch: bool = False) -> RetrievalPredictor:
    """Build a :class:`RetrievalPredictor`; arguments as
    :func:`~mmvpeft.apis.init_grounder`."""
    return RetrievalPredictor(*build_model_for_inference(config, checkpoint, device,
                                                         cfg_options, allow_base_mismatch))
