"""The optional Gradio web demo, driven headless through its client API (skipped where
gradio, an optional extra, is not installed)."""
import os.path as osp

import pytest

gr = pytest.importorskip('gradio')
gradio_client = pytest.importorskip('gradio_client')

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_web_demo_answers_through_the_client(tmp_path, load_tool):
    from mmvpeft.apis import init_grounder
    from mmvpeft.datasets import generate_synthetic_videos
    generate_synthetic_videos(str(tmp_path), num_videos=1, duration=8.0, fps=4, size=(64, 64))
    video = str(tmp_path / 'videos' / 'synth_0000.mp4')
    grounder = init_grounder(osp.join(REPO_ROOT, 'configs', 'demo', 'read_demo.py'), None,
                             device='cpu')
    app = load_tool('web_demo').build_app(grounder)
    _, url, _ = app.launch(prevent_thread_lock=True, server_name='127.0.0.1',
                           allowed_paths=[str(tmp_path)])
    try:
        client = gradio_client.Client(url)
        image, table = client.predict(gradio_client.handle_file(video) if hasattr(
            gradio_client, 'handle_file') else video, 'a red circle', api_name='/predict')
        assert osp.isfile(image) and table
    finally:
        app.close()
