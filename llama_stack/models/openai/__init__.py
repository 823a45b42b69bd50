"""The OpenAI wire format, both ways, for the /v1 face (OpenAI bodies in, OpenAI bodies out) and
for the OpenAI-compatible provider (OpenAI bodies out to the upstream, its answers back in):

- requests.py: an OpenAI request body <-> our Inference requests, tool schemas, sampling.
- answers.py:  our answers <-> OpenAI's (finish reasons, usage, logprobs, tool calls), and
  stop sequences applied to text as it streams.

Pure functions over JSON values and our types: no HTTP here.
"""
