"""VideoTextDecoder: teacher forcing, generation, PETL on the decoder, memory masks."""
import pytest
import torch

from mmvpeft.models.decoders import VideoTextDecoder, beam_search, greedy_search

TINY = dict(width=32, heads=2, layers=2, vocab_size=64, context_length=12, mlp_ratio=2.0)
SOT, EOT = 62, 63


def make(peft=None, frozen=False, seed=0, **cfg):
    torch.manual_seed(seed)
    return VideoTextDecoder(model_cfg=dict(TINY, **cfg), memory_dims=dict(video=16, context=8),
                            max_frames=8, frozen=frozen, peft=peft, sot_token_id=SOT,
                            eot_token_id=EOT).eval()


def memory_of(dec, b=2, t=3, n=2, seed=1, context=False):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(b, t, n, 16, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    if context:
        return dec.encode_memory(video, mask, torch.randn(b, 4, 8, generator=g),
                                 torch.ones(b, 4, dtype=torch.bool))
    return dec.encode_memory(video, mask)


def test_loss_ignores_padding():
    dec = make()
    mem, mmask = memory_of(dec)
    tokens = torch.tensor([[SOT, 5, 6, EOT, 0, 0], [SOT, 7, 8, 9, 10, EOT]])
    mask = tokens != 0
    mask[:, 0] = True
    loss = dec.loss(tokens, mask, mem, mmask)
    # Whatever sits in the padding changes nothing.
    junk = tokens.clone()
    junk[0, 4:] = torch.tensor([33, 44])
    assert torch.allclose(dec.loss(junk, mask, mem, mmask), loss, atol=0, rtol=0)
    # Plain re-derivation: mean over the 3 + 5 valid targets of -log p.
    logp = dec(tokens[:, :-1], mem, mmask).log_softmax(-1)
    nll = [-logp[0, i, tokens[0, i + 1]] for i in range(3)]
    nll += [-logp[1, i, tokens[1, i + 1]] for i in range(5)]
    assert torch.allclose(loss, torch.stack(nll).mean(), atol=1e-6)


def test_memory_padding_is_masked():
    dec = make()
    mem, mmask = memory_of(dec, t=3, n=2)
    tokens = torch.tensor([[SOT, 5, 6]])
    ref = dec(tokens, mem[:1, :4], mmask[:1, :4])
    mmask = mmask.clone()
    mmask[0, 4:] = False
    mem = mem.clone()
    mem[0, 4:] = 1e3  # padded frame: anything
    assert torch.allclose(dec(tokens, mem[:1], mmask[:1]), ref, atol=1e-5)


def test_greedy_learns_to_copy_a_caption():
    dec = make()
    dec.train()
    target = [SOT, 11, 12, 13, 14, 15, EOT]
    tokens = torch.tensor([target] * 2)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    opt = torch.optim.Adam(dec.parameters(), lr=3e-3)
    for _ in range(60):
        mem, mmask = memory_of(dec)
        loss = dec.loss(tokens, mask, mem, mmask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dec.eval()
    mem, mmask = memory_of(dec)
    assert dec.generate(mem, mmask, max_len=10) == [target[1:-1]] * 2
    assert dec.generate(mem, mmask, max_len=10, beam_size=3) == [target[1:-1]] * 2


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_beam_one_equals_greedy(seed):
    dec = make(seed=seed)
    mem, mmask = memory_of(dec, b=3, seed=seed, context=True)
    greedy = dec.generate(mem, mmask, max_len=8, beam_size=1)
    step = dec._step_fn(mem, mmask)
    start = torch.full((3, 1), SOT)
    assert beam_search(step, start, EOT, 8, beam_size=1) == greedy
    assert greedy_search(step, start, EOT, 8) == greedy
    assert all(len(g) <= 8 for g in greedy)


def test_beam_search_beats_greedy_on_sequence_score():
    """A hand-made 2-step model where the greedy first token leads to a worse sequence."""
    v = 4  # tokens 0, 1, 2 and EOT = 3

    def step(tokens, rows):
        out = torch.full((tokens.shape[0], v), -20.0)
        for i, seq in enumerate(tokens.tolist()):
            if len(seq) == 1:
                out[i] = torch.tensor([0.6, 0.4, 1e-9, 1e-9]).log()
            elif seq[1] == 0:  # after 0: flat
                out[i] = torch.tensor([0.3, 0.3, 0.1, 0.3]).log()
            else:  # after 1: EOT almost surely
                out[i] = torch.tensor([0.01, 0.01, 0.01, 0.97]).log()
        return out
    start = torch.zeros(1, 1, dtype=torch.long) + 2
    assert greedy_search(step, start, 3, 4)[0][0] == 0
    assert beam_search(step, start, 3, 4, beam_size=2) == [[1]]


def test_context_length_limit_is_named():
    dec = make()
    mem, mmask = memory_of(dec)
    with pytest.raises(ValueError, match='context length 12'):
        dec.generate(mem, mmask, max_len=12)
    with pytest.raises(ValueError, match='context length 12'):
        dec(torch.full((1, 13), 5), mem[:1], mmask[:1])


@pytest.mark.parametrize('peft', [
    [dict(type='READ', layers=None, hidden_dim=8)],
    [dict(type='LoRA', layers=None, rank=4)],
])
def test_adapted_decoder_at_step0_equals_frozen(peft):
    plain = make(seed=3)
    adapted = make(peft=peft, frozen=True, seed=3)
    mem, mmask = memory_of(plain, context=True)
    mem2, mmask2 = memory_of(adapted, context=True)
    assert torch.equal(mem, mem2)
    tokens = torch.tensor([[SOT, 5, 6, 7, EOT], [SOT, 8, 9, EOT, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.bool)
    assert torch.allclose(adapted(tokens, mem2, mmask2, mask), plain(tokens, mem, mmask, mask),
                          atol=1e-6)
    # Exactly the method's modules (in the self-attention blocks) and the memory train.
    key = 'read_adapter' if peft[0]['type'] == 'READ' else 'lora'
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    expected = {n for n, _ in adapted.named_parameters()
                if f'.{key}.' in n or n.startswith(('memory_', 'frame_embedding'))}
    assert trainable == expected
    assert {n.split('.')[2] for n in trainable if key in n} == {'0', '1'}
    assert all(n.startswith('decoder.resblocks.') for n in trainable if key in n)


def test_read_in_decoder_is_causal():
    # one unimodal (CoCa text-tower) block + two multimodal ones: READ in all three
    dec = make(peft=[dict(type='READ', layers=None, hidden_dim=8)], frozen=True, text_layers=1)
    assert len(dec.blocks()) == 3
    assert sum('read_adapter.up.weight' in n for n, _ in dec.named_parameters()) == 3
    for n, p in dec.named_parameters():  # move READ off its zero init
        if 'read_adapter.up' in n:
            torch.nn.init.normal_(p, std=0.5)
    mem, mmask = memory_of(dec)
    a = torch.tensor([[SOT, 5, 6, 7, 8]])
    b = a.clone()
    b[0, 3] = 40  # change token t + 1 = 3
    la, lb = dec(a, mem[:1], mmask[:1]), dec(b, mem[:1], mmask[:1])
    assert torch.equal(la[0, :3], lb[0, :3])
    assert not torch.allclose(la[0, 3:], lb[0, 3:])


def test_restricted_vocabulary_maps_clip_ids_both_ways():
    import open_clip
    torch.manual_seed(0)
    full = VideoTextDecoder(model_cfg=dict(TINY, vocab_size=49408, context_length=12),
                            memory_dims=dict(video=16), max_frames=8)
    torch.manual_seed(0)
    small = VideoTextDecoder(model_cfg=dict(TINY, vocab_size=49408, context_length=12),
                             memory_dims=dict(video=16), max_frames=8,
                             vocab_texts=['a red circle moves up'])
    tok = open_clip.get_tokenizer('ViT-B-32')
    ids = tok.encode('a red circle moves up')
    assert small.vocab_ids.tolist() == sorted(set(ids) | {49406, 49407}) + [0]
    mem, mmask = memory_of(full)
    tokens = torch.tensor([[49406] + ids + [49407]] * 2)
    # The kept rows give the same logits as the full decoder's columns for those tokens.
    lf, ls = full(tokens, mem, mmask), small(tokens, mem, mmask)
    assert torch.allclose(ls, lf[..., small.vocab_ids], atol=1e-5)
    out = small.generate(mem, mmask, max_len=5)
    assert all(t in small.vocab_ids.tolist() for seq in out for t in seq)
    loss = small.loss(tokens, torch.ones_like(tokens, dtype=torch.bool), mem, mmask)
    assert torch.isfinite(loss)


def test_beam_one_ignores_an_eot_below_the_top_candidate():
    """An EOT ranked second must not end beam 1's hypothesis (greedy continues)."""
    def step(tokens, rows):
        if tokens.shape[1] == 1:
            p = torch.tensor([0.5, 0.1, 0.05, 0.35])  # EOT (3) is second
        else:
            p = torch.tensor([0.1, 0.1, 0.1, 0.7])
        return p.log().expand(tokens.shape[0], -1)
    start = torch.full((1, 1), 2)
    assert greedy_search(step, start, 3, 5) == [[0]]
    assert beam_search(step, start, 3, 5, beam_size=1) == [[0]]
