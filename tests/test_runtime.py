"""Runtime settings taken from the config: mixed precision."""
import pytest
import torch

from cc2dkit.config import preset
from cc2dkit.inference import Template
from cc2dkit.methods.registry import method_spec
from cc2dkit.runtime import native_bf16, use_bf16

from .conftest import phantom_grids, tiny_cfg

CPU = torch.device("cpu")


def test_amp_modes_resolve_on_the_device():
    assert use_bf16("bf16", CPU) and not use_bf16("off", CPU)
    assert use_bf16("auto", CPU) == native_bf16(CPU)  # bf16 only where the CPU computes it natively
    assert not native_bf16(torch.device("meta"))
    with pytest.raises(ValueError, match="amp must be one of"):
        use_bf16("fp16", CPU)


@pytest.mark.parametrize("amp", ["off", "bf16", "auto"])
def test_eval_amp_reaches_the_predictor_a_config_builds(amp):
    cfg = tiny_cfg(**{"eval.amp": amp})
    data = phantom_grids(cfg)[0]
    spec = method_spec(cfg)
    predictor = spec.predictor(cfg, spec.build_models(cfg, 2), Template.from_data(data, cfg.data.template), [0, 1],
                               CPU)
    assert predictor.bf16 == use_bf16(amp, CPU)
    assert preset("smoke").eval.amp == "off"  # exact float32 unless a preset or the user asks
