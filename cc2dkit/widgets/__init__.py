"""Notebook widgets: the landmark picker and the figures that follow it."""
from .picker import LandmarkPicker
from .annotator import TemplateAnnotator
from .views import FigureView, PredictionsView, SimilarityMapsView

__all__ = ["FigureView", "LandmarkPicker", "PredictionsView", "SimilarityMapsView", "TemplateAnnotator"]
from .explorer import Explorer, landmark_explorer

__all__ += ["Explorer", "landmark_explorer"]
from .trajectory import PLExplorer, PLTrajectoryView, pl_explorer

__all__ += ["PLExplorer", "PLTrajectoryView", "pl_explorer"]
from .refinement import ErrorHistogramView, PeakView, RefinementExplorer, refinement_explorer

__all__ += ["ErrorHistogramView", "PeakView", "RefinementExplorer", "refinement_explorer"]
