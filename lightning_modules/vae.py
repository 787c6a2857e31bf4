"""VAE: the pretraining stage of DE-GAN (seed paper "GANs with decoder-encoder output noise").

DE-GAN Sec. II-A, Eq. 4-7: an encoder q_theta(z|x) = N(mu(x), diag(exp(logvar(x)))) and a
decoder p_phi(x|z) trained by minimising the negative ELBO

    L = D_KL(q(z|x) || N(0, I)) - E_q[log p(x|z)]                               (DE-GAN Eq. 4, 7)

with one reparameterised draw z = mu + exp(logvar / 2) * eps per image (Kingma & Welling
2014).  The reconstruction likelihood is configurable:

* ``bernoulli`` -- the sigmoid decoder of Table II (MNIST): pixels mapped from [-1, 1] to
  [0, 1] and -log p(x|z) = sum of binary cross-entropies (the usual continuous-data use of
  the Bernoulli VAE; for grey levels it is not a normalised density);
* ``gaussian`` -- the tanh decoder of Tables III/IV (CelebA, CIFAR-10): N(x; x_hat,
  sigma^2 I) on the [-1, 1] scale, -log p(x|z) = ||x - x_hat||^2 / (2 sigma^2) + D/2
  log(2 pi sigma^2), i.e. MSE up to scale.

All terms are summed over pixels / latent dimensions and averaged over the batch, so
``-elbo`` is in nats per image.  DE-GAN loads the checkpoint this module writes
(``python train.py fit -c configs/de_gan/<data>_vae.yaml``) and uses ``decode`` then
``encode`` as its preconditioner (DE-GAN Eq. 8-9).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid

from lightning_modules.nets.de_gan import VAEDecoder, VAEEncoder

__all__ = ["VAE", "Likelihood"]

Likelihood = Literal["bernoulli", "gaussian"]


class VAE(LightningModule):
    """Variational autoencoder with the DE-GAN paper's encoder/decoder (Tables II-IV).

    Batches are ``images in [-1, 1]`` or ``(images, labels)`` (labels are ignored).
    Logged: ``train/`` and ``val/`` ``elbo``, ``kl`` and ``reconstruction`` (nats per
    image; ``loss`` = -elbo with ``kl_weight`` applied), and at each validation
    ``samples/vae_reconstructions`` (top rows: inputs, bottom rows: reconstructions) and
    ``samples/vae_samples`` (decoded z ~ N(0, I)) as TensorBoard images.

    Args:
        resolution: image side: 28 (Table II), 32 (Table IV; Table II's layers on 32x32
            digits), 64 (Table III); must match the data.
        channels: image channels; must match the data.
        latent_dim: size of z; DE-GAN's noise dimension must equal it (128 in the paper).
        width: w of the encoder (w, 2w, 4w channels) and decoder (4w first); 32 gives the
            tables' 32/64/128.
        dropout: the encoder's dropout before its fully connected layers.
        likelihood: ``bernoulli`` (sigmoid decoder, Table II) or ``gaussian`` (tanh
            decoder, Tables III/IV).
        gaussian_sigma: standard deviation of the Gaussian likelihood on the [-1, 1] pixel
            scale (ignored for ``bernoulli``).
        kl_weight: weight of the KL term; 1 is the ELBO of DE-GAN Eq. 4 (other values train a
            beta-VAE, and the logged ``elbo`` stays the true bound).
        lr: Adam learning rate.
        betas: Adam (beta1, beta2).
        num_log_images: images in the logged reconstruction and sample grids (0: none).
    """

    def __init__(
        self,
        resolution: int = 32,
        channels: int = 1,
        latent_dim: int = 128,
        width: int = 32,
        dropout: float = 0.0,
        likelihood: Likelihood = "bernoulli",
        gaussian_sigma: float = 0.1,
        kl_weight: float = 1.0,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        num_log_images: int = 32,
    ) -> None:
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"model.init_args.likelihood must be bernoulli or gaussian, got {likelihood!r}")
        if gaussian_sigma <= 0:
            raise ValueError(f"model.init_args.gaussian_sigma must be > 0, got {gaussian_sigma}")
        if kl_weight < 0:
            raise ValueError(f"model.init_args.kl_weight must be >= 0, got {kl_weight}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.init_args.dropout must be in [0, 1), got {dropout}")
        self.save_hyperparameters()
        self.latent_dim = latent_dim
        self.image_shape = (channels, resolution, resolution)
        self.encoder = VAEEncoder(latent_dim, resolution, channels, width, dropout)
        self.decoder = VAEDecoder(latent_dim, resolution, channels, width)

    # ------------------------------------------------------------------ model API
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x) for images ``x`` in [-1, 1] (DE-GAN Eq. 5)."""
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's pre-activation output (Bernoulli logits, or pre-tanh means)."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x|z) as images in [-1, 1] (DE-GAN Eq. 6): 2 * sigmoid - 1 or tanh."""
        logits = self.decoder(z)
        return torch.tanh(logits / 2) if self.hparams.likelihood == "bernoulli" else torch.tanh(logits)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I)."""
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    @torch.no_grad()
    def sample(self, num: int) -> torch.Tensor:
        """``num`` images decoded from z ~ N(0, I), in [-1, 1]."""
        return self.decode(torch.randn(num, self.latent_dim, device=self.device, dtype=self.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions (decoder means, [-1, 1]) from the posterior means."""
        return self.decode(self.encode(x)[0])

    # ------------------------------------------------------------------ the ELBO
    def reconstruction_nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per image [N] for decoder output ``logits`` and images ``x`` in [-1, 1]."""
        logits, x = logits.float(), x.float()
        if self.hparams.likelihood == "bernoulli":
            target = (x + 1.0) / 2.0
            nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        else:
            sigma = self.hparams.gaussian_sigma
            nll = (torch.tanh(logits) - x) ** 2 / (2 * sigma**2) + 0.5 * math.log(2 * math.pi * sigma**2)
        return nll.flatten(1).sum(1)

    @staticmethod
    def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """D_KL(N(mu, diag exp(logvar)) || N(0, I)) per image [N], in closed form (DE-GAN Eq. 4)."""
        mu, logvar = mu.float(), logvar.float()
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch means of the KL, the reconstruction NLL, the ELBO and the loss (DE-GAN Eq. 4)."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        recon = self.reconstruction_nll(self.decode_logits(z), x).mean()
        kl = self.kl_divergence(mu, logvar).mean()
        return {
            "loss": recon + self.hparams.kl_weight * kl,
            "elbo": -(recon + kl),
            "kl": kl,
            "reconstruction": recon,
        }

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        if self._trainer is None:
            return
        data_shape = getattr(getattr(self.trainer, "datamodule", None), "image_shape", None)
        if data_shape is not None and tuple(data_shape) != self.image_shape:
            raise ValueError(
                f"the data gives images of shape {tuple(data_shape)} (channels, height, width) but the VAE is "
                f"built for {self.image_shape}: set model.init_args.resolution / channels to match the data"
            )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=tuple(self.hparams.betas))

    @staticmethod
    def _images(batch: Any) -> torch.Tensor:
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        terms = self.elbo_terms(self._images(batch))
        self.log("train/elbo", terms["elbo"], prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in terms.items() if k != "elbo"})
        return terms["loss"]

    def _evaluate(self, batch: Any, batch_idx: int, split: str) -> None:
        x = self._images(batch)
        terms = self.elbo_terms(x)
        self.log(f"{split}/elbo", terms["elbo"], sync_dist=True, prog_bar=True)
        self.log_dict({f"{split}/{k}": v for k, v in terms.items() if k != "elbo"}, sync_dist=True)
        if batch_idx == 0 and split == "val":
            self._log_images(x)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Reconstructions of the batch's images, in [-1, 1]."""
        return self(self._images(batch))

    @torch.no_grad()
    def _log_images(self, x: torch.Tensor) -> None:
        n = min(self.hparams.num_log_images, x.shape[0])
        if n == 0 or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        loggers = [lg for lg in self.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers:
            return
        nrow = 8
        originals = x[:n].float()
        recon = self(x[:n]).float()
        pairs = torch.cat([originals, recon])  # originals on top, their reconstructions below
        samples = self.sample(n).float()
        step = self.global_step
        for logger in loggers:
            grid = make_grid(pairs.cpu(), nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)
            logger.experiment.add_image("samples/vae_reconstructions", grid, global_step=step)
            grid = make_grid(samples.cpu(), nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)
            logger.experiment.add_image("samples/vae_samples", grid, global_step=step)
