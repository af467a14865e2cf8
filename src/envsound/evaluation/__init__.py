"""Scoring a trained model: metrics, reports and plots. No training here (that is :mod:`envsound.recipes`)."""
