"""One frozen configuration that flows top-down through the kit (``sections.py``), its field rules
(``rules.py``) and the named presets (``presets.py``)."""
from .presets import PRESETS, preset
from .sections import (AMP_MODES, ISBI_ROOT_ENV, METHOD_NAMES, PHANTOM_MAX_LANDMARKS, PREDICTION_KEEPS,
                       RESUME_MAY_CHANGE, SECTIONS, WEIGHTS_ENV, BackboneConfig, Config, DataConfig, EvalConfig,
                       MethodConfig, NetConfig, RefineConfig, TrainConfig, apply_overrides, config_diff, matches,
                       parse_sets)

__all__ = ["AMP_MODES", "BackboneConfig", "Config", "DataConfig", "EvalConfig", "ISBI_ROOT_ENV", "METHOD_NAMES",
           "MethodConfig", "NetConfig", "PHANTOM_MAX_LANDMARKS", "PREDICTION_KEEPS", "PRESETS", "RESUME_MAY_CHANGE",
           "RefineConfig", "SECTIONS", "TrainConfig", "WEIGHTS_ENV", "apply_overrides", "config_diff", "matches",
           "parse_sets", "preset"]
