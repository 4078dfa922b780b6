import pytest
import torch

from vqfuse.prior import PriorConfig, PriorTransformer, SequenceLayout

pytestmark = pytest.mark.usefixtures("single_thread")

LAYOUT = SequenceLayout([("image", 16, 9), ("audio", 24, 8)])


def tiny(causal: bool = True, seed: int = 0) -> PriorTransformer:
    torch.manual_seed(seed)
    return PriorTransformer(PriorConfig.for_layout(LAYOUT, dim=32, depth=2, heads=4, causal=causal)).eval()


def batch(b: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    tokens = {s.name: torch.randint(0, s.vocab_size, (b, s.n_tokens), generator=g) for s in LAYOUT.segments}
    return LAYOUT.pack(tokens)


def test_causal_output_ignores_future_tokens():
    model, packed = tiny(), batch()
    ids, mods, pos = packed.ids, packed.modalities, packed.positions
    full = model(ids, mods, pos)
    assert full.shape == (2, ids.shape[1], LAYOUT.vocab_size)
    for t in (0, 5, 11, ids.shape[1] - 2):
        changed = ids.clone()
        changed[:, t + 1 :] = torch.randint(0, LAYOUT.n_codes, changed[:, t + 1 :].shape)
        out = model(changed, mods, pos)
        torch.testing.assert_close(out[:, : t + 1], full[:, : t + 1], atol=1e-6, rtol=0)
        assert not torch.allclose(out[:, t + 1 :], full[:, t + 1 :], atol=1e-4)


def test_bidirectional_output_sees_future_tokens():
    model, packed = tiny(causal=False), batch()
    ids, mods, pos = packed.ids, packed.modalities, packed.positions
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1 - LAYOUT.offset("audio")) % 24 + LAYOUT.offset("audio")
    assert not torch.allclose(model(changed, mods, pos)[:, 0], model(ids, mods, pos)[:, 0], atol=1e-4)
    with pytest.raises(ValueError, match="causal"):
        model.new_cache(2, 10)


@pytest.mark.parametrize("chunks", [[1] * 19, [7, 1, 1, 5, 3, 1, 1]])
def test_kv_cache_matches_full_forward(chunks):
    model, packed = tiny(), batch()
    ids, mods, pos = packed.ids, packed.modalities, packed.positions
    assert sum(chunks) == ids.shape[1]
    full = model(ids, mods, pos)
    cache = model.new_cache(2, ids.shape[1])
    outs, start = [], 0
    for n in chunks:
        outs.append(model(ids[:, start : start + n], mods[start : start + n], pos[start : start + n], cache))
        start += n
    assert cache.length == ids.shape[1]
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="cache holds"):
        model(ids[:, :1], mods[:1], pos[:1], cache)


def test_positions_beyond_max_len_are_rejected_and_config_round_trips():
    model = tiny()
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, dtype=torch.long), torch.tensor([LAYOUT.n_positions]))
    assert PriorConfig.from_dict(model.config.to_dict()) == model.config
    with pytest.raises(ValueError, match="divisible"):
        PriorConfig(vocab=10, dim=30, heads=4)
