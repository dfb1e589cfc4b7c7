r"""Which caption-conditioned generator fits a 2.5-hour CPU budget (issue 20)? Training-step time of candidate designs.

Pixel diffusion on 64 px images with two UNet widths, and latent diffusion (MONAI ``AutoencoderKL``, 4x down-sampling
to 16 x 16 x 3 latents, then a ``DiffusionModelUNet`` on the latents; the latents of the 529 training images are
encoded once and cached, so a diffusion step never runs the autoencoder) with the autoencoder's own training step.
Every step is MONAI's network under ``monai_synpriv.utils.autocast`` at the chosen precision, with AdamW, a batch of
random tensors of the real shapes and a one-token 384-wide context (the MiniLM caption embedding). The table gives the
median step time and the steps that fit in the budget after the autoencoder's share.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/generator_design.py [--precision auto] [--repeats 5] \
        [--budget_h 2.5] [--ae_steps 3000] [--out benchmarks/results]

Writes ``generator_design_<device>.json`` and ``.md`` under ``--out``. Not part of the tests.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet

from monai_synpriv.utils import atomic_path, autocast, resolve_precision, write_json_atomic

CONTEXT_DIM = 384

#: name -> (input channels, spatial size, UNet channels, attention levels, residual blocks)
DIFFUSION_CANDIDATES = {
    "pixel 64 px, UNet 32-64-128": (1, 64, (32, 64, 128), (False, True, True), 1),
    "pixel 64 px, UNet 64-128-256 (bundle default)": (1, 64, (64, 128, 256), (False, True, True), 2),
    "latent 16x16x3, UNet 64-128-256": (3, 16, (64, 128, 256), (False, True, True), 2),
    "latent 16x16x3, UNet 128-256-256": (3, 16, (128, 256, 256), (False, True, True), 2),
}


def _median_step(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def diffusion_step_time(spec: tuple, batch: int, precision: str, device: str, repeats: int) -> float:
    chans, size, channels, attention, blocks = spec
    net = DiffusionModelUNet(
        spatial_dims=2, in_channels=chans, out_channels=chans, channels=channels, attention_levels=attention,
        num_res_blocks=blocks, num_head_channels=32, norm_num_groups=32, with_conditioning=True,
        cross_attention_dim=CONTEXT_DIM,
    ).to(device)  # fmt: skip
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randn(batch, chans, size, size, device=device)
    context = torch.randn(batch, 1, CONTEXT_DIM, device=device)

    def step():
        t = torch.randint(0, 1000, (batch,), device=device)
        with autocast(device, precision):
            out = net(x, timesteps=t, context=context)
        loss = torch.nn.functional.mse_loss(out.float(), x)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return _median_step(step, repeats)


def autoencoder_step_time(batch: int, precision: str, device: str, repeats: int) -> float:
    ae = AutoencoderKL(
        spatial_dims=2, in_channels=1, out_channels=1, channels=(32, 64, 64), attention_levels=(False, False, False),
        latent_channels=3, num_res_blocks=1, norm_num_groups=32, with_encoder_nonlocal_attn=False,
        with_decoder_nonlocal_attn=False,
    ).to(device)  # fmt: skip
    opt = torch.optim.AdamW(ae.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, 64, 64, device=device)

    def step():
        with autocast(device, precision):
            recon, mu, sigma = ae(x)
        kl = 0.5 * (mu.float() ** 2 + sigma.float() ** 2 - torch.log(sigma.float() ** 2 + 1e-8) - 1).mean()
        loss = (recon.float() - x).abs().mean() + 1e-6 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()

    return _median_step(step, repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="auto")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget_h", type=float, default=2.5)
    p.add_argument("--ae_steps", type=int, default=3000, help="autoencoder training steps charged to latent designs")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = p.parse_args(argv)
    precision = resolve_precision(a.precision, a.device)
    torch.manual_seed(0)
    budget = a.budget_h * 3600.0
    ae = autoencoder_step_time(a.batch, precision, a.device, a.repeats)
    rows = []
    for name, spec in DIFFUSION_CANDIDATES.items():
        s = diffusion_step_time(spec, a.batch, precision, a.device, a.repeats)
        left = budget - (a.ae_steps * ae if name.startswith("latent") else 0.0)
        rows.append({"design": name, "step_s": s, "steps_in_budget": int(max(left, 0.0) / s)})
        print(f"{name}: {s:.3f} s/step, {rows[-1]['steps_in_budget']} steps in {a.budget_h} h", flush=True)
    result = {
        "device": a.device, "precision": precision, "batch": a.batch, "threads": torch.get_num_threads(),
        "autoencoder_step_s": ae, "ae_steps": a.ae_steps, "budget_h": a.budget_h, "rows": rows,
    }  # fmt: skip
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"generator_design_{a.device}.json", result)
    lines = [
        f"Generator designs, {a.device}, {precision}, batch {a.batch}, {torch.get_num_threads()} threads; "
        f"autoencoder (AutoencoderKL 32-64-64, 64 px -> 16x16x3) step {ae:.3f} s, {a.ae_steps} steps charged to "
        "each latent design.",
        "",
        f"| design | s / step | steps in {a.budget_h} h |",
        "|---|---|---|",
        *(f"| {r['design']} | {r['step_s']:.3f} | {r['steps_in_budget']} |" for r in rows),
    ]
    with atomic_path(out / f"generator_design_{a.device}.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
