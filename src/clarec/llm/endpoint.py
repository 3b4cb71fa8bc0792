"""Generation through any OpenAI-compatible chat endpoint (llama.cpp's server, vLLM, Ollama, a hosted
model, or ``clarec llm serve``).

Each prompt is one ``POST {url}/chat/completions`` request; a batch's requests run concurrently.
Connection failures, time-outs, HTTP 429 and 5xx answers are retried with exponential back-off;
other HTTP errors and answers without ``choices[0].message.content`` stop the run with a clear
error. What was generated before (earlier batches) is in the cache already.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests
import urllib3

from clarec.errors import ClarecError, ConfigError
from clarec.llm.base import GenerationSettings, Generator, Messages, PartialAnswers

__all__ = ["EndpointGenerator"]

log = logging.getLogger("clarec.llm")


class EndpointError(ClarecError):
    """The endpoint failed or answered something that is not a chat completion."""


class EndpointGenerator(Generator):
    """Generation by an OpenAI-compatible server.

    Args:
        url: the API base, e.g. ``http://127.0.0.1:8080/v1``.
        model: the model name sent with each request (with ``url``, the cache key).
        api_key_env: environment variable holding the API key (sent as a bearer token when set, over
            https or to this machine only: not in plain text to another host).
        timeout: seconds per request.
        retries: further attempts after a failed request (connection, time-out, 429, 5xx).
        backoff: seconds before the first retry, doubled at each further one.
        Other arguments: :class:`~clarec.llm.base.Generator`.
    """

    def __init__(
        self,
        url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not str(url).startswith(("http://", "https://")):
            raise ConfigError(f"endpoint url must start with http:// or https://, got {url!r}")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ConfigError("timeout must be > 0, retries and backoff >= 0")
        self.url = str(url).rstrip("/")
        try:  # a malformed address is one clear error here, not a traceback at the first request
            requests.Request("POST", f"{self.url}/chat/completions").prepare()
        except requests.RequestException as e:
            raise ConfigError(f"endpoint url {url!r} is not a valid address: {e}") from None
        self.model = str(model)
        self._model_id: str | None = None
        self.api_key_env = api_key_env
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.session = requests.Session()

    @property
    def model_id(self) -> str:
        """The cache key of the answers: the model a ``clarec llm-serve`` says it serves (``GET
        /models``: the name sent, or the one model it lists, with its weights' fingerprint), else the
        address and the name it lists or the name sent — never a name alone (two servers list the
        same "default"), so that the answers of another server or model are not read back as this
        one's."""
        if self._model_id is None:
            served = None
            try:
                listed = self.session.get(
                    f"{self.url}/models", headers=self._headers(), timeout=min(self.timeout, 10.0)
                ).json()["data"]
                entries = [d for d in listed if d.get("id") == self.model] or (
                    listed if len(listed) == 1 else []
                )
                if entries and "clarec_model_id" in entries[0]:
                    served = f"{entries[0].get('id')}:{entries[0]['clarec_model_id']}"
                elif entries:
                    served = f"{self.url}:{entries[0].get('id')}"
            except (requests.RequestException, ValueError, KeyError, TypeError, AttributeError):
                pass
            self._model_id = f"endpoint:{served}" if served else f"endpoint:{self.url}:{self.model}"
        return self._model_id

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if not key:
            return {}
        host = urlsplit(self.url).hostname or ""
        if self.url.startswith("https://") or host in ("localhost", "127.0.0.1", "::1"):
            return {"Authorization": f"Bearer {key}"}
        if not getattr(self, "_warned_key", False):  # a key in plain text to another machine: not sent
            log.warning("%s: plain http to another host: $%s is not sent", self.url, self.api_key_env)
            self._warned_key = True
        return {}

    def _one(self, messages: Messages, settings: GenerationSettings) -> str:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "seed": settings.seed,
        }
        url = f"{self.url}/chat/completions"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._post(url, body)
            except requests.Timeout:
                problem = f"no answer within {self.timeout:g} s"
            except requests.ConnectionError as e:
                problem = f"cannot connect ({type(e).__name__})"
            except requests.RequestException as e:  # a body cut off, an invalid port...
                problem = f"request failed ({type(e).__name__}: {str(e)[:200]})"
            else:
                if response.status_code == 200:
                    return self._content(response)
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code != 429 and response.status_code < 500:
                    raise EndpointError(f"{url}: {problem}")
            if last:
                raise EndpointError(f"{url}: {problem} (after {self.retries + 1} attempts)")
            wait = self.backoff * 2**attempt
            log.warning("%s: %s; retrying in %.1f s", url, problem, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _post(self, url: str, body: dict) -> requests.Response:
        """POST ``body``; the whole answer within :attr:`timeout` seconds (``requests``' own time-out
        bounds each read only: a server trickling bytes would hold the caller for ever)."""
        deadline = time.monotonic() + self.timeout
        response = self.session.post(
            url, json=body, headers=self._headers(), timeout=self.timeout, stream=True
        )
        chunks = []
        with response:
            try:
                while chunk := response.raw.read1(65536, decode_content=True):  # what has arrived so far
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise requests.Timeout(f"the answer took over {self.timeout:g} s")
            # the raw stream raises urllib3's own errors, which requests would have wrapped
            except urllib3.exceptions.ReadTimeoutError as e:
                raise requests.Timeout(str(e)) from e
            except urllib3.exceptions.HTTPError as e:  # a connection dropped mid-body, ...
                raise requests.ConnectionError(str(e)) from e
            response._content = b"".join(chunks)  # read as a whole, as without streaming
        return response

    def _content(self, response: requests.Response) -> str:
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise EndpointError(
                f"{self.url}: not a chat completion (no choices[0].message.content): {response.text[:200]!r}"
            ) from None
        if not isinstance(content, str):
            raise EndpointError(f"{self.url}: message content is {type(content).__name__}, not text")
        return content.strip()

    def _generate(self, batch: list[Messages], settings: GenerationSettings) -> list[str]:
        if len(batch) == 1:
            return [self._one(batch[0], settings)]
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            futures = [pool.submit(self._one, m, settings) for m in batch]
        answers, failed = {}, None
        for j, f in enumerate(futures):
            if f.exception() is None:
                answers[j] = f.result()
            elif failed is None:
                failed = f.exception()
        if failed is not None:  # the other prompts' answers are kept (cached), then the error raised
            raise PartialAnswers(answers, failed)
        return [answers[j] for j in range(len(batch))]
