"""GANZ, seed paper "GANs for lossy image compression" (Smedemark-Margulies, Park, Vann).

* :class:`GANZ` (``module``): the fit stage, BEGAN training with GANZ's generator (Fig. 6);
* ``latent``: the compression latent and the ratio trick (keep/no/square/random linear layer);
* ``inversion``: GANZ Eq. 1, z* = argmin ||G(z) - x||^2, batched, with restarts;
* ``format`` and ``codec``: the ``.ganz`` file and the codec built on them;
* ``sensing``: compressive sensing with the generator as prior (Sec. 4, Fig. 8);
* ``compression_baselines``: the wavelet baseline (GANZ Sec. 3.4) and standard lossy codecs at a byte budget;
* ``rate_distortion``: GANZ against wavelets and standard codecs at equal size;
* the command line is ``python -m tools ganz compress|decompress|rd|cs|dt-sweep`` (:mod:`tools.ganz`).
"""

from lightning_modules.ganz.module import GANZ

__all__ = ["GANZ"]
