"""DEGAN: a DCGAN whose noise first goes through a frozen, pretrained VAE decoder -> encoder.

Seed paper "Generative adversarial networks with decoder-encoder output noise" (Zhong,
Gao, Liu, Yang), Sec. II and Algorithm 1:

1. pretrain a VAE on the training images (DE-GAN Eq. 4-7; :class:`lightning_modules.vae.VAE`,
   ``python train.py fit -c configs/de_gan/<data>_vae.yaml``);
2. the *preconditioner* maps z_n ~ N(0, I) to x_hat = Decoder(z_n) (DE-GAN Eq. 8) and then to
   z' = Encoder(x_hat) (DE-GAN Eq. 9); z' has the shape of z_n and feeds the DCGAN generator
   (Algorithm 1, lines 4-7).  ``encoder_output: mean`` (the default) takes z' = mu(x_hat),
   ``sample`` draws z' ~ q(z|x_hat);
3. both networks update on lambda_1 L_adv + lambda_2 L_hid (Algorithm 1, lines 12-13; DE-GAN
   Eq. 13), where L_adv is the adversarial loss (DE-GAN Eq. 10-11; the non-saturating form
   for G by default) and L_hid the hidden-space loss between D's activations on the real
   batch and the generated batch (DE-GAN Eq. 12, :func:`hidden_space_loss`).  G minimises
   it (Sec. IV-B's "g_loss").  Line 12 updates D by gradient *ascent* on the same sum, and
   ascent on L_adv is D's usual step, so D maximises L_hid: D's loss is
   lambda_1 L_D - lambda_2 L_hid (``d_hidden: maximise``, the default).  ``d_hidden:
   minimise`` is the other reading (D's loss lambda_1 L_D + lambda_2 L_hid: both networks
   reduce L_hid), ``d_hidden: none`` Sec. IV-B's "d_loss = L_D" (D without L_hid).

``num_classes`` = 10 is the paper's model: Table II is DCGAN-tensorflow's conditional MNIST
model (its discriminator's 11 and 74 maps are 1 + 10 and 64 + 10 channels), and on CIFAR-10
"each image is bound with a label" (Sec. IV-C).  The one-hot label joins the generator's
noise z' and every layer's input in both networks
(:class:`~lightning_modules.nets.de_gan.DEGANGenerator`,
:class:`~lightning_modules.nets.de_gan.DEGANDiscriminator`); in training G draws its fakes
with the labels of the real batch.  ``num_classes: 0`` is the project's unconditional variant.

``preconditioner: none`` skips step 2 (z' = z_n) and ``lambda_hidden: 0`` drops L_hid from
both updates: both together are the plain DCGAN baseline with the identical networks, each
alone one of the two ablations.

The VAE is frozen (:class:`~lightning_modules.frozen.Frozen`): ``requires_grad`` off, always
in eval mode, never in an optimiser, and neither in DE-GAN's ``state_dict`` nor in its
checkpoints.  The checkpoint stores the VAE's path and sha256
instead; loading (``DEGAN.load_from_checkpoint``, ``train.py test --ckpt_path``)
reloads the VAE from ``vae_ckpt``.  ``vae_ckpt`` may be a glob (e.g.
``runs/de_gan/digits_vae/version_*/checkpoints/last.ckpt``): the newest match is used and
its resolved path is what the hyperparameters record.

Sampling API: ``generate(z, labels=...)`` takes *raw* noise z_n (what ``noise.sample`` draws,
so the shared callbacks' fixed noise works unchanged) and applies the preconditioner through
the shared ``generator_input`` hook (a conditional model without ``labels`` gives sample i
the label i mod K); ``sample_noise(n)`` returns preconditioned z' (the generator's input),
which :meth:`DEGAN.d_loss` and :meth:`DEGAN.g_loss` use through :meth:`DEGAN.fake_images`.
"""

from __future__ import annotations

import contextvars
import math
import os
from typing import Any, Literal, Optional

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from core.io import file_sha256, resolve_checkpoint
from core.noise import NoiseSpec
from lightning_modules.adversarial import AdversarialModule, Losses, gaussian_bits
from lightning_modules.frozen import Frozen
from lightning_modules.losses import LossName
from lightning_modules.nets.de_gan import Arch, DEGANDiscriminator, DEGANGenerator, check_arch, upgrade_legacy_state_dict
from lightning_modules.vae import VAE

__all__ = ["DEGAN", "DHidden", "HiddenLoss", "hidden_space_loss"]

HiddenLoss = Literal["per_sample", "mean_features"]
DHidden = Literal["maximise", "minimise", "none"]
VAE_HOWTO = "python train.py fit -c configs/de_gan/<data>_vae.yaml"  # digits, mnist, cifar10, celeba64


def hidden_space_loss(h_real: torch.Tensor, h_gen: torch.Tensor, mode: HiddenLoss = "per_sample") -> torch.Tensor:
    """The hidden-space loss L_hid of DE-GAN Eq. 12 between D's activations on real and generated images.

    ``per_sample`` (DE-GAN Eq. 12 as written): (1/N) sum_i ||h(x_real^(i)) - h(x_gen^(i))||_2, the
    L2 distance between the flattened activation maps of the i-th real and i-th generated
    image of the two batches, averaged over the batch (both batches must have N images).
    ``mean_features``: ||mean_i h(x_real^(i)) - mean_i h(x_gen^(i))||_2, the distance of the
    batch-mean activations (feature matching, Salimans et al. 2016), an alternative.
    Computed in float32; zero when the two batches are identical.
    """
    h_real, h_gen = h_real.flatten(1).float(), h_gen.flatten(1).float()
    if h_real.shape[1:] != h_gen.shape[1:]:
        raise ValueError(f"activation maps differ in size: {list(h_real.shape)} vs {list(h_gen.shape)}")
    if mode == "per_sample":
        if h_real.shape[0] != h_gen.shape[0]:
            raise ValueError(
                f"the per-sample hidden-space loss (DE-GAN Eq. 12) pairs the i-th real and generated images: got "
                f"{h_real.shape[0]} and {h_gen.shape[0]}"
            )
        return torch.linalg.vector_norm(h_real - h_gen, dim=1).mean()
    if mode == "mean_features":
        return torch.linalg.vector_norm(h_real.mean(0) - h_gen.mean(0))
    raise ValueError(f"unknown model.init_args.hidden_loss {mode!r}; expected per_sample or mean_features")


class DEGAN(AdversarialModule):
    """DE-GAN (seed paper "GANs with decoder-encoder output noise"); see the module docstring.

    Args:
        vae_ckpt: checkpoint of the pretrained :class:`~lightning_modules.vae.VAE` (written by
            ``python train.py fit -c configs/de_gan/<data>_vae.yaml``); a glob picks the
            newest match.  Needed when ``preconditioner`` is ``vae``.
        preconditioner: ``vae`` (DE-GAN: z' = Encoder(Decoder(z_n)), Eq. 8-9) or ``none``
            (z' = z_n: Gaussian noise into the same generator; with ``lambda_hidden: 0`` the
            plain DCGAN baseline).
        encoder_output: z' from the encoder: ``mean`` (mu(x_hat); Algorithm 1 line 6 and the
            tables' single 128-unit encoder output) or ``sample`` (a draw from
            q(z|x_hat), the "z' ~ p(z|x)" of DE-GAN Eq. 9).  The decoder side always uses the
            mean image x_hat = E[x|z_n].
        noise: the raw noise z_n; N(0, I) of dimension 128 in the paper (Sec. III), and its
            dimension must equal the VAE's ``latent_dim``.
        arch: the paper's networks: ``mnist`` (Table II), ``celeba`` (Table III) or
            ``cifar10`` (Table IV).
        resolution: image side in pixels; must match the data (28 or 32 for ``mnist``, 64
            for ``celeba``, 32 for ``cifar10``).
        channels: image channels; must match the data.
        g_width: generator width g (64 gives the tables' layer sizes).
        d_width: discriminator width d (64 gives the tables' layer sizes).
        loss: adversarial loss (DE-GAN Eq. 10-11): ``non_saturating`` (G maximises log D(G(z)), as
            DCGAN's code does) or ``hinge``.
        lambda_adv: lambda_1 of DE-GAN Eq. 13, weight of the adversarial term in G's loss.
        lambda_hidden: lambda_2 of DE-GAN Eq. 13, weight of the hidden-space loss in both
            updates (Algorithm 1, lines 12-13; 0 turns it off).  The paper gives no values.
        hidden_layer: the discriminator block whose activations L_hid compares (0-based,
            negative from the end); ``null`` for the last convolutional block ("a high
            convolutional layer", Sec. II-C).
        hidden_loss: ``per_sample`` (DE-GAN Eq. 12 as written) or ``mean_features``; see
            :func:`hidden_space_loss`.
        d_hidden: what D does with L_hid: ``maximise`` (Algorithm 1, line 12: gradient ascent
            on lambda_1 L_adv + lambda_2 L_hid, so D's loss is lambda_1 L_D - lambda_2 L_hid),
            ``minimise`` (D's loss lambda_1 L_D + lambda_2 L_hid) or ``none`` (Sec. IV-B's
            d_loss = L_D).
        num_classes: K > 0 makes G and D conditional on the one-hot label (the paper's
            MNIST and CIFAR-10 models: 10); 0 for the project's unconditional variant.  The
            data's labels must lie in [0, K).
        joint_batch: D sees each real batch and its generated batch as one batch (so its
            batch norm normalises them together); ``false``: two batches, as DCGAN's code.
        lr_g: generator Adam learning rate.
        lr_d: discriminator Adam learning rate.
        betas: Adam (beta1, beta2) for both networks.
        ema_kimg: half-life of the generator EMA in thousands of images; 0 (the paper: no
            EMA) makes the "EMA" the current weights.
        ema_rampup: cap the EMA half-life at this fraction of the images seen; ``null`` for none.
    """

    def __init__(
        self,
        vae_ckpt: Optional[str] = None,
        preconditioner: Literal["vae", "none"] = "vae",
        encoder_output: Literal["mean", "sample"] = "mean",
        noise: NoiseSpec = NoiseSpec(dim=128),
        arch: Arch = "mnist",
        resolution: int = 32,
        channels: int = 1,
        g_width: int = 64,
        d_width: int = 64,
        loss: LossName = "non_saturating",
        lambda_adv: float = 1.0,
        lambda_hidden: float = 0.01,
        hidden_layer: Optional[int] = None,
        hidden_loss: HiddenLoss = "per_sample",
        d_hidden: DHidden = "maximise",
        num_classes: int = 0,
        joint_batch: bool = True,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        ema_kimg: float = 0.0,
        ema_rampup: Optional[float] = None,
    ) -> None:
        super().__init__()
        noise = NoiseSpec.coerce(noise)
        if preconditioner not in ("vae", "none"):
            raise ValueError(f"model.init_args.preconditioner must be vae or none, got {preconditioner!r}")
        if encoder_output not in ("mean", "sample"):
            raise ValueError(f"model.init_args.encoder_output must be mean or sample, got {encoder_output!r}")
        if hidden_loss not in ("per_sample", "mean_features"):
            raise ValueError(f"model.init_args.hidden_loss must be per_sample or mean_features, got {hidden_loss!r}")
        if d_hidden not in ("maximise", "minimise", "none"):
            raise ValueError(f"model.init_args.d_hidden must be maximise, minimise or none, got {d_hidden!r}")
        if num_classes < 0:
            raise ValueError(f"model.init_args.num_classes must be >= 0 (0: unconditional), got {num_classes}")
        if lambda_adv < 0 or lambda_hidden < 0:
            raise ValueError(
                f"model.init_args.lambda_adv and lambda_hidden must be >= 0, got {lambda_adv} and {lambda_hidden}"
            )
        check_arch(arch, resolution)
        self.save_hyperparameters(ignore=["noise"])
        self.hparams["noise"] = noise.to_dict()  # plain types: checkpoints load with weights_only
        self.num_classes, self.d_hidden = num_classes, d_hidden
        self.generator = DEGANGenerator(noise.dim, resolution, channels, g_width, arch, num_classes)
        self.discriminator = DEGANDiscriminator(resolution, channels, d_width, arch, num_classes)
        self.hidden_layer = self.discriminator.resolve_layer(hidden_layer)
        self.lambda_adv, self.lambda_hidden, self.hidden_loss = lambda_adv, lambda_hidden, hidden_loss
        self.encoder_output, self.joint_batch = encoder_output, joint_batch
        shape = (channels, resolution, resolution)
        self._init_adversarial(noise=noise, image_shape=shape, loss=loss, lr_g=lr_g, lr_d=lr_d, betas=betas,
                               ema_kimg=ema_kimg, ema_rampup=ema_rampup)  # fmt: skip
        self.frozen_vae: Optional[Frozen] = None  # the preconditioner's VAE (preconditioner: vae)
        self._vae_sha256: Optional[str] = None
        if preconditioner == "vae":
            if not vae_ckpt:
                raise ValueError(
                    "DE-GAN's preconditioner (DE-GAN Eq. 8-9) needs the pretrained VAE: set model.init_args.vae_ckpt "
                    "to the "
                    f"checkpoint written by `{VAE_HOWTO}` (runs/de_gan/<data>_vae/version_N/checkpoints/last.ckpt), "
                    "or model.init_args.preconditioner: none for Gaussian noise (the DCGAN baseline)"
                )
            path = resolve_checkpoint(vae_ckpt, "model.init_args.vae_ckpt", VAE_HOWTO)
            self.hparams["vae_ckpt"] = path  # the exact file, so a reload finds the same VAE
            self._set_vae(self._load_vae(path))

    session_keys = ("preconditioner", "encoder_output", "arch", "num_classes", "g_width", "d_width", "lambda_hidden",
                    "hidden_loss", "d_hidden")  # fmt: skip

    # ------------------------------------------------------------------ randomness budget
    def randomness_budget(self) -> dict[str, float]:
        """The shared parts; ``encoder_output: sample`` adds ``encoder_sample``, a conditional model ``labels``.

        ``generate`` without labels feeds sample i the class ``i mod num_classes``: log2(K)
        bits per sample (as the conditional BigGAN of :mod:`lightning_modules.noise_dim_gan`).

        z' ~ q(z|x_hat) = mu + sigma eps draws eps ~ N(0, I) of the VAE's latent size in the VAE's
        dtype (:meth:`precondition`): one more Gaussian vector per sample.  ``mean`` (and
        ``preconditioner: none``) draws nothing: 0.
        """
        budget = super().randomness_budget()
        if self.num_classes > 1:
            budget["labels"] = math.log2(self.num_classes)
        vae, budget["encoder_sample"] = self.vae, 0.0
        if vae is not None and self.encoder_output == "sample":
            budget["encoder_sample"] = gaussian_bits(vae.latent_dim, next(vae.parameters()).dtype, self.device.type)
        return budget

    # ------------------------------------------------------------------ the frozen VAE
    @property
    def vae(self) -> Optional[VAE]:
        """The frozen VAE of the preconditioner (``None`` for ``preconditioner: none``)."""
        return self.frozen_vae.net if self.frozen_vae is not None else None

    def _load_vae(self, path: str) -> VAE:
        # A fresh context: under LightningCLI, the CLI's "given hyperparameters" (DE-GAN's) would
        # otherwise replace the VAE's own in its save_hyperparameters().
        vae = contextvars.Context().run(VAE.load_from_checkpoint, path, map_location="cpu")
        if vae.latent_dim != self.noise.dim:
            raise ValueError(
                f"the VAE in {path} has a {vae.latent_dim}-dim latent space but model.init_args.noise.dim is "
                f"{self.noise.dim}: z' = Encoder(Decoder(z_n)) needs them equal (DE-GAN Eq. 8-9); set noise.dim to "
                f"{vae.latent_dim} or retrain the VAE with model.init_args.latent_dim {self.noise.dim}"
            )
        if tuple(vae.image_shape) != tuple(self.image_shape):
            rank_zero_warn(
                f"the VAE in {path} was trained on images of shape {tuple(vae.image_shape)}, DE-GAN generates "
                f"{tuple(self.image_shape)}: the preconditioner should come from a VAE trained on the same data"
            )
        if self.noise.distribution != "gaussian":
            rank_zero_warn(
                f"DE-GAN's decoder expects z_n ~ N(0, I) (Eq. 8) but noise.distribution is {self.noise.distribution}"
            )
        self._vae_sha256 = file_sha256(path)
        return vae

    def _set_vae(self, vae: VAE) -> None:
        param = next(self.generator.parameters())
        self.frozen_vae = Frozen(vae.to(device=param.device, dtype=param.dtype))

    # ------------------------------------------------------------------ noise: z_n -> z'
    @torch.no_grad()
    def precondition(self, z: torch.Tensor) -> torch.Tensor:
        """z' = Encoder(Decoder(z_n)) (DE-GAN Eq. 8-9), shape of ``z``; ``z`` itself without a VAE.

        Runs in the VAE's own precision (autocast off) and returns the generator's dtype.
        """
        vae = self.vae
        if vae is None:
            return z.to(self._compute_dtype)
        param = next(vae.parameters())
        with torch.autocast(device_type=param.device.type, enabled=False):
            x_hat = vae.decode(z.to(param.device, param.dtype))  # DE-GAN Eq. 8 (the decoder's mean image)
            mu, logvar = vae.encode(x_hat)  # DE-GAN Eq. 9
            z_prime = mu if self.encoder_output == "mean" else vae.reparameterize(mu, logvar)
        return z_prime.to(self._compute_dtype)

    def generator_input(self, z: torch.Tensor) -> torch.Tensor:
        """The generator's input for raw noise z_n: z' = Encoder(Decoder(z_n)) (Algorithm 1, lines 4-6)."""
        return self.precondition(z)

    # ------------------------------------------------------------------ labels (conditional models)
    def run_generator(
        self, net: torch.nn.Module, z: torch.Tensor, labels: Optional[torch.Tensor], noise_mode: Optional[str]
    ) -> torch.Tensor:
        """G (or its EMA copy) on z' and, for a conditional model, the labels (default ``i mod num_classes``)."""
        return net(z, self._check_labels(labels, z.shape[0]))

    def fake_images(self, batch_size: int, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """G(z') for fresh z_n (Algorithm 1, lines 4-7), with ``labels`` when conditional (the real batch's in training)."""
        return self.run_generator(self.generator, self.sample_noise(batch_size), labels, None)

    def critic(self, images: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """D's logits on one batch (with the labels when conditional)."""
        return self.discriminator(images, self._check_labels(labels, images.shape[0]))

    # ------------------------------------------------------------------ training (Algorithm 1)
    def _discriminate(
        self, real: torch.Tensor, fake: torch.Tensor, labels: Optional[torch.Tensor] = None, features: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """D's logits on ``real`` and ``fake`` (and hidden activations h when ``features``).

        Both batches carry the same ``labels`` (conditional models: G draws the fakes with the
        real batch's labels).  With ``joint_batch`` D sees both in one batch, so its batch norm
        normalises real and generated images together; in separate batches (DCGAN's code)
        Table II's batch norm right before the output layer centres each batch's features on
        its own, which hides most of the real/fake difference from the last layer.
        """
        layer = self.hidden_layer if features else None
        n = real.shape[0]
        y = self._check_labels(labels, n)
        if self.joint_batch:
            both = None if y is None else torch.cat([y, y])
            out = self.discriminator(torch.cat([real, fake.to(real.dtype)]), both, return_features=layer)
            logits, h = out if features else (out, None)
            return logits[:n], logits[n:], (h[:n] if features else None), (h[n:] if features else None)
        out_real = self.discriminator(real, y, return_features=layer)
        out_fake = self.discriminator(fake, y, return_features=layer)
        if features:
            return out_real[0], out_fake[0], out_real[1], out_fake[1]
        return out_real, out_fake, None, None

    def discriminate(
        self, real: torch.Tensor, fake: torch.Tensor, labels: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits on a real and a generated batch (Algorithm 1, lines 8-9), through ``joint_batch``."""
        real_logits, fake_logits, _, _ = self._discriminate(real, fake, labels)
        return real_logits, fake_logits

    def d_loss(self, batch: Any) -> Losses:
        """D's step (Algorithm 1, line 12): lambda_1 L_D -/+ lambda_2 L_hid by ``d_hidden``.

        L_D = -L_adv (DE-GAN Eq. 10-11).  ``maximise`` (line 12's gradient ascent on
        lambda_1 L_adv + lambda_2 L_hid): lambda_1 L_D - lambda_2 L_hid; ``minimise``:
        lambda_1 L_D + lambda_2 L_hid; ``none`` (or ``lambda_hidden: 0``): L_D alone, Sec. IV-B.
        L_hid's gradient reaches D through both h(x_real) and h(x_gen); the fakes are fixed.
        """
        real, labels = self._images(batch), self._labels(batch)
        with torch.no_grad():
            fake = self.fake_images(real.shape[0], labels)  # Algorithm 1, lines 4-7
        use_hidden = self.d_hidden != "none" and self.lambda_hidden > 0
        real_logits, fake_logits, h_real, h_gen = self._discriminate(real, fake, labels, features=use_hidden)
        adversarial = self.adversarial_d_loss(real_logits, fake_logits)  # L_D = -L_adv, DE-GAN Eq. 10
        logs = {"d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
        if use_hidden:
            hidden = hidden_space_loss(h_real, h_gen, self.hidden_loss)  # line 10, DE-GAN Eq. 12
            sign = -1.0 if self.d_hidden == "maximise" else 1.0
            loss = self.lambda_adv * adversarial + sign * self.lambda_hidden * hidden
            logs.update(loss_d_adv=adversarial.detach(), loss_d_hidden=hidden.detach())
        else:
            loss = adversarial
        logs["loss_d"] = loss.detach()
        return loss, logs

    def g_loss(self, batch: Any) -> Losses:
        """G's step (Algorithm 1, line 13): lambda_1 L_adv + lambda_2 L_hid (DE-GAN Eq. 13) against the current D."""
        real, labels = self._images(batch), self._labels(batch)
        fake = self.fake_images(real.shape[0], labels)  # Algorithm 1, line 7
        use_hidden = self.lambda_hidden > 0
        _, fake_logits, h_real, h_gen = self._discriminate(real, fake, labels, features=use_hidden)  # lines 8-9
        if use_hidden:
            hidden = hidden_space_loss(h_real.detach(), h_gen, self.hidden_loss)  # line 10, DE-GAN Eq. 12
        else:
            hidden = torch.zeros((), device=self.device)
        adversarial = self.adversarial_g_loss(fake_logits)  # DE-GAN Eq. 11
        loss = self.lambda_adv * adversarial + self.lambda_hidden * hidden  # DE-GAN Eq. 13
        return loss, {"loss_g": loss.detach(), "loss_adv": adversarial.detach(), "loss_hidden": hidden.detach()}

    def custom_scalars(self) -> dict[str, Any]:
        layout = super().custom_scalars()
        layout[type(self).__name__].update(
            {
                "G loss terms (DE-GAN Eq. 13)": ["Multiline", ["train/loss_adv", "train/loss_hidden"]],
                "D loss terms (Algorithm 1, line 12)": ["Multiline", ["train/loss_d_adv", "train/loss_d_hidden"]],
                # Filled by callbacks.de_gan_eval.DEGANEvaluation.
                "classifier accuracy of samples (Fig. 6, Table V)": [
                    "Multiline", ["de_gan/label_accuracy", "de_gan/confident_share"]
                ],
                "relative diversity degree (Table VI)": ["Multiline", ["de_gan/rdd_mean"]],
            }
        )
        return layout

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.frozen_vae is not None:
            # The VAE's weights stay out of this checkpoint: only where they are and their hash.
            checkpoint["de_gan_vae"] = {"path": self.hparams.vae_ckpt, "sha256": self._vae_sha256}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "state_dict" in checkpoint:  # checkpoints of the unconditional networks' old layer names
            checkpoint["state_dict"] = upgrade_legacy_state_dict(checkpoint["state_dict"])
        record = checkpoint.get("de_gan_vae")
        if not record or self.frozen_vae is None or record.get("sha256") == self._vae_sha256:
            return
        path = record.get("path")
        if path and os.path.isfile(path) and file_sha256(path) == record.get("sha256"):
            rank_zero_info(f"DE-GAN: reloading the VAE this checkpoint was trained with, {path}")
            self._set_vae(self._load_vae(path))
            self.hparams["vae_ckpt"] = path
        else:
            rank_zero_warn(
                f"DE-GAN: this checkpoint was trained with the VAE {path} (sha256 {str(record.get('sha256'))[:12]}), "
                f"which is gone or changed; using {self.hparams.vae_ckpt} instead, so z' differs from training"
            )
