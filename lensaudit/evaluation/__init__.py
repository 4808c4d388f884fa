"""Metrics and intervals (AUC, bootstrap); the detector evaluation builds on these."""
