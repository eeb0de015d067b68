"""The one data-safety rule of every synthetic-data generator (moments, videos, retrieval).

A generator writes into ``root`` only under a manifest it owns (``root/{name}``, a JSON file
holding ``generator``, ``params``, ``files`` and ``complete``):

* it only ever deletes files that its own manifest lists (relative paths inside ``root``),
  never folders and never anything unlisted;
* it refuses (``FileExistsError`` naming the folder) a non-empty ``root`` without its
  manifest, or with a manifest some other program (or an older mmvpeft) wrote;
* the manifest is written first, ``complete: false`` and listing every file about to be
  written, and marked complete last: an interrupted run is cleaned up and redone by the next
  call, and a set that is complete with the same parameters is left as it is.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np


class GeneratorManifest:
    """Ownership of one generator's output folder.

    Args:
        root: The output folder.
        name: File name of the manifest inside ``root``.
        generator: Identifier stored in (and required of) the manifest.
    """

    def __init__(self, root: str, name: str, generator: str):
        self.root, self.name, self.generator = root, name, generator
        self.path = osp.join(root, name)
        self._manifest: Optional[Dict] = None

    def read(self) -> Optional[Dict]:
        """Our manifest, or None when there is none; raises if it is not ours."""
        if not osp.isfile(self.path):
            return None
        try:
            with open(self.path) as f:
                manifest = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise FileExistsError(
                f'{self.path} exists but is not a readable manifest ({e}); refusing to touch '
                f'{self.root}: remove it yourself or use another folder') from e
        if not isinstance(manifest, dict) or manifest.get('generator') != self.generator:
            raise FileExistsError(
                f'{self.path} was not written by {self.generator} (or by an older mmvpeft '
                f'that did not list its files); refusing to touch {self.root}: delete the '
                'folder yourself or point data_root at a new one')
        return manifest

    def owned_path(self, rel: str) -> str:
        """``root/rel`` for a manifest entry, refusing any path that leaves ``root``."""
        if not isinstance(rel, str) or osp.isabs(rel) or '..' in rel.replace('\\', '/').split(
                '/'):
            raise FileExistsError(f'{self.path} lists {rel!r}, not a path inside {self.root}; '
                                  'refusing to delete anything')
        return osp.join(self.root, rel)

    def _write(self, manifest: Dict) -> None:
        tmp = f'{self.path}.{os.getpid()}.tmp'
        with open(tmp, 'w') as f:
            json.dump(manifest, f, indent=1)
        os.replace(tmp, self.path)
        self._manifest = manifest

    def up_to_date(self, params: Dict) -> bool:
        """True when a complete set with these ``params`` and all its files is there.

        Raises:
            FileExistsError: ``root`` is non-empty without our manifest, or the manifest is
                not ours (nothing is deleted).
            NotADirectoryError: ``root`` is a file.
        """
        if osp.exists(self.root) and not osp.isdir(self.root):
            raise NotADirectoryError(f'synthetic data root {self.root} is a file')
        old = self.read() if osp.isdir(self.root) else None
        if old is None:
            if osp.isdir(self.root) and os.listdir(self.root):
                raise FileExistsError(
                    f'{self.root} is not empty and has no {self.name}, so its content was not '
                    f'written by {self.generator}; refusing to write into it (nothing was '
                    'changed). Point data_root at a new or empty folder.')
            return False
        files = [self.owned_path(rel) for rel in old.get('files', [])]
        return bool(old.get('complete') and old.get('params') == params
                    and all(osp.isfile(p) for p in files))

    def begin(self, params: Dict, rels: Sequence[str]) -> None:
        """Delete the files the previous manifest lists, then record ``rels`` as ours
        (incomplete). Call after :meth:`up_to_date` returned False."""
        os.makedirs(self.root, exist_ok=True)
        old = self.read()
        if old is not None:
            files = [self.owned_path(rel) for rel in old.get('files', [])]
            # Invalidate first, so a crash below leaves an incomplete manifest.
            self._write(dict(old, complete=False))
            for path in files:
                if osp.isfile(path):
                    os.remove(path)
        for rel in rels:
            self.owned_path(rel)
        self._write(dict(generator=self.generator, params=params, files=list(rels),
                         complete=False))

    def finish(self) -> None:
        """Mark the set written by :meth:`begin` complete."""
        self._write(dict(self._manifest, complete=True))

    def files(self) -> List[str]:
        """Absolute paths of the files the current manifest lists."""
        manifest = self.read() or {}
        return [self.owned_path(rel) for rel in manifest.get('files', [])]


def savez_atomic(path: str, **arrays: np.ndarray) -> None:
    """``np.savez(path, **arrays)`` through a temporary file and ``os.replace``, so a reader
    (another rank) never sees a half-written file."""
    tmp = f'{path}.{os.getpid()}.tmp.npz'
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
