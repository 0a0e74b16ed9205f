"""The recipe diagnosis of the training-fidelity issue: see ``__main__`` (the command), ``gradients`` (loss terms at
fixed students), ``runs`` (controlled training runs) and ``report`` (CSV, then Markdown)."""
