"""The template annotator: its logic without a browser, and the ipympl widget driven by mouse events."""
import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent
from matplotlib.figure import Figure

from cc2dkit.data import FolderDataset
from cc2dkit.data.folder import read_image_rows, write_image_rows
from cc2dkit.widgets.annotation import Annotation, View, canvas_to_image, image_to_canvas, view_of

NAMES = ["sella", "nasion", "orbitale"]


def test_landmarks_are_placed_in_order_moved_and_undone():
    a = Annotation(NAMES, (100, 80))
    assert a.current == "sella" and a.missing == NAMES
    assert a.place(10, 20) == "sella" and a.current == "nasion"
    a.place(30, 40)
    assert a.current == "orbitale" and a.placed == ["sella", "nasion"]
    a.select("SELLA")  # names are case-insensitive, as everywhere in the kit
    assert a.place(11, 21) == "sella" and a.current == "orbitale"  # the next missing one
    assert a.points["sella"] == (11.0, 21.0)
    assert a.undo() == "sella" and a.points["sella"] == (10.0, 20.0) and a.current == "sella"
    assert a.undo() == "nasion" and a.points["nasion"] is None
    a.place(5, 5), a.place(6, 6)
    assert a.complete and np.allclose(a.array(), [[10, 20], [5, 5], [6, 6]])
    with pytest.raises(ValueError, match="outside the image \\(80 x 100"):
        a.place(80, 5)  # x = W - 0.5 is the last inside
    assert a.place(79.5, 99.5) == a.current
    with pytest.raises(ValueError, match="distinct"):
        Annotation(["a", "A"], (10, 10))
    with pytest.raises(KeyError, match="unknown landmark 'pogonion'"):
        a.select("pogonion")
    b = Annotation(NAMES, (100, 80), {"nasion": (1, 2)})
    assert b.current == "sella" and b.missing == ["sella", "orbitale"]


@pytest.mark.parametrize("limits", [None, ((20.5, 60.5), (70.5, 10.5)), ((-0.5, 20.0), (30.0, 5.0))])
def test_canvas_and_image_pixels_through_zoom_and_pan(limits):
    """The mapping is matplotlib's own (``ax.transData``), for the full view and zoomed ones."""
    fig = Figure(figsize=(4, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(np.zeros((100, 80)))
    if limits is not None:
        ax.set_xlim(*limits[0]), ax.set_ylim(*limits[1])
    fig.canvas.draw()
    view = view_of(ax)
    for x, y in [(30.25, 40.0), (45.0, 12.5), (21.0, 69.0)]:
        dx, dy = ax.transData.transform((x, y))  # display pixels, origin bottom-left
        cx, cy = image_to_canvas(x, y, view)
        assert (cx, cy) == pytest.approx((dx, fig.bbox.height - dy), abs=1e-6)
        assert canvas_to_image(cx, cy, view) == pytest.approx((x, y), abs=1e-9)
    assert canvas_to_image(*image_to_canvas(0, 0, View((0, 10), (10, 0), (5, 5, 100, 100))),
                           View((0, 10), (10, 0), (5, 5, 100, 100))) == (0, 0)


def test_csv_rows_of_one_image_are_replaced_and_the_rest_kept(tmp_path):
    csv = tmp_path / "landmarks.csv"
    csv.write_text("image,landmark,x,y\nother.png,sella,1,2\nother.png,nasion,3,4\nt.png,sella,9,9\n")
    write_image_rows(csv, "t.png", {"sella": (5.0, 6.5), "nasion": None, "orbitale": (7.0, 8.0)})
    assert read_image_rows(csv, "t") == {"sella": (5.0, 6.5), "orbitale": (7.0, 8.0)}
    assert read_image_rows(csv, "other.png") == {"sella": (1.0, 2.0), "nasion": (3.0, 4.0)}
    assert read_image_rows(tmp_path / "none.csv", "t.png") == {}


def _click(annotator, x, y, button=1):
    """A mouse press where image pixel (x, y) is drawn now, as the browser would send it."""
    annotator.figure.canvas.draw()
    cx, cy = image_to_canvas(x, y, annotator.view())
    event = MouseEvent("button_press_event", annotator.canvas, cx, annotator.figure.bbox.height - cy, button=button)
    annotator.canvas.callbacks.process("button_press_event", event)


def test_the_widget_annotates_saves_and_loads(tmp_path):
    from PIL import Image

    from cc2dkit.widgets import TemplateAnnotator

    image = np.random.default_rng(0).random((120, 90)).astype(np.float32)
    Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / "t.png")
    csv = tmp_path / "landmarks.csv"
    a = TemplateAnnotator(image, NAMES, csv=csv, image_ref="t.png")
    _click(a, 10.0, 20.0)
    a.ax.set_xlim(40.5, 60.5), a.ax.set_ylim(80.5, 60.5)  # zoomed in, as with the toolbar's magnifier
    _click(a, 50.25, 70.75)
    _click(a, 45.0, 65.0, button=3)  # another button: nothing placed
    assert a.state.points["nasion"] == pytest.approx((50.25, 70.75), abs=1e-6) and a.state.current == "orbitale"
    a.canvas.toolbar.mode = "zoom rect"  # a zoom gesture is no click
    _click(a, 45.0, 65.0)
    assert a.state.points["orbitale"] is None
    a.canvas.toolbar.mode = ""
    _click(a, 45.0, 65.0)
    a.undo()
    assert a.state.points["orbitale"] is None and "undid orbitale" in a.status.value
    a.click(44, 66)
    a.listing.value = "sella"  # picked in the list: the next click moves it
    a.ax.set_xlim(-0.5, 89.5), a.ax.set_ylim(119.5, -0.5)  # the toolbar's home view
    _click(a, 12.0, 22.0)
    assert a.state.points["sella"] == pytest.approx((12.0, 22.0), abs=1e-6)
    a.save()
    assert FolderDataset(tmp_path, csv).labelled_ids == ["t"]  # a complete template the kit reads
    again = TemplateAnnotator(image, csv=csv, image_ref="t.png")  # names and points from the CSV
    assert again.state.names == NAMES
    assert np.allclose(again.state.array(), a.state.array())
    assert "all 3 placed" in again.prompt.value
