"""schedlab's Hydra launcher: hydra/launcher=stacked."""
