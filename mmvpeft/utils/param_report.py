"""Trainable / total parameter counts per module group: the PETL number users look for first."""
from typing import List, Tuple

from torch import nn


def _count(module: nn.Module) -> Tuple[int, int]:
    total = trainable = 0
    for p in module.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def parameter_report(model: nn.Module, depth: int = 2,
                     kinds: Tuple[str, ...] = ('ReadAdapter', )) -> Tuple[List[tuple], str]:
    """Rows ``(group, trainable, total)`` and a printable table.

    Groups are the model's top-level children; a child that mixes frozen and trainable
    parameters (a frozen backbone with adapters) is broken down to its children that hold
    trainable ones, down to ``depth`` levels. Each PETL method of a tower adds a row
    ``[tower: Method(layers=...)]`` with the parameters it trains (out of the tower's
    total), and each module class named in ``kinds`` a row ``[ClassName x N]`` summing all
    its instances (e.g. every READ adapter). A model holding PETL towers (modules with
    ``peft_methods``, e.g. ``CLIPVisionBackbone``) also gets the budget split the papers
    quote: ``[adapters: in the towers]`` (what trains inside the towers: adapters, prompts,
    unfrozen blocks) and ``[task head: outside the towers]`` (encoder, head, temperature),
    each out of the model's total, right before ``total``.

    Returns:
        tuple: rows (last row ``'total'``) and the table as text.
    """
    rows = []

    def visit(name, module, level):
        trainable, total = _count(module)
        if total == 0:
            return
        rows.append((name, trainable, total))
        if level < depth and 0 < trainable < total:
            for child_name, child in module.named_children():
                if _count(child)[0] > 0:
                    visit(f'{name}.{child_name}', child, level + 1)

    for name, child in model.named_children():
        visit(name, child, 1)
    for tower_name, tower in model.named_modules():
        for method in getattr(tower, 'peft_methods', ()):
            params = {id(p): p for p in method.trainable(tower)}
            trained = sum(p.numel() for p in params.values() if p.requires_grad)
            total = sum(p.numel() for p in tower.parameters())
            rows.append((f'[{tower_name or "model"}: {method!r}]', trained, total))
    for kind in kinds:
        found = [m for m in model.modules() if type(m).__name__ == kind]
        if found:
            counts = [_count(m) for m in found]
            rows.append((f'[{kind} x {len(found)}]', sum(c[0] for c in counts),
                         sum(c[1] for c in counts)))
    trainable, total = _count(model)
    towers = [m for n, m in model.named_modules() if n and hasattr(m, 'peft_methods')]
    if towers:
        in_towers = sum(_count(t)[0] for t in towers)
        rows.append(('[adapters: in the towers]', in_towers, total))
        rows.append(('[task head: outside the towers]', trainable - in_towers, total))
    rows.append(('total', trainable, total))
    width = max(len(r[0]) for r in rows)
    lines = [f'{"module":<{width}}  {"trainable":>12}  {"total":>12}  {"share":>8}']
    for name, t, n in rows:
        lines.append(f'{name:<{width}}  {t:>12,}  {n:>12,}  {100 * t / max(n, 1):>7.3f}%')
    return rows, '\n'.join(lines)
