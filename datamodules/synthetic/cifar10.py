"""A tiny CIFAR-10 in the official "python version" layout: ``root/cifar-10-batches-py/``.

The files have the real names, keys and value types (``data`` a uint8 numpy array
[n, 3072] of R, G, B planes, ``labels`` a list of ints, ``batch_label`` and
``filenames``; ``batches.meta`` with ``label_names``, ``num_cases_per_batch`` and
``num_vis``), pickled with protocol 2 (readable by Python 2 and 3, as the original's).
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from datamodules.synthetic.images import synthetic_images

__all__ = ["CIFAR10_CLASSES", "write_cifar10"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(
    root: str, per_batch: int = 20, seed: int = 0, bytes_keys: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``data_batch_1..5`` (``per_batch`` images each), ``test_batch`` and ``batches.meta``.

    With ``bytes_keys`` the dict keys are ``bytes`` (as some re-pickled copies have).
    Returns ``{"train": (images, labels), "test": (images, labels)}``, images uint8
    [N, 32, 32, 3] and labels int64 [N] in file order (batches 1 to 5 for train).
    """
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)

    def key(name: str):
        return name.encode() if bytes_keys else name

    def dump(name: str, content: dict) -> None:
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({key(k): v for k, v in content.items()}, f, protocol=2)

    out: dict[str, list] = {"train": [], "test": []}
    batches = [(f"data_batch_{b}", f"training batch {b} of 5", "train") for b in range(1, 6)]
    batches.append(("test_batch", "testing batch 1 of 1", "test"))
    for number, (name, batch_label, split) in enumerate(batches):
        images, labels = synthetic_images(per_batch, 32, 32, channels=3, num_classes=10, seed=seed * 100 + number)
        order = np.random.default_rng(seed * 100 + number).permutation(per_batch)  # real batches are shuffled
        images, labels = images[order], labels[order]
        data = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(per_batch, 3072))  # R, G, B planes
        dump(
            name,
            {
                "batch_label": batch_label,
                "labels": [int(y) for y in labels],
                "data": data,
                "filenames": [f"{CIFAR10_CLASSES[y]}_s_{number * per_batch + i:06d}.png" for i, y in enumerate(labels)],
            },
        )
        out[split].append((images, labels))
    dump("batches.meta", {"num_cases_per_batch": per_batch, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072})
    return {
        s: (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])) for s, parts in out.items()
    }
