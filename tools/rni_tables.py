"""``python -m tools rni-tables``: the RNI paper's Table 1 (PPL, FID) and Table 2 (MC, TTMC) from runs.

Seed paper "On noise injection in GANs" (Feng et al. 2021), Sec. 5.  Give each run as
``--run ROW=PATH``: PATH is a ``train.py test`` (or fit) log folder with TensorBoard events, or a
JSON file of ``{tag: value}``; ROW names the paper's row by the config that trains it:

=========================  ====================================  ===============================
``--arch stylegan2`` ROW   the paper's row (Tables 1 and 2)       config
=========================  ====================================  ===============================
``plain``                  Plain StyleGAN2                        ``<dataset>128_plain.yaml``
``stylegan2``              StyleGAN2 + ENI (path length on)       ``<dataset>128_stylegan2.yaml``
``rni_nopl``               StyleGAN2-NoPathReg + RNI (Ours)       ``<dataset>128_rni_nopl.yaml``
``rni``                    StyleGAN2 + RNI (Ours)                 ``<dataset>128_rni.yaml``
``eni``                    not in the paper: the project's        ``<dataset>128_eni.yaml``
                           ablation StyleGAN2-NoPathReg + ENI
=========================  ====================================  ===============================

``--arch dcgan``: ``none`` (DCGAN), ``eni`` (DCGAN + ENI), ``rni`` (DCGAN + RNI (Ours));
configs ``<dataset>64_dcgan_{none,eni,rni}.yaml``.  Any other ROW is kept, verbatim, after
the paper's rows.

Several runs of one row (seeds) are averaged: each cell is mean ± sample standard deviation,
with ``k`` the number of runs.  PPL keeps the distance it was measured with (``lpips-vgg``,
the paper's, or an offline feature distance such as ``inception-l2``; the tag
``metrics/ppl[<distance>]``) in its own column; runs of one row under different distances are
separate rows, never averaged together.  With ``--dataset ffhq`` or ``lsun_church`` the
paper's numbers stand beside the measured ones.

Writes ``<out>/table1.{md,csv}`` and ``<out>/table2.{md,csv}`` and prints both tables.

    python -m tools rni-tables --arch stylegan2 --dataset ffhq --out runs/rni_tables/ffhq128 \\
        --run plain=runs/rni/ffhq128_plain/version_1 --run stylegan2=runs/rni/ffhq128_stylegan2/version_1 \\
        --run rni_nopl=runs/rni/ffhq128_rni_nopl/version_1 --run rni=runs/rni/ffhq128_rni/version_1
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any, Optional, Sequence

import yaml

from callbacks.generative_metrics import PPL_TAG, split_distance_tag
from core.errors import UserError
from tools.rni_compare import read_test_metrics
from tools.sweep import aggregate_seeds, markdown_table, write_rows

__all__ = ["PAPER", "ROWS", "add_command", "build_tables", "run"]

#: ROW -> the paper's row label, in the paper's order; None marks the project's own ablation.
ROWS: dict[str, dict[str, Optional[str]]] = {
    "stylegan2": {
        "plain": "Plain StyleGAN2",
        "stylegan2": "StyleGAN2 + ENI",
        "rni_nopl": "StyleGAN2-NoPathReg + RNI (Ours)",
        "rni": "StyleGAN2 + RNI (Ours)",
        "eni": None,
    },
    "dcgan": {"none": "DCGAN", "eni": "DCGAN + ENI", "rni": "DCGAN + RNI (Ours)"},
}
#: The label of the row not in the paper.
ABLATION_LABEL = "StyleGAN2-NoPathReg + ENI (project's ablation, not in the paper)"

#: The paper's numbers: PAPER[dataset][ROW] = (PPL, FID, MC, TTMC); Table 2 has no DCGAN rows.
PAPER: dict[str, dict[str, tuple[Optional[float], ...]]] = {
    "ffhq": {
        "none": (2.97, 45.29, None, None),
        "eni_dcgan": (3.14, 44.22, None, None),
        "rni_dcgan": (2.83, 40.06, None, None),
        "plain": (28.44, 6.87, 0.943, 2.81),
        "stylegan2": (16.20, 7.29, 0.666, 1.27),
        "rni_nopl": (16.02, 7.14, 0.766, 2.39),
        "rni": (13.05, 7.31, 0.530, 1.05),
    },
    "lsun_church": {
        "none": (33.30, 51.18, None, None),
        "eni_dcgan": (22.97, 54.01, None, None),
        "rni_dcgan": (22.53, 46.31, None, None),
        "plain": (425.7, 6.44, 2.31, 6.31),
        "stylegan2": (123.6, 6.80, 0.883, 1.75),
        "rni_nopl": (178.9, 5.75, 1.71, 4.74),
        "rni": (119.5, 6.86, 0.773, 1.51),
    },
}
TABLES = {
    "table1": (("PPL", PPL_TAG, 0), ("FID", "metrics/fid", 1)),
    "table2": (("MC", "metrics/mc", 2), ("TTMC", "metrics/ttmc", 3)),
}


def _paper_key(arch: str, row: str) -> str:
    return row if arch == "stylegan2" or row == "none" else f"{row}_dcgan"


def _label(arch: str, row: str) -> str:
    if row not in ROWS[arch]:
        return row
    return ROWS[arch][row] or ABLATION_LABEL


def _seed(path: str, index: int) -> Any:
    """The run's ``seed_everything`` from the ``config.yaml`` LightningCLI saved beside its events, else its index."""
    config = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), "config.yaml")
    try:
        with open(config) as handle:
            seed = (yaml.safe_load(handle) or {}).get("seed_everything")
        return int(seed) if seed is not None and not isinstance(seed, bool) else f"run{index}"
    except (OSError, ValueError, TypeError, yaml.YAMLError):
        return f"run{index}"


def _pm(mean: Any, std: Any) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    if std is None or math.isnan(std):
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {std:.2g}"


def build_tables(
    runs: Sequence[tuple[str, str]], arch: str, dataset: Optional[str] = None
) -> dict[str, list[dict[str, Any]]]:
    """Rows of Table 1 and Table 2 from ``runs`` = [(ROW, path), ...] (see the module docstring).

    Each row holds ``row`` (the paper's label), ``config row``, ``k``, ``seeds``, per column
    ``<col>_mean`` / ``<col>_std``, ``PPL distance`` (Table 1) and, with ``dataset``,
    ``<col> (paper)``.
    """
    if arch not in ROWS:
        raise UserError(f"--arch must be one of {', '.join(ROWS)}, got {arch!r}")
    if dataset is not None and dataset not in PAPER:
        raise UserError(f"--dataset must be one of {', '.join(PAPER)}, got {dataset!r}")
    records = []
    for index, (row, path) in enumerate(runs):
        metrics = read_test_metrics(path)
        record: dict[str, Any] = {"config row": row, "seed": _seed(path, index)}
        ppl = [(tag, v) for tag, v in metrics.items() if split_distance_tag(tag)[0] == PPL_TAG]
        if len(ppl) > 1:
            raise UserError(f"{path}: PPL under several distances ({', '.join(t for t, _ in ppl)}); give one per run")
        record["PPL distance"] = split_distance_tag(ppl[0][0])[1] if ppl else ""
        for table in TABLES.values():
            for column, tag, _ in table:
                value = ppl[0][1] if tag == PPL_TAG and ppl else metrics.get(tag)
                if value is not None:
                    record[column] = float(value)
        records.append(record)
    if not all(isinstance(r["seed"], int) for r in records):  # sortable together: all as text
        for r in records:
            r["seed"] = str(r["seed"])
    order = list(ROWS[arch])
    rank = {row: (order.index(row) if row in order else len(order)) for row in dict.fromkeys(r for r, _ in runs)}
    records.sort(key=lambda r: rank[r["config row"]])  # stable: free rows keep their order
    tables = {}
    for name, columns in TABLES.items():
        keys = ["config row", "PPL distance"] if name == "table1" else ["config row"]
        rows = aggregate_seeds(records, keys, [c for c, _, _ in columns])
        for row in rows:
            row["row"] = _label(arch, row["config row"])
            paper = PAPER[dataset].get(_paper_key(arch, row["config row"])) if dataset else None
            for column, _, position in columns:
                if dataset:
                    row[f"{column} (paper)"] = paper[position] if paper else None
        tables[name] = rows
    return tables


def write_tables(tables: dict[str, list[dict[str, Any]]], folder: str, dataset: Optional[str]) -> list[str]:
    """``folder/table{1,2}.{csv,md}``; returns the Markdown texts."""
    texts = []
    for name, rows in tables.items():
        columns = [c for c, _, _ in TABLES[name]]
        lead = ["row", "config row"] + (["PPL distance"] if name == "table1" else [])
        paper = [f"{c} (paper)" for c in columns] if dataset else []
        csv_columns = lead + ["k", "seeds"] + [f"{c}_{s}" for c in columns for s in ("mean", "std")] + paper
        write_rows(rows, folder, name, csv_columns, markdown=False)
        display = [
            {**{c: row.get(c) for c in lead + ["k", "seeds"] + paper},
             **{c: _pm(row.get(f"{c}_mean"), row.get(f"{c}_std")) for c in columns}}
            for row in rows
        ]  # fmt: skip
        title = {
            "table1": "RNI Table 1: PPL (in W for StyleGAN2, in Z for DCGAN) and FID",
            "table2": "RNI Table 2: MC and TTMC (RNI Eq. 19)",
        }[name]
        note = "mean ± std over the k runs of a row"
        if name == "table1":
            note += "; PPL is on the paper's scale only where its distance is lpips-vgg"
        text = f"{title} ({note}).\n\n" + markdown_table(display, lead + ["k", "seeds"] + columns + paper) + "\n"
        with open(os.path.join(folder, f"{name}.md"), "w") as handle:
            handle.write(text)
        texts.append(text)
    return texts


def _parse_run(text: str) -> tuple[str, str]:
    row, sep, path = text.partition("=")
    if not sep or not row or not path:
        raise UserError(f"--run {text!r}: expected ROW=PATH (e.g. rni=runs/rni/ffhq128_rni/version_1)")
    return row, path


def add_command(subparsers, name: str, help: str) -> None:
    p = subparsers.add_parser(
        name, help=help, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.set_defaults(run=run)
    p.add_argument("--run", dest="runs", action="append", required=True, metavar="ROW=PATH",
                   help="a run folder (TensorBoard events) or metrics JSON of row ROW; repeat (seeds are averaged)")
    p.add_argument("--arch", choices=sorted(ROWS), default="stylegan2",
                   help="which rows: the StyleGAN2 or the DCGAN ones")
    p.add_argument("--dataset", choices=sorted(PAPER), default=None, help="add the paper's numbers for this dataset")
    p.add_argument("--out", required=True, help="output folder")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    runs = [_parse_run(text) for text in args.runs]
    tables = build_tables(runs, args.arch, args.dataset)
    os.makedirs(args.out, exist_ok=True)
    for text in write_tables(tables, args.out, args.dataset):
        print(text)
    print("wrote", *(os.path.join(args.out, f"{n}.{e}") for n in TABLES for e in ("md", "csv")), sep="\n  ")
    return 0
