import pytest
import torch

from vqfuse.prior import SequenceLayout


def make_layout(shared: bool) -> SequenceLayout:
    # image 4x4 tokens of K=16, audio 5 frames x 2 stages of K=32
    return SequenceLayout([("image", 16, 16), ("audio", 32, 10)], shared_codebook=shared)


def random_tokens(layout: SequenceLayout, b: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {s.name: torch.randint(0, s.vocab_size, (b, s.n_tokens), generator=g) for s in layout.segments}


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("order", [("image", "audio"), ("audio", "image")])
def test_pack_unpack_round_trip(shared, order):
    layout = make_layout(shared)
    tokens = random_tokens(layout)
    packed = layout.pack(tokens, order)
    assert packed.ids.shape == (3, 16 + 1 + 10 + 1) == (3, layout.length(order))
    assert packed.order == order
    back = layout.unpack(packed.ids, order)
    assert set(back) == set(tokens)
    for name in tokens:
        assert torch.equal(back[name], tokens[name])
    # the tag opens each segment, modalities and positions line up with the slices
    first = order[0]
    assert bool((packed.ids[:, 0] == layout.tag_id(first)).all())
    for name, sl in layout.slices(order).items():
        m = layout.modality_index(name)
        assert bool((packed.modalities[sl.start - 1 : sl.stop] == m).all())
        assert packed.positions[sl.start - 1 : sl.stop].tolist() == list(range(sl.stop - sl.start + 1))
        lo, hi = layout.vocab_range(name)
        ids = packed.ids[:, sl]
        assert int(ids.min()) >= lo and int(ids.max()) < hi
    # a segment's ids and positions do not depend on where it sits
    other = layout.pack(tokens, order[::-1])
    for name in tokens:
        assert torch.equal(packed.ids[:, layout.slices(order)[name]], other.ids[:, layout.slices(order[::-1])[name]])
        assert torch.equal(
            packed.positions[layout.slices(order)[name]], other.positions[layout.slices(order[::-1])[name]]
        )


def test_separate_and_shared_vocabularies():
    sep, shared = make_layout(False), make_layout(True)
    assert sep.vocab_range("image") == (0, 16) and sep.vocab_range("audio") == (16, 48)
    assert shared.vocab_range("image") == (0, 16) and shared.vocab_range("audio") == (0, 32)
    assert sep.n_codes == 48 and shared.n_codes == 32
    for layout in (sep, shared):
        specials = {layout.mask_id, layout.null_id, layout.tag_id("image"), layout.tag_id("audio")}
        assert len(specials) == 4 and min(specials) >= layout.n_codes
        assert max(specials) == layout.vocab_size - 1
        assert int(layout.allowed_ids("audio").sum()) == 32
    assert sep.n_positions == shared.n_positions == 17


def test_pack_flattens_trailing_dims_and_rejects_bad_tokens():
    layout = make_layout(False)
    img = torch.randint(0, 16, (2, 4, 4))
    packed = layout.pack({"image": img})  # a subset of the modalities
    assert packed.order == ("image",)
    assert torch.equal(layout.unpack(packed.ids, ["image"])["image"], img.reshape(2, 16))
    with pytest.raises(ValueError, match="lie in"):
        layout.pack({"image": torch.full((2, 16), 16)})
    with pytest.raises(ValueError, match="hold 16 tokens"):
        layout.pack({"image": torch.zeros(2, 15, dtype=torch.long)})
    with pytest.raises(KeyError):
        layout.pack({"video": torch.zeros(2, 3, dtype=torch.long)})
    with pytest.raises(ValueError, match="distinct"):
        layout.length(["image", "image"])
    bad = packed.ids.clone()
    bad[0, 3] = layout.mask_id
    with pytest.raises(ValueError, match="outside"):
        layout.unpack(bad, ["image"])


def test_layout_dict_round_trip():
    layout = make_layout(True)
    assert SequenceLayout.from_dict(layout.to_dict()) == layout
    assert SequenceLayout.from_dict(make_layout(False).to_dict()) != layout
