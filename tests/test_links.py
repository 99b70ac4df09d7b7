"""sinks/links.py: time-coded replay links and markdown links."""
from __future__ import annotations

import pytest

from replaylens.config.settings import Settings
from replaylens.sinks.links import DEFAULT_LINK_TEMPLATE, LinkSettings, check_link_template, md_link, replay_link


def test_the_default_comes_from_settings_only():
    assert DEFAULT_LINK_TEMPLATE == Settings().link_template
    assert LinkSettings().link("s", 5) == f"{Settings().replay_base_url}/sessions/s?t=5"


def test_session_ids_stay_one_path_segment_and_the_base_url_slash_is_dropped():
    assert replay_link("{replay_base_url}/sessions/{session_id}?t={timestamp_ms}", "http://r/", "u:1/2", 7) \
        == "http://r/sessions/u%3A1%2F2?t=7"
    link = LinkSettings("{replay_base_url}/x/{session_id}#{timestamp_ms}", "http://r").for_session("a b")
    assert link(9) == "http://r/x/a%20b#9"


def test_unknown_placeholders_are_refused_clearly():
    with pytest.raises(ValueError, match="unknown placeholder"):
        check_link_template("{replay_base_url}/{user}")
    with pytest.raises(ValueError, match="malformed"):
        LinkSettings("{replay_base_url")


def test_markdown_links_escape_their_text_and_keep_the_url_whole():
    assert md_link("a [b] c", "http://r/x (1)") == "[a \\[b\\] c](http://r/x%20%281%29)"


def test_a_session_link_maker_gives_what_the_template_gives_for_every_form_of_template():
    templates = ("{replay_base_url}/sessions/{session_id}?t={timestamp_ms}",
                 "{replay_base_url}/s/{session_id}?from={timestamp_ms}&to={timestamp_ms}",
                 "{replay_base_url}/s/{session_id}?t={timestamp_ms:012d}",
                 "{{literal}}{replay_base_url}/s/{session_id}#{timestamp_ms!s}",
                 "{replay_base_url}/s/{session_id}")
    for template in templates:
        link = LinkSettings(template, "http://r/").for_session("u:1/2 x")
        for moment in (0, 7, 1_735_689_618_401):
            assert link(moment) == replay_link(template, "http://r/", "u:1/2 x", moment), template
