import pytest

from cc2dkit.notebook import describe, mode_line, notebook_config, quick_mode


def test_quick_mode_from_argument_and_environment(monkeypatch):
    monkeypatch.setenv("CC2DKIT_QUICK", "1")
    assert quick_mode(None) is True and quick_mode(False) is False
    assert mode_line(None).startswith("quick mode ($CC2DKIT_QUICK=1)")
    monkeypatch.setenv("CC2DKIT_QUICK", "0")
    assert quick_mode(None) is False
    assert mode_line(None).startswith("full mode ($CC2DKIT_QUICK=0): ISBI 2015 at 384 px")
    assert mode_line(True).startswith("quick mode (QUICK = True)")


def test_configs_per_mode(monkeypatch):
    monkeypatch.delenv("CC2DKIT_ISBI_ROOT", raising=False)
    assert notebook_config(quick=True).data.source == "phantom"
    isbi = notebook_config(quick=True, isbi_root="/data/isbi")
    assert isbi.name == "cpu" and isbi.data.root == "/data/isbi" and isbi.data.test_limit == 10
    assert isbi.method.name == "cc2d" and not isbi.refine.enabled  # quick: no fine stage
    assert isbi.method.pl_images == 12 and isbi.method.name == "cc2d"  # every mode starts from plain CC2D
    assert notebook_config(quick=True).method.name == "cc2d"
    assert isbi.num_threads == 1 and notebook_config(quick=True).num_threads == 1
    full = notebook_config(quick=False, isbi_root="/data/isbi", weights="/w.pth")
    assert full.name == "paper" and full.backbone.weights == "/w.pth" and full.data.grid == 384 and full.method.pl_images is None
    assert full.train.epochs == 300 and notebook_config(False, "/data/isbi", full_epochs=30).train.epochs == 30
    assert notebook_config(True, full_epochs=30).train.epochs == 4  # quick mode keeps its own
    with pytest.raises(ValueError, match="ISBI"):
        notebook_config(quick=False)
    assert describe(notebook_config(quick=True)).startswith("preset=smoke data=phantom grid=128")
