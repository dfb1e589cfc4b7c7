"""Speed, memory and accuracy of EXAMINE scoring (``monai_synpriv.assessment.ExamineScorer``) on the CPU.

    .venv/bin/python benchmarks/examine_speed.py [--n 100000] [--d 768] [--bf-n 2000] [--quick]

(a) Scale: exact scores of ``--n`` float32 embeddings of ``--d`` features for three kinds of embeddings (isotropic
    Gaussian; a decaying spectrum with the mean offset of ReLU features; the same ReLU features L2-normalised by the
    scorer), in memory and streamed from a ``.npy`` on disk (memmap, ``chunk_size`` rows at a time), with the peak of
    memory allocated during scoring (``tracemalloc``; the input array and the memmapped file are not counted). Target
    of the issue: at most 10 s on the 2-core CPU.
(b) Speed-up over brute force at ``n = --bf-n``: brute force is one SVD of the ``(n - 1) x d`` matrix per row. Only
    ``--bf-rows`` rows are timed (half of them the top-ranked rows, the hardest for the solver, half at random) and
    the time is extrapolated linearly to all ``n`` rows (plus the one full SVD); the table says so.
(c) Accuracy: the largest absolute difference to brute force on those rows.
(d) First-order approximation ``(v_1.x)^2 / (2 s1)``: time, and its Spearman rank correlation and top-1% overlap
    with the exact scores.

Prints the tables and writes ``examine_speed.json`` and ``.md`` under ``--out``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from monai_synpriv.assessment import ExamineScorer, preprocess_embeddings
from monai_synpriv.utils import atomic_path, write_json_atomic

KINDS = {
    # name: (generator key, ExamineScorer options)
    "isotropic Gaussian": ("gauss", {}),
    "decaying spectrum + ReLU offset": ("relu", {}),
    "ReLU features, L2-normalised": ("relu", {"l2_normalize": True}),
}


def make_embeddings(kind: str, n: int, d: int, seed: int = 0, block: int = 16384) -> np.ndarray:
    """``(n, d)`` float32 embeddings, generated block by block to keep the float64 temporaries small."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, d), dtype=np.float32)
    decay = (np.arange(1, d + 1, dtype=np.float32) ** -0.5).astype(np.float32)
    for start in range(0, n, block):
        g = rng.standard_normal((min(block, n - start), d), dtype=np.float32)
        if kind == "relu":  # singular values of the centred part decay like j^-1/2; ReLU adds a mean offset
            np.maximum(g * decay, 0.0, out=g)
        x[start : start + len(g)] = g
    return x


def timed(fn, *args, **kwargs) -> tuple[object, float, float]:
    """Run ``fn``; returns its result, the wall time (s) and the peak memory it allocated (MiB, tracemalloc)."""
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    wall = time.perf_counter() - t0
    peak = (tracemalloc.get_traced_memory()[1] - base) / 2**20
    return out, wall, peak


def scale(args: argparse.Namespace, tmp: Path) -> tuple[list[dict], list[dict]]:
    rows, first_order_rows = [], []
    cache: dict[str, np.ndarray] = {}
    for name, (gen, options) in KINDS.items():
        if gen not in cache:
            cache.clear()
            cache[gen] = make_embeddings(gen, args.n, args.d)
        x = cache[gen]
        exact, t_exact, mem_exact = timed(ExamineScorer(**options).score, x)
        print(f"[scale] {name}: exact {t_exact:.2f} s, {mem_exact:.0f} MiB, info {exact.info}", flush=True)
        rows.append(
            {
                "embeddings": name,
                "source": "in memory",
                "chunk_size": ExamineScorer().chunk_size,
                "seconds": t_exact,
                "peak_mib": mem_exact,
                "newton_iterations": exact.info["newton_iterations"],
                "exact_directions": exact.info["exact_directions"],
            }
        )
        first, t_first, _ = timed(ExamineScorer(method="first_order", **options).score, x)
        rho = float(spearmanr(exact.msv, first.msv).statistic)
        top = max(1, args.n // 100)
        overlap = len(set(exact.ranking[:top].tolist()) & set(first.ranking[:top].tolist())) / top
        first_order_rows.append(
            {
                "embeddings": name,
                "exact_seconds": t_exact,
                "first_order_seconds": t_first,
                "spearman": rho,
                "top1pct_overlap": overlap,
            }
        )
        print(f"[first order] {name}: {t_first:.2f} s, Spearman {rho:.6f}, top-1% overlap {overlap:.3f}", flush=True)
        if gen == "relu" and not options:  # streaming from disk: one kind is enough
            path = tmp / "embeddings.npy"
            np.save(path, x)
            for chunk in (ExamineScorer().chunk_size, args.small_chunk):
                streamed, t_stream, mem_stream = timed(ExamineScorer(chunk_size=chunk, **options).score, path)
                err = float(np.max(np.abs(streamed.msv - exact.msv)))
                rows.append(
                    {
                        "embeddings": name,
                        "source": ".npy memmap",
                        "chunk_size": chunk,
                        "seconds": t_stream,
                        "peak_mib": mem_stream,
                        "newton_iterations": streamed.info["newton_iterations"],
                        "exact_directions": streamed.info["exact_directions"],
                        "max_abs_diff_to_in_memory": err,
                    }
                )
                print(f"[scale] {name} from disk, chunk {chunk}: {t_stream:.2f} s, {mem_stream:.0f} MiB", flush=True)
            path.unlink()
    return rows, first_order_rows


def brute_force_rows(x: np.ndarray, rows: np.ndarray, options: dict) -> tuple[np.ndarray, float, float]:
    """MSV of ``rows`` by one SVD per row; returns them, the full-SVD time and the mean time per row."""
    xp = preprocess_embeddings(x, **options)
    t0 = time.perf_counter()
    s1 = np.linalg.svd(xp, compute_uv=False)[0]
    t_full = time.perf_counter() - t0
    out = np.empty(len(rows))
    t0 = time.perf_counter()
    for j, i in enumerate(rows):
        out[j] = s1 - np.linalg.svd(np.delete(xp, i, axis=0), compute_uv=False)[0]
    return out, t_full, (time.perf_counter() - t0) / len(rows)


def speedup(args: argparse.Namespace) -> list[dict]:
    results = []
    for d, n_rows in zip(args.bf_d, args.bf_rows):
        for name, (gen, options) in KINDS.items():
            x = make_embeddings(gen, args.bf_n, d, seed=1)
            scorer = ExamineScorer(**options)
            scorer.score(x)  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                result = scorer.score(x)
                times.append(time.perf_counter() - t0)
            t_exact = min(times)
            rng = np.random.default_rng(2)
            top = result.ranking[: n_rows // 2]
            rest = rng.choice(np.setdiff1d(np.arange(args.bf_n), top), n_rows - len(top), replace=False)
            rows = np.concatenate([top, rest])
            ref, t_full, t_row = brute_force_rows(x, rows, options)
            t_brute = t_full + args.bf_n * t_row
            err = float(np.max(np.abs(result.msv[rows] - ref)))
            results.append(
                {
                    "embeddings": name,
                    "n": args.bf_n,
                    "d": d,
                    "exact_seconds": t_exact,
                    "brute_rows_timed": int(n_rows),
                    "brute_seconds_per_row": t_row,
                    "brute_seconds_extrapolated": t_brute,
                    "speedup": t_brute / t_exact,
                    "max_abs_error": err,
                    "max_msv": float(ref.max()),
                }
            )
            print(
                f"[brute force] {name}, n={args.bf_n}, d={d}: exact {t_exact * 1e3:.1f} ms, brute force "
                f"{t_row * 1e3:.1f} ms/row x {args.bf_n} = {t_brute:.1f} s, speed-up {t_brute / t_exact:.0f}x, "
                f"max abs error {err:.1e}",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="embeddings for the scale test")
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--small-chunk", type=int, default=2048, help="second chunk size of the streaming run")
    parser.add_argument("--bf-n", type=int, default=2000, help="embeddings for the brute-force comparison")
    parser.add_argument("--bf-d", type=int, nargs="+", default=[128, 768])
    parser.add_argument("--bf-rows", type=int, nargs="+", default=[100, 20], help="rows timed by brute force, per d")
    parser.add_argument("--repeats", type=int, default=5, help="best of, for the exact time at --bf-n")
    parser.add_argument("--quick", action="store_true", help="smoke run: n=20000, d=256, few brute-force rows")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    if args.quick:
        args.n, args.d, args.bf_n, args.bf_d, args.bf_rows, args.repeats = 20_000, 256, 500, [64], [10], 1
        args.small_chunk = 4096
    if len(args.bf_rows) != len(args.bf_d):
        parser.error("--bf-rows needs one value per --bf-d")

    ExamineScorer().score(make_embeddings("gauss", 2000, args.d))  # warm-up: BLAS threads, first allocations
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        scale_rows, first_order_rows = scale(args, Path(tmp))
    tracemalloc.stop()
    speed_rows = speedup(args)

    env = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    lines = [
        f"EXAMINE scoring on the CPU ({env['cpu']}, {env['cores']} cores, numpy {env['numpy']}), {env['date']}.",
        "",
        f"(a) Exact scores of n = {args.n:,} float32 embeddings, d = {args.d} (target: at most 10 s). Peak = memory "
        "allocated while scoring (tracemalloc), not counting the input array or the memmapped file.",
        "",
        "| embeddings | source | chunk rows | s | peak MiB | Newton iterations | exact directions |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['embeddings']} | {r['source']} | {r['chunk_size']} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | "
        f"{r['newton_iterations']} | {r['exact_directions']} |"
        for r in scale_rows
    ]
    lines += [
        "",
        f"(b, c) Against brute force (one SVD of the (n-1) x d matrix per row) at n = {args.bf_n}. Brute force is timed"
        " on a subset of rows (half top-ranked, half random) and extrapolated linearly to all n rows; the error is the "
        "largest absolute difference on those rows.",
        "",
        "| embeddings | d | exact (ms) | brute force rows timed | brute force s/row | brute force, all rows "
        "(s, extrapolated) | speed-up | max abs error | largest MSV |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['embeddings']} | {r['d']} | {r['exact_seconds'] * 1e3:.1f} | {r['brute_rows_timed']} | "
        f"{r['brute_seconds_per_row']:.4f} | {r['brute_seconds_extrapolated']:.1f} | {r['speedup']:,.0f}x | "
        f"{r['max_abs_error']:.1e} | {r['max_msv']:.3g} |"
        for r in speed_rows
    ]
    lines += [
        "",
        f"(d) First-order approximation against exact, n = {args.n:,}, d = {args.d}.",
        "",
        "| embeddings | exact (s) | first order (s) | Spearman | top-1% overlap |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['embeddings']} | {r['exact_seconds']:.2f} | {r['first_order_seconds']:.2f} | {r['spearman']:.6f} | "
        f"{r['top1pct_overlap']:.3f} |"
        for r in first_order_rows
    ]
    md = "\n".join(lines) + "\n"
    print("\n" + md)
    out = Path(args.out)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    payload = {"environment": env, "settings": settings, "scale": scale_rows, "brute_force": speed_rows}
    payload["first_order"] = first_order_rows
    name = "examine_speed_quick" if args.quick else "examine_speed"
    write_json_atomic(out / f"{name}.json", payload)
    with atomic_path(out / f"{name}.md") as tmp:
        Path(tmp).write_text(md)


if __name__ == "__main__":
    main()
