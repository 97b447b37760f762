"""Helpers for the browser tests (Playwright on the launched app)."""

from __future__ import annotations


def open_tab(page, title: str) -> None:
    """Click a top-level tab; with many tabs Gradio moves the last ones into an overflow menu ("More tabs")."""
    tab = page.get_by_role("tab", name=title)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
        return
    page.get_by_role("button", name="More tabs").first.click()
    page.locator(".overflow-dropdown button", has_text=title).first.click()
