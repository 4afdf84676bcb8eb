"""Frozen VGG encoder, its weights and the feature cache."""
from .cache import FeatureCache
from .vgg import FEATURE_INFO, FeatureTap, FrozenVGG, feature_info
from .weights import VGG_LAYOUTS, build_vgg_features, load_features_state, recorded_weights, vgg_layers

__all__ = ["FEATURE_INFO", "VGG_LAYOUTS", "FeatureTap", "FrozenVGG", "FeatureCache", "build_vgg_features",
           "feature_info", "load_features_state", "recorded_weights", "vgg_layers"]
