"""GANZ's fit stage: a BEGAN (Berthelot et al. 2017) with the generator of GANZ's Fig. 6.

Seed paper "GANs for lossy image compression" (GANZ), Sec. 3.1: "We use Boundary
Equilibrium GAN (BEGAN) as the base architecture and vary the latent dimension at train
(d_t) and compression time (d_c)".  The networks are in :mod:`lightning_modules.nets.began`;
compression (GANZ Eq. 1) and the ratio trick are in :mod:`lightning_modules.ganz.inversion` and
:mod:`lightning_modules.ganz.latent`.

BEGAN's objective (BEGAN Eq. 4), with the auto-encoder loss L(v) = mean |v - D(v)|^eta
(eta = 1, the L1 pixel loss) and separate latents z_D, z_G ~ U[-1, 1]^{d_t}:

    L_D = L(x) - k_t L(G(z_D))                      (D step)
    L_G = L(G(z_G))                                 (G step)
    k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1)

gamma = E[L(G(z))] / E[L(x)] is the diversity ratio (BEGAN Eq. 3) and lambda_k the
proportional gain of the k_t controller.  The global convergence measure (BEGAN Sec. 3.4.1)

    M_global = L(x) + |gamma L(x) - L(G(z_G))|

is logged every step with the losses and k_t (``train/loss_d``, ``train/loss_g``,
``train/k_t``, ``train/M``).  k_t is a buffer, so it is in the checkpoint and a resumed
run continues the controller exactly; under DDP its update uses the losses averaged over
all processes, so every rank holds the same k_t.  BEGAN halves the learning rate when M stalls;
here that is ``lr_decay_every`` (iterations), as BEGAN's reference code does it.

GANZ is an :class:`~lightning_modules.adversarial.AdversarialModule` like every GAN here: the
shared loop, the noise spec (``noise``, uniform U[-1, 1) by default, BEGAN's), ``generate``,
the generator EMA (off by default: ``ema_kimg: 0``, BEGAN has none), the image counter, the
data-shape check and the logged noise entropy.  BEGAN's losses are its :meth:`GANZ.d_loss` and
:meth:`GANZ.g_loss`, the k_t controller and the learning-rate decay its
:meth:`GANZ.on_iteration_end`.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch.utilities import rank_zero_info

from core.noise import NoiseSpec
from lightning_modules.adversarial import AdversarialModule, Losses
from lightning_modules.losses import at_least_float32
from lightning_modules.nets.began import BEGANAutoEncoder, BEGANGenerator

__all__ = ["GANZ", "autoencoder_loss"]


def autoencoder_loss(v: torch.Tensor, reconstruction: torch.Tensor, eta: int = 1) -> torch.Tensor:
    """L(v) = mean over pixels and batch of |v - D(v)|^eta (BEGAN Eq. 1; eta = 1 or 2).

    In float32 under autocast (where G's images and D's reconstructions come in bf16/fp16), so
    the k_t controller and M_global see float32 losses.
    """
    diff = (at_least_float32(v) - at_least_float32(reconstruction)).abs()
    return (diff if eta == 1 else diff.pow(eta)).mean()


class GANZ(AdversarialModule):
    """BEGAN training for GANZ (see the module docstring); ``generator.h0`` is GANZ's Fig. 6 ``h0``.

    Args:
        noise: the training latent z: ``dim`` is GANZ's d_t (64, 128, 256 or 512 in Fig. 2
            and 7), ``distribution: uniform`` is BEGAN's U[-1, 1].
        resolution: image side (a power of two >= 8); 128 in GANZ.
        channels: image channels; must match the data.
        n_filters: BEGAN's n, filters per convolution (128 in GANZ: the first feature map
            n x 8 x 8 has 8192 values).
        embedding_dim: N_h, the size of D's auto-encoder bottleneck; ``null`` uses d_t
            (BEGAN: N_h = N_z).
        gamma: the diversity ratio gamma of BEGAN Eq. 3.  GANZ does not state its value; 0.5
            is BEGAN's and the reference code's default.
        lambda_k: the proportional gain lambda_k of the k_t update (BEGAN: 0.001).
        k_init: k_0 (BEGAN: 0).
        eta: the exponent of the auto-encoder loss L (BEGAN: 1).
        lr_g: generator Adam learning rate (BEGAN: 1e-4).
        lr_d: discriminator Adam learning rate (BEGAN: 1e-4).
        betas: Adam (beta1, beta2) (BEGAN's reference code: (0.5, 0.999)).
        lr_decay_every: halve both learning rates every this many iterations (BEGAN's
            reference code: 100,000); ``null`` keeps them constant.
        ema_kimg: half-life of the generator EMA in thousands of images; 0 (BEGAN) makes the
            EMA the current generator.
        ema_rampup: cap the EMA half-life at this fraction of the images seen; ``null`` for none.
    """

    def __init__(
        self,
        noise: NoiseSpec = NoiseSpec(dim=64, distribution="uniform"),
        resolution: int = 128,
        channels: int = 3,
        n_filters: int = 128,
        embedding_dim: Optional[int] = None,
        gamma: float = 0.5,
        lambda_k: float = 0.001,
        k_init: float = 0.0,
        eta: int = 1,
        lr_g: float = 1e-4,
        lr_d: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        lr_decay_every: Optional[int] = None,
        ema_kimg: float = 0.0,
        ema_rampup: Optional[float] = None,
    ) -> None:
        super().__init__()
        noise = NoiseSpec.coerce(noise)
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"model.init_args.gamma must be in (0, 1], got {gamma}")
        if lambda_k < 0 or not 0.0 <= k_init <= 1.0:
            raise ValueError(f"model.init_args.lambda_k must be >= 0 and k_init in [0, 1], got {lambda_k}, {k_init}")
        if eta not in (1, 2):
            raise ValueError(f"model.init_args.eta must be 1 or 2, got {eta}")
        if lr_decay_every is not None and lr_decay_every < 1:
            raise ValueError(f"model.init_args.lr_decay_every must be >= 1 or null, got {lr_decay_every}")
        self.save_hyperparameters(ignore=["noise"])
        self.hparams["noise"] = noise.to_dict()  # plain types: checkpoints load with weights_only
        self.gamma, self.lambda_k, self.eta, self.lr_decay_every = gamma, lambda_k, eta, lr_decay_every
        self.generator = BEGANGenerator(noise.dim, resolution, channels, n_filters)
        self.discriminator = BEGANAutoEncoder(embedding_dim or noise.dim, resolution, channels, n_filters)
        # The equilibrium controller's state: a buffer, so checkpoints carry it.
        self.register_buffer("k_t", torch.tensor(float(k_init)))
        self._init_adversarial(
            noise=noise,
            image_shape=(channels, resolution, resolution),
            lr_g=lr_g,
            lr_d=lr_d,
            betas=betas,
            ema_kimg=ema_kimg,
            ema_rampup=ema_rampup,
        )

    # ------------------------------------------------------------------ BEGAN
    def L(self, v: torch.Tensor) -> torch.Tensor:
        """The auto-encoder loss L(v) = mean |v - D(v)|^eta (BEGAN Eq. 1)."""
        return autoencoder_loss(v, self.discriminator(v), self.eta)

    def configure_optimizers(self):
        optimizers = super().configure_optimizers()
        if self.lr_decay_every is None:
            return optimizers
        every = self.lr_decay_every
        schedulers = [torch.optim.lr_scheduler.StepLR(opt, step_size=every, gamma=0.5) for opt in optimizers]
        return optimizers, schedulers

    progress_bar_keys = ("loss_d", "loss_g", "M")
    session_keys = ("n_filters", "embedding_dim", "gamma", "lambda_k")

    def d_loss(self, batch: Any) -> Losses:
        """L_D = L(x) - k_t L(G(z_D)) (BEGAN Eq. 4)."""
        real = self._images(batch)
        with torch.no_grad():
            fake = self.generator(self.sample_noise(real.shape[0]).to(self._compute_dtype))
        loss_real, loss_fake = self.L(real), self.L(fake)
        loss = loss_real - self.k_t * loss_fake
        return loss, {"loss_d": loss.detach(), "L_real": loss_real.detach(), "L_fake": loss_fake.detach()}

    def g_loss(self, batch: Any) -> Losses:
        """L_G = L(G(z_G)) (BEGAN Eq. 4)."""
        loss = self.L(self.generator(self.sample_noise(self._images(batch).shape[0]).to(self._compute_dtype)))
        return loss, {"loss_g": loss.detach()}

    def on_iteration_end(self, batch: Any, logs: dict[str, torch.Tensor]) -> None:
        """The k_t update and the convergence measure M_global (BEGAN Sec. 3.4), then the lr decay.

        From the losses averaged over all processes, so every DDP rank keeps the same k_t.
        """
        with torch.no_grad():
            stats = torch.stack([logs["L_real"], logs["loss_g"]]).float()
            mean_real, mean_fake = self.trainer.strategy.reduce(stats, reduce_op="mean").unbind()
            balance = self.gamma * mean_real - mean_fake
            self.k_t.copy_((self.k_t + self.lambda_k * balance).clamp(0.0, 1.0))
            logs.update(M=mean_real + balance.abs(), k_t=self.k_t.clone())
        if self.lr_decay_every is not None:
            for scheduler in self.lr_schedulers():
                scheduler.step()

    def on_fit_start(self) -> None:
        super().on_fit_start()
        rank_zero_info(
            f"GANZ/BEGAN: d_t = {self.noise.dim}, n = {self.generator.n}, gamma = {self.gamma}, "
            f"lambda_k = {self.lambda_k}, k_t = {float(self.k_t):.4f}"
        )

    def _evaluate(self, batch: Any, split: str) -> None:
        """Auto-encoder losses on held-out reals and on EMA samples, and M on them."""
        real = self._images(batch)
        fake = self.generate(batch_size=real.shape[0])
        loss_real, loss_fake = self.L(real), self.L(fake)
        self.log_dict(
            {
                f"{split}/L_real": loss_real,
                f"{split}/L_fake": loss_fake,
                f"{split}/M": loss_real + (self.gamma * loss_real - loss_fake).abs(),
            },
            sync_dist=True,
        )

    def custom_scalars(self) -> dict[str, Any]:
        name = type(self).__name__
        return {
            name: {
                "losses": ["Multiline", ["train/loss_d", "train/loss_g"]],
                "auto-encoder losses L(x), L(G(z))": [
                    "Multiline",
                    ["train/L_real", "train/L_fake", "val/L_real", "val/L_fake"],
                ],
                "convergence measure M (BEGAN Sec. 3.4.1)": ["Multiline", ["train/M", "val/M"]],
                "equilibrium controller k_t": ["Multiline", ["train/k_t"]],
            }
        }
