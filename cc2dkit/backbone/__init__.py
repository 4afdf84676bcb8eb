"""Frozen VGG encoder, its weights and the feature cache."""
from .cache import FeatureCache
from .vgg import FEATURE_INFO, FeatureTap, FrozenVGG
from .weights import build_vgg_features, load_features_state

__all__ = ["FEATURE_INFO", "FeatureTap", "FrozenVGG", "FeatureCache", "build_vgg_features", "load_features_state"]
