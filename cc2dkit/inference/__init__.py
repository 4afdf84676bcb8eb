"""Inference: cascade matching and the one predictor interface every method's result implements."""
from .cascade import cascade_argmax, similarity_maps, template_vectors
from .explain import ImageMaps
from .pool import TemplatePool
from .predictor import ModelPredictor, ModelSetPredictor, Predictor, Template, stack_chunks
from .refine import RefinedPredictor, fine_template, refinement_variants

__all__ = ["ImageMaps", "ModelPredictor", "ModelSetPredictor", "Predictor", "RefinedPredictor", "Template",
           "TemplatePool", "cascade_argmax", "fine_template", "refinement_variants", "similarity_maps", "stack_chunks",
           "template_vectors"]
