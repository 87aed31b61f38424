"""LTS: training-free search for decoder-only (GPT-2-style) language models.

Modules: `space` (the `GPTArch` value type and `LTSSpace` search spaces as config), `model`
(a flexible GPT-2 decoder with per-layer `d_inner`/`n_head` and a key/value cache), `params`
(the decoder-parameter proxy in closed form), `ptb` (the Penn Treebank word-level corpus),
`proxy_check` (train K small sampled models and rank-correlate parameters with perplexity) and
`cli` (`nasflow lts params`, `nasflow lts proxy-check`). Submodules are imported on demand so that
importing the package does not pull in torch.
"""
