# video_loading imports cv2 at module level and decord only when a video is read: decord
# exports an old zlib that breaks cv2's PNG reader if decord is loaded first.
from .caption_formatting import CLIPTokenizeChunks, PackCaptionInputs
from .feature_loading import LoadClipFeatures, LoadTextFeatures
from .formatting import PackMomentInputs
from .prefix_loading import LoadPrefixCache
from .frame_sampling import LoadFramesFromFolder, LoadVideoFrames
from .qa_formatting import PackQAInputs
from .retrieval_formatting import PackRetrievalInputs
from .tokenize import CLIPTokenize
from .video_loading import (FormatVideo, LoadFrameFolder, LoadVideoClips, VideoCenterCrop,
                            VideoReadError, VideoResize)

__all__ = ['LoadClipFeatures', 'LoadTextFeatures', 'PackMomentInputs', 'CLIPTokenize',
           'FormatVideo', 'LoadFrameFolder', 'LoadVideoClips', 'VideoCenterCrop',
           'VideoReadError', 'VideoResize', 'LoadFramesFromFolder', 'LoadVideoFrames',
           'PackRetrievalInputs', 'CLIPTokenizeChunks', 'PackCaptionInputs', 'PackQAInputs',
           'LoadPrefixCache']
