import numpy as np
import torch

from cc2dkit import pipeline
from cc2dkit.training import CHECKPOINT_NAME, load_checkpoint, model_from_checkpoint


def test_checkpoint_round_trip_gives_identical_predictions(smoke_cfg, tmp_path):
    cfg = smoke_cfg.replace(**{"train.epochs": 1, "train.steps_per_epoch": 2})
    session = pipeline.prepare(cfg, progress=False)
    pipeline.train(session, tmp_path, progress=False)
    pred = pipeline.predict(session, "test", progress=False)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 1 and not any(k.startswith("backbone") for k in state["model"])
    # a fresh session with different random decoder weights, then the checkpoint loaded
    fresh = pipeline.prepare(cfg.replace(seed=5), progress=False)
    fresh.test_data = session.test_data
    fresh.train_data = session.train_data
    fresh.model.backbone.load_state_dict(session.model.backbone.state_dict())  # random backbone: same weights
    before = pipeline.predict(fresh, "test", progress=False)
    pipeline.load_trained(fresh, tmp_path)
    after = pipeline.predict(fresh, "test", progress=False)
    assert np.array_equal(after, pred)
    assert not np.array_equal(before, pred)
    model, cfg2, _ = model_from_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert cfg2 == cfg


def test_resume_continues_exactly(smoke_cfg, tmp_path):
    cfg = smoke_cfg.replace(**{"train.epochs": 2, "train.steps_per_epoch": 2})
    straight = pipeline.prepare(cfg, progress=False)
    h_straight = pipeline.train(straight, tmp_path / "a", progress=False)

    first = pipeline.prepare(cfg.replace(**{"train.epochs": 1}), progress=False)
    pipeline.train(first, tmp_path / "b", progress=False)
    second = pipeline.prepare(cfg, progress=False)
    h_resumed = pipeline.train(second, tmp_path / "b", resume=True, progress=False)
    assert [h["epoch"] for h in h_resumed] == [1, 2]
    assert h_resumed[-1]["loss"] == h_straight[-1]["loss"]
    for a, b in zip(straight.model.trainable_parameters(), second.model.trainable_parameters()):
        assert torch.equal(a, b)


def test_saved_files_give_errors_naming_the_file(tmp_path):
    import pytest

    from cc2dkit.methods.sla import SLASet
    from cc2dkit.methods.state import load_state
    from cc2dkit.training.checkpoint import load_saved, save_atomic

    path = save_atomic({"format": "cc2dkit-checkpoint-1", "x": 1}, tmp_path / "ok.pt")
    assert load_checkpoint(path)["x"] == 1 and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"format": "something-else"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="foreign.pt is not a cc2dkit checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:20])  # a truncated save
    with pytest.raises(ValueError, match="cannot read .*cut.pt"):
        load_saved(tmp_path / "cut.pt", "cc2dkit-checkpoint-1", "cc2dkit checkpoint")
    (tmp_path / "run").mkdir()
    torch.save({"format": "cc2dkit-checkpoint-1"}, tmp_path / "run" / "method_state.pt")
    with pytest.raises(ValueError, match="not a cc2dkit method state"):
        load_state(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="sla_set.pt"):
        SLASet.load(tmp_path / "run")
