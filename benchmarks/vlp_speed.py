r"""Speed of the vision-language pieces: a diffusion training step, DDIM sampling with classifier-free guidance (per
image), and a ConVIRT step with the pretrained all-MiniLM-L6-v2 text encoder (upper 3 layers fine-tuned) and with the
small from-scratch one.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/vlp_speed.py [--device cuda] [--size 32] [--batch 32] \
        [--steps 25] [--precision fp32|bf16|fp16|auto] [--repeats 5] [--out benchmarks/results]

Settings default to the CPU quick profile of scripts/vlp_experiment.py (32 px, UNet 32-64-128, batch 32, 25 DDIM
steps, captions of 40 tokens). ``--precision`` (default fp32) is the autocast of every forward pass, on CPU or CUDA
(``monai_synpriv.utils.autocast``; losses and the sampler's updates stay fp32); ``benchmarks/precision.py`` compares
the precisions in one process. Writes ``vlp_speed_<device>.json`` and ``.md`` under ``--out``. Not part of the tests.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from monai.inferers import DiffusionInferer
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from monai_synpriv.losses import ConVIRTLoss
from monai_synpriv.networks import BertTextEncoder, DualEncoder, make_resnet_encoder
from monai_synpriv.utils import atomic_path, autocast, make_grad_scaler, resolve_precision, write_json_atomic


def _backward_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler) -> None:
    """Backward and step, through the gradient scaler in fp16 (``scaler`` is None otherwise)."""
    opt.zero_grad()
    if scaler is None:
        loss.backward()
        opt.step()
        return
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def _median_time(fn, repeats: int, device: str) -> float:
    def run() -> None:
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def diffusion(size: int, batch: int, steps: int, device: str, repeats: int, precision: str) -> tuple[float, float]:
    torch.manual_seed(0)
    net = DiffusionModelUNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=(32, 64, 128),
        attention_levels=(False, True, True),
        num_res_blocks=1,
        num_head_channels=32,
        norm_num_groups=16,
        with_conditioning=True,
        cross_attention_dim=384,
    ).to(device)
    opt = torch.optim.AdamW(net.parameters(), 5e-4)
    inferer = DiffusionInferer(DDPMScheduler(1000))
    x = torch.rand(batch, 1, size, size, device=device) * 2 - 1
    ctx = torch.randn(batch, 1, 384, device=device)
    scaler = make_grad_scaler(precision, device)

    def train_step() -> None:
        noise = torch.randn_like(x)
        t = torch.randint(0, 1000, (batch,), device=device)
        with autocast(device, precision):
            pred = inferer(x, net, noise, t, condition=ctx)
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        _backward_step(loss, opt, scaler)

    train = _median_time(train_step, repeats, device)
    sched = DDIMScheduler(1000)
    sched.set_timesteps(steps)

    def model(*args, **kwargs) -> torch.Tensor:  # the network under autocast, the sampler's updates in fp32
        with autocast(device, precision):
            return net(*args, **kwargs).float()

    @torch.no_grad()
    def sample() -> None:
        DiffusionInferer(sched).sample(
            torch.randn(batch, 1, size, size, device=device), model, sched, conditioning=ctx, cfg=3.0, verbose=False
        )

    per_image = _median_time(sample, max(1, repeats // 3), device) / batch
    return train, per_image


def convirt(kind: str, size: int, batch: int, device: str, repeats: int, precision: str) -> float:
    torch.manual_seed(0)
    if kind == "pretrained":
        text = BertTextEncoder.from_pretrained()
        layers = 3
    else:
        text = BertTextEncoder(vocab_size=4000, hidden_size=256, num_layers=4, num_heads=4, max_position=128)
        layers = None
    net = DualEncoder(make_resnet_encoder(2, 1, 18), text, 512, embed_dim=128, trainable_text_layers=layers).to(device)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], 1e-4)
    loss_fn = ConVIRTLoss()
    x = torch.rand(batch, 1, size, size, device=device)
    ids = torch.randint(5, text.vocab_size, (batch, 40), device=device)
    mask = torch.ones_like(ids)
    scaler = make_grad_scaler(precision, device)

    def step() -> None:
        net.train()
        with autocast(device, precision):
            u, v = net(x, ids, mask)
        loss = loss_fn(u.float(), v.float(), net.temperature)
        _backward_step(loss, opt, scaler)

    return _median_time(step, repeats, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16", "fp16", "auto"], help="autocast of the forward passes"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    precision = resolve_precision(args.precision, args.device)
    train, per_image = diffusion(args.size, args.batch, args.steps, args.device, args.repeats, precision)
    rows = [
        {"what": "diffusion training step (batch)", "seconds": train},
        {"what": f"DDIM sampling, {args.steps} steps, guidance 3 (per image)", "seconds": per_image},
    ]
    for kind in ("pretrained", "scratch"):
        rows.append(
            {
                "what": f"ConVIRT step, {kind} text encoder (batch)",
                "seconds": convirt(kind, args.size, args.batch, args.device, args.repeats, precision),
            }
        )
        print(rows[-1], flush=True)
    setting = (
        f"{args.size} px, batch {args.batch}, UNet 32-64-128 (attention at the two lower levels), ResNet-18 + "
        f"BERT text encoders, captions of 40 tokens, {args.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, precision {precision}; medians after a warm-up"
    )
    md = (
        setting
        + "\n\n| what | seconds |\n|---|---|\n"
        + "".join(f"| {r['what']} | {r['seconds']:.3f} |\n" for r in rows)
    )
    print("\n" + md)
    out = Path(args.out)
    tag = args.device.split(":")[0]
    write_json_atomic(out / f"vlp_speed_{tag}.json", {"setting": setting, "results": rows})
    with atomic_path(out / f"vlp_speed_{tag}.md") as tmp:
        Path(tmp).write_text(md)


if __name__ == "__main__":
    main()
