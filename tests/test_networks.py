import pytest
import torch

from monai_synpriv.networks import CycleGANResNetGenerator, Pix2PixUNetGenerator


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_resnet_generator_shapes(spatial_dims):
    net = CycleGANResNetGenerator(spatial_dims, in_channels=1, out_channels=2, channels=8, num_res_blocks=2)
    x = torch.rand(2, 1, *([16] * spatial_dims))
    y = net(x)
    assert y.shape == (2, 2, *([16] * spatial_dims))
    assert 0 <= float(y.min()) and float(y.max()) <= 1  # sigmoid head


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_resnet_generator_resize_upsampling_has_no_checkerboard(spatial_dims):
    """From a flat feature map, the up-sampling path of ``upsample="transpose"`` makes the period-2 checkerboard of
    unevenly overlapping kernels; ``upsample="resize"`` (nearest x2 + convolution) keeps it flat. Same shapes, same
    parameter count."""
    torch.manual_seed(0)
    nets = {
        mode: CycleGANResNetGenerator(spatial_dims, 1, 1, channels=4, num_res_blocks=1, upsample=mode)
        for mode in ("transpose", "resize")
    }
    assert len({sum(p.numel() for p in n.parameters()) for n in nets.values()}) == 1
    x = torch.rand(1, 1, *([16] * spatial_dims))
    assert nets["transpose"](x).shape == nets["resize"](x).shape == x.shape
    spread = {}
    for mode, net in nets.items():
        layers = list(net.model)
        ups = (torch.nn.Upsample, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
        first_up = next(i for i, m in enumerate(layers) if isinstance(m, ups))
        up_path = torch.nn.Sequential(*layers[first_up:])
        flat = torch.full((1, 16, *([4] * spatial_dims)), 0.7)  # the bottleneck's width (4 * 2**2) and a flat map
        with torch.no_grad():
            out = up_path(flat)
        interior = out[(..., *[slice(4, -4)] * spatial_dims)]
        spread[mode] = float(interior.max() - interior.min())
    assert spread["resize"] < 1e-5 < 1e-3 < spread["transpose"], spread
    with pytest.raises(ValueError, match="'bilinear'"):
        CycleGANResNetGenerator(2, 1, 1, upsample="bilinear")


def test_resnet_generator_matches_reference_size():
    # junyanz resnet_9blocks, ngf=64, 1 -> 1 channel: 11,365,633 parameters
    net = CycleGANResNetGenerator(2, 1, 1, channels=64, num_res_blocks=9)
    assert sum(p.numel() for p in net.parameters()) == 11_365_633


def test_unet_generator_matches_reference_size():
    # junyanz unet_256 (num_downs=8, ngf=64, batch norm), 3 -> 3 channels: 54,413,955 parameters
    net = Pix2PixUNetGenerator(2, 3, 3, channels=64, num_downs=8)
    assert sum(p.numel() for p in net.parameters()) == 54_413_955


def test_unet_dropout_where_the_reference_has_it():
    count = lambda net: sum(isinstance(m, torch.nn.Dropout) for m in net.modules())  # noqa: E731
    assert count(Pix2PixUNetGenerator(2, 1, 1, channels=4, num_downs=8)) == 3  # the three extra ngf*8 levels
    assert count(Pix2PixUNetGenerator(2, 1, 1, channels=4, num_downs=5)) == 0
    assert count(Pix2PixUNetGenerator(2, 1, 1, channels=4, num_downs=8, dropout=0.0)) == 0


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_unet_generator_shapes(spatial_dims):
    net = Pix2PixUNetGenerator(spatial_dims, 1, 1, channels=4, num_downs=4)
    x = torch.rand(2, 1, *([16] * spatial_dims))
    assert net(x).shape == x.shape


def test_instance_norm_generator_is_per_sample():
    """Batching samples must not change any one result (the trainer relies on it to batch generator passes)."""
    net = CycleGANResNetGenerator(2, 1, 1, channels=4, num_res_blocks=1).eval()
    a, b = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(net(torch.cat([a, b]))[:1], net(a), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("kind", ["resnet", "unet"])
def test_torchscript_export(kind, spatial_dims, tmp_path):
    if kind == "resnet":
        net = CycleGANResNetGenerator(spatial_dims, 1, 1, channels=4, num_res_blocks=1).eval()
    else:
        net = Pix2PixUNetGenerator(spatial_dims, 1, 1, channels=4, num_downs=3).eval()
    x = torch.rand(1, 1, *([16] * spatial_dims))
    path = tmp_path / "net.ts"
    torch.jit.script(net).save(str(path))
    torch.testing.assert_close(torch.jit.load(str(path))(x), net(x))


def test_actionable_errors():
    with pytest.raises(ValueError, match="spatial_dims"):
        CycleGANResNetGenerator(1, 1, 1)
    with pytest.raises(ValueError, match="divisible by 4"):
        CycleGANResNetGenerator(2, 1, 1, channels=4, num_res_blocks=1)(torch.rand(1, 1, 18, 18))
    with pytest.raises(ValueError, match="divisible by 8"):
        Pix2PixUNetGenerator(2, 1, 1, channels=4, num_downs=3)(torch.rand(1, 1, 20, 20))
    with pytest.raises(ValueError, match="in_channels"):
        CycleGANResNetGenerator(2, 0, 1)
