"""Evaluation metrics: feature extractors, precision/recall, PPL, PSNR/SSIM.

PSNR/SSIM are defined in :mod:`lightning_modules.reconstruction` (the modules log them in
validation) and re-exported here.

FID and KID are torchmetrics' (``callbacks.GenerativeMetrics`` runs them on the
extractors here); this package holds what torchmetrics does not offer in the form the
papers need.
"""

from evaluation.features import (
    ClassifierFeatures,
    FeatureExtractor,
    FeatureExtractorUnavailable,
    InceptionFeatures,
    build_feature_extractor,
)
from evaluation.ppl import FeatureDistance, LPIPSDistance, perceptual_path_length
from evaluation.precision_recall import precision_recall
from lightning_modules.reconstruction import ReconstructionMetrics, psnr, reconstruction_metrics, ssim

__all__ = [
    "ClassifierFeatures",
    "FeatureDistance",
    "FeatureExtractor",
    "FeatureExtractorUnavailable",
    "InceptionFeatures",
    "LPIPSDistance",
    "ReconstructionMetrics",
    "build_feature_extractor",
    "perceptual_path_length",
    "precision_recall",
    "psnr",
    "reconstruction_metrics",
    "ssim",
]
