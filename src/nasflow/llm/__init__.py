"""LLM performance predictors (LLM-PP): prompts, providers, reply parsing, the offline stand-in."""
