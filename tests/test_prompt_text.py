"""sinks/prompt_text.py: the prose, and the echo check derived from the same phrases."""
from __future__ import annotations

import pytest

from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.sinks.llm_client import InvalidAnswer
from replaylens.sinks.llm_summarizer import parse_answer
from replaylens.sinks.prompt import Prompt
from replaylens.sinks.prompt_text import INSTRUCTION_PHRASES, output_instructions


def test_every_instruction_phrase_is_in_the_instructions():
    text = output_instructions(DEFAULT_PROFILE)
    assert INSTRUCTION_PHRASES and all(phrase in text for phrase in INSTRUCTION_PHRASES)


@pytest.mark.parametrize("phrase", INSTRUCTION_PHRASES)
def test_an_answer_parroting_any_phrase_is_invalid(phrase):
    prompt = Prompt(messages=[], id_map={}, url_aliases={})
    content = '{"summary": "markdown text of %s", "key_insights": []}' % phrase
    with pytest.raises(InvalidAnswer, match="repeats the output instructions"):
        parse_answer(content, prompt, output_schema=None, link_for=lambda m: "", started_at=0,
                     max_invented_share=0.3)
