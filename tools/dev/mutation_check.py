"""Mutation check: does the test suite catch the bugs it claims to?

Each entry of ``MUTATIONS`` is a deliberate, named bug (an exact source edit) and the tests
that claim to catch it. The tool copies the repository to a scratch folder, applies one
mutation at a time, runs its tests (``pytest -x -q``, with a timeout), restores the file and
prints which bugs were caught. Run it before a release, not in CI (a few minutes on 2 cores):

    python tools/dev/mutation_check.py             # every mutation; exit 1 if any is missed
    python tools/dev/mutation_check.py --list      # names, files and the tests that claim them
    python tools/dev/mutation_check.py --only read-recurrence-over-batch --only pvla-...

Statuses: ``caught`` (a listed test failed), ``MISSED`` (they all passed), ``NOT FOUND`` (the
source text is gone or not unique: the code moved, so update the entry; never counted as
caught), ``TIMEOUT`` and ``BAD TESTS`` (pytest found no such tests). Only ``caught`` passes.
Before the mutations, the union of the listed tests must pass on the unmutated copy.
"""
import argparse
import dataclasses
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class Mutation:
    """One deliberate bug.

    Attributes:
        name: short unique name (``--only``).
        file: path relative to the repository root.
        old: exact source text to replace; must occur exactly once in ``file``.
        new: replacement text.
        tests: pytest node ids or paths that claim to catch it, fastest first.
        more: further ``(file, old, new)`` edits belonging to the same bug.
    """
    name: str
    file: str
    old: str
    new: str
    tests: Tuple[str, ...]
    more: Tuple[Tuple[str, str, str], ...] = ()

    @property
    def edits(self) -> List[Tuple[str, str, str]]:
        return [(self.file, self.old, self.new), *self.more]


ADAPTER = 'tests/models/peft/test_read.py'
BACKBONES = 'tests/models/backbones/test_clip_backbones.py'
RETRIEVER = 'tests/models/tasks/test_moment_grounder.py'
PVLA = 'tests/models/losses/test_pvla_loss.py'
OT = 'tests/ops/test_partial_ot.py'
HEAD = 'tests/models/heads/test_dense_moment_head.py'
TOOLS = 'tests/tools/test_train_test_tools.py'
CONFIGS = 'tests/configs/test_configs.py'
METRICS = 'tests/evaluation/test_moment_metrics.py'
NMS = 'tests/ops/test_temporal_nms.py'
DATA = 'tests/datasets/grounding/test_moment_dataset.py'
BAD = 'tests/tools/test_bad_input.py'

_READ = 'mmvpeft/models/peft/read.py'
_INJECT = 'mmvpeft/models/peft/read.py'  # the frame/word layout handling of READ
_ENC = 'mmvpeft/models/encoders/cross_modal_encoder.py'
_MODEL = 'mmvpeft/models/tasks/moment_grounder.py'
_BASE = 'mmvpeft/models/tasks/base.py'
_BLOCK = 'mmvpeft/models/peft/block.py'
_TM = 'mmvpeft/models/peft/token_mixing.py'
TM = 'tests/models/peft/test_token_mixing.py'
LORA = 'tests/models/peft/test_lora.py'
_PVLA = 'mmvpeft/models/losses/pvla_loss.py'
_OT = 'mmvpeft/ops/partial_ot.py'
_FP = 'mmvpeft/utils/fingerprint.py'

M = Mutation
MUTATIONS: List[Mutation] = [
    # ---- READ adapter (the published code's bugs first)
    M('read-recurrence-over-batch', _READ,
      'batch_first=True, bidirectional=bidirectional)',
      'batch_first=False, bidirectional=bidirectional)',
      (f'{ADAPTER}::test_recurrence_runs_over_sequence_not_batch', )),
    M('read-adapter-output-discarded', _READ, 'return x + delta', 'return x + 0 * delta',
      (f'{ADAPTER}::test_padding_never_leaks',
       f'{BACKBONES}::test_vision_recurrence_over_time_and_batch')),
    M('read-padding-update-not-masked', _READ,
      'delta = torch.where(mask.unsqueeze(-1), delta, 0.0)', 'delta = delta',
      (f'{ADAPTER}::test_padding_never_leaks', )),
    M('read-padding-states-not-zeroed', _READ,
      'h = torch.where(mask.unsqueeze(-1), h, 0.0)', 'h = h',
      # pad_packed_sequence already zeroes padding; the mask matters for all-padding rows,
      # which run one (discarded) step.
      (f'{ADAPTER}::test_all_padding_row_passes_through', )),
    M('read-recurrence-ignores-mask', _READ,
      'full = mask is None or bool((lengths == z.shape[1]).all())', 'full = True',
      (f'{ADAPTER}::test_padding_never_leaks', )),
    M('read-lengths-shifted', _READ, 'lengths.clamp(min=1).cpu()',
      '(lengths - 1).clamp(min=1).cpu()', (f'{ADAPTER}::test_padding_never_leaks', )),
    M('read-backward-direction-dropped', _READ,
      'h = h[..., :self.hidden_dim] + h[..., self.hidden_dim:]',
      'h = h[..., :self.hidden_dim] + 0 * h[..., self.hidden_dim:]',
      (f'{ADAPTER}::test_unidirectional_is_causal_bidirectional_is_not', )),
    M('read-vision-mask-of-wrong-video', _INJECT, 'layout.mask.repeat_interleave(n, dim=0)',
      'layout.mask.repeat(n, 1)',
      # The one-directional case: only correct masking (not causality) protects validity.
      (f'{BACKBONES}::test_vision_padded_clips_do_not_leak[False]', )),
    M('read-vision-recurrence-over-tokens', _INJECT,
      'seq = branch.reshape(b, f, n, d).transpose(1, 2).reshape(b * n, f, d)',
      'seq = branch.reshape(b * n, f, d)',
      (f'{ADAPTER}::test_video_layout_tokens_and_cls', )),
    M('read-adapter-outside-ffn-branch', _BLOCK,
      "for m in self._handlers('mlp_branch'):\n            m_out = m.mlp_branch(m_out, layout)\n"
      "        return x + m_out",
      "x = x + m_out\n        for m in self._handlers('mlp_branch'):\n"
      "            x = m.mlp_branch(x, layout)\n        return x",
      (f'{ADAPTER}::test_adapter_sits_after_ls2_on_the_ffn_branch', )),
    M('read-vision-mask-dropped', 'mmvpeft/models/backbones/clip_vision.py',
      'h, w))\n        layout = SequenceLayout(batch_size=b, num_frames=t * k, mask=frame_mask,',
      'h, w))\n        layout = SequenceLayout(batch_size=b, num_frames=t * k, mask=None,',
      (f'{BACKBONES}::test_vision_padded_clips_do_not_leak', )),
    M('read-text-mask-dropped', 'mmvpeft/models/backbones/clip_text.py',
      'SequenceLayout(batch_size=b, mask=text_mask)', 'SequenceLayout(batch_size=b, mask=None)',
      (f'{BACKBONES}::test_text_padding_and_direction', )),
    # ---- model wiring
    M('model-video-mask-not-passed', _BASE,
      "self.video_backbone(inputs['imgs'], mask)", "self.video_backbone(inputs['imgs'])",
      (f'{RETRIEVER}::test_read_towers_padded_batch_equals_each_sample_alone', )),
    M('model-text-mask-not-passed', _BASE,
      "self.text_backbone(inputs['text_tokens'], mask)",
      "self.text_backbone(inputs['text_tokens'], torch.ones_like(mask))",
      (f'{RETRIEVER}::test_read_towers_padded_batch_equals_each_sample_alone', )),
    M('pvla-aligns-video-with-video', _MODEL,
      "self.pvla(enc['video_states'], enc['text_states'],\n"
      "                                                enc['video_mask'], enc['text_mask'],",
      "self.pvla(enc['video_states'], enc['video_states'].flip(1),\n"
      "                                                enc['video_mask'], enc['video_mask'],",
      (f'{RETRIEVER}::test_pvla_aligns_video_states_with_text_states', )),
    # ---- cross-modal encoder
    M('encoder-joint-text-mask-ignored', _ENC,
      'mask = torch.cat([video_mask, text_mask], dim=1)',
      'mask = torch.cat([video_mask, torch.ones_like(text_mask)], dim=1)',
      (f'{RETRIEVER}::test_outputs_independent_of_batch_padding', )),
    M('encoder-cross-text-mask-ignored', _ENC, 'key_padding_mask=~memory_mask,',
      'key_padding_mask=None,',
      (f'{RETRIEVER}::test_outputs_independent_of_batch_padding[cross-plain]', )),
    M('encoder-self-attn-mask-ignored', _ENC, 'key_padding_mask=~mask,',
      'key_padding_mask=None,', (f'{RETRIEVER}::test_padding_does_not_change_valid_outputs',
                                 f'{RETRIEVER}::test_outputs_independent_of_batch_padding')),
    M('encoder-text-layer-mask-ignored', _ENC, 't = layer(t, text_mask)',
      't = layer(t, torch.ones_like(text_mask))',
      (f'{RETRIEVER}::test_outputs_independent_of_batch_padding', )),
    M('encoder-video-layer-mask-shifted', _ENC, 'v = layer(v, video_mask)',
      'v = layer(v, video_mask.roll(1, dims=1))',
      (f'{RETRIEVER}::test_outputs_independent_of_batch_padding', )),
    M('encoder-adapter-mask-dropped', _ENC, 'h = self.adapter(h, mask)', 'h = self.adapter(h)',
      (f'{RETRIEVER}::test_outputs_independent_of_batch_padding[joint-read]', )),
    # ---- head, targets, losses
    M('head-padding-reaches-convs', 'mmvpeft/models/heads/dense_moment_head.py',
      'x = conv(x * m)', 'x = conv(x)',
      (f'{RETRIEVER}::test_padding_does_not_change_valid_outputs',
       f'{RETRIEVER}::test_outputs_independent_of_batch_padding')),
    M('head-predicts-on-padding', 'mmvpeft/models/heads/dense_moment_head.py',
      "n, clip_len = int(mask[b].sum()), sample['clip_len']",
      "n, clip_len = mask.shape[1], sample['clip_len']",
      (f'{HEAD}::test_predict_windows_in_seconds_sorted_and_clipped', )),
    M('targets-padding-is-foreground', 'mmvpeft/models/heads/dense_moment_head.py',
      "inside &= torch.arange(num_clips) < sample['num_clips']", 'pass',
      (f'{HEAD}::test_padding_never_foreground', )),
    M('loss-normalised-per-batch', 'mmvpeft/models/losses/utils.py',
      'per_sample = (loss * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1e-6)\n'
      '    return per_sample.mean()',
      'return (loss * weight).sum() / weight.sum().clamp(min=1e-6)',
      (f'{RETRIEVER}::test_outputs_independent_of_batch_padding[joint-plain]', )),
    M('loss-normalised-per-batch-ddp', 'mmvpeft/models/losses/utils.py',
      'per_sample = (loss * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1e-6)\n'
      '    return per_sample.mean()',
      'return (loss * weight).sum() / weight.sum().clamp(min=1e-6)',
      (f'{TOOLS}::test_two_processes_match_one', )),
    # ---- PVLA and its solver
    M('pvla-gradient-through-solver', _PVLA, 'plan = self._solve(cost, a, b)',
      'plan = entropic_partial_wasserstein(a, b, cost, self.eps, self.mass, '
      'num_iters=self.num_iters, log_domain=self.log_domain)',
      (f'{PVLA}::test_gradient_is_the_envelope_gradient', )),
    M('pvla-marginals-never-act', _PVLA, 'a = vmask.to(dtype) / vmask.sum(1, keepdim=True)',
      'a = vmask.to(dtype)', (f'{PVLA}::test_value_matches_pot', ),
      more=((_PVLA, 'b = tmask.to(dtype) / tmask.sum(1, keepdim=True)', 'b = tmask.to(dtype)'),
            )),
    M('pvla-padded-states-not-zeroed', _PVLA,
      'x = video_states.to(dtype).masked_fill(~vmask[:, :, None], 0)',
      'x = video_states.to(dtype)',
      (f'{PVLA}::test_gradients_reach_both_sides_and_padding_gets_none', )),
    M('pvla-text-mask-ignored', _PVLA, "tmask = self._mask(text_mask, text_states, 'text_mask')",
      "tmask = self._mask(None, text_states, 'text_mask')",
      (f'{PVLA}::test_value_matches_pot_with_masks', )),
    M('pvla-summed-over-batch', _PVLA, '(cost * plan).sum(dim=(1, 2)).mean()',
      '(cost * plan).sum()', (f'{PVLA}::test_value_matches_pot', )),
    M('pvla-summed-over-batch-ddp', _PVLA, '(cost * plan).sum(dim=(1, 2)).mean()',
      '(cost * plan).sum()', (f'{TOOLS}::test_two_processes_match_one_read_pvla_adamw', )),
    M('ot-row-marginal-ignored', _OT,
      'ld1 = torch.where(row_ok, torch.clamp_max(log_a - (ls + log_kv), 0), zero)',
      'ld1 = torch.zeros_like(log_kv)',
      (f'{OT}::test_marginal_inequalities_are_enforced[True]', )),
    M('ot-col-marginal-ignored-exp', _OT,
      'd2 = torch.div(b, torch.addcmul(pad_b, s, ktw)).clamp_max_(1)', 'd2 = torch.ones_like(b)',
      (f'{OT}::test_marginal_inequalities_are_enforced[False]', )),
    M('ot-early-stop-too-soon', _OT,
      'residual = _kkt_residual(s * d1 * kv, s * d2 * ktw, a, b, d1, d2, mass)\n'
      '            residual_at = iters',
      'residual = 0 * mass\n            residual_at = iters',
      (f'{OT}::test_tol_stops_at_the_kkt_residual', )),
    M('ot-padding-in-kernel', _OT,
      'log_k = torch.where(valid, -cost / reg, cost.new_tensor(-math.inf))',
      'log_k = -cost / reg', (f'{OT}::test_matches_pot_on_unpadded_subproblems', )),
    # ---- checkpoints and tools
    M('test-tool-ignores-checkpoint', 'tools/test.py', 'load_from=checkpoint,',
      'load_from=None,',
      (f'{CONFIGS}::test_read_demo_trains_and_saves_adapter_only_checkpoints', )),
    M('test-tool-ignores-checkpoint-features', 'tools/test.py', 'load_from=checkpoint,',
      'load_from=None,', (f'{TOOLS}::test_train_resume_test_and_dump', )),
    M('resume-ignored', 'mmvpeft/apis/config.py', 'cfg.resume, cfg.load_from = True, None',
      'cfg.resume, cfg.load_from = False, None', (f'{TOOLS}::test_resume_is_exact', )),
    M('frozen-base-not-checked', _BASE,
      'check_loaded_state(module, state_dict, prefix, local_metadata, filled,',
      'check_loaded_state(module, state_dict, prefix, local_metadata, [],',
      (f'{RETRIEVER}::test_trainable_only_checkpoint_on_another_frozen_base_is_an_error',
       f'{RETRIEVER}::test_read_checkpoint_checks_the_clip_base')),
    M('fingerprint-ignores-values', _FP, "h.update(memoryview(t.numpy()).cast('B'))",
      "h.update(b'')",
      (f'{RETRIEVER}::test_trainable_only_checkpoint_on_another_frozen_base_is_an_error', )),
    M('fingerprint-not-saved', _BASE,
      'local_metadata[FINGERPRINT_KEY] = frozen_fingerprint(module, module.base_sources)',
      'pass', (f'{RETRIEVER}::test_read_checkpoint_checks_the_clip_base', )),
    M('missing-trainable-weights-allowed', _FP,
      'if not allow_partial:\n            raise RuntimeError(',
      'if False:\n            raise RuntimeError(',
      (f'{RETRIEVER}::test_missing_or_mismatched_trainable_weights_are_errors', )),
    M('docs-plugin-not-used', 'docs/configs.md',
      "model = dict(head=dict(loss_cls=dict(_delete_=True, type='MyBCELoss')))",
      "model = dict(head=dict(loss_cls=dict(_delete_=True, type='SigmoidFocalLoss', "
      "gamma=0.0, alpha=None)))", (f'{TOOLS}::test_custom_imports_plugin', )),
    M('tools-ignore-allow-base-mismatch', 'mmvpeft/apis/config.py',
      'cfg.model.allow_base_mismatch = True', 'pass',
      (f'{CONFIGS}::test_read_demo_trains_and_saves_adapter_only_checkpoints', )),
    # ---- inference = training (issue 17)
    M('random-tower-from-global-rng', 'mmvpeft/models/backbones/open_clip_utils.py',
      '    if init_seed is None:\n        return _create_open_clip(',
      '    if True:\n        return _create_open_clip(',
      ('tests/models/backbones/test_init_seed.py::test_same_seed_same_tower_whatever_the_'
       'global_rng', 'tests/apis/test_inference.py::test_init_grounder_reproduces_the_last_'
       'validation_exactly')),
    M('adapter-fingerprint-not-checked', 'mmvpeft/utils/adapter_io.py',
      'check_fingerprint(saved_fingerprint(path, meta),', 'check_fingerprint(None,',
      ('tests/utils/test_adapter_io.py::test_adapter_on_another_frozen_base_is_refused_'
       'naming_both_fingerprints', )),
    M('inference-accepts-blank-query', 'mmvpeft/apis/inference.py',
      '    if not query.strip():\n        raise ValueError(f\'{what} is empty',
      '    if False:\n        raise ValueError(f\'{what} is empty',
      (f'{BAD}::test_blank_query_is_refused_by_demo_predict_and_web_demo', )),
    M('inference-accepts-gt-outside-video', 'mmvpeft/apis/inference.py',
      'if start < 0 or start >= duration or end > duration + clip_len:', 'if False:',
      (f'{BAD}::test_gt_window_outside_the_video_is_refused', )),
    # ---- bad input (issue 9)
    M('generator-writes-into-user-folder', 'mmvpeft/datasets/synthetic/manifest.py',
      'if osp.isdir(self.root) and os.listdir(self.root):', 'if False:',
      (f'{BAD}::test_generator_refuses_a_user_folder_and_changes_nothing', )),
    M('non-finite-loss-unchecked', 'mmvpeft/engine/hooks/non_finite_check_hook.py',
      'if not bad:\n            return', 'return',
      (f'{BAD}::test_lr_1e10_stops_at_the_first_non_finite_loss_and_saves_nothing',
       f'{BAD}::test_non_finite_loss_from_data_names_the_step_term_sample_and_file')),
    M('schedule-ignores-max-epochs', 'mmvpeft/apis/config_checks.py',
      'if not length or epochs == length:', 'if True:',
      (f'{BAD}::test_short_run_ends_at_the_final_lr_of_its_schedule', )),
    M('resolve-changes-not-recorded', 'mmvpeft/apis/config.py', 'changes.extend(new)', 'pass',
      ('tests/apis/test_config.py::test_every_kind_of_change_is_logged_and_listed_in_the_'
       'header', )),
    M('knob-not-applied', 'mmvpeft/apis/config_checks.py',
      'container[key] = copy.deepcopy(new)', 'pass',
      (f'{BAD}::test_data_root_from_cfg_options_and_from_a_child_config', )),
    M('duplicate-qid-accepted', 'mmvpeft/datasets/grounding/validation.py',
      "    if qid in seen:\n        _fail(", "    if False:\n        _fail(",
      (f'{BAD}::test_duplicate_qid_is_reported_at_load_not_as_a_duplicate_prediction', )),
    # ---- metrics, NMS, data
    M('r1-threshold-exclusive', 'mmvpeft/evaluation/functional/moment_metrics.py',
      '(top1_iou[:, None] >= thr[None, :])', '(top1_iou[:, None] > thr[None, :])',
      (f'{METRICS}::test_r1_and_miou_hand_case', )),
    M('nms-suppresses-nothing', 'mmvpeft/ops/temporal_nms.py',
      'suppressed |= iou[i] > iou_thr', 'suppressed |= iou[i] > 1.0',
      (f'{NMS}::test_nms_suppresses_overlaps_and_keeps_order', )),
    M('collate-mask-shifted', 'mmvpeft/datasets/collate.py', 'mask[i, :len(s)] = True',
      'mask[i, :len(s) - 1] = True',
      (f'{DATA}::test_feature_loading_concat_normalise_and_collate', )),
    M('contract-k-axis-optional', 'mmvpeft/datasets/transforms/formatting.py',
      'if imgs.ndim != 5 or imgs.shape[2] != 3:', 'if imgs.ndim not in (4, 5):',
      ('tests/datasets/transforms/test_formatting.py::test_every_packer_keeps_the_k_axis_and_'
       'rejects_other_ranks', )),
    M('backbone-guesses-k-axis', 'mmvpeft/models/backbones/clip_vision.py',
      '        if imgs.dim() != 6 or imgs.shape[3] != 3:',
      '        imgs = imgs.unsqueeze(2) if imgs.dim() == 5 else imgs\n'
      '        if imgs.dim() != 6 or imgs.shape[3] != 3:',
      (f'{BACKBONES}::test_input_validation', )),
    M('captions-collate-wrong-video-index', 'mmvpeft/datasets/collate.py',
      'torch.repeat_interleave(torch.arange(len(batch)), counts)',
      'torch.repeat_interleave(torch.arange(len(batch)).flip(0), counts)',
      ('tests/datasets/test_collate.py::test_video_captions_collate_concatenates_captions', )),
        M('windows-not-clipped', 'mmvpeft/datasets/grounding/moment.py',
      's, e = max(0.0, float(start)), min(float(duration), float(end))',
      's, e = float(start), float(end)', (f'{DATA}::test_clipping_and_dropping', )),
    # ---- PETL layer
    M('petl-frozen-weights-train', 'mmvpeft/models/peft/base.py',
      'p.requires_grad_(not frozen or id(p) in trainable)', 'p.requires_grad_(True)',
      (f'{TM}::test_trains_exactly_the_mixing_blocks', f'{LORA}::test_trainable_by_name')),
    M('petl-block-drops-attn-branch-handlers', _BLOCK,
      "for m in self._handlers('attn_branch'):\n            a = m.attn_branch(a, layout)",
      "pass", ('tests/models/peft/test_adapter.py::test_houlsby_sits_on_both_branches_after_'
               'layer_scale', )),
    M('petl-sdpa-attention-ignores-mask', _BLOCK,
      'o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)',
      'o = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)',
      (f'{LORA}::test_text_causal_mask_is_kept', )),
    # ---- token mixing
    M('tokenmix-alpha-on-same-frame-keys', _TM, 'cross = frame != src.unsqueeze(1)',
      'cross = frame == src.unsqueeze(1)',
      (f'{TM}::test_alpha_scales_only_cross_frame_patch_logits',
       f'{TM}::test_equals_plain_rederivation')),
    M('tokenmix-alpha-on-cls-keys', _TM, 'scale[:, :, t:] = torch.where(',
      'scale[:, :, :t] = alpha\n        scale[:, :, t:] = torch.where(',
      (f'{TM}::test_alpha_scales_only_cross_frame_patch_logits', )),
    M('tokenmix-mosaic-ignores-valid-length', _TM,
      'return p.unsqueeze(0) % lengths.clamp(min=1).unsqueeze(1)',
      'return p.unsqueeze(0).expand(len(lengths), -1) % lengths.max().clamp(min=1)',
      (f'{TM}::test_padded_frames_never_change_valid_frames', )),
    M('tokenmix-padded-cls-keys-attended', _TM,
      'mask = valid.repeat_interleave(t, dim=0).view(bt, 1, 1, s)', 'mask = None',
      (f'{TM}::test_padded_frames_never_change_valid_frames', )),
    M('tokenmix-keys-from-first-frame-only', _TM,
      'index = src.view(b, 1, p, 1).expand(b, 1, p, d)',
      'index = torch.zeros_like(src).view(b, 1, p, 1).expand(b, 1, p, d)',
      (f'{TM}::test_equals_plain_rederivation', )),
    M('tokenmix-mixes-across-videos', _TM,
      "keys = torch.cat([k[:, :, 0], patch_k], dim=1)  # (B, T+P, D)",
      "keys = torch.cat([k[:, :, 0].roll(1, 0), patch_k], dim=1)  # (B, T+P, D)",
      (f'{TM}::test_mixing_in_a_batch_equals_each_video_alone', )),
    # ---- other PETL methods
    M('lora-merge-wrong-slice', 'mmvpeft/models/peft/lora.py',
      'block.attn.in_proj_weight[j * d:(j + 1) * d] +=', 'block.attn.in_proj_weight[0:d] +=',
      (f'{LORA}::test_merge_equals_unmerged_float64', )),
    M('st-adapter-padded-frames-leak', 'mmvpeft/models/peft/adapter.py',
      '            z = z * frame_mask\n', '            z = z\n',
      ('tests/models/peft/test_adapter.py::test_st_adapter_padded_video_equals_the_video_alone',
       )),
    # ---- retrieval
    M('retrieval-ties-optimistic', 'mmvpeft/evaluation/functional/retrieval_metrics.py',
      'ranks.append((rows >= true).sum(1))', 'ranks.append((rows > true).sum(1) + 1)',
      ('tests/evaluation/test_retrieval_metrics.py::test_t2v_and_v2t_with_ties_one_caption_'
       'per_video', )),
    M('gather-backward-keeps-local-grad-only', 'mmvpeft/utils/dist.py',
      '        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)\n', '',
      ('tests/models/losses/test_contrastive_loss.py::test_ddp_gradients_equal_single_'
       'process_double_batch', )),
    M('retrieval-false-negatives-kept', 'mmvpeft/models/tasks/video_text_retriever.py',
      'if keys[a][0] == keys[b][0] or', 'if False and keys[a][0] == keys[b][0] or',
      ('tests/models/tasks/test_video_text_retriever.py::test_pairs_of_one_video_or_one_'
       'caption_are_not_negatives', )),
    # ---- captioning / summarization decoder
    M('caption-loss-counts-padding', 'mmvpeft/models/decoders/video_text_decoder.py',
      "target = self.to_index(tokens[:, 1:]).masked_fill(~token_mask[:, 1:].bool(), -100)",
      'target = self.to_index(tokens[:, 1:])',
      ('tests/models/decoders/test_video_text_decoder.py::test_loss_ignores_padding', )),
    M('decoder-memory-mask-ignored', 'mmvpeft/models/decoders/video_text_decoder.py',
      "cross = cross.masked_fill(~memory_mask.bool(), float('-inf'))", 'cross = cross',
      ('tests/models/decoders/test_video_text_decoder.py::test_memory_padding_is_masked', )),
    M('decoder-not-causal', 'mmvpeft/models/decoders/video_text_decoder.py',
      'causal = self.decoder.attn_mask[:length, :length]',
      'causal = torch.zeros_like(self.decoder.attn_mask[:length, :length])',
      ('tests/models/decoders/test_video_text_decoder.py::test_read_in_decoder_is_causal', )),
    M('beam-search-keeps-one-beam', 'mmvpeft/models/decoders/generation.py',
      '                    new.append((s, seq))\n',
      '                    new.append((s, seq)) if not new else None\n',
      ('tests/models/decoders/test_video_text_decoder.py::test_beam_search_beats_greedy_on_'
       'sequence_score', )),
    M('caption-metric-untokenized', 'mmvpeft/evaluation/functional/caption_metrics.py',
      "    gts = tokenize({k: list(references[k]) for k in ids}, tokenizer)\n"
      "    res = tokenize({k: [predictions[k]] for k in ids}, tokenizer)\n    out = {}",
      "    gts = {k: list(references[k]) for k in ids}\n"
      "    res = {k: [predictions[k]] for k in ids}\n    out = {}",
      ('tests/evaluation/test_caption_metrics.py::test_without_java_meteor_is_skipped_with_'
       'one_warning', )),
    # ---- video QA
    M('qa-oov-counted-as-class-0', 'mmvpeft/models/heads/answer_head.py',
      'return (per * valid).sum() / valid.sum().clamp(min=1)', 'return per.mean()',
      ('tests/models/tasks/test_video_qa.py::test_loss_is_cross_entropy_over_in_vocabulary_'
       'answers_only', )),
    M('qa-answers-not-normalised', 'mmvpeft/evaluation/functional/qa_metrics.py',
      'hits = [normalize_answer(p) == normalize_answer(a) for', 'hits = [p == a for',
      ('tests/evaluation/test_qa_metrics.py::test_accuracy_hand_case_with_types_and_oov', )),
    M('qa-vocab-ties-in-file-order', 'mmvpeft/datasets/qa/answer_vocab.py',
      'key=lambda kv: (-kv[1], kv[0]))[:top_k]', 'key=lambda kv: -kv[1])[:top_k]',
      ('tests/datasets/qa/test_msrvtt_qa_dataset.py::test_vocab_top_k_ties_broken_by_answer_'
       'and_saved', )),
    M('qa-test-oov-questions-dropped', 'mmvpeft/datasets/qa/base.py',
      "if item['answer_label'] < 0 and self.drop_oov:", "if item['answer_label'] < 0:",
      ('tests/datasets/qa/test_msrvtt_qa_dataset.py::test_msrvtt_qa_items_oov_dropped_in_'
       'training_kept_in_test', )),
    M('qa-padded-frames-pooled', 'mmvpeft/models/tasks/video_qa.py',
      'feat = masked_mean(fused, vmask.bool())', 'feat = fused.mean(1)',
      ('tests/models/tasks/test_video_qa.py::test_a_padded_question_and_video_equal_the_'
       'sample_alone', )),
    M('qa-sample-label-of-another-vocab', 'mmvpeft/models/tasks/video_qa.py',
      "and answers[label] != s['answer']:", "and False:",
      ('tests/models/tasks/test_video_qa.py::test_dataset_labels_from_another_vocabulary_are_'
       'refused', )),
    M('qa-vocab-file-digest-unchecked', 'mmvpeft/models/tasks/video_qa.py',
      'if recorded is not None and recorded != _digest(answers).hex():', 'if False:',
      ('tests/models/tasks/test_video_qa.py::test_vocabulary_file_whose_answers_do_not_match_'
       'its_digest_is_refused', )),
    M('qa-vocab-digest-unchecked', 'mmvpeft/models/heads/answer_head.py',
      "if key in state_dict and bool(self.vocab_digest.any()):",
      "if False and key in state_dict:",
      ('tests/models/tasks/test_video_qa.py::test_checkpoint_of_another_vocabulary_is_'
       'refused', )),
    M('qa-repeated-qids-counted', 'mmvpeft/evaluation/metrics/qa_accuracy_metric.py',
      "unique.setdefault(str(r['qid']), r)", "unique[len(unique)] = r",
      ('tests/evaluation/test_qa_metrics.py::test_metric_types_dedup_and_in_vocab', )),
    # ---- issue 16: evaluator parity, protocols, converged PVLA, inert padding, properties
    M('submission-outside-windows-uncounted', 'mmvpeft/evaluation/functional/submission.py',
      'return int(((windows[:, 0] < -tol) | (windows[:, 1] > duration + tol)).sum())',
      'return 0',
      ('tests/evaluation/test_official_parity.py::test_windows_past_the_end_scored_as_the_'
       'official_evaluator', )),
    M('submission-outside-windows-clipped', 'mmvpeft/evaluation/functional/submission.py',
      '            pred_windows.append(p)\n',
      '            pred_windows.append(np.concatenate([np.clip(p[:, :2], 0, gt.get(\'duration\', '
      'np.inf)), p[:, 2:]], 1))\n',
      ('tests/evaluation/test_official_parity.py::test_windows_past_the_end_scored_as_the_'
       'official_evaluator', )),
    M('retrieval-clip4clip-is-coco', 'mmvpeft/evaluation/functional/retrieval_metrics.py',
      "v2t = v2t_ranks if protocol == 'coco' else v2t_ranks_clip4clip", 'v2t = v2t_ranks',
      ('tests/evaluation/test_retrieval_protocols.py::test_hand_made_matrix_both_protocols', )),
    M('pvla-cost-not-normalised', _PVLA, 'normalize_cost: bool = True,',
      'normalize_cost: bool = False,',
      ('tests/models/losses/test_pvla_convergence.py::test_read_tacos_plan_is_within_one_'
       'percent_of_the_converged_plan', )),
    M('pvla-residual-not-logged', _BASE, "log_vars['pvla/residual'] = residual", 'pass',
      ('tests/models/losses/test_pvla_convergence.py::test_residual_is_logged_not_summed', )),
    M('peft-block-nan-padding-kept', _BLOCK, 'x = _select_valid(q_x, layout)', 'x = q_x',
      ('tests/models/peft/test_inert_padding.py::test_vision_tower_padded_frames', )),
    M('read-nan-padding-into-down', _READ, 'x_in = torch.where(mask.unsqueeze(-1), x, 0.0)',
      'x_in = x', ('tests/models/peft/test_inert_padding.py::test_read_adapter', )),
    M('encoder-nan-padding-kept', _ENC,
      'video = torch.where(video_mask.unsqueeze(-1), video, 0.0)', 'video = video',
      ('tests/models/encoders/test_inert_padding.py::test_cross_modal_encoder', )),
    M('retrieval-logit-scale-unclamped', 'mmvpeft/models/tasks/video_text_retriever.py',
      'scale = self.logit_scale.exp().clamp(max=self.max_logit_scale)',
      'scale = self.logit_scale.exp()',
      ('tests/models/tasks/test_logit_scale_properties.py::test_scale_is_clamped_at_max_'
       'logit_scale', )),
    M('retrieval-logit-scale-always-learned', 'mmvpeft/models/tasks/video_text_retriever.py',
      'requires_grad=learn_logit_scale)', 'requires_grad=True)',
      ('tests/models/tasks/test_logit_scale_properties.py::test_learn_logit_scale_false_'
       'freezes_it', )),
    M('beam-length-penalty-inverted', 'mmvpeft/models/decoders/generation.py',
      'return score / (length ** length_penalty) if length_penalty else score',
      'return score * (length ** length_penalty) if length_penalty else score',
      ('tests/models/decoders/test_beam_length_penalty.py::test_positive_penalty_prefers_'
       'longer_hypotheses', )),
    M('prefix-key-skips-block-before-cut', 'mmvpeft/models/backbones/prefix_cache.py',
      'for i, block in enumerate(tower.blocks()[:k]):',
      'for i, block in enumerate(tower.blocks()[:k - 1]):',
      ('tests/models/backbones/test_prefix_cache_key.py::test_every_block_before_the_cut_is_'
       'in_the_key', )),
    M('adapter-write-in-place', 'mmvpeft/utils/adapter_io.py',
      'write_bytes_atomic(path, save(tensors, metadata=meta))',
      "open(path, 'wb').write(save(tensors, metadata=meta))",
      ('tests/utils/test_adapter_write_failure.py::test_failed_write_keeps_the_previous_'
       'file', )),
    M('clip-model-knob-dropped', 'mmvpeft/apis/config_checks.py',
      "    'clip_model': ('model_name', ),\n", '',
      ('tests/apis/test_clip_model_knob.py::test_cfg_options_reach_every_tokenizer', )),
    M('rouge-first-reference-only', 'mmvpeft/evaluation/functional/caption_metrics.py',
      "sums['ROUGE-1'] += max(rouge_n_f1(cand, r, 1) for r in refs)",
      "sums['ROUGE-1'] += rouge_n_f1(cand, refs[0], 1)",
      ('tests/evaluation/test_rouge_best_reference.py::test_best_of_several_references', )),
    M('caption-skipped-not-reported', 'mmvpeft/evaluation/metrics/caption_metric.py',
      'self.skipped = skipped_metrics(self.scorers)', 'self.skipped = {}',
      ('tests/evaluation/test_caption_metrics.py::test_metric_prints_what_was_skipped_and_'
       'why', )),
]


@dataclasses.dataclass
class Result:
    """Outcome of one mutation: ``status`` and, unless caught, the pytest output tail."""
    name: str
    status: str
    seconds: float = 0.0
    detail: str = ''


def copy_repo(src: str, dst: str) -> str:
    """Copy the working tree (no VCS data, caches, generated data or checkpoints)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
        '.git', '__pycache__', '.pytest_cache', '.venv', 'data', 'work_dirs', '*.pth',
        '*.egg-info'))
    return dst


def apply(root: str, mutation: Mutation) -> Tuple[Optional[str], Dict[str, str]]:
    """Apply a mutation in ``root``.

    Returns:
        tuple: an error message (None when applied) and ``{path: original text}`` to restore.
    """
    originals: Dict[str, str] = {}
    texts: Dict[str, str] = {}
    for rel, old, new in mutation.edits:
        path = osp.join(root, rel)
        if not osp.isfile(path):
            return f'{rel} does not exist', {}
        if path not in texts:
            with open(path) as f:
                texts[path] = originals[path] = f.read()
        count = texts[path].count(old)
        if count != 1:
            where = 'not found' if count == 0 else f'found {count} times'
            return f'source text {where} in {rel}: {old.splitlines()[0][:60]!r}', {}
        texts[path] = texts[path].replace(old, new)
    for path, text in texts.items():
        with open(path, 'w') as f:
            f.write(text)
    return None, originals


def restore(originals: Dict[str, str]) -> None:
    """Write back the texts ``apply`` returned."""
    for path, text in originals.items():
        with open(path, 'w') as f:
            f.write(text)


def _env(root: str) -> dict:
    """Environment for pytest in the scratch copy ``root``."""
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get('PYTHONPATH', ''),
               # No stale bytecode: a restored file may keep its size and mtime second.
               PYTHONDONTWRITEBYTECODE='1', OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS',
                                                                            '1'))
    # tests/conftest.py finds ../shared beside the checkout; the scratch copy has none.
    shared = osp.join(osp.dirname(REPO_ROOT), 'shared', 'data', 'annotations')
    if 'MMVPEFT_SHARED_ANNOTATIONS' not in env and osp.isdir(shared):
        env['MMVPEFT_SHARED_ANNOTATIONS'] = shared
    return env


def run_tests(root: str, tests: Sequence[str], timeout: float) -> Tuple[str, float, str]:
    """Run ``tests`` in ``root``; returns (status, seconds, output tail)."""
    start = time.time()
    cmd = [sys.executable, '-m', 'pytest', '-x', '-q', '-p', 'no:cacheprovider', *tests]
    try:
        proc = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return 'TIMEOUT', time.time() - start, ''
    tail = (proc.stdout + proc.stderr)[-2000:]
    # 0: all passed; 1: a test failed; 2: collection error (the mutation broke an import);
    # 4/5: usage error or no tests collected (wrong node ids).
    status = {0: 'passed', 1: 'failed', 2: 'failed'}.get(proc.returncode, 'BAD TESTS')
    return status, time.time() - start, tail


def check_imports_scratch(root: str) -> None:
    """The tests must import the scratch copy of mmvpeft, not an installed one."""
    out = subprocess.run([sys.executable, '-c', 'import mmvpeft; print(mmvpeft.__file__)'],
                         cwd=root, env=_env(root), capture_output=True, text=True)
    path = out.stdout.strip()
    if out.returncode or not osp.realpath(path).startswith(osp.realpath(root)):
        raise RuntimeError(f'the scratch copy at {root} imports mmvpeft from {path!r} '
                           f'({out.stderr.strip()[-300:]}); cannot check mutations')


def check(mutations: Sequence[Mutation], repo: str = REPO_ROOT, scratch: Optional[str] = None,
          timeout: float = 600, baseline: bool = True,
          echo: Callable[[str], None] = print) -> List[Result]:
    """Apply each mutation to a scratch copy of ``repo`` and run its tests.

    Args:
        mutations: the mutations to check.
        repo: repository root to copy.
        scratch: scratch folder (created; a temporary one when None, removed afterwards).
        timeout: seconds per pytest run.
        baseline: first run the union of all listed tests unmutated; they must pass.
        echo: progress printer.

    Returns:
        list[Result]: one per mutation (status ``caught``, ``MISSED``, ``NOT FOUND``,
        ``TIMEOUT`` or ``BAD TESTS``).

    Raises:
        RuntimeError: the baseline fails or the copy imports another mmvpeft.
    """
    names = [m.name for m in mutations]
    if len(set(names)) != len(names):
        raise ValueError(f'duplicate mutation names in {names}')
    tmp = None
    if scratch is None:
        tmp = tempfile.mkdtemp(prefix='mmvpeft_mutation_')
        scratch = osp.join(tmp, 'repo')
    root = copy_repo(repo, scratch)
    try:
        check_imports_scratch(root)
        if baseline:
            tests = list(dict.fromkeys(t for m in mutations for t in m.tests))
            echo(f'baseline: {len(tests)} test ids on the unmutated copy ...')
            status, secs, tail = run_tests(root, tests, timeout * 2)
            if status != 'passed':
                raise RuntimeError(f'baseline {status} ({secs:.0f} s): the listed tests must '
                                   f'pass before mutating\n{tail}')
            echo(f'baseline passed ({secs:.0f} s)')
        results = []
        for m in mutations:
            error, originals = apply(root, m)
            if error:
                results.append(Result(m.name, 'NOT FOUND', 0.0, error))
            else:
                try:
                    status, secs, tail = run_tests(root, m.tests, timeout)
                finally:
                    restore(originals)
                status = {'failed': 'caught', 'passed': 'MISSED'}.get(status, status)
                detail = '' if status == 'caught' else tail[-500:]
                results.append(Result(m.name, status, secs, detail))
            r = results[-1]
            echo(f'{r.status:>9}  {r.seconds:6.1f} s  {r.name}' +
                 (f'\n{r.detail}' if r.detail else ''))
        return results
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def table(results: Sequence[Result]) -> str:
    """The results as a text table, with a caught count."""
    width = max(len(r.name) for r in results)
    lines = [f'{"mutation":<{width}}  {"result":>9}  {"time":>7}', '-' * (width + 21)]
    lines += [f'{r.name:<{width}}  {r.status:>9}  {r.seconds:6.1f}s' for r in results]
    caught = sum(r.status == 'caught' for r in results)
    lines.append(f'{caught}/{len(results)} caught')
    return '\n'.join(lines)


def main(argv=None) -> int:
    """Command line; returns 0 when every selected mutation is caught."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--list', action='store_true', help='list the mutations and exit')
    parser.add_argument('--only', action='append', metavar='NAME',
                        help='run only this mutation (repeatable)')
    parser.add_argument('--timeout', type=float, default=600, help='seconds per pytest run')
    parser.add_argument('--no-baseline', action='store_true',
                        help='skip the unmutated run of the listed tests')
    parser.add_argument('--scratch', help='scratch folder to use (kept afterwards)')
    parser.add_argument('--repo', default=REPO_ROOT,
                        help='checkout to copy and mutate (default: this one)')
    args = parser.parse_args(argv)
    mutations = MUTATIONS
    if args.only:
        known = {m.name for m in MUTATIONS}
        unknown = [n for n in args.only if n not in known]
        if unknown:
            parser.error(f'unknown mutation(s) {unknown}; see --list')
        mutations = [m for m in MUTATIONS if m.name in args.only]
    if args.list:
        for m in mutations:
            print(f'{m.name}\n    {", ".join(sorted({e[0] for e in m.edits}))}\n    ' +
                  '\n    '.join(m.tests))
        return 0
    results = check(mutations, repo=args.repo, timeout=args.timeout,
                    baseline=not args.no_baseline, scratch=args.scratch)
    print('\n' + table(results))
    return 0 if all(r.status == 'caught' for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
