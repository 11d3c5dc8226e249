"""Single-task agents and controllers that learn one optics (model-free and model-based)."""
