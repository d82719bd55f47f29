"""In Chromium against daphne, the agent, kubesim and this machine's PostgreSQL: the owner downloads a dump from the
project page and watches its progress, restores it with the form, and reads pg_restore's reason for a bad file."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conftest import logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_an_owner_downloads_and_restores_from_the_project_page(tenant_database, personas, viewer, browser,
                                                               monkeypatch, tmp_path):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop in this thread
    t = tenant_database
    with t.connect() as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes SELECT n, 'note ' || n FROM generate_series(1, 200) n")
    project_page = f"{t.url}/o/acme/projects/{t.project.slug}/"
    page = logged_in_page(browser, t.url, personas.owner)
    page.goto(project_page)
    expect(page.get_by_test_id("database")).to_be_visible()

    progress = page.get_by_test_id("database-progress")
    with page.expect_download(timeout=60000) as download:
        page.get_by_test_id("database-dump").click()
    saved = tmp_path / "notes.dump"
    download.value.save_as(saved)
    assert saved.read_bytes().startswith(b"PGDMP")
    expect(progress).to_have_attribute("data-state", "done", timeout=30000)
    expect(progress).to_contain_text("Dump: done")

    with t.connect() as conn:
        conn.execute("TRUNCATE notes")
    page.get_by_test_id("restore-file").set_input_files(str(saved))
    page.get_by_test_id("restore").click()
    expect(progress).to_have_text(f"Restore: done, {saved.stat().st_size / 1024:.1f} KiB", timeout=60000)
    with t.connect() as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (200,)

    broken = tmp_path / "broken.dump"
    broken.write_bytes(b"definitely not a dump")
    page.get_by_test_id("restore-file").set_input_files(str(broken))
    page.get_by_test_id("restore").click()
    expect(progress).to_have_text("Restore: failed; the database is unchanged", timeout=60000)
    expect(page.get_by_test_id("database-result")).to_contain_text("does not appear to be a valid archive")

    # A viewer of the same organization is offered neither.
    viewer_page = logged_in_page(browser, t.url, viewer)
    viewer_page.goto(project_page)
    assert viewer_page.get_by_test_id("database").count() == 0
