"""A client for OpenAI-compatible chat-completions servers (the adapter; aiohttp).

Works with hosted providers and self-hosted vLLM, Ollama or llama.cpp servers: POST
{base_url}/chat/completions. Retries with exponential backoff and jitter on connection
errors, timeouts, 429 and 5xx (Retry-After honoured) and on answers the caller's
`validate` rejects; a semaphore caps concurrent calls. Prompt and answer contents are
never logged, only reasons.
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Awaitable, Callable, Optional, TypeVar

import aiohttp

from replaylens.config.settings import setting_default

log = logging.getLogger(__name__)

T = TypeVar("T")
TOKENS_PER_MESSAGE = 8  # chat-template role markers around each message
TOKENIZE_PATHS = ("/tokenize", "/extras/tokenize/count")
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0
JITTER = 0.25


class LlmUnavailable(Exception):
    """No valid answer after all attempts (or an error retrying cannot fix)."""

    def __init__(self, reason: str, attempts: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


class InvalidAnswer(ValueError):
    """Raised by a `validate` callback: the model's answer is unusable, ask again."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Fatal(Exception):
    pass


def _retry_after_s(headers: Any) -> Optional[float]:
    value = headers.get("Retry-After") if headers else None
    if value is None:
        return None
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value)))
    except ValueError:
        return None  # an HTTP date: rare from LLM servers; fall back to our own backoff


class ChatClient:
    def __init__(self, base_url: str, api_key: str = "", model: str = "", *, timeout_s: Optional[float] = None,
                 max_retries: Optional[int] = None, backoff_s: Optional[float] = None,
                 concurrency: Optional[int] = None,
                 session: Optional[aiohttp.ClientSession] = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 rng: Optional[random.Random] = None) -> None:
        # Left out: the Settings default (one default for each, in Settings).
        timeout_s = timeout_s if timeout_s is not None else setting_default("llm_timeout_s")
        max_retries = max_retries if max_retries is not None else setting_default("llm_max_retries")
        backoff_s = backoff_s if backoff_s is not None else setting_default("llm_backoff_s")
        concurrency = concurrency if concurrency is not None else setting_default("llm_concurrency")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._semaphore = asyncio.Semaphore(concurrency)
        self._session = session
        self._owns_session = session is None
        self._sleep = sleep
        self._rng = rng or random.Random()
        # The server root (without /v1): llama.cpp's server and vLLM serve POST /tokenize there,
        # llama-cpp-python's server POST /extras/tokenize/count. Tried in order; the first that
        # answers is kept.
        root = base_url.rstrip("/")
        root = root[: -len("/v1")] if root.endswith("/v1") else root
        self.tokenize_urls = [root + path for path in TOKENIZE_PATHS]
        self.tokenizer_available: Optional[bool] = None

    async def __aenter__(self) -> "ChatClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def count_tokens(self, messages: list[dict[str, str]]) -> Optional[int]:
        """The prompt's tokens as the served model counts them, or None when the server has no
        tokenizer endpoint (llama.cpp: {"content"} -> {"tokens"}; vLLM: {"prompt"} -> {"count"};
        llama-cpp-python: {"input"} -> {"count"})."""
        if self.tokenizer_available is False:
            return None
        text = "\n".join(m["content"] for m in messages)
        body = {"content": text, "prompt": text, "input": text, "model": self.model, "add_special": True}
        for url in list(self.tokenize_urls):
            try:
                async with self._http().post(url, json=body, timeout=self.timeout) as resp:
                    if resp.status >= 500:
                        return None  # may pass: ask again next time
                    data = await resp.json(content_type=None) if resp.status < 400 else None
            except (asyncio.TimeoutError, aiohttp.ClientError, ValueError):
                return None
            count = _token_count(data)
            if count is None:
                if url in self.tokenize_urls:  # concurrent callers may have found it already
                    self.tokenize_urls.remove(url)  # no tokenizer here
                continue
            self.tokenize_urls = [url]
            self.tokenizer_available = True
            return count + TOKENS_PER_MESSAGE * len(messages)
        self.tokenizer_available = False
        return None

    def overall_deadline_s(self) -> float:
        """The longest a `complete` call may take by the settings: every attempt timing out,
        with the longest backoff between them. Callers hold a summary no longer than this."""
        waits = sum(self.backoff_s * (2 ** (attempt - 1)) * (1 + JITTER)
                    for attempt in range(1, self.max_retries + 1))
        return (self.max_retries + 1) * (self.timeout.total or 0.0) + waits

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with jitter for the retry after `attempt` (1-based)."""
        base = self.backoff_s * (2 ** (attempt - 1))
        return base * (1 + self._rng.uniform(0, JITTER))

    async def complete(self, messages: list[dict[str, str]], *, validate: Callable[[str], T],
                       temperature: float = 0.2, max_tokens: int = 800, json_mode: bool = False,
                       json_schema: Optional[dict[str, Any]] = None,
                       model: Optional[str] = None) -> tuple[T, str, int]:
        """(validated answer, model the server reported, attempts used).

        With `json_mode`, asks for `response_format: {"type": "json_object"}`, adding
        `json_schema` as its "schema" (llama.cpp and Anyscale-style servers then constrain
        decoding to it); servers that reject either get the request without it.
        """
        attempts_allowed = self.max_retries + 1
        reason = "no attempt made"
        attempt = 0
        while attempt < attempts_allowed:
            attempt += 1
            try:
                async with self._semaphore:
                    content, model_used = await self._post(messages, temperature, max_tokens,
                                                           json_mode, json_schema, model or self.model)
                try:
                    return validate(content), model_used, attempt
                except (InvalidAnswer, ValueError) as exc:
                    raise _Retryable(f"invalid answer: {exc}") from None
            except _Fatal as exc:
                raise LlmUnavailable(str(exc), attempt) from None
            except _Retryable as exc:
                reason = exc.reason
                if attempt >= attempts_allowed:
                    break
                delay = exc.retry_after if exc.retry_after is not None else self.backoff_delay(attempt)
                log.warning("LLM attempt %d/%d failed (%s); retrying in %.2fs",
                            attempt, attempts_allowed, reason, delay)
                await self._sleep(delay)
        raise LlmUnavailable(f"{reason} (after {attempt} attempts)", attempt)

    async def _post(self, messages: list[dict[str, str]], temperature: float, max_tokens: int,
                    json_mode: bool, json_schema: Optional[dict[str, Any]],
                    model: str) -> tuple[str, str]:
        body: dict[str, Any] = {"model": model, "messages": messages, "temperature": temperature,
                                "max_tokens": max_tokens, "stream": False}
        if json_mode:
            body["response_format"] = {"type": "json_object"}
            if json_schema is not None:
                body["response_format"]["schema"] = json_schema
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        rejected_json_mode = False
        data: Any = None
        try:
            async with self._http().post(self.url, json=body, headers=headers,
                                         timeout=self.timeout) as resp:
                if resp.status == 400 and "response_format" in body:
                    rejected_json_mode = True
                elif resp.status in RETRYABLE_STATUS:
                    raise _Retryable(f"HTTP {resp.status}", _retry_after_s(resp.headers))
                elif resp.status >= 400:
                    text = (await resp.text())[:200]
                    raise _Fatal(f"HTTP {resp.status} from {self.url}: {text}")
                else:
                    data = await resp.json(content_type=None)
        except asyncio.TimeoutError:
            raise _Retryable(f"timeout after {self.timeout.total}s") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise _Retryable(f"connection error: {type(exc).__name__}: {exc}") from None
        except (aiohttp.ContentTypeError, ValueError) as exc:
            raise _Retryable(f"malformed response body: {exc}") from None
        if rejected_json_mode:
            # This request only: servers without (schema-guided) JSON mode reject the field, but a
            # 400 may as well be about this one prompt, so the next request asks again.
            if "schema" in body["response_format"]:
                log.info("LLM server rejected response_format.schema; this request goes without it")
                return await self._post(messages, temperature, max_tokens, json_mode, None, model)
            log.info("LLM server rejected response_format; this request goes without JSON mode")
            return await self._post(messages, temperature, max_tokens, False, None, model)
        return _content_of(data), str(data.get("model") or model)


def _token_count(data: Any) -> Optional[int]:
    if not isinstance(data, dict):
        return None
    count = data.get("count")
    if isinstance(count, int):
        return count
    tokens = data.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None


def _content_of(data: Any) -> str:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Retryable("response has no choices[0].message.content") from None
    if not isinstance(content, str) or not content.strip():
        raise _Retryable("empty answer")
    return content
