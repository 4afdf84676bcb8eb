"""A landmark picker: a dropdown of landmark names with previous / next buttons.

Other views subscribe with :meth:`LandmarkPicker.observe`; every change of landmark calls them
with the new index. The logic is plain Python around ipywidgets, so it is testable without a
browser: set ``picker.value`` or call ``picker.next()`` and check what the callbacks saw.
"""
from __future__ import annotations

from typing import Callable

import ipywidgets as W

from ..data.landmarks import landmark_index


class LandmarkPicker:
    def __init__(self, landmark_names: tuple[str, ...] | list[str], start: int | str = 0):
        if not landmark_names:
            raise ValueError("LandmarkPicker needs at least one landmark name")
        self.names = tuple(landmark_names)
        self.dropdown = W.Dropdown(options=[(n, i) for i, n in enumerate(self.names)], description="landmark")
        self.prev_button = W.Button(description="◀ previous", layout=W.Layout(width="110px"))
        self.next_button = W.Button(description="next ▶", layout=W.Layout(width="110px"))
        self.prev_button.on_click(lambda _: self.previous())
        self.next_button.on_click(lambda _: self.next())
        self._callbacks: list[Callable[[int], None]] = []
        self.dropdown.observe(self._changed, names="value")
        self.select(start)
        self.widget = W.HBox([self.prev_button, self.dropdown, self.next_button])

    @property
    def index(self) -> int:
        return int(self.dropdown.value)

    @property
    def name(self) -> str:
        return self.names[self.index]

    def index_of(self, landmark: int | str) -> int:
        return landmark_index(self.names, landmark)

    def select(self, landmark: int | str) -> None:
        self.dropdown.value = self.index_of(landmark)

    def next(self) -> None:
        self.dropdown.value = (self.index + 1) % len(self.names)

    def previous(self) -> None:
        self.dropdown.value = (self.index - 1) % len(self.names)

    def observe(self, callback: Callable[[int], None], call_now: bool = True) -> None:
        """Call ``callback(index)`` on every change (and once now, to draw the first state)."""
        self._callbacks.append(callback)
        if call_now:
            callback(self.index)

    def _changed(self, change) -> None:
        for cb in self._callbacks:
            cb(int(change["new"]))
