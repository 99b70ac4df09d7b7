"""The HTTP API (aiohttp): profiles, summaries on demand, sessions by user, highlights with
webhooks, group summaries, questions about a session and feedback. Above streams, below the
command line; see README "HTTP API"."""
