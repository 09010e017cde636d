"""scorecast: score extrapolation for data pruning (Schmidt et al., arXiv 2506.09010).

The library reads like the method: data -> models -> train -> scores -> extrapolate -> prune ->
metrics, with cache/pipeline/params/plots around it.
"""

__version__ = "0.1.0"
