"""Detector: preprocessing, models and training (numpy + torch only: importable on a bare GPU box)."""
