"""The live output pane: following pauses when scrolled up and resumes at the end."""

from __future__ import annotations

from textual.app import App, ComposeResult

from tui.widgets.log_pane import LogPane


class OnePane(App[None]):
    def compose(self) -> ComposeResult:
        yield LogPane(id="log")


async def test_follow_pauses_when_scrolled_up_and_resumes_at_the_end() -> None:
    app = OnePane()
    async with app.run_test(size=(80, 20)) as pilot:
        pane = app.query_one(LogPane)
        lines = [f"line {n}\n" for n in range(100)]
        pane.show_instance("i01", lines, 100)
        await pilot.pause()
        assert pane.follow and pane.is_vertical_scroll_end

        pane.scroll_home(animate=False)
        await pilot.pause()
        more = [f"line {n}\n" for n in range(100, 110)]
        pane.extend(lines + more, 110)
        await pilot.pause()
        assert not pane.follow and pane.scroll_y == 0  # stays where the reader is
        assert "paused, 10 new lines" in str(pane.border_title)

        pane.scroll_end(animate=False)
        await pilot.pause()
        pane.extend(lines + more + ["line 110\n"], 111)
        await pilot.pause()
        assert pane.follow and pane.is_vertical_scroll_end
        assert "following" in str(pane.border_title)
