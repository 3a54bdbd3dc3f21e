"""Evaluation: realism scores (FID, KID, precision/recall/density/coverage), paired scores, LPIPS
diversity and Cityscapes segmentation scores.

- :mod:`evaluations.fid`: feature statistics and the Frechet distance (pytorch-fid's maths).
- :mod:`evaluations.kid`, :mod:`evaluations.prdc`: KID and density & coverage on the same features.
- :mod:`evaluations.features`: the feature networks (pytorch-fid's Inception, EfficientNet-Lite0),
  image-folder features and the content-keyed cache of real-image features.
- :mod:`evaluations.paired`: SSIM, PSNR and a VGG-feature distance for sets with ground truth.
- :mod:`evaluations.lpips`: LPIPS diversity of the several outputs of a multi-modal model.
- :mod:`evaluations.segmentation`, :mod:`evaluations.drn`: Cityscapes label -> photo scoring.

``python test_fid.py`` scores every saved epoch of a run; see docs/evaluation.md.
"""
