"""A small web demo (Gradio, an optional extra: pip install -e ".[demo]"): upload a video,
type a query, see the timeline and the ranked windows.

    python tools/web_demo.py --config CONFIG --checkpoint CKPT [--port 7860] [--share]
"""
import argparse
import os.path as osp
import tempfile

import cv2
import numpy as np

from mmvpeft.apis import init_grounder
from mmvpeft.apis.inference import check_query
from mmvpeft.visualization import draw_timeline, read_thumbnails


def answer(grounder, video, query):
    """One request: ``(timeline BGR image, windows table rows)`` for ``(video, query)``.

    Raises:
        ValueError: no video uploaded, or a blank query (as the datasets refuse it), naming
            the field.
    """
    if not video or not osp.isfile(video):
        raise ValueError('video: upload a video first')
    query = check_query(query or '', 'query')
    result = grounder.predict(video, query)
    times = ((np.arange(6) + 0.5) * result['duration'] / 6).tolist()
    img = draw_timeline(result['duration'], result['windows'], result['saliency'],
                        result['clip_len'], read_thumbnails(video, times), query=query)
    rows = [[k + 1, round(s, 2), round(e, 2), round(score, 3)]
            for k, (s, e, score) in enumerate(result['windows'])]
    return img, rows


def build_app(grounder):
    """The Gradio Blocks app around a :class:`~mmvpeft.apis.MomentPredictor`.

    Its ``predict`` endpoint (``api_name='/predict'``) takes ``(video, query)`` and returns
    ``(timeline RGB image, windows table)``.
    """
    import gradio as gr

    def run(video, query):
        try:
            img, rows = answer(grounder, video, query)
        except ValueError as e:  # shown to the user in the page, not as a server error
            raise gr.Error(str(e)) from e
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), rows

    with gr.Blocks(title='mmvpeft grounding demo') as app:
        with gr.Row():
            video = gr.Video(label='video')
            query = gr.Textbox(label='query', value='a red circle moves to the right')
        button = gr.Button('find it')
        timeline = gr.Image(label='timeline', type='numpy')
        table = gr.Dataframe(headers=['rank', 'start (s)', 'end (s)', 'score'])
        button.click(run, [video, query], [timeline, table], api_name='predict')
    return app


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Gradio web demo')
    parser.add_argument('--config')
    parser.add_argument('--checkpoint', default='none')
    parser.add_argument('--device')
    parser.add_argument('--allow-base-mismatch', action='store_true',
                        help='load a checkpoint trained on another frozen base (a warning '
                        'instead of an error)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--share', action='store_true')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    app = build_app(init_grounder(args.config, args.checkpoint, args.device,
                                  allow_base_mismatch=args.allow_base_mismatch))
    app.launch(server_port=args.port, share=args.share, allowed_paths=[tempfile.gettempdir()])


if __name__ == '__main__':
    main()
