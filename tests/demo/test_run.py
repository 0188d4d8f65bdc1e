"""The demo's progress bars read in an 80-column terminal."""

from __future__ import annotations

import io

import pytest
from rich.cells import cell_len
from rich.console import Console

from demo.run import progress_bars


@pytest.mark.parametrize("width", [80, 120])
def test_the_bars_keep_their_width_and_only_the_text_gives_way(width: int) -> None:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    progress = progress_bars(console)
    directory = progress.add_task("tenant-a directory", total=2,
                                  line="1234 accounts ✓, 1200 linked ✓ and a long tail of words")
    activity = progress.add_task("tenant-b activity", total=12, line="chunks, 123456 records")
    progress.update(directory, completed=2)
    progress.update(activity, completed=6)
    console.print(progress.get_renderable())
    lines = [line.rstrip() for line in out.getvalue().splitlines() if line.strip()]
    assert len(lines) == 2
    assert all(cell_len(line) <= width for line in lines)
    first, second = lines
    assert first.count("━") == 16  # done: the whole bar
    assert second.count("━") == 8  # half way: half of it, not a collapsed sliver
    assert "2/2" in first
    assert "6/12" in second
    assert "tenant-a directory" in first
    assert "0:00:00" in first  # the clock survives too
    assert "1234 accounts ✓" in first
