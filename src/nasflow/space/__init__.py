"""Search spaces: `hat` (encoder-decoder Transformers, `Arch`) and `gpt` (decoder-only LMs for
LTS, `GPTArch`, with closed-form parameter counts in `gpt_params`)."""

from nasflow.space import registry  # noqa: F401  (installs get_space's resolver)
