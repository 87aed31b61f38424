"""LTS: training-free search for decoder-only (GPT-2-style) language models.

Modules: `space` (the `GPTArch` value type and `LTSSpace` search spaces as config), `model`
(a flexible GPT-2 decoder with per-layer `d_inner`/`n_head` and a key/value cache), `params`
(the decoder-parameter proxy in closed form), `ptb` (the Penn Treebank word-level corpus and
raw text splits), `proxy_check` (train K small sampled models and rank-correlate parameters with
perplexity), `text` (the latency protocol's tokenizer, held-out prompts and characters per
token), `onnx_export` (prompt and decoder-step graphs), `measure` (prompt/token latency,
latency_char per token and per character with their P95 over real prompts, and peak memory on
the device, in a fresh worker process), `evaluator` (the search's objectives), `pareto`, `search`
(evolutionary Pareto search with a measurement cache), `select` (the case study's candidates),
`plots`, `runner` (the chain from the `lts` config section) and `cli` (`nasflow lts
params|space|proxy-check|text|search|case-study`). Submodules are imported on demand so that
importing the package does not pull in torch.
"""
