"""Helpers for the browser tests (Playwright on the launched app)."""

from __future__ import annotations


def open_tab(page, title: str) -> None:
    """Click a top-level tab; with many tabs Gradio moves the last ones into an overflow menu ("More tabs"). The tab
    bar is laid out after the page loads, so a visible tab is given a few seconds before the menu is tried."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_role("tab", name=title).first.click(timeout=10_000)
        return
    except PlaywrightTimeout:
        pass
    page.get_by_role("button", name="More tabs").first.click()
    page.locator(".overflow-dropdown button", has_text=title).first.click()
