"""Reading JSON-lines files line by line, with errors that name the file and line."""
import json
from typing import Iterator, Tuple, Type


def iter_jsonl(path: str, error: Type[Exception] = ValueError) -> Iterator[Tuple[int, object]]:
    """Yields ``(lineno, record)`` for each non-blank line of ``path`` (1-based lines).

    Raises:
        error: ``'{path}:{lineno}: invalid JSON (...)'`` on a line that does not parse.
    """
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f'{path}:{lineno}: invalid JSON ({e})') from e
            yield lineno, record
