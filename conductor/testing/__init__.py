"""Test utilities shipped with the package, so GUI tests and offline demos can use them too.

`fake_gemini` is a fake Gemini REST/SSE server on 127.0.0.1: the real google-genai client talks to it
with no network at all. Nothing here is imported by the app itself.
"""
