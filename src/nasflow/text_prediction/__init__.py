"""The text-prediction case study's quality side: pretraining, quality metrics, finetuning, the
suggestion engine, threshold tuning and the baseline-vs-candidate tables (issue 19).

Modules: `sources` (where the two corpora come from), `corpus` (the experiment's vocabulary and
encoded corpora), `models` (which decoders are trained, and their names), `quality` (perplexity
and last-word accuracy), `training` (pretraining and finetuning, each scored), `suggest` (the
suggestion engine's greedy continuations), `metrics` (trigger rate, ASC, AEC), `tuning`
(thresholds matched to the baseline's trigger rate), `deploy` (ONNX Runtime latency of the
trained checkpoints), `results` (Tables 2 and 3) and `inner_ratio` (the d_inner/d_model
analysis). The tables are formatted by `nasflow.report.text_prediction_tables`.
"""
