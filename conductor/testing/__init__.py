"""Test utilities shipped with the package, so GUI tests and offline demos can use them too.

`fake_gemini` is a fake Gemini REST/SSE server on 127.0.0.1: the real google-genai client talks to it
with no network at all. `fake_openai` (chat completions, with the quirks of Ollama, llama.cpp and vLLM) and
`fake_anthropic` (the Messages API) do the same for the `openai` and `anthropic` SDKs, from the same scripts.
Nothing here is imported by the app itself.
"""
