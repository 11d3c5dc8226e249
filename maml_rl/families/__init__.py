"""Task families: one sub-package per family of accelerator-steering tasks.

Each family exposes the same small face (task sampling, batched reset/step over episodes of
different tasks, evaluation tasks, reference controllers). Importing this package imports
no family; a family's optional dependencies are imported only when it is used.
"""
