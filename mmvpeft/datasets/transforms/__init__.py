# Split as in mmaction2: loading (decode), processing (sample, resize, crop, layout), text
# (tokenizers), formatting (the data contract and the Pack* transforms).
# loading imports cv2 at module level and decord only when a video is read: decord exports an
# old zlib that breaks cv2's PNG reader if decord is loaded first.
from .formatting import (PackCaptionInputs, PackMomentInputs, PackQAInputs, PackRetrievalInputs,
                         to_tensor)
from .loading import (LoadClipFeatures, LoadFrameFolder, LoadFramesFromFolder, LoadTextFeatures,
                      LoadVideoClips, LoadVideoFrames, VideoReadError)
from .prefix_loading import LoadPrefixCache
from .processing import FormatVideo, VideoCenterCrop, VideoResize
from .text import CLIPTokenize, CLIPTokenizeChunks

__all__ = ['LoadClipFeatures', 'LoadTextFeatures', 'PackMomentInputs', 'CLIPTokenize',
           'FormatVideo', 'LoadFrameFolder', 'LoadVideoClips', 'VideoCenterCrop',
           'VideoReadError', 'VideoResize', 'LoadFramesFromFolder', 'LoadVideoFrames',
           'PackRetrievalInputs', 'CLIPTokenizeChunks', 'PackCaptionInputs', 'PackQAInputs',
           'LoadPrefixCache', 'to_tensor']
