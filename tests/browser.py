"""Helpers for the browser tests (Playwright on the launched app)."""

from __future__ import annotations


def open_tab(page, title: str) -> None:
    """Click a top-level tab; with many tabs Gradio moves the last ones into an overflow menu ("More tabs"), whose
    buttons are in the page (hidden) from the start. The tab bar is laid out after the page loads, so a tab that is not
    in the menu is given a few seconds before the menu is tried anyway."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    tab = page.get_by_role("tab", name=title).first
    in_menu = page.locator(".overflow-dropdown button", has_text=title).first
    tab.or_(in_menu).first.wait_for(state="attached")
    if not in_menu.count():
        try:
            tab.click(timeout=10_000)
            return
        except PlaywrightTimeout:
            pass
    page.get_by_role("button", name="More tabs").first.click()
    in_menu.click()
