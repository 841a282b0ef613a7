"""The benchmark workloads, one module each; ``bench.__main__`` runs them."""
