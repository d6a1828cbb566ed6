"""Inducing emergence in vision (Section 5 of Schaeffer et al.): train CNN, autoencoder and
transformer families here and score the same predictions with continuous and discontinuous
metrics. Entry points: :func:`mirage.vision.run.run_vision` and ``mirage vision``."""
