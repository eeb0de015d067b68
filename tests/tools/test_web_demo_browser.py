"""tools/web_demo.py in a real browser: headless Chromium, driven through its own
chromedriver by Selenium, uploads a video and types queries into the page as a person
would, and reads the answers off the page.

Skipped with the reason where Chromium, its chromedriver, selenium or gradio is missing
(``pip install -e ".[demo,tests]"`` and Debian's ``chromium`` + ``chromium-driver``).
Set ``MMVPEFT_SCREENSHOT_DIR`` to keep the screenshots (the docs show them)."""
import os
import os.path as osp
import shutil

import cv2
import pytest

pytest.importorskip('gradio', reason='gradio is not installed (the [demo] extra)')
pytest.importorskip('selenium', reason='selenium is not installed (the [demo] extra)')

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason='needs Chromium and its chromedriver on PATH (Debian: apt-get install chromium '
           'chromium-driver); selenium would otherwise try to download a browser')


def _webm(src, dst):
    """Re-encode an opencv mp4 (MPEG-4 part 2, which browsers do not play) as VP8 WebM."""
    cap = cv2.VideoCapture(src)
    fps = cap.get(cv2.CAP_PROP_FPS)
    ok, frame = cap.read()
    out = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*'VP80'), fps,
                          (frame.shape[1], frame.shape[0]))
    while ok:
        out.write(frame)
        ok, frame = cap.read()
    out.release()
    cap.release()
    return dst


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                '--window-size=1280,1500'):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


_READ_TABLE = """
const root = document.getElementById(arguments[0]);
if (!root) return [];
const rows = {};
// Gradio's Dataframe draws its body as a virtual grid of role=gridcell divs.
for (const cell of root.querySelectorAll('[role=gridcell][data-row]')) {
  (rows[cell.dataset.row] = rows[cell.dataset.row] || [])[+cell.dataset.col] =
      cell.textContent.trim();
}
return Object.keys(rows).sort((a, b) => a - b).map(k => rows[k]);
"""


def _rows(driver, elem_id):
    """The body rows of a Gradio Dataframe (as the page shows them), lists of cell texts."""
    return [r for r in driver.execute_script(_READ_TABLE, elem_id) if any(r)]


def test_web_demo_in_chromium(tmp_path, browser, load_tool):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from mmvpeft.apis import init_grounder, init_retriever
    from mmvpeft.datasets import generate_synthetic_videos

    generate_synthetic_videos(str(tmp_path), num_videos=6, duration=8.0, fps=4, size=(64, 64))
    folder = str(tmp_path / 'videos')
    video = _webm(osp.join(folder, 'synth_0000.mp4'), str(tmp_path / 'upload.webm'))
    grounder = init_grounder(osp.join(REPO_ROOT, 'configs', 'demo', 'read_demo.py'), None,
                             device='cpu')
    retriever = init_retriever(osp.join(REPO_ROOT, 'configs', 'demo', 'retrieval_demo.py'),
                               None, device='cpu')
    assert len(retriever.index(folder)) == 6
    app = load_tool('web_demo').build_app(grounder, retriever, top_k=5)
    _, url, _ = app.launch(prevent_thread_lock=True, server_name='127.0.0.1',
                           allowed_paths=[str(tmp_path)])
    shots = os.environ.get('MMVPEFT_SCREENSHOT_DIR') or str(tmp_path)
    wait = WebDriverWait(browser, 120)
    try:
        # Grounding: the page loads, a video and a query go in, timeline and windows come out.
        browser.get(url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'input[type=file]'))
        assert browser.title == 'mmvpeft demo'
        browser.find_element(By.CSS_SELECTOR, 'input[type=file]').send_keys(video)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'video'))
        query = 'a blue square moves up'
        box = browser.find_element(By.CSS_SELECTOR, 'textarea')
        box.clear()
        box.send_keys(query)
        browser.find_element(By.ID, 'ground-button').click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#timeline img')
                   and _rows(d, 'windows'))
        expected = grounder.predict(video, query)['windows']
        shown = _rows(browser, 'windows')
        assert len(shown) == len(expected)
        assert [float(c) for c in shown[0]] == pytest.approx(
            [1, *[round(x, 2) for x in expected[0][:2]], round(expected[0][2], 3)])
        assert not browser.find_elements(By.CSS_SELECTOR, '.toast-body.error'), \
            'the page shows an error'
        assert browser.save_screenshot(osp.join(shots, 'web_demo_grounding.png'))

        # Retrieval: a query goes in, the ranked videos of the folder come out.
        next(b for b in browser.find_elements(By.CSS_SELECTOR, 'button[role=tab]')
             if b.text.strip() == 'retrieval').click()
        box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#search-query textarea'))
        box.clear()
        box.send_keys('a red circle moves to the right')
        browser.find_element(By.ID, 'search-button').click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '#gallery img')) >= 5
                   and _rows(d, 'ranking'))
        ranked = retriever.rank('a red circle moves to the right', 5)
        assert [r[1] for r in _rows(browser, 'ranking')] == \
            [osp.basename(h['video']) for h in ranked]
        assert [float(r[2]) for r in _rows(browser, 'ranking')] == pytest.approx(
            [round(h['score'], 4) for h in ranked])
        assert browser.save_screenshot(osp.join(shots, 'web_demo_retrieval.png'))
    except Exception:
        browser.save_screenshot(osp.join(shots, 'web_demo_failure.png'))
        raise
    finally:
        app.close()
