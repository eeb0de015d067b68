from torch import nn

from mmvpeft.models.peft import ReadAdapter
from mmvpeft.utils import parameter_report


def test_report_counts_groups_adapters_and_total():
    model = nn.Module()
    model.backbone = nn.Sequential(nn.Linear(10, 10), ReadAdapter(10, hidden_dim=2))
    model.backbone[0].requires_grad_(False)  # frozen: 110 params
    model.head = nn.Linear(10, 1)  # 11 params
    adapter = sum(p.numel() for p in model.backbone[1].parameters())
    rows, table = parameter_report(model)
    by_name = {r[0]: r[1:] for r in rows}
    assert by_name['backbone'] == (adapter, 110 + adapter)
    assert by_name['backbone.1'] == (adapter, adapter)  # the trainable part, by name
    assert 'backbone.0' not in by_name
    assert by_name['head'] == (11, 11)
    assert by_name['[ReadAdapter x 1]'] == (adapter, adapter)
    assert rows[-1] == ('total', adapter + 11, 110 + adapter + 11)
    assert f'{100 * (adapter + 11) / (121 + adapter):.3f}%' in table.splitlines()[-1]


def test_report_has_a_row_per_peft_method():
    from mmvpeft.models.backbones import CLIPVisionBackbone
    cfg = dict(embed_dim=32,
               vision_cfg=dict(image_size=32, patch_size=16, width=64, layers=2,
                               head_width=32, mlp_ratio=2.0),
               text_cfg=dict(context_length=16, vocab_size=1000, width=64, heads=2, layers=2))
    model = nn.Module()
    model.video = CLIPVisionBackbone(model_cfg=cfg, peft=[
        dict(type='TokenMixing', layers=(-1, )), dict(type='READ', layers=(0, ), hidden_dim=4)])
    rows, table = parameter_report(model)
    by_name = {r[0]: r[1:] for r in rows}
    block = sum(p.numel() for n, p in model.video.visual.transformer.resblocks[1]
                .named_parameters())
    read = sum(p.numel() for p in model.video.visual.transformer.resblocks[0].read_adapter
               .parameters())
    tower_total = sum(p.numel() for p in model.video.parameters())
    assert by_name['[video: TokenMixing(layers=[1])]'] == (block, tower_total)
    assert by_name['[video: READ(layers=[0])]'] == (read, tower_total)
    assert rows[-1][1] == block + read


def test_report_splits_adapters_from_the_task_head():
    from mmvpeft.models.backbones import CLIPVisionBackbone
    cfg = dict(embed_dim=32,
               vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=2, head_width=16),
               text_cfg=dict(context_length=16, vocab_size=1000, width=32, heads=2, layers=1))
    model = nn.Module()
    model.video = CLIPVisionBackbone(model_cfg=cfg, peft=[dict(type='READ', hidden_dim=4)])
    model.head = nn.Linear(32, 3)
    rows, table = parameter_report(model)
    by_name = {r[0]: r[1:] for r in rows}
    read = sum(p.numel() for p in model.video.visual.transformer.resblocks[1].read_adapter
               .parameters())
    total = sum(p.numel() for p in model.parameters())
    assert by_name['[adapters: in the towers]'] == (read, total)
    assert by_name['[task head: outside the towers]'] == (32 * 3 + 3, total)
    assert rows[-1] == ('total', read + 99, total)
    assert [r[0] for r in rows[-3:]] == ['[adapters: in the towers]',
                                         '[task head: outside the towers]', 'total']
