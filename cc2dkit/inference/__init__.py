"""Cascade inference: template vectors, per-scale similarity maps, argmax, dataset prediction."""
from .cascade import cascade_argmax, similarity_maps, template_vectors
from .predict import Template, predict_dataset, predict_grid, predictions_frame

__all__ = ["Template", "cascade_argmax", "predict_dataset", "predict_grid", "predictions_frame",
           "similarity_maps", "template_vectors"]
