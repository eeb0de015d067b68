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
