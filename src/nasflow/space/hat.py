"""HAT encoder-decoder search spaces, the `Arch` value type, genomes and feature encodings.

An `Arch` is one concrete model: per-layer genes for the *active* layers only, plus the name of
the search space it belongs to (which fixes the QKV width and the embedding sharing). A `Genome`
is HAT's search representation: every per-layer slot up to the space's maximum depth, so slots of
inactive layers lie dormant and come back when the layer-number gene grows.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from nasflow.core.checks import is_int
from nasflow.core.errors import NasflowError

# HAT's yml / llmas arch_info keys, in the order the released data lists them.
ARCH_INFO_KEYS: dict[str, str] = {
    "encoder_embed_dim": "encoder-embed-dim-subtransformer",
    "encoder_layer_num": "encoder-layer-num-subtransformer",
    "encoder_ffn_embed_dim": "encoder-ffn-embed-dim-all-subtransformer",
    "encoder_self_attention_heads": "encoder-self-attention-heads-all-subtransformer",
    "decoder_embed_dim": "decoder-embed-dim-subtransformer",
    "decoder_layer_num": "decoder-layer-num-subtransformer",
    "decoder_ffn_embed_dim": "decoder-ffn-embed-dim-all-subtransformer",
    "decoder_self_attention_heads": "decoder-self-attention-heads-all-subtransformer",
    "decoder_ende_attention_heads": "decoder-ende-attention-heads-all-subtransformer",
    "decoder_arbitrary_ende_attn": "decoder-arbitrary-ende-attn-all-subtransformer",
}
ENCODER_LAYER_GENES = ("encoder_ffn_embed_dim", "encoder_self_attention_heads")
DECODER_LAYER_GENES = (
    "decoder_ffn_embed_dim",
    "decoder_self_attention_heads",
    "decoder_ende_attention_heads",
    "decoder_arbitrary_ende_attn",
)
ARBITRARY_CHOICES = (-1, 1, 2)

Genome = tuple[int, ...]


class ArchError(NasflowError, ValueError):
    """An architecture is malformed or outside its search space."""


@dataclass(frozen=True)
class Arch:
    """One encoder-decoder Transformer architecture of a HAT search space (immutable, hashable)."""

    encoder_embed_dim: int
    encoder_layer_num: int
    encoder_ffn_embed_dim: tuple[int, ...]
    encoder_self_attention_heads: tuple[int, ...]
    decoder_embed_dim: int
    decoder_layer_num: int
    decoder_ffn_embed_dim: tuple[int, ...]
    decoder_self_attention_heads: tuple[int, ...]
    decoder_ende_attention_heads: tuple[int, ...]
    decoder_arbitrary_ende_attn: tuple[int, ...]
    space: str = "hat-wmt"

    def __post_init__(self) -> None:
        for name in ARCH_INFO_KEYS:
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        for name in (
            "encoder_embed_dim",
            "encoder_layer_num",
            "decoder_embed_dim",
            "decoder_layer_num",
        ):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ArchError(f"{name} must be a positive integer, got {value!r}")
        for names, depth in (
            (ENCODER_LAYER_GENES, self.encoder_layer_num),
            (DECODER_LAYER_GENES, self.decoder_layer_num),
        ):
            for name in names:
                values = getattr(self, name)
                if not isinstance(values, tuple) or not all(is_int(v) for v in values):
                    raise ArchError(f"{name} must be a list of integers, got {values!r}")
                if len(values) != depth:
                    raise ArchError(
                        f"{name} has {len(values)} entries but the layer number is {depth}"
                    )
                if name != "decoder_arbitrary_ende_attn" and any(v < 1 for v in values):
                    raise ArchError(f"{name} must hold positive integers, got {list(values)}")
        bad = [v for v in self.decoder_arbitrary_ende_attn if v not in ARBITRARY_CHOICES]
        if bad:
            raise ArchError(
                f"decoder_arbitrary_ende_attn values must be in {list(ARBITRARY_CHOICES)}, "
                f"got {bad}"
            )

    # ---- identity ---------------------------------------------------------------------------
    @cached_property
    def id(self) -> str:
        """Stable 12-hex-digit id (sha1 of the canonical JSON, space included)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:12]

    # ---- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: ints and lists, keys as the dataclass fields."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Arch:
        """Inverse of `to_dict`; unknown or missing keys are named in the error."""
        if not isinstance(data, dict):
            raise ArchError(f"an architecture must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ArchError(f"unknown architecture key(s): {', '.join(unknown)}")
        missing = [k for k in ARCH_INFO_KEYS if k not in data]
        if missing:
            raise ArchError(f"missing architecture key(s): {', '.join(missing)}")
        return cls(**data)

    def to_json(self) -> str:
        """Compact canonical JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Arch:
        """Parse `to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ArchError(f"invalid architecture JSON: {error.msg}") from None
        return cls.from_dict(data)

    # ---- paper formats ------------------------------------------------------------------------
    def to_arch_info(self) -> list[str]:
        """The llmas `arch_info` strings, e.g. `encoder-embed-dim-subtransformer: 512`."""
        return [
            f"{key}: {_format_value(getattr(self, name))}" for name, key in ARCH_INFO_KEYS.items()
        ]

    @classmethod
    def from_arch_info(cls, lines: Iterable[str], space: str = "hat-wmt") -> Arch:
        """Parse llmas `arch_info` strings (any order; every key exactly once)."""
        values: dict[str, Any] = {}
        for line in lines:
            key, sep, raw = str(line).partition(":")
            if not sep:
                raise ArchError(f"arch_info line without 'key: value': {line!r}")
            values[key.strip()] = _parse_value(raw.strip(), key.strip())
        return cls._from_hat_keys(values, space)

    def to_hat_yml(self) -> str:
        """HAT SubTransformer yml (`configs/*/subtransformer/*.yml`), lists in flow style."""
        return "\n".join(self.to_arch_info()) + "\n"

    @classmethod
    def from_hat_yml(cls, text: str, space: str = "hat-wmt") -> Arch:
        """Parse a HAT SubTransformer yml."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ArchError(f"invalid HAT yml: {error}") from None
        if not isinstance(data, dict):
            raise ArchError("a HAT SubTransformer yml must be a mapping of keys to values")
        return cls._from_hat_keys(data, space)

    @classmethod
    def _from_hat_keys(cls, data: dict[str, Any], space: str) -> Arch:
        by_key = {key: name for name, key in ARCH_INFO_KEYS.items()}
        unknown = sorted(set(data) - set(by_key))
        if unknown:
            raise ArchError(f"unknown HAT key(s): {', '.join(unknown)}")
        missing = [key for key in by_key if key not in data]
        if missing:
            raise ArchError(f"missing HAT key(s): {', '.join(missing)}")
        return cls(**{by_key[k]: v for k, v in data.items()}, space=space)

    # ---- convenience --------------------------------------------------------------------------
    def replace(self, **changes: Any) -> Arch:
        """A copy with some fields changed (validated like any new Arch)."""
        return Arch(**{**self.to_dict(), **changes})


def _format_value(value: int | tuple[int, ...]) -> str:
    return "[" + ", ".join(str(v) for v in value) + "]" if isinstance(value, tuple) else str(value)


def _parse_value(raw: str, key: str) -> int | list[int]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ArchError(f"arch_info value of {key!r} is not an integer or list: {raw!r}") from None
    if isinstance(value, list) or is_int(value):
        return value
    raise ArchError(f"arch_info value of {key!r} is not an integer or list: {raw!r}")


@dataclass(frozen=True)
class SearchSpace:
    """Choice sets of a HAT-style space; the super dimensions are the largest choices."""

    name: str
    embed_choices: tuple[int, ...]
    encoder_layer_choices: tuple[int, ...]
    decoder_layer_choices: tuple[int, ...]
    ffn_choices: tuple[int, ...]
    head_choices: tuple[int, ...]
    qkv_dim: int
    share_embeddings: bool
    measure_len: int
    latency_feature_scale: tuple[float, ...]
    arbitrary_choices: tuple[int, ...] = ARBITRARY_CHOICES
    description: str = field(default="", compare=False)

    # ---- super dimensions ---------------------------------------------------------------------
    @property
    def super_embed_dim(self) -> int:
        return max(self.embed_choices)

    @property
    def super_ffn_dim(self) -> int:
        return max(self.ffn_choices)

    @property
    def super_heads(self) -> int:
        return max(self.head_choices)

    @property
    def max_encoder_layers(self) -> int:
        return max(self.encoder_layer_choices)

    @property
    def max_decoder_layers(self) -> int:
        return max(self.decoder_layer_choices)

    def super_dims(self) -> dict[str, int]:
        """The SuperTransformer's dimensions (what a supernet of this space allocates)."""
        return {
            "embed_dim": self.super_embed_dim,
            "ffn_dim": self.super_ffn_dim,
            "heads": self.super_heads,
            "qkv_dim": self.qkv_dim,
            "encoder_layers": self.max_encoder_layers,
            "decoder_layers": self.max_decoder_layers,
        }

    def largest(self) -> Arch:
        """The SuperTransformer itself as an Arch (every gene at its largest value)."""
        return self._uniform(max, decoder_arbitrary=max(self.arbitrary_choices))

    def smallest(self) -> Arch:
        """The smallest subnet (every gene at its smallest value, last-layer attention only)."""
        return self._uniform(min, decoder_arbitrary=min(self.arbitrary_choices))

    def _uniform(self, pick: Any, decoder_arbitrary: int) -> Arch:
        enc, dec = pick(self.encoder_layer_choices), pick(self.decoder_layer_choices)
        return Arch(
            encoder_embed_dim=pick(self.embed_choices),
            encoder_layer_num=enc,
            encoder_ffn_embed_dim=(pick(self.ffn_choices),) * enc,
            encoder_self_attention_heads=(pick(self.head_choices),) * enc,
            decoder_embed_dim=pick(self.embed_choices),
            decoder_layer_num=dec,
            decoder_ffn_embed_dim=(pick(self.ffn_choices),) * dec,
            decoder_self_attention_heads=(pick(self.head_choices),) * dec,
            decoder_ende_attention_heads=(pick(self.head_choices),) * dec,
            decoder_arbitrary_ende_attn=(decoder_arbitrary,) * dec,
            space=self.name,
        )

    # ---- validity -----------------------------------------------------------------------------
    def violations(self, arch: Arch) -> list[str]:
        """Every way `arch` falls outside this space (empty when valid)."""
        problems: list[str] = []
        if arch.space != self.name:
            problems.append(f"space is {arch.space!r}, expected {self.name!r}")

        def check(name: str, values: Iterable[int], choices: Sequence[int]) -> None:
            bad = sorted({v for v in values if v not in choices})
            if bad:
                problems.append(f"{name} {bad} not in {list(choices)}")

        check("encoder_embed_dim", [arch.encoder_embed_dim], self.embed_choices)
        check("decoder_embed_dim", [arch.decoder_embed_dim], self.embed_choices)
        check("encoder_layer_num", [arch.encoder_layer_num], self.encoder_layer_choices)
        check("decoder_layer_num", [arch.decoder_layer_num], self.decoder_layer_choices)
        check("encoder_ffn_embed_dim", arch.encoder_ffn_embed_dim, self.ffn_choices)
        check("decoder_ffn_embed_dim", arch.decoder_ffn_embed_dim, self.ffn_choices)
        for name in (
            "encoder_self_attention_heads",
            "decoder_self_attention_heads",
            "decoder_ende_attention_heads",
        ):
            check(name, getattr(arch, name), self.head_choices)
        check(
            "decoder_arbitrary_ende_attn", arch.decoder_arbitrary_ende_attn, self.arbitrary_choices
        )
        deepest = max(arch.decoder_arbitrary_ende_attn, default=-1)
        if deepest + 1 > arch.encoder_layer_num:
            problems.append(
                f"decoder_arbitrary_ende_attn {deepest} attends {deepest + 1} encoder layers, "
                f"but the encoder has {arch.encoder_layer_num}"
            )
        return problems

    def is_valid(self, arch: Arch) -> bool:
        """Whether `arch` lies inside this space."""
        return not self.violations(arch)

    def validate(self, arch: Arch) -> Arch:
        """Return `arch` unchanged, or raise `ArchError` listing every violation."""
        problems = self.violations(arch)
        if problems:
            raise ArchError(
                f"architecture {arch.id} is not in space {self.name!r}: " + "; ".join(problems)
            )
        return arch

    # ---- genomes (HAT search representation) --------------------------------------------------
    @cached_property
    def _gene_choices(self) -> tuple[tuple[int, ...], ...]:
        le, ld = self.max_encoder_layers, self.max_decoder_layers
        return (
            self.embed_choices,
            self.encoder_layer_choices,
            *[self.ffn_choices] * le,
            *[self.head_choices] * le,
            self.embed_choices,
            self.decoder_layer_choices,
            *[self.ffn_choices] * ld,
            *[self.head_choices] * ld * 2,
            *[self.arbitrary_choices] * ld,
        )

    def gene_choices(self) -> tuple[tuple[int, ...], ...]:
        """Choice set of every gene position, in HAT's order.

        `[enc_embed, enc_L, encFFN x Le, encHeads x Le, dec_embed, dec_L, decFFN x Ld,
        decSelfHeads x Ld, decCrossHeads x Ld, arbitrary x Ld]` (40 genes for HAT's spaces).
        """
        return self._gene_choices

    def sample_genome(self, rng: random.Random) -> Genome:
        """Draw every gene uniformly from its choice set (HAT's per-gene sampling)."""
        return tuple(rng.choice(choices) for choices in self.gene_choices())

    def decode(self, genome: Sequence[int]) -> Arch:
        """The architecture a genome expresses (dormant slots dropped)."""
        le, ld = self.max_encoder_layers, self.max_decoder_layers
        expected = 2 + 2 * le + 2 + 4 * ld
        if len(genome) != expected:
            raise ArchError(
                f"a genome of space {self.name!r} has {expected} genes, got {len(genome)}"
            )
        genes = list(genome)
        enc_embed, enc_layers = genes[0], genes[1]
        enc_ffn, enc_heads = genes[2 : 2 + le], genes[2 + le : 2 + 2 * le]
        dec = genes[2 + 2 * le :]
        dec_embed, dec_layers = dec[0], dec[1]
        blocks = [dec[2 + i * ld : 2 + (i + 1) * ld] for i in range(4)]
        return self.validate(
            Arch(
                encoder_embed_dim=enc_embed,
                encoder_layer_num=enc_layers,
                encoder_ffn_embed_dim=tuple(enc_ffn[:enc_layers]),
                encoder_self_attention_heads=tuple(enc_heads[:enc_layers]),
                decoder_embed_dim=dec_embed,
                decoder_layer_num=dec_layers,
                decoder_ffn_embed_dim=tuple(blocks[0][:dec_layers]),
                decoder_self_attention_heads=tuple(blocks[1][:dec_layers]),
                decoder_ende_attention_heads=tuple(blocks[2][:dec_layers]),
                decoder_arbitrary_ende_attn=tuple(blocks[3][:dec_layers]),
                space=self.name,
            )
        )

    def encode(self, arch: Arch, rng: random.Random | None = None) -> Genome:
        """A genome expressing `arch`; dormant slots come from `rng`, else the largest choice."""
        self.validate(arch)
        le, ld = self.max_encoder_layers, self.max_decoder_layers

        def slots(active: tuple[int, ...], depth: int, choices: tuple[int, ...]) -> list[int]:
            fill = [
                rng.choice(choices) if rng else max(choices) for _ in range(depth - len(active))
            ]
            return list(active) + fill

        return (
            arch.encoder_embed_dim,
            arch.encoder_layer_num,
            *slots(arch.encoder_ffn_embed_dim, le, self.ffn_choices),
            *slots(arch.encoder_self_attention_heads, le, self.head_choices),
            arch.decoder_embed_dim,
            arch.decoder_layer_num,
            *slots(arch.decoder_ffn_embed_dim, ld, self.ffn_choices),
            *slots(arch.decoder_self_attention_heads, ld, self.head_choices),
            *slots(arch.decoder_ende_attention_heads, ld, self.head_choices),
            *slots(arch.decoder_arbitrary_ende_attn, ld, self.arbitrary_choices),
        )

    def mutate(self, genome: Genome, prob: float, rng: random.Random) -> Genome:
        """Redraw each gene uniformly with probability `prob` (it may redraw the same value)."""
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"mutation probability must be in [0, 1], got {prob}")
        return tuple(
            rng.choice(choices) if rng.random() < prob else gene
            for gene, choices in zip(genome, self.gene_choices(), strict=True)
        )

    def crossover(self, first: Genome, second: Genome, rng: random.Random) -> Genome:
        """Take each gene from either parent with probability 0.5."""
        return tuple(a if rng.random() < 0.5 else b for a, b in zip(first, second, strict=True))

    def sample(self, rng: random.Random) -> Arch:
        """One architecture drawn with HAT's per-gene uniform sampling."""
        return self.decode(self.sample_genome(rng))

    def sample_unique(
        self,
        n: int,
        seed: int,
        max_tries: int | None = None,
        exclude: Collection[str] = (),
    ) -> list[Arch]:
        """`n` distinct architectures from a seeded generator, none of whose ids is in `exclude`
        (error if the space runs out)."""
        rng = random.Random(seed)
        seen: dict[str, Arch] = {}
        tries, limit = 0, max_tries or 1000 * max(n, 1)
        while len(seen) < n:
            if tries >= limit:
                raise ArchError(
                    f"found only {len(seen)} distinct architectures of {n} after {tries} draws"
                )
            arch = self.sample(rng)
            if arch.id not in exclude:
                seen.setdefault(arch.id, arch)
            tries += 1
        return list(seen.values())

    # ---- feature encodings --------------------------------------------------------------------
    def distill_features(self, arch: Arch) -> list[float]:
        """LLM-Distill-PP's 10-value `hat` encoding (llmas `bleu_predictor.py`).

        Dims are divided by the super dims (640, 6, 3072, 8 for `hat-wmt`), and arbitrary
        attention is `(1 + mean(raw values in {-1, 1, 2})) / 3`.
        """
        e, f, h = self.super_embed_dim, self.super_ffn_dim, self.super_heads
        le, ld = self.max_encoder_layers, self.max_decoder_layers
        return [
            arch.encoder_embed_dim / e,
            arch.encoder_layer_num / le,
            _mean(arch.encoder_ffn_embed_dim) / f,
            _mean(arch.encoder_self_attention_heads) / h,
            arch.decoder_embed_dim / e,
            arch.decoder_layer_num / ld,
            _mean(arch.decoder_ffn_embed_dim) / f,
            _mean(arch.decoder_self_attention_heads) / h,
            _mean(arch.decoder_ende_attention_heads) / h,
            (1 + _mean(arch.decoder_arbitrary_ende_attn)) / 3,
        ]

    def latency_raw_features(self, arch: Arch) -> list[float]:
        """HAT's 10 latency features (`utils.get_config_features`), unnormalised.

        Layer means are over active layers; arbitrary attention is mapped -1->1, 1->2, 2->3
        (encoder layers attended) before its mean. Names: `LATENCY_FEATURE_NAMES`.
        """
        attended = [{-1: 1, 1: 2, 2: 3}[v] for v in arch.decoder_arbitrary_ende_attn]
        return [
            float(arch.encoder_embed_dim),
            float(arch.encoder_layer_num),
            _mean(arch.encoder_ffn_embed_dim),
            _mean(arch.encoder_self_attention_heads),
            float(arch.decoder_embed_dim),
            float(arch.decoder_layer_num),
            _mean(arch.decoder_ffn_embed_dim),
            _mean(arch.decoder_self_attention_heads),
            _mean(arch.decoder_ende_attention_heads),
            _mean(attended),
        ]

    def latency_features(self, arch: Arch) -> list[float]:
        """`latency_raw_features` divided by the space's scale (HAT's
        `[640, 6, 2048, 6, 640, 6, 2048, 6, 6, 2]` for the HAT spaces)."""
        raw = self.latency_raw_features(arch)
        return [value / scale for value, scale in zip(raw, self.latency_feature_scale, strict=True)]

    def widened(self) -> SearchSpace:
        """The latency-sampling space: one more, smaller FFN and head choice (half the smallest).

        HAT measures its latency dataset on a space wider than the search space (FFN adds 512,
        heads add 2 for `hat-wmt`) so the predictor is not extrapolating at the edges. The name
        is kept, so architectures keep their ids and features.
        """
        ffn = min(self.ffn_choices) // 2
        heads = min(self.head_choices) // 2
        ffn_choices = self.ffn_choices + ((ffn,) if ffn >= 1 else ())
        usable = heads >= 1 and self.qkv_dim % heads == 0
        head_choices = self.head_choices + ((heads,) if usable else ())
        return replace(
            self,
            ffn_choices=ffn_choices,
            head_choices=head_choices,
            description=f"{self.description} (widened for latency sampling)",
        )


def _mean(values: Sequence[int]) -> float:
    return sum(values) / len(values)


LATENCY_FEATURE_NAMES = (
    "encoder_embed_dim",
    "encoder_layer_num",
    "encoder_ffn_mean",
    "encoder_heads_mean",
    "decoder_embed_dim",
    "decoder_layer_num",
    "decoder_ffn_mean",
    "decoder_self_heads_mean",
    "decoder_cross_heads_mean",
    "decoder_attended_layers_mean",
)
_HAT_LATENCY_SCALE = (640.0, 6.0, 2048.0, 6.0, 640.0, 6.0, 2048.0, 6.0, 6.0, 2.0)

SPACES: dict[str, SearchSpace] = {
    space.name: space
    for space in (
        SearchSpace(
            name="hat-wmt",
            embed_choices=(640, 512),
            encoder_layer_choices=(6,),
            decoder_layer_choices=(6, 5, 4, 3, 2, 1),
            ffn_choices=(3072, 2048, 1024),
            head_choices=(8, 4),
            qkv_dim=512,
            share_embeddings=True,
            measure_len=30,
            latency_feature_scale=_HAT_LATENCY_SCALE,
            description="HAT space0 for WMT'14 En-De/En-Fr and WMT'19 En-De (shared embeddings)",
        ),
        SearchSpace(
            name="hat-iwslt",
            embed_choices=(640, 512),
            encoder_layer_choices=(6,),
            decoder_layer_choices=(6, 5, 4, 3, 2, 1),
            ffn_choices=(2048, 1024, 512),
            head_choices=(4, 2),
            qkv_dim=512,
            share_embeddings=False,
            measure_len=23,
            latency_feature_scale=_HAT_LATENCY_SCALE,
            description="HAT space1 / llmas space0 for IWSLT'14 De-En (separate embeddings)",
        ),
        SearchSpace(
            name="demo",
            embed_choices=(160, 128),
            encoder_layer_choices=(3,),
            decoder_layer_choices=(3, 2, 1),
            ffn_choices=(512, 384, 256),
            head_choices=(4, 2),
            qkv_dim=128,
            share_embeddings=True,
            measure_len=20,
            latency_feature_scale=(160.0, 3.0, 512.0, 4.0, 160.0, 3.0, 512.0, 4.0, 4.0, 3.0),
            description="CPU-sized space with HAT's gene structure for the Multi30k demo",
        ),
        SearchSpace(
            name="m30k",
            embed_choices=(256, 192),
            encoder_layer_choices=(3,),
            decoder_layer_choices=(3, 2, 1),
            ffn_choices=(1024, 768, 512),
            head_choices=(8, 4),
            qkv_dim=256,
            share_embeddings=True,
            measure_len=20,
            latency_feature_scale=(256.0, 3.0, 1024.0, 8.0, 256.0, 3.0, 1024.0, 8.0, 8.0, 3.0),
            description="Multi30k-sized space (d_model 192-256) for models that reach the field's "
            "small-Transformer BLEU on a single GPU or a long CPU run",
        ),
    )
}


def stream_seed(seed: int, stream: str) -> int:
    """The seed of one named random stream of an experiment (sha256 of the experiment seed and
    the name), so that samples drawn for different purposes never share their first draws."""
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def tfs_sample(space: SearchSpace, n: int, seed: int) -> list[Arch]:
    """The experiment's TFS-Eval architectures: `n` distinct draws with the experiment seed."""
    return space.sample_unique(n, seed=seed)


def held_out_sample(
    space: SearchSpace, n: int, seed: int, stream: str, exclude: Collection[str]
) -> list[Arch]:
    """`n` architectures drawn from the named stream of experiment seed `seed`, none of whose
    ids is in `exclude` (the TFS-Eval architectures: a distillation set is never scored on its
    own training inputs)."""
    return space.sample_unique(n, seed=stream_seed(seed, stream), exclude=exclude)


#: Resolves what is not a built-in name (`nasflow.space.registry.resolve_space`, installed by
#: `nasflow.space` when the package is imported: the registry builds on this module, so this
#: module does not import it).
_resolve_other: Callable[[Any], SearchSpace] | None = None


def set_space_resolver(resolve: Callable[[Any], SearchSpace]) -> None:
    """Install the resolver `get_space` uses beyond the built-in names."""
    global _resolve_other
    _resolve_other = resolve


def get_space(name: str | Path | Mapping[str, Any] | SearchSpace) -> SearchSpace:
    """The search space called `name`: a built-in (`hat-wmt`, `hat-iwslt`, `demo`, `m30k`), one
    registered with `register_space` or by a `nasflow.spaces` entry point, a YAML/JSON space
    file, a mapping or a `SearchSpace` (see `nasflow.space.registry`; those are registered)."""
    if isinstance(name, str) and name in SPACES:
        return SPACES[name]
    if _resolve_other is None:  # only if nasflow.space.registry failed to import
        raise ArchError(f"unknown search space {name!r}; built in: {', '.join(SPACES)}")
    return _resolve_other(name)


def space_of(arch: Arch) -> SearchSpace:
    """The search space an architecture names."""
    return get_space(arch.space)


def parse_arch(text: str, space: str) -> Arch:
    """An architecture from JSON text or a JSON file, checked against `space`."""
    path = Path(text)
    source = text
    if not text.lstrip().startswith("{"):
        if not path.is_file():
            raise ArchError(f"--arch {text}: neither JSON nor an existing file")
        source, text = str(path), path.read_text(encoding="utf-8")
    try:
        arch = Arch.from_json(text)
    except (ValueError, TypeError, KeyError) as error:
        raise ArchError(f"--arch {source[:80]}: {error}") from None
    return get_space(space).validate(arch)
