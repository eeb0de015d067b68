"""Reading video QA annotation files: a JSON list (MSRVTT-QA) or JSON lines."""
import json
from typing import List, Tuple

from mmvpeft.utils.fileio import iter_jsonl
from ..base import AnnotationError


def read_qa_records(path: str) -> List[Tuple[str, dict]]:
    """``[(where, record)]`` of a QA annotation file.

    ``.jsonl``: one JSON object a line, ``where`` = ``'file:line'``. Anything else: one JSON
    list of objects (MSRVTT-QA's ``train_qa.json``), ``where`` = ``'file[index]'``.

    Raises:
        AnnotationError: invalid JSON, not a list, or an entry that is not an object; the
            message names the file and the line or index.
    """
    if path.endswith('.jsonl'):
        pairs = [(f'{path}:{lineno}', rec) for lineno, rec in iter_jsonl(path, AnnotationError)]
    else:
        with open(path, encoding='utf-8') as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise AnnotationError(f'{path}: invalid JSON ({e})') from e
        if not isinstance(data, list):
            raise AnnotationError(f'{path}: expected a JSON list of question records, got '
                                  f'{type(data).__name__}')
        pairs = [(f'{path}[{i}]', rec) for i, rec in enumerate(data)]
    for where, rec in pairs:
        if not isinstance(rec, dict):
            raise AnnotationError(f'{where}: expected a JSON object, got {type(rec).__name__}')
    return pairs


def require_str(rec: dict, key: str, where: str, ident: str = '') -> str:
    """``rec[key]`` stripped, which must be a non-empty str; else an error naming it."""
    if key not in rec:
        raise AnnotationError(f'{where}: missing field "{key}"{ident}')
    value = rec[key]
    if not isinstance(value, str) or not value.strip():
        raise AnnotationError(f'{where}: field "{key}" must be a non-empty str, got '
                              f'{value!r:.80}{ident}')
    return value.strip()
