"""A small web demo (Gradio, an optional extra: pip install -e ".[demo]").

Grounding: upload a video, type a query, see the timeline and the ranked windows.
Retrieval: type a query, see the best videos of a folder with their scores.

    python tools/web_demo.py --config CONFIG --checkpoint CKPT [--port 7860] [--share]
    python tools/web_demo.py --retrieval-config RCONFIG --retrieval-checkpoint RCKPT \\
                             --video-dir FOLDER [--config CONFIG --checkpoint CKPT]

Each tab appears when its model is given. Then open http://127.0.0.1:7860 in a browser.
"""
import argparse
import os.path as osp
import tempfile

import cv2
import numpy as np

from mmvpeft.apis import init_grounder, init_retriever
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


def build_app(grounder=None, retriever=None, top_k: int = 5):
    """The Gradio Blocks app.

    Args:
        grounder: a :class:`~mmvpeft.apis.MomentPredictor`, or None (no grounding tab).
            Its endpoint ``api_name='/predict'`` takes ``(video, query)`` and returns
            ``(timeline RGB image, windows table)``.
        retriever: a :class:`~mmvpeft.apis.RetrievalPredictor` whose videos are indexed,
            or None (no retrieval tab). Its endpoint ``api_name='/search'`` takes
            ``query`` and returns ``(gallery of the top_k videos' middle frames, ranking
            table)``.
        top_k: videos listed per search.
    """
    import gradio as gr
    if grounder is None and retriever is None:
        raise ValueError('build_app needs a grounder, a retriever, or both')

    def run(video, query):
        try:
            img, rows = answer(grounder, video, query)
        except ValueError as e:  # shown to the user in the page, not as a server error
            raise gr.Error(str(e)) from e
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), rows

    def search(query):
        if not query or not query.strip():
            raise gr.Error('type a query first')
        ranked = retriever.rank(query, top_k)
        gallery, rows = [], []
        for k, hit in enumerate(ranked, 1):
            name = osp.basename(hit['video'])
            thumbs = read_thumbnails(hit['video'], [_duration(hit['video']) / 2], height=160)
            if thumbs:
                gallery.append((cv2.cvtColor(thumbs[0][1], cv2.COLOR_BGR2RGB),
                                f'{k}. {name}  {hit["score"]:.3f}'))
            rows.append([k, name, round(hit['score'], 4)])
        return gallery, rows

    with gr.Blocks(title='mmvpeft demo') as app:
        if grounder is not None:
            with gr.Tab('grounding'):
                with gr.Row():
                    video = gr.Video(label='video', height=280)
                    query = gr.Textbox(label='query', value='a red circle moves to the right')
                button = gr.Button('find it', elem_id='ground-button')
                timeline = gr.Image(label='timeline', type='numpy', elem_id='timeline')
                table = gr.Dataframe(headers=['rank', 'start (s)', 'end (s)', 'score'],
                                     elem_id='windows')
                button.click(run, [video, query], [timeline, table], api_name='predict')
        if retriever is not None:
            with gr.Tab('retrieval'):
                gr.Markdown(f'Searching {len(retriever.videos)} videos.')
                text = gr.Textbox(label='query', value='a red circle moves to the right',
                                  elem_id='search-query')
                go = gr.Button('search', elem_id='search-button')
                gallery = gr.Gallery(label=f'top {top_k}', columns=top_k, elem_id='gallery')
                ranking = gr.Dataframe(headers=['rank', 'video', 'score'], elem_id='ranking')
                go.click(search, [text], [gallery, ranking], api_name='search')
    return app


def _duration(video: str) -> float:
    cap = cv2.VideoCapture(video)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 1.0
        return float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) / fps
    finally:
        cap.release()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Gradio web demo')
    parser.add_argument('--config', help='grounding config (the grounding tab)')
    parser.add_argument('--checkpoint', default='none', help='grounding checkpoint')
    parser.add_argument('--retrieval-config', help='retrieval config (the retrieval tab)')
    parser.add_argument('--retrieval-checkpoint', default='none',
                        help='retrieval checkpoint')
    parser.add_argument('--video-dir', help='folder of videos searched by the retrieval tab')
    parser.add_argument('--top-k', type=int, default=5, help='videos listed per search')
    parser.add_argument('--device')
    parser.add_argument('--allow-base-mismatch', action='store_true',
                        help='load a checkpoint trained on another frozen base (a warning '
                        'instead of an error)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--share', action='store_true')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.config and not args.retrieval_config:
        raise SystemExit('web_demo: give --config (grounding) and/or --retrieval-config with '
                         '--video-dir (retrieval)')
    if args.retrieval_config and not args.video_dir:
        raise SystemExit('web_demo: --retrieval-config needs --video-dir, the folder searched')
    grounder = retriever = None
    allowed = [tempfile.gettempdir()]
    if args.config:
        grounder = init_grounder(args.config, args.checkpoint, args.device,
                                 allow_base_mismatch=args.allow_base_mismatch)
    if args.retrieval_config:
        retriever = init_retriever(args.retrieval_config, args.retrieval_checkpoint,
                                   args.device, allow_base_mismatch=args.allow_base_mismatch)
        retriever.index(args.video_dir)
        allowed.append(osp.abspath(args.video_dir))
    app = build_app(grounder, retriever, args.top_k)
    app.launch(server_port=args.port, share=args.share, allowed_paths=allowed)


if __name__ == '__main__':
    main()
