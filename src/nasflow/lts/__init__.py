"""LTS: training-free search for decoder-only language models (GPT-2 and Transformer-XL).

Modules: `model` (a flexible GPT-2 decoder with per-layer `d_inner`/`n_head` and a key/value
cache, and `build_decoder` for either backbone), `txl_model` (the Transformer-XL decoder:
relative positional attention, segment-level recurrence memory, tied or adaptive softmax),
`lm_train` (the one training loop for decoder LMs, resumable, and the held-out evaluator),
`weights` (the initialisation both backbones share; the
architectures and spaces are `nasflow.space.gpt`, the decoder-parameter proxy
`nasflow.space.gpt_params`, the PTB corpus `nasflow.data.ptb`), `proxy_check` (train K small
sampled models and rank-correlate parameters with perplexity), `text` (the latency protocol's
tokenizer, held-out prompts and characters per token), `onnx_export` (prompt and decoder-step
graphs), `measure` (prompt/token latency, latency_char per token and per character with their
P95 over real prompts, and peak memory on the device, in a fresh worker process), `evaluator`
(the search's objectives), `search` (Pareto selection for the one evolution driver,
`nasflow.search.evolution`, with a measurement cache), `select` (the case study's candidates)
and `runner` (the chain from the `lts` config section); plots are `nasflow.report.lts_plots`,
the command `nasflow.cli.lts`. Submodules are imported on demand so that importing the package
does not pull in torch.
"""
