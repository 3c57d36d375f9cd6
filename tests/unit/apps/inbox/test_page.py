"""Unit tests for apps.inbox.page: the page's escaping and what it shows of an alert."""

from __future__ import annotations

from apps.inbox.page import render_page, risk_text, sentence
from apps.inbox.view import InboxState
from tests.unit.apps.inbox.records import EVIL, alert


def test_page_escapes_every_field_from_the_topic():
    a = alert('c"><b>1', 0.7, tier='vip"><i>', csm="<svg onload=alert(1)>", reasons=[EVIL],
              play="<a href='javascript:alert(1)'>do it</a>", aid='x" onclick="alert(1)')
    a["model_version"] = "</td><script>bad()</script>"
    s = InboxState()
    s.add_alert(a)
    tiers, csms = s.facets()
    full = render_page(s.open_alerts(), tiers, csms, tier="<x>", csm='"', nonce="N0NCE")
    page, script = full.split('<script nonce="N0NCE">')
    assert "</script>" not in script[:-len("</script></body></html>")]  # nothing closes the page's script early
    assert "<script>alert" not in page and "<img" not in page and "<svg" not in page
    assert "<a href=" not in page and "<script>bad" not in page and "<b>1" not in page and "<i>" not in page
    assert 'onclick="alert' not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;." in page
    assert full.count("<script") == 1  # only the page's own script


def test_page_shows_reasons_as_sentences_and_the_play():
    s = InboxState()
    s.add_alert(alert("c1", 0.72, reasons=["logins down 80% vs the previous week (2 in the last 7 days)",
                                           "rated support 1/5 (CSAT)"], play="Service recovery: call them"))
    s.add_alert(alert("c2", None, kind="rule", trigger="vip_sla_breach", tier="vip"))
    page = render_page(s.open_alerts(), *s.facets())
    assert "<li>Logins down 80% vs the previous week (2 in the last 7 days).</li>" in page
    assert "<li>Rated support 1/5 (CSAT).</li>" in page
    assert "Service recovery: call them" in page and "72%" in page and "Rule: VIP SLA breach" in page
    assert "2 open alerts" in page and ">n/a<" in page
    assert '<p class="empty">No open alerts.</p>' in render_page([], [], [])
    assert sentence("done.") == "Done." and sentence("") == ""
    assert [risk_text(x) for x in (None, 0.0, 0.0004, 0.042, 0.72)] == ["n/a", "0.0%", "<0.1%", "4.2%", "72%"]

