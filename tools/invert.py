"""``python -m tools invert``: invert a folder of images through an RNIStyleGAN2 checkpoint
(or an NVlabs stylegan2-ada-pytorch network pickle, converted in memory).

Image2StyleGAN-style optimisation of w+ (or w, or z; optionally the noise maps too) by
:func:`evaluation.inversion.invert`, with a perceptual distance when one is available:
Image2StyleGAN's VGG-16 loss with ``--vgg16-path``, LPIPS with its weights, else the
project's classifier features (not the published kind of loss).  Writes to ``--out``:
``inversion.csv`` (PSNR/SSIM per image, and the perceptual distance used), ``summary.json``
(the means, the distance), ``latents.pt`` and ``grid.png`` (targets above their reconstructions).

(Formerly ``python -m evaluation.inversion``, which still works for one release.)
"""

from __future__ import annotations

import argparse
import csv
import json
import os

import torch
from tqdm import tqdm

from core.errors import UserError, check_checkpoint_file
from evaluation.inversion import invert, load_images, perceptual_distance
from lightning_modules.rni_stylegan2 import RNIStyleGAN2
from tools.nvlabs_convert import rni_stylegan2_from_nvlabs

__all__ = ["add_command", "run"]


def add_command(subparsers, name: str, help: str) -> None:
    p = subparsers.add_parser(name, help=help, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=run)
    p.add_argument(
        "--ckpt",
        required=True,
        help="RNIStyleGAN2 checkpoint (runs/.../checkpoints/last.ckpt), or an NVlabs stylegan2-ada-pytorch "
        "network pickle (.pkl), read without running its code (docs/nvlabs-checkpoints.md)",
    )
    p.add_argument("--images", required=True, help="folder of images to invert")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--limit", type=int, default=None, help="invert at most this many images")
    p.add_argument("--space", choices=["w_plus", "w", "z"], default="w_plus")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--optimize-noise", action="store_true", help="also optimise the injected noise maps")
    p.add_argument("--noise-reg-weight", type=float, default=1e5)
    p.add_argument("--mse-weight", type=float, default=1.0)
    p.add_argument("--perceptual", choices=["auto", "vgg16", "lpips", "classifier", "none"], default="auto",
                   help="auto: vgg16 if --vgg16-path, else lpips if its weights are here, else classifier, else none")
    p.add_argument("--vgg16-path", default=None,
                   help="torchvision's VGG-16 ImageNet weights (vgg16-397923af.pth): Image2StyleGAN's perceptual loss")
    p.add_argument("--perceptual-weight", type=float, default=1.0)
    p.add_argument("--lpips-path", default=None, help="VGG16 ImageNet weights for LPIPS (vgg16-397923af.pth)")
    p.add_argument("--classifier-ckpt", default=None, help="project Classifier checkpoint (perceptual fallback)")
    p.add_argument("--no-ema", action="store_true", help="invert the raw generator instead of the EMA")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Invert, and write ``<out>/{inversion.csv, latents.pt, grid.png, summary.json}``."""
    from torchvision.utils import save_image

    check_checkpoint_file(args.ckpt, "--ckpt", howto="python train.py fit -c configs/rni/<config>.yaml")
    if args.ckpt.endswith(".pkl"):  # an official network pickle: G_ema, G and D converted in memory
        module = rni_stylegan2_from_nvlabs(args.ckpt).to(args.device)
    else:
        module = RNIStyleGAN2.load_from_checkpoint(args.ckpt, map_location=args.device).eval()
    c, r = module.image_shape[0], module.image_shape[1]
    targets, names = load_images(args.images, r, c, args.limit)
    try:
        distance, distance_name = perceptual_distance(
            args.perceptual, args.lpips_path, args.classifier_ckpt, vgg16_path=args.vgg16_path
        )
    except (ValueError, FileNotFoundError) as err:  # e.g. --perceptual classifier without --classifier-ckpt
        raise UserError(str(err)) from err
    os.makedirs(args.out, exist_ok=True)
    results = []
    for start in tqdm(range(0, len(targets), args.batch_size), desc="batches"):
        batch = targets[start : start + args.batch_size]
        results.append(
            invert(
                module, batch, space=args.space, steps=args.steps, lr=args.lr, mse_weight=args.mse_weight,
                perceptual=distance, perceptual_weight=args.perceptual_weight, optimize_noise=args.optimize_noise,
                noise_reg_weight=args.noise_reg_weight, ema=not args.no_ema, seed=args.seed + start, progress=True,
            )  # fmt: skip
        )
    recon = torch.cat([res.images.cpu() for res in results])
    p_all, s_all = torch.cat([res.psnr for res in results]), torch.cat([res.ssim for res in results])
    with open(os.path.join(args.out, "inversion.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "psnr_db", "ssim", "perceptual"])
        for name, p_val, s_val in zip(names, p_all.tolist(), s_all.tolist()):
            writer.writerow([name, f"{p_val:.4f}", f"{s_val:.5f}", distance_name])
    torch.save({"names": names, "latents": [res.latents.cpu() for res in results], "space": args.space},
               os.path.join(args.out, "latents.pt"))  # fmt: skip
    rows = []
    per_row = 8
    for start in range(0, len(targets), per_row):  # targets above their reconstructions
        rows += [targets[start : start + per_row], recon[start : start + per_row]]
    grid_path = os.path.join(args.out, "grid.png")
    save_image(torch.cat(rows), grid_path, nrow=per_row, normalize=True, value_range=(-1, 1), pad_value=1.0)
    summary = {
        "checkpoint": args.ckpt,
        "noise_injection": module.hparams.get("noise_injection"),
        "images": len(names),
        "space": args.space,
        "steps": args.steps,
        "optimize_noise": args.optimize_noise,
        "perceptual": distance_name,
        "perceptual_weight": args.perceptual_weight if distance is not None else 0.0,
        "mse_weight": args.mse_weight,
        "psnr_mean_db": float(p_all.mean()),
        "ssim_mean": float(s_all.mean()),
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(
        f"{len(names)} images, {args.space}, {args.steps} steps, perceptual {distance_name}: "
        f"PSNR {summary['psnr_mean_db']:.2f} dB, SSIM {summary['ssim_mean']:.4f}\n"
        f"  per image: {os.path.join(args.out, 'inversion.csv')}\n  grid:      {grid_path}"
    )
    return 0
