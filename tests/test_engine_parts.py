import pytest
import torch

from monai_synpriv.engines import ConstantThenLinearDecay, ImagePool


def test_constant_then_linear_decay():
    f = ConstantThenLinearDecay(num_constant=3, num_decay=3)
    # reference: 1 - max(0, epoch + 1 - n) / (n_decay + 1)
    assert [f(e) for e in range(7)] == pytest.approx([1, 1, 1, 0.75, 0.5, 0.25, 0.0])
    with pytest.raises(ValueError):
        ConstantThenLinearDecay(-1, 2)


def test_image_pool_fills_then_mixes_and_roundtrips():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as given
    assert len(pool) == 4
    mixed = torch.cat([pool.query(torch.full((4, 1, 1, 1), 10.0 + i)) for i in range(5)])
    assert (mixed < 10).any(), "a full pool must sometimes return stored (older) images"
    state = pool.state_dict()
    restored = ImagePool(0)
    restored.load_state_dict(state)
    assert restored.pool_size == 4 and len(restored) == 4
    assert all(torch.equal(a, b) for a, b in zip(restored.images, pool.images))
    assert torch.equal(ImagePool(0).query(first), first)
