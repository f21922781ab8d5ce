"""ImageNet error atlas: classify ImageNet classifier mistakes (Peychev et al., 2023) and store them in DuckDB."""

__version__ = "0.1.0"
