"""Experiments: a configuration in, a run folder with results out."""

from clarec.experiment.runner import prepare_data, run_experiment

__all__ = ["prepare_data", "run_experiment"]
