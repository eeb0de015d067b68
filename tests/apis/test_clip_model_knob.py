"""The ``clip_model`` knob (the tokenizer's CLIP model in the TaCoS video configs) reaches
every tokenizer of every loader, from --cfg-options and from a child config."""
import os.path as osp

from mmvpeft.apis.runner import load_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tokenizers(cfg):
    found = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for t in cfg[loader]['dataset']['pipeline']:
            if 'Tokenize' in t['type']:
                found.append((loader, t))
    return found


def test_cfg_options_reach_every_tokenizer(tmp_path):
    path = osp.join(REPO, 'configs', 'read_tacos.py')
    before = _tokenizers(load_config(path, work_dir=str(tmp_path)))
    assert len(before) >= 3 and {t['model_name'] for _, t in before} == {'ViT-B-32'}
    cfg = load_config(path, work_dir=str(tmp_path), cfg_options={'clip_model': 'ViT-B-16'})
    after = _tokenizers(cfg)
    assert [loader for loader, _ in after] == [loader for loader, _ in before]
    assert all(t['model_name'] == 'ViT-B-16' for _, t in after), after


def test_child_config_reaches_every_tokenizer(tmp_path):
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{osp.join(REPO, 'configs', 'read_tacos.py')}']\n"
                     "clip_model = 'ViT-L-14'\n")
    cfg = load_config(str(child), work_dir=str(tmp_path / 'w'))
    tokenizers = _tokenizers(cfg)
    assert tokenizers and all(t['model_name'] == 'ViT-L-14' for _, t in tokenizers)
