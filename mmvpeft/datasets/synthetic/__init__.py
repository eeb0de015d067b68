"""Generators of synthetic data (no dataset classes: those live in their task folder).

Every generator writes under a folder it owns through :mod:`.manifest` (only files its own
manifest lists are ever deleted; a foreign non-empty folder is refused).
"""
from .manifest import GeneratorManifest
from .moments import generate_synthetic_moments
from .qa import QUESTIONS, SYNTHETIC_ANSWERS
from .retrieval import balanced_combos, captions_for, generate_synthetic_retrieval
from .summarization import synthetic_summary, synthetic_transcript
from .videos import (COLORS, QUERY_TEMPLATES, SHAPES, draw_shape, generate_synthetic_videos,
                     split_annotations, write_video)

__all__ = ['GeneratorManifest', 'generate_synthetic_moments', 'QUESTIONS', 'SYNTHETIC_ANSWERS',
           'balanced_combos', 'captions_for', 'generate_synthetic_retrieval',
           'synthetic_summary', 'synthetic_transcript', 'COLORS', 'QUERY_TEMPLATES', 'SHAPES',
           'draw_shape', 'generate_synthetic_videos', 'split_annotations', 'write_video']
