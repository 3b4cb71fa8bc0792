"""Experiments: a configuration in, a run folder out (results of every model, or an adapted encoder)."""

from clarec.experiment.pretrain import run_pretraining
from clarec.experiment.runner import prepare_data, run_experiment

__all__ = ["prepare_data", "run_experiment", "run_pretraining"]
