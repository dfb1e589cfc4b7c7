import torch
from monai.data import CacheDataset
from monai.transforms import Compose, CopyItemsd
from monai.utils import set_determinism

from monai_synpriv.networks import CycleGANResNetGenerator
from monai_synpriv.transforms import RandInvertd, SynthesizePrivilegedd, view_augmentations


def test_each_branch_draws_its_own_augmentation():
    set_determinism(0)
    chain = Compose(
        [
            CopyItemsd("image", names="image_2"),
            *view_augmentations("image", (24, 24)),
            *view_augmentations("image_2", (24, 24)),
        ]
    )
    x = torch.rand(1, 40, 40)
    d = chain({"image": x})
    assert d["image"].shape == d["image_2"].shape == (1, 24, 24)
    assert not torch.allclose(torch.as_tensor(d["image"]), torch.as_tensor(d["image_2"]))


def test_rand_invert_keeps_background():
    x = torch.zeros(1, 4, 4)
    x[0, 1:3, 1:3] = 0.25
    out = RandInvertd("image", prob=1.0)({"image": x})["image"]
    assert float(out[0, 1, 1]) == 0.75 and float(out[0, 0, 0]) == 0.0


def test_synthesize_privileged_matches_generator_and_caches_once(tmp_path):
    torch.manual_seed(0)
    gen = CycleGANResNetGenerator(2, 1, 1, channels=4, num_res_blocks=1)
    ckpt = tmp_path / "model.pt"
    torch.save(gen.state_dict(), ckpt)
    fresh = CycleGANResNetGenerator(2, 1, 1, channels=4, num_res_blocks=1)  # other weights until loaded
    synth = SynthesizePrivilegedd("image", fresh, checkpoint=str(ckpt))
    x = torch.rand(1, 16, 16)
    out = synth({"image": x})["privileged"]
    torch.testing.assert_close(torch.as_tensor(out), gen.eval()(x[None])[0])
    assert not any(p.requires_grad for p in fresh.parameters()), "the translator must stay frozen"
    odd = synth({"image": torch.rand(1, 18, 15)})["privileged"]  # padded to 20 x 16, cropped back
    assert odd.shape == (1, 18, 15)
    calls = []
    fresh.register_forward_hook(lambda *a: calls.append(1))
    ds = CacheDataset([{"image": torch.rand(1, 16, 16)} for _ in range(3)], Compose([synth]), progress=False)
    _ = [ds[i] for i in range(3)] + [ds[i] for i in range(3)]
    assert len(calls) == 3, "in a CacheDataset each image is synthesised once"
