"""The built-in methods, one module per family; each method type registers itself where it is
defined (:func:`scorecast.specs.register`). Every module of this package is imported here, so a new
method is one new module (and its test): nothing else names it.

- :mod:`.direct`: full, random, prototypes, zcore (score every sample themselves);
- :mod:`.neighbours`: knn and the sampling baselines score_sampling, subset_plus_random;
- :mod:`.learned`: gnn, mlp (trained on the subset's scores);
- :mod:`.proxies`: proxy, hybrid, stacked (read the subset model's predictions).
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
