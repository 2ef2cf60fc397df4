"""Training of the purchase-intent model: point-in-time training set → XGBoost and LightGBM → ONNX + feature manifest.

The feature contract is processors/features/definitions.ts (FEATURE_NAMES, in model order); this package reads it
rather than keeping a copy, so the model, the manifest and the TypeScript scorer cannot drift apart.
"""

import os

# XGBoost and LightGBM parallelise with OpenMP, whose idle threads spin by default. On a machine shared with other
# work (CI, the local stack) spinning threads fight for the same cores and a fit gets 5-10x slower than on one thread;
# passive waiting costs nothing measurable when the cores are free. libgomp reads this once, when it is loaded, so it
# must be set before any submodule imports xgboost or lightgbm. An explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["__version__"]

__version__ = "0.1.0"
