import pytest
import torch

from monai_synpriv.networks import MultiBranchSSLNet, ProjectionHead, build_multibranch_resnet


def _params(module):
    return {id(p) for p in module.parameters()}


@pytest.mark.parametrize(
    "enc, n_enc",
    [([0, 0], 1), ([0, 1], 2), ([0, 0, 1], 2), ([0, 0, 1, 1], 2)],
)
def test_weights_shared_exactly_where_indices_say(enc, n_enc):
    net = build_multibranch_resnet(2, enc, depth=10, projector_dims=(16, 8))
    assert len(net.encoders) == n_enc and len(net.projectors) == n_enc
    if n_enc == 2:
        assert not _params(net.encoders[0]) & _params(net.encoders[1])
    views = [torch.rand(3, 1, 32, 32) for _ in enc]
    out = net(views)
    assert len(out) == len(enc) and all(o.shape == (3, 8) for o in out)
    sum(o.sum() for o in out).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_tridents_shared_branches_run_batched_and_match_separate_passes():
    torch.manual_seed(0)
    net = build_multibranch_resnet(2, [0, 0, 1], depth=10, projector_dims=(16, 8)).eval()
    calls = []
    net.encoders[0].register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    views = [torch.rand(2, 1, 32, 32) for _ in range(3)]
    out = net(views)
    assert calls == [4], "the two primary views must go through the shared encoder in one pass"
    separate = [net.projectors[p](net.encoders[e](v)) for e, p, v in zip([0, 0, 1], [0, 0, 1], views)]
    for a, b in zip(out, separate):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(net.encode(views[0]), net.encoders[0](views[0]))


def test_privileged_encoder_may_take_other_channels_and_3d():
    net = build_multibranch_resnet(3, [0, 1], in_channels=[1, 3], depth=10, projector_dims=(8,))
    out = net([torch.rand(2, 1, 16, 16, 16), torch.rand(2, 3, 16, 16, 16)])
    assert [o.shape for o in out] == [(2, 8), (2, 8)]
    assert net.encode(torch.rand(2, 1, 16, 16, 16)).shape == (2, 512)


def test_actionable_errors():
    enc = [torch.nn.Flatten()]
    proj = [ProjectionHead(4, (2,))]
    with pytest.raises(ValueError, match="at least 2 branches"):
        MultiBranchSSLNet(enc, proj, [0])
    with pytest.raises(ValueError, match="must use each of the 2 encoder"):
        MultiBranchSSLNet(enc * 2, proj, [0, 0], [0, 0])
    with pytest.raises(ValueError, match="differ in length"):
        MultiBranchSSLNet(enc, proj, [0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="expected 2 views"):
        MultiBranchSSLNet(enc, proj, [0, 0])([torch.rand(2, 4)])
    with pytest.raises(ValueError, match="one value per encoder"):
        build_multibranch_resnet(2, [0, 1], in_channels=[1], depth=10)
