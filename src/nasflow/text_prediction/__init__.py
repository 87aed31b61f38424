"""The text-prediction case study's quality side: pretraining, quality metrics, finetuning, the
suggestion engine, threshold tuning and the baseline-vs-candidate tables (issue 19).

Modules: `corpus` (the experiment's vocabulary and encoded corpora), `quality` (perplexity and
last-word accuracy), `suggest` (the suggestion engine's greedy continuations), `metrics` (trigger
rate, ASC, AEC), `tuning` (thresholds matched to the baseline's trigger rate) and `runner` (the
stage's steps from the `text_prediction` config section).
"""
