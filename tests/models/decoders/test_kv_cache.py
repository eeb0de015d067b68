"""The decoder's key/value cache decodes exactly what full-prefix decoding decodes.

Float64 models, so equal tokens are not luck of rounding and scores compare to 1e-9: greedy
and beam search, with the PETL methods a text decoder takes (READ with each RNN type, LoRA,
Houlsby adapters), unimodal (CoCa text-tower) blocks, padded memory, text context, and the
captioning and summarization demo models built from their configs.
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.models.decoders import VideoTextDecoder
from mmvpeft.models.decoders.generation import beam_search, greedy_search
from mmvpeft.models.decoders.video_text_decoder import DecoderCache
from mmvpeft.registry import MODELS

TINY = dict(width=32, heads=2, layers=2, vocab_size=48, context_length=16, mlp_ratio=2.0)
SOT, EOT = 46, 47
REPO = Path(__file__).resolve().parents[3]


def make(peft=None, text_layers=0, eot_bias=2.0, seed=0):
    """A float64 decoder whose PETL modules are off their zero init (so they matter) and
    whose EOT is likely enough that some sequences end before max_len."""
    torch.manual_seed(seed)
    dec = VideoTextDecoder(model_cfg=dict(TINY, text_layers=text_layers),
                           memory_dims=dict(video=16, context=8), max_frames=8,
                           frozen=peft is not None, peft=peft, sot_token_id=SOT,
                           eot_token_id=EOT).double().eval()
    for name, p in dec.named_parameters():
        if name.endswith(('read_adapter.up.weight', '.B', 'up.weight')):
            torch.nn.init.normal_(p, std=0.3)
    with torch.no_grad():
        dec.decoder.text_projection[:, EOT] += eot_bias * dec.decoder.text_projection[:, 0]
    return dec


def memory(dec, b=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(b, 3, 2, 16, generator=g, dtype=torch.float64)
    vmask = torch.ones(b, 3, dtype=torch.bool)
    vmask[1, 2:] = False  # one padded video
    with torch.no_grad():
        return dec.encode_memory(video, vmask, torch.randn(b, 4, 8, generator=g,
                                                            dtype=torch.float64),
                                 torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]][:b],
                                              dtype=torch.bool))


def assert_same_decoding(dec, mem, mask, max_len=10, **kw):
    """Greedy and beam 3, with and without the cache; returns every decoded length."""
    lengths = []
    for beam in (1, 3):
        plain = dec.generate(mem, mask, max_len=max_len, beam_size=beam, use_cache=False,
                             return_scores=True, **kw)
        cached = dec.generate(mem, mask, max_len=max_len, beam_size=beam, use_cache=True,
                              return_scores=True, **kw)
        assert cached[0] == plain[0], f'beam {beam}'
        assert torch.allclose(torch.tensor(cached[1]), torch.tensor(plain[1]), rtol=1e-9,
                              atol=1e-9), f'beam {beam}'
        lengths += [len(seq) for seq in plain[0]]
    return lengths


@pytest.mark.parametrize('peft,text_layers,eot_bias', [
    (None, 1, 2.0),
    ([dict(type='READ', layers=None, hidden_dim=8)], 1, 2.0),
    ([dict(type='READ', layers=(-1, ), hidden_dim=8, rnn_type='lstm'),
      dict(type='HoulsbyAdapter', hidden_dim=8)], 0, 0.0),
    ([dict(type='LoRA', layers=None, rank=4),
      dict(type='READ', layers=(0, ), hidden_dim=8, rnn_type='gru')], 0, 0.0),
], ids=['plain+unimodal', 'read+unimodal', 'read_lstm+houlsby', 'lora+read_gru'])
def test_cache_decodes_what_full_prefix_decoding_decodes(peft, text_layers, eot_bias):
    dec = make(peft, text_layers, eot_bias)
    assert not dec.cache_blockers()
    mem, mask = memory(dec)
    lengths = assert_same_decoding(dec, mem, mask)
    # Not a degenerate case: some sequences end before max_len, some run for several words.
    assert min(lengths) < 10 and max(lengths) > 3


def test_prefill_and_steps_equal_the_full_forward_at_every_position():
    """Several new words at once (causal within them), then one at a time, then a beam
    reorder: each step's log-probabilities are the full forward's at that position."""
    dec = make([dict(type='READ', layers=None, hidden_dim=8)], text_layers=1)
    mem, mask = memory(dec)
    g = torch.Generator().manual_seed(3)
    tokens = torch.cat([torch.full((3, 1), SOT), torch.randint(0, 40, (3, 6), generator=g)], 1)

    def full(prefix, rows):
        return dec(prefix, mem[rows], mask[rows])[:, -1].log_softmax(-1)

    with torch.no_grad():
        cache = DecoderCache(dec, mem, mask)
        rows = torch.arange(3)
        assert torch.allclose(cache(tokens[:, :4], rows), full(tokens[:, :4], rows), atol=1e-12)
        assert torch.allclose(cache(tokens[:, :5], rows), full(tokens[:, :5], rows), atol=1e-12)
        # Beam-style reorder: new prefix i extends old prefix parents[i] (of item rows[i]).
        parents = torch.tensor([2, 2, 0, 1])
        cache.reorder(parents)
        new = torch.cat([tokens[parents, :5], torch.tensor([[1], [2], [3], [4]])], 1)
        assert torch.allclose(cache(new, parents), full(new, parents), atol=1e-12)
        with pytest.raises(ValueError, match='holds 6 positions'):
            cache(new, parents)


def test_bidirectional_read_falls_back_to_full_prefix_decoding():
    dec = make([dict(type='READ', layers=(-1, ), hidden_dim=8, bidirectional=True)])
    reasons = dec.cache_blockers()
    assert len(reasons) == 1 and 'READ' in reasons[0] and 'block 1' in reasons[0]
    mem, mask = memory(dec)
    with pytest.raises(ValueError, match='READ .*whole word sequence'):
        dec.generate(mem, mask, max_len=4, use_cache=True)
    assert dec.generate(mem, mask, max_len=4) == dec.generate(mem, mask, max_len=4,
                                                              use_cache=False)


def test_min_len_forbids_eot_and_beams_of_all_items_share_one_step_call():
    dec = make(eot_bias=6.0)  # EOT first almost everywhere
    mem, mask = memory(dec)
    assert dec.generate(mem, mask, max_len=6) == [[]] * 3
    assert [len(s) for s in dec.generate(mem, mask, max_len=6, min_len=6)] == [6] * 3
    sizes = []
    cache = DecoderCache(dec, mem, mask)

    def step(tokens, rows):
        sizes.append((tokens.shape[0], rows.tolist()))
        return cache(tokens, rows)
    step.reorder = cache.reorder
    start = torch.full((3, 1), SOT)
    with torch.no_grad():
        beam_search(step, start, EOT, 4, beam_size=3, min_len=4)
    # One call per step for the 3 items: 3 start prefixes, then 3 beams of each item.
    assert sizes[0] == (3, [0, 1, 2])
    assert all(s == (9, [0, 0, 0, 1, 1, 1, 2, 2, 2]) for s in sizes[1:]) and len(sizes) == 4
    # Greedy through the cache with scores: the sum of the chosen tokens' log p.
    with torch.no_grad():
        seqs, scores = greedy_search(DecoderCache(dec, mem, mask), start, EOT, 3, min_len=3,
                                     return_scores=True)
        ref = dec(torch.cat([start, torch.tensor(seqs)], 1), mem, mask).log_softmax(-1)
    ref[..., EOT] = float('-inf')  # min_len renormalises nothing: EOT is just excluded
    expected = [sum(ref[i, t, seqs[i][t]].item() for t in range(3)) for i in range(3)]
    assert torch.allclose(torch.tensor(scores), torch.tensor(expected), atol=1e-9)


@pytest.mark.parametrize('config', ['caption_demo', 'summarization_demo'])
def test_demo_models_decode_the_same_with_the_cache(config):
    """The captioning demo (Token Mixing video tower, plain decoder) and the summarization
    demo (READ in both towers and in the decoder, transcript context) from their configs."""
    init_default_scope('mmvpeft')
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / f'{config}.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).double().eval()
    for name, p in model.decoder.named_parameters():
        if 'read_adapter.up.weight' in name:
            torch.nn.init.normal_(p, std=0.3)
    g = torch.Generator().manual_seed(0)
    inputs = dict(imgs=torch.randint(0, 256, (2, 4, 1, 3, 32, 32), generator=g,
                                     dtype=torch.uint8),
                  video_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool))
    if model.text_backbone is not None:
        ctx = torch.randint(300, 600, (2, 2, 8), generator=g)
        ctx[:, :, 0], ctx[:, :, -1], ctx[1, 1] = 49406, 49407, 0
        inputs.update(context_tokens=ctx, context_mask=ctx != 0)
    with torch.no_grad():
        enc = model.encode(inputs)
    assert model.decoder.cache_blockers() == []
    assert_same_decoding(model.decoder, enc['memory'], enc['memory_mask'], max_len=8)


def test_one_word_steps_of_mixed_blocks_across_beam_reorders_equal_the_full_forward():
    """Plain blocks take the one-word (N, W) path and READ blocks the general one; both write
    the same key/value buffer, which beam reorders (repeated, dropped and swapped rows) gather
    between steps. Every step's log-probabilities are the full forward's."""
    dec = make([dict(type='READ', layers=(-1, ), hidden_dim=8)], text_layers=1)
    assert [type(b).__name__ for b in dec.blocks()] == ['ResidualAttentionBlock',
                                                        'ResidualAttentionBlock', 'PEFTBlock']
    mem, mask = memory(dec)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        cache = DecoderCache(dec, mem, mask)
        prefix, rows = torch.full((3, 1), SOT), torch.arange(3)
        for parents in (None, [0, 0, 1, 2, 2], [4, 3, 1, 0], [1, 1, 1, 3, 2, 0]):
            if parents is not None:
                parents = torch.tensor(parents)
                cache.reorder(parents)
                rows = rows[parents]
                prefix = torch.cat([prefix[parents],
                                    torch.randint(0, 40, (len(parents), 1), generator=g)], 1)
            full = dec(prefix, mem[rows], mask[rows])[:, -1].log_softmax(-1)
            assert torch.allclose(cache(prefix, rows), full, atol=1e-12)


def test_cache_follows_layer_scale_and_other_activations():
    """Blocks whose layer scales are not identities and whose MLP activation is not
    ``nn.GELU`` (open_clip's QuickGELU) decode the same with and without the cache."""
    from open_clip.transformer import LayerScale, QuickGELU
    dec = make(eot_bias=0.0)
    torch.manual_seed(5)
    for block in list(dec.decoder.resblocks) + list(dec.decoder.cross_attn):
        block.ls_1 = LayerScale(32, 0.5).double()
        block.ls_2 = LayerScale(32, 0.5).double()
        torch.nn.init.uniform_(block.ls_2.gamma, 0.2, 1.5)
        block.mlp.gelu = QuickGELU()
    mem, mask = memory(dec)
    lengths = assert_same_decoding(dec, mem, mask)
    assert min(lengths) < 10 and max(lengths) > 3


def test_greedy_scores_stop_at_each_rows_own_eot():
    """Rows finishing at different steps keep decoding until all are done; a row's score is
    the sum of its log p up to and including its first EOT, and its tokens stop there."""
    a, b, c, eot = 2, 3, 4, 1

    def step(prefixes, rows):
        out = []
        for seq in prefixes.tolist():
            n, last = len(seq) - 1, seq[-1]
            lp = [-9.0] * 5
            if seq[0] == 0:  # row 0: a, eot
                lp[a if n == 0 else eot] = -0.5 - n
            elif last == eot:  # a finished row: junk after EOT
                lp[c] = -0.1
            else:  # row 1: b, b, b, eot
                lp[b if n < 3 else eot] = -0.25
            out.append(lp)
        return torch.tensor(out, dtype=torch.float64)

    seqs, scores = greedy_search(step, torch.tensor([[0], [5]]), eot, max_len=8,
                                 return_scores=True)
    assert seqs == [[a], [b, b, b]]
    assert scores == pytest.approx([-0.5 - 1.5, -1.0], abs=1e-12)
    # EOT forbidden until 3 words: row 0 then takes its best other token (the first -9).
    seqs = greedy_search(step, torch.tensor([[0], [5]]), eot, max_len=4, min_len=3)
    assert seqs == [[a, 0, 0], [b, b, b]], seqs
